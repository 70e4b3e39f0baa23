"""``edge-bench``: throughput and latency of a bundle's targets, like OpenVINO benchmark_app / trtexec.

``edge-bench BUNDLE_OR_NAME`` (a ``.xeb`` file, or a packaged default: ``surgical``, ``crop``).

Modes:

- ``engine``: bare ``engine.infer()`` on the bundle's self-test input tiled to one frame
  (references bound once, as in the daemon). Several targets (``--backend all``) are measured
  in alternating rounds (A, B, A, B, ...) so that thermal or background drift hits all alike.
- ``pipeline``: the daemon itself (simulated camera, calibration, inference, post-processing)
  into a counting null sink; each target is one daemon run, one after the other.

Metrics (docs/bench.md): count, duration_s, throughput_fps, latency min/median/mean/p90/p95/p99/max
and a chosen percentile (ms, ``time.perf_counter_ns``), warm-up excluded; load_ms and
first_inference_ms (load + compile + bind + first run) reported apart; cpu_util (CPU seconds of
this process per wall second over the timed part: 2.0 = two cores busy); rss_mb after the run and
peak_rss_mb (the process's peak so far: configurations measured earlier in the same run count).

Device-side: imports no torch, onnx or nncf; the runtimes load lazily through ``edge.engines``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calibration.errors import XenoedgeError

__all__ = ["BACKENDS", "CSV_COLUMNS", "SCHEMA_VERSION", "BenchError", "BenchSettings", "main", "run_bench"]

SCHEMA_VERSION = 1
#: --backend value -> manifest runtimes it selects (None: every target of the bundle).
BACKENDS: dict[str, tuple[str, ...] | None] = {"ort": ("onnxruntime",), "openvino": ("openvino",), "all": None}
RUNTIME_ALIASES = {"ort": "onnxruntime", "onnxruntime": "onnxruntime", "openvino": "openvino", "ov": "openvino",
                   "tensorrt": "tensorrt", "trt": "tensorrt"}  # fmt: skip
MODES = ("engine", "pipeline")
#: Simulated camera for the sensor a bundle was made for (pipeline mode).
SIM_CAMERAS = {"tivita": "sim:surgical", "mosaic-5x5-nir": "sim:crop"}
DEFAULT_TIME_S = 10.0
_ORT_CPU = ("CPUExecutionProvider", "OpenVINOExecutionProvider")
DEFAULT_ROUNDS = 10
LATENCY_KEYS = ("min", "median", "mean", "p90", "p95", "p99", "max")
#: Fixed CSV columns (units in the names).
CSV_COLUMNS = (
    "bundle", "mode", "target", "runtime", "precision", "device", "status", "count", "duration_s",
    "throughput_fps", *(f"latency_{k}_ms" for k in LATENCY_KEYS), "latency_percentile", "latency_pct_ms",
    "load_ms", "first_inference_ms", "cpu_util", "rss_mb", "peak_rss_mb", "selftest_agreement", "note",
)  # fmt: skip


class BenchError(XenoedgeError):
    """Bad edge-bench input: unknown backend/device, a target the bundle lacks, nothing runnable."""


@dataclass
class BenchSettings:
    """What to measure. ``niter``/``time_s``: minimum iterations / seconds per configuration (both
    given: both minima, like trtexec; neither: ``DEFAULT_TIME_S``). ``warmup``: untimed runs first."""

    bundle: str
    device: str | None = None
    backend: str = "all"
    mode: str = "engine"
    niter: int | None = None
    time_s: float | None = None
    warmup: int = 5
    threads: int | None = None
    percentile: float = 50.0
    rounds: int = DEFAULT_ROUNDS
    seed: int = 0


@dataclass
class _Config:
    target: str
    runtime: str
    precision: str
    devices: list[str]
    engine: object = None
    lat_ns: list[int] = field(default_factory=list)
    wall_ns: int = 0
    cpu_s: float = 0.0
    result: dict = field(default_factory=dict)


# ---- input resolution -------------------------------------------------------------------------


def resolve_bundle(arg: str) -> Path:
    """A bundle file path, or the packaged default of that name."""
    from edge.device_cli import DEFAULT_BUNDLES, default_bundle

    if arg in DEFAULT_BUNDLES:
        return default_bundle(arg)
    path = Path(arg)
    if not path.is_file():
        raise BenchError(f"{arg}: no such bundle file, and not a packaged bundle ({', '.join(DEFAULT_BUNDLES)})")
    return path


def _options(device: str | None, threads: int | None, manifest: Mapping):
    """EngineOptions and the target/runtime filter that ``-d`` asks for."""
    from edge.engines import DEFAULT_ORT_PROVIDERS, OPENVINO_DEVICES, EngineOptions

    targets = manifest["targets"]
    only_target = only_runtime = None
    ov_device, providers = None, DEFAULT_ORT_PROVIDERS
    if device is None:
        pass
    elif device in targets:
        only_target = device
    elif device.lower() in RUNTIME_ALIASES:
        only_runtime = RUNTIME_ALIASES[device.lower()]
    elif device.upper() in OPENVINO_DEVICES:
        ov_device = device.upper()
        if ov_device == "CPU":
            providers = ("CPUExecutionProvider",)
    else:
        raise BenchError(
            f"unknown device {device!r}; available: devices {', '.join(OPENVINO_DEVICES)}; runtimes "
            f"{', '.join(sorted(set(RUNTIME_ALIASES.values())))}; targets of bundle {manifest['name']}: "
            f"{', '.join(targets)}"
        )
    options = EngineOptions(ort_providers=providers, openvino_device=ov_device, threads=threads)
    return options, only_target, only_runtime


def select_configs(manifest: Mapping, settings: BenchSettings) -> tuple[list[_Config], list[str], object]:
    """The targets to measure, notes on those skipped (runtime not installed / no device), options."""
    from edge.engines import ENGINES

    if settings.backend not in BACKENDS:
        raise BenchError(f"unknown backend {settings.backend!r}; available: {', '.join(BACKENDS)}")
    options, only_target, only_runtime = _options(settings.device, settings.threads, manifest)
    targets = manifest["targets"]
    runtimes = BACKENDS[settings.backend]
    wanted = [
        name
        for name, spec in targets.items()
        if (runtimes is None or spec.get("runtime") in runtimes)
        and (only_target is None or name == only_target)
        and (only_runtime is None or spec.get("runtime") == only_runtime)
    ]
    if not wanted:
        has = ", ".join(f"{n} ({t.get('runtime')}, {t.get('precision')})" for n, t in targets.items())
        asked = f"backend {settings.backend}" + (f", device {settings.device}" if settings.device else "")
        raise BenchError(f"bundle {manifest['name']} has no target for {asked}; its targets: {has}")
    configs, notes = [], []
    for name in wanted:
        spec = targets[name]
        kind = ENGINES.get(spec.get("runtime", ""))
        if kind is None:
            notes.append(f"skipped {name}: runtime {spec.get('runtime')!r} is not supported by edge.engines")
            continue
        devices = kind.devices(spec, options)
        if not devices:
            installed = kind.installed()
            why = "is not installed" if not installed else f"has no usable device here (has {', '.join(installed)})"
            notes.append(f"skipped {name}: {spec['runtime']} {why}")
            continue
        if options.openvino_device in ("GPU", "NPU") and kind.runtime != "openvino" and devices[0] in _ORT_CPU:
            notes.append(
                f"skipped {name}: -d {options.openvino_device} asked, {kind.runtime} has only {devices[0]} here"
            )
            continue
        configs.append(_Config(name, spec["runtime"], spec.get("precision", ""), devices))
    return configs, notes, options


# ---- statistics -------------------------------------------------------------------------------


def _rss_mb() -> tuple[float | None, float | None]:
    """(current RSS, peak RSS) of this process in MB; None where the platform does not say."""
    current = peak = None
    try:
        with open("/proc/self/statm") as f:
            current = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = maxrss / 1e6 if sys.platform == "darwin" else maxrss / 1e3  # bytes on macOS, KiB on Linux
    except ImportError:
        pass
    return current, peak


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def latency_stats(lat_ns: Sequence[int], percentile: float) -> dict[str, float]:
    """Latency statistics in ms of per-iteration times in ns.

    >>> latency_stats([1_000_000, 2_000_000, 3_000_000], 50)["median"]
    2.0
    """
    if not len(lat_ns):
        return {**dict.fromkeys(LATENCY_KEYS, math.nan), "pct": math.nan}
    ms = np.asarray(lat_ns, dtype=np.float64) / 1e6
    out = {"min": ms.min(), "median": np.median(ms), "mean": ms.mean(), "max": ms.max()}
    for p in (90, 95, 99):
        out[f"p{p}"] = np.percentile(ms, p)
    out["pct"] = np.percentile(ms, percentile)
    return {k: round(float(v), 4) for k, v in out.items()}


def summarize(lat_ns: Sequence[int], wall_ns: int, cpu_s: float, percentile: float) -> dict:
    """count, duration_s, throughput_fps, latency_ms {...}, cpu_util of one configuration."""
    duration_s = wall_ns / 1e9
    stats = latency_stats(lat_ns, percentile)
    pct = stats.pop("pct")
    return {
        "count": len(lat_ns),
        "duration_s": round(duration_s, 4),
        "throughput_fps": round(len(lat_ns) / duration_s, 3) if duration_s > 0 else math.nan,
        "latency_ms": stats,
        "latency_percentile": percentile,
        "latency_pct_ms": pct,
        "cpu_util": round(cpu_s / duration_s, 3) if duration_s > 0 else math.nan,
    }


# ---- engine mode ------------------------------------------------------------------------------


def _open_config(folder: Path, manifest: Mapping, cfg: _Config, options, selftest) -> None:
    """Load the target, fill the input with the tiled self-test input, run it once (timed)."""
    from edge.engines import ENGINES
    from export.bundle import check_selftest, tile_to

    t0 = time.perf_counter_ns()
    frame_hw = tuple(selftest.expected.shape[1:]) if None in manifest["input"]["shape"][1:3] else None
    engine = ENGINES[cfg.runtime].open(folder, manifest, cfg.target, cfg.devices, options, frame_hw)
    t1 = time.perf_counter_ns()
    inputs = selftest.inputs
    engine.input_buffer[...] = tile_to(inputs[engine.input_name], engine.input_shape)
    if engine.variant == "raw":
        engine.bind_references(inputs["dark"], inputs["gain"])
    classes = engine.infer().classes
    t2 = time.perf_counter_ns()
    cfg.engine = engine
    cfg.result.update(
        device=engine.device,
        engine=engine.name,
        load_ms=round((t1 - t0) / 1e6, 3),
        first_inference_ms=round((t2 - t0) / 1e6, 3),
    )
    if selftest.expected.shape[1:] == classes.shape:
        try:
            cfg.result["selftest_agreement"] = round(check_selftest(classes[None], selftest), 5)
        except XenoedgeError as exc:
            cfg.result["selftest_agreement"] = None
            cfg.result["note"] = str(exc)


def _run_chunk(cfg: _Config, n_until: int, ns_until: int) -> None:
    """Run ``cfg`` until it has ``n_until`` iterations and ``ns_until`` timed ns in total."""
    infer, lat = cfg.engine.infer, cfg.lat_ns
    clock = time.perf_counter_ns
    cpu0, start = _cpu_s(), clock()
    while len(lat) < n_until or cfg.wall_ns + (clock() - start) < ns_until:
        t0 = clock()
        infer()
        lat.append(clock() - t0)
    cfg.wall_ns += clock() - start
    cfg.cpu_s += _cpu_s() - cpu0


def _targets(settings: BenchSettings) -> tuple[int, float]:
    niter, time_s = settings.niter, settings.time_s
    if niter is None and time_s is None:
        time_s = DEFAULT_TIME_S
    return niter or 0, time_s or 0.0


def bench_engine(folder: Path, manifest: Mapping, configs: list[_Config], settings: BenchSettings, options) -> None:
    """Alternating rounds over ``configs``; fills each ``cfg.result``."""
    from edge.cli_common import console
    from export.bundle import load_selftest

    selftest = load_selftest(folder, manifest)
    for cfg in configs:
        _open_config(folder, manifest, cfg, options, selftest)
        cfg.engine.warm_up(settings.warmup)
    niter, time_s = _targets(settings)
    rounds = max(1, min(settings.rounds, niter or settings.rounds))
    console.print(
        f"[bold]edge-bench[/]: {len(configs)} configuration(s), {rounds} alternating round(s), "
        f"{f'{niter} iterations' if niter else ''}{' and ' if niter and time_s else ''}"
        f"{f'{time_s:.1f} s' if time_s else ''} each"
    )
    for r in range(rounds):
        for cfg in configs:
            _run_chunk(cfg, math.ceil(niter * (r + 1) / rounds), int(time_s * 1e9 * (r + 1) / rounds))
    for cfg in configs:
        cfg.result.update(summarize(cfg.lat_ns, cfg.wall_ns, cfg.cpu_s, settings.percentile))
        cfg.engine.close()
    rss, peak = _rss_mb()
    for cfg in configs:  # the engines share one process: one figure for all
        cfg.result.update(rss_mb=_round(rss), peak_rss_mb=_round(peak))


def _round(x: float | None, n: int = 1) -> float | None:
    return None if x is None else round(x, n)


# ---- pipeline mode ----------------------------------------------------------------------------


class CountingSink:
    """A null sink that records each mask's pipeline latency (``latency_ms``) and arrival time (ns)."""

    def __init__(self, warmup: int, stop_after_ns: int | None = None):
        self.warmup = warmup
        self.masks = 0
        self.lat_ns: list[int] = []
        self.arrivals_ns: list[int] = []
        self.hello: dict = {}
        self.errors: list[str] = []
        self.stop_after_ns = stop_after_ns
        self.daemon = None

    def send(self, kind: str, **fields) -> None:
        now = time.perf_counter_ns()
        if kind == "hello":
            self.hello = {k: fields.get(k) for k in ("engine", "model_id", "width", "height")}
        elif kind == "error":
            self.errors.append(f"{fields.get('code')}: {fields.get('message')}")
        elif kind == "mask":
            self.masks += 1
            if self.masks == 1:
                self.first_mask_ns = now
            if self.masks > self.warmup:
                self.lat_ns.append(int(fields["latency_ms"] * 1e6))
                self.arrivals_ns.append(now)
                if (
                    self.stop_after_ns is not None
                    and self.daemon is not None
                    and now - self.arrivals_ns[0] >= self.stop_after_ns
                ):
                    self.daemon.stop()


def bench_pipeline(bundle: Path, manifest: Mapping, configs: list[_Config], settings: BenchSettings) -> None:
    """One daemon run per configuration on the simulated camera; fills each ``cfg.result``."""
    from edge.config import DaemonConfig
    from edge.daemon import Daemon

    sensor = manifest["sensor"]["name"]
    if sensor not in SIM_CAMERAS:
        raise BenchError(f"no simulated camera for sensor {sensor!r}; pipeline mode has {', '.join(SIM_CAMERAS)}")
    niter, time_s = _targets(settings)
    for cfg in configs:
        config = DaemonConfig(
            bundle=bundle, camera=SIM_CAMERAS[sensor], seed=settings.seed, prefer=(cfg.target,),
            threads=settings.threads, warmup_runs=max(1, settings.warmup), sink="null",
        )  # fmt: skip
        sink = CountingSink(settings.warmup, int(time_s * 1e9) if time_s and not niter else None)
        t0 = time.perf_counter_ns()
        with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp, Daemon(config, sink, workdir=tmp) as daemon:
            sink.daemon = daemon
            daemon.start()
            t_ready = time.perf_counter_ns()
            cpu0 = _cpu_s()
            max_frames = settings.warmup + niter if niter else None
            stats = daemon.run(max_frames=max_frames)
            cpu_s, run_ns = _cpu_s() - cpu0, time.perf_counter_ns() - t_ready
        wall = sink.arrivals_ns[-1] - sink.arrivals_ns[0] if len(sink.arrivals_ns) > 1 else 0
        # throughput: intervals between timed masks (n masks -> n-1 intervals)
        # cpu_util over the whole run (CPU s / run s), expressed for summarize's wall
        res = summarize(sink.lat_ns, wall, cpu_s * wall / max(1, run_ns), settings.percentile)
        if wall > 0:
            res["throughput_fps"] = round((len(sink.arrivals_ns) - 1) / (wall / 1e9), 3)
        cfg.result.update(res)
        cfg.result.update(
            device=(sink.hello.get("engine") or "").rpartition("/")[2],
            engine=sink.hello.get("engine"),
            load_ms=round((t_ready - t0) / 1e6, 3),
            first_inference_ms=round((getattr(sink, "first_mask_ns", t_ready) - t0) / 1e6, 3),
            daemon_fps=round(stats.fps, 3),
            dropped=stats.dropped,
            errors=dict(stats.errors),
        )
        if sink.hello.get("engine") and not str(sink.hello["engine"]).startswith(cfg.target + " "):
            cfg.result["note"] = f"the daemon fell back to {sink.hello['engine']}"
        rss, peak = _rss_mb()
        cfg.result.update(rss_mb=_round(rss), peak_rss_mb=_round(peak))


# ---- the report -------------------------------------------------------------------------------


def _host() -> dict:
    from importlib import metadata

    versions = {}
    for pkg in ("onnxruntime", "openvino", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
    }


def run_bench(settings: BenchSettings, latencies_ns: dict | None = None) -> dict:
    """Measure and return the report (``schema_version`` first); raises ``BenchError``.
    ``latencies_ns``: when given, filled with target -> per-iteration latencies (ns, for plots)."""
    from export.bundle import extract_bundle, read_manifest

    if settings.mode not in MODES:
        raise BenchError(f"unknown mode {settings.mode!r}; available: {', '.join(MODES)}")
    if settings.niter is not None and settings.niter < 1:
        raise BenchError(f"-niter must be >= 1, got {settings.niter}")
    if settings.time_s is not None and settings.time_s <= 0:
        raise BenchError(f"-t must be > 0, got {settings.time_s}")
    if not 0 <= settings.percentile <= 100:
        raise BenchError(f"--percentile must be in [0, 100], got {settings.percentile}")
    if settings.warmup < 0:
        raise BenchError(f"--warmup must be >= 0, got {settings.warmup}")
    bundle = resolve_bundle(settings.bundle)
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        folder = extract_bundle(bundle, Path(tmp) / "bundle")
        manifest = read_manifest(folder)
        configs, notes, options = select_configs(manifest, settings)
        if not configs:
            raise BenchError(f"nothing to measure in bundle {manifest['name']}: " + "; ".join(notes))
        if settings.mode == "engine":
            bench_engine(folder, manifest, configs, settings, options)
        else:
            bench_pipeline(bundle, manifest, configs, settings)
    if latencies_ns is not None:
        latencies_ns.update({c.target: c.lat_ns for c in configs})
    results = [
        {"bundle": f"{manifest['name']}@{manifest['version']}", "mode": settings.mode, "target": c.target,
         "runtime": c.runtime, "precision": c.precision, "status": "ok", **c.result}
        for c in configs
    ]  # fmt: skip
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "edge-bench",
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(settings).items()},
        "host": _host(),
        "input": {"shape": manifest["input"]["shape"], "dtype": manifest["input"].get("dtype"),
                  "variant": manifest["input"].get("variant"), "source": "bundle self-test input, tiled"},
        "notes": notes,
        "results": results,
    }  # fmt: skip


def _csv_row(r: Mapping) -> dict:
    row = {k: r.get(k) for k in CSV_COLUMNS}
    for k in LATENCY_KEYS:
        row[f"latency_{k}_ms"] = r.get("latency_ms", {}).get(k)
    return row


def write_csv(report: Mapping, path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS))
        writer.writeheader()
        for r in report["results"]:
            writer.writerow(_csv_row(r))


def write_json(report: Mapping, path: Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2, allow_nan=False, default=_nan_to_none) + "\n")


def _nan_to_none(obj):
    return None


def write_plot(report: Mapping, path: Path, lat_by_config: Mapping[str, Sequence[int]]) -> str | None:
    """Latency distribution (box plot) and throughput per configuration; returns a note when skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "--plot skipped: matplotlib is not installed (pip install matplotlib)"
    names = list(lat_by_config)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 0.6 * len(names) + 2.5))
    data = [np.asarray(lat_by_config[n]) / 1e6 for n in names]
    try:
        ax1.boxplot(data, orientation="horizontal")  # matplotlib >= 3.10
    except TypeError:
        ax1.boxplot(data, vert=False)
    ax1.set_yticks(range(1, len(names) + 1), names)
    ax1.set_xlabel("latency (ms)")
    ax1.set_title("latency distribution (warm-up excluded)")
    fps = [next(r["throughput_fps"] for r in report["results"] if r["target"] == n) for n in names]
    ax2.barh(names, fps)
    ax2.set_xlabel("throughput (FPS)")
    ax2.set_title(f"{report['results'][0]['bundle']}, {report['settings']['mode']} mode")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def print_table(report: Mapping) -> None:
    """One column per configuration (side by side), one row per metric with its unit."""
    from rich.table import Table

    from edge.cli_common import console

    results = report["results"]
    pct = report["settings"]["percentile"]
    table = Table(title=f"edge-bench {results[0]['bundle']} ({report['settings']['mode']} mode)")
    table.add_column("metric")
    for r in results:
        table.add_column(f"{r['target']}\n{r.get('device')}", justify="right")
    rows = [
        ("count", lambda r: str(r["count"])),
        ("duration (s)", lambda r: f"{r['duration_s']:.2f}"),
        ("throughput (FPS)", lambda r: f"{r['throughput_fps']:.1f}"),
        *((f"latency {k} (ms)", lambda r, k=k: f"{r['latency_ms'][k]:.3f}") for k in LATENCY_KEYS),
        (f"latency p{pct:g} (ms)", lambda r: f"{r['latency_pct_ms']:.3f}"),
        ("load (ms)", lambda r: f"{r['load_ms']:.1f}"),
        ("first inference (ms)", lambda r: f"{r['first_inference_ms']:.1f}"),
        ("CPU util (cores)", lambda r: f"{r['cpu_util']:.2f}"),
        ("RSS / peak RSS (MB)", lambda r: f"{r.get('rss_mb')} / {r.get('peak_rss_mb')}"),
        ("self-test agreement", lambda r: str(r.get("selftest_agreement", "-"))),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(r) for r in results))
    console.print(table)
    for note in report["notes"]:
        console.print(f"[yellow]note[/]: {note}")


# ---- command line -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge-bench",
        description="Throughput and latency of a bundle's targets (benchmark_app/trtexec style; docs/bench.md).",
    )
    p.add_argument("bundle", metavar="BUNDLE_OR_NAME", help="bundle file (.xeb) or packaged default: surgical, crop")
    p.add_argument("-d", "--device", help="CPU|GPU|NPU|AUTO, a runtime (onnxruntime, openvino) or a target name")
    p.add_argument("-niter", "--niter", type=int, help="iterations per configuration (minimum)")
    p.add_argument(
        "-t",
        "--time",
        dest="time_s",
        type=float,
        help=f"seconds per configuration (default {DEFAULT_TIME_S:g} when no -niter)",
    )
    p.add_argument("--warmup", type=int, default=5, help="untimed runs before timing (default 5)")
    p.add_argument("--threads", type=int, help="inference threads (default: the runtime's)")
    p.add_argument("--backend", default="all", help=f"{'|'.join(BACKENDS)} (default all, alternating rounds)")
    p.add_argument("--mode", default="engine", help="engine|pipeline (default engine)")
    p.add_argument("--percentile", type=float, default=50.0, help="extra latency percentile to report (default 50)")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="alternating rounds (engine mode)")
    p.add_argument("--json", type=Path, help="write the JSON report here")
    p.add_argument("--csv", type=Path, help="write one CSV row per configuration here")
    p.add_argument("--plot", type=Path, help="write a PNG of latency distributions and throughput here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The ``edge-bench`` console script; returns the exit code (1: bad input or failure)."""
    from edge.cli_common import console

    args = build_parser().parse_args(argv)
    settings = BenchSettings(
        bundle=args.bundle, device=args.device, backend=args.backend, mode=args.mode, niter=args.niter,
        time_s=args.time_s, warmup=args.warmup, threads=args.threads, percentile=args.percentile,
        rounds=max(1, args.rounds),
    )  # fmt: skip
    lat: dict = {}
    try:
        report = run_bench(settings, lat)
    except XenoedgeError as exc:
        console.print(f"[red]edge-bench[/]: {exc}")
        return 1
    if args.plot:
        note = write_plot(report, args.plot, lat)
        if note:
            report["notes"].append(note)
    print_table(report)
    if args.json:
        write_json(report, args.json)
    if args.csv:
        write_csv(report, args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def cli() -> None:
    """Console-script entry (``edge-bench``): exit with ``main()``'s code."""
    import sys

    sys.exit(main())
