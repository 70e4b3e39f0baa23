"""``edge-bench``: throughput, latency, accuracy and cost of models on this device, like benchmark_app / trtexec.

``edge-bench MODEL_OR_BUNDLE``: a bundle (``.xeb``, or a packaged default: ``surgical``,
``crop``), an ONNX file, an OpenVINO IR (``.xml``) or a training checkpoint folder (the
PyTorch eager FP32 baseline); see ``xenoedge.bench.inputs``.

Compare mode: every configuration asked for (``--backend``, ``--precision``, ``-d``) is
measured in one run, in alternating rounds (A, B, C, A, B, C, ...) so that thermal or
background drift hits all alike, and each is reported as a ratio to a baseline: PyTorch eager
FP32 (``--backend torch|all`` with a checkpoint: ``--checkpoint``, default the packaged model
of a packaged bundle) when it runs here, else an ONNX Runtime FP32 configuration, else the
first one; ``--baseline`` picks another.

Modes and scenarios:

- ``--mode engine`` (default), ``--scenario singlestream``: bare ``engine.infer()`` on one
  frame (references bound once, as in the daemon), one request in flight.
- ``--scenario offline`` (``-hint throughput`` implies it): ``-nireq`` requests in flight
  (``xenoedge.bench.offline``: OpenVINO AsyncInferQueue with PERFORMANCE_HINT / NUM_STREAMS;
  ONNX Runtime concurrent ``run`` calls from threads).
- ``--mode pipeline``: the daemon itself, per stage, into a real link, one open daemon per target in
  alternating rounds too (``xenoedge.bench.pipeline``).

Metrics (docs/bench.md): count, duration_s, throughput_fps, latency min/median/mean/p90/p95/p99/max
and a chosen percentile (ms, ``time.perf_counter_ns``), warm-up excluded; load_ms (the runtime's compile /
session creation, one per configuration) and first_inference_ms (one run on bound inputs) reported apart;
the effective settings (``Engine.settings()``), model size, pass/fail, ``--profile`` by op type, and the
host's CPU model and ISA flags (``xenoedge.bench.settings``); cpu_util (cores); rss_growth_mb (RSS added by loading and
warming up this configuration) and peak_rss_mb (the process's); fps_ratio / latency_ratio to the
baseline; with ``--dataset``: DSC vs ground truth and vs the baseline's masks.

Device-side: imports no torch, onnx or nncf at module level; the runtimes load lazily through
``xenoedge.edge.engines``, torch only inside ``xenoedge.bench.torch_baseline.TorchEngine``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
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
from xenoedge.bench.common import (
    DEFAULT_TIME_S,
    LATENCY_KEYS,
    STAGE_KEYS,
    BenchError,
    accuracy_text,
    cpu_seconds,
    fmt,
    rounded,
    run_length,
    summarize,
)

from xenoedge.errors import XenoedgeError

__all__ = [
    "BACKENDS",
    "CSV_COLUMNS",
    "PRECISIONS",
    "SCENARIOS",
    "SCHEMA_VERSION",
    "BenchError",
    "BenchSettings",
    "main",
    "run_bench",
]

#: 2: inputs other than bundles, torch baseline, ratios, scenarios, stages, link, accuracy, rss_growth_mb.
#: 3: load_ms is the runtime's compile / session creation, first_inference_ms one run on bound inputs (open_ms,
#: bind_ms apart); per-result settings, model size, pass/fail, profile; host.cpu (model, ISA flags).
SCHEMA_VERSION = 3
#: --backend value -> runtimes it selects (``torch``: the PyTorch baseline of a checkpoint).
BACKENDS: dict[str, tuple[str, ...]] = {
    "ort": ("onnxruntime", "tensorrt"),
    "openvino": ("openvino",),
    "torch": ("torch",),
    "all": ("onnxruntime", "tensorrt", "openvino", "torch"),
}
RUNTIME_ALIASES = {"ort": "onnxruntime", "onnxruntime": "onnxruntime", "openvino": "openvino", "ov": "openvino",
                   "tensorrt": "tensorrt", "trt": "tensorrt", "torch": "torch"}  # fmt: skip
MODES = ("engine", "pipeline")
SCENARIOS = ("singlestream", "offline")
HINTS = ("latency", "throughput")
PRECISIONS = ("fp32", "fp16", "int8")
_ORT_CPU = ("CPUExecutionProvider", "OpenVINOExecutionProvider")
DEFAULT_ROUNDS = 10
#: Fixed CSV columns (units in the names).
CSV_COLUMNS = (
    "model", "mode", "scenario", "target", "runtime", "precision", "device", "status", "baseline", "shape",
    "nireq", "nstreams", "count", "duration_s", "throughput_fps", "fps_ratio",
    *(f"latency_{k}_ms" for k in LATENCY_KEYS), "latency_ratio", "latency_percentile", "latency_pct_ms",
    "load_ms", "open_ms", "bind_ms", "first_inference_ms", "start_ms", "first_mask_ms",
    "cpu_util", "rss_mb", "rss_growth_mb", "peak_rss_mb", "peak_rss_alone_mb",
    "selftest_agreement", "passed", "gate", "model_bytes", "effective_precision", "runtime_version", "threads",
    "cache",
    *(f"stage_{k}_median_ms" for k in STAGE_KEYS), *(f"stage_{k}_p95_ms" for k in STAGE_KEYS),
    "bytes_per_mask", "link_bytes_per_s", "link_utilisation", "masks_received",
    "dsc_truth", "dsc_reference", "agreement_reference", "note",
)  # fmt: skip


@dataclass
class BenchSettings:
    """What to measure. ``niter``/``time_s``: minimum iterations / seconds per configuration (both
    given: both minima, like trtexec; neither: ``DEFAULT_TIME_S``). ``warmup``: untimed runs first.
    ``backend`` / ``precision``: one value, ``all`` (backend) or a comma-separated list."""

    model: str
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
    precision: str | None = None
    shape: str | None = None
    scenario: str | None = None
    hint: str | None = None
    nireq: int | None = None
    nstreams: int | None = None
    baseline: str | None = None
    checkpoint: str | None = None
    camera: str | None = None
    link: str = "null"
    baud: int | None = None
    references: str | None = None
    dataset: str | None = None
    dataset_frames: int = 8
    rss_alone: bool = False
    compare: str | None = None  # other bundles/graphs measured in the same rounds (engine mode)
    profile: bool = False  # per-operator times by op type (engine mode, single stream)
    cache_dir: str | None = (
        None  # OpenVINO CACHE_DIR / TensorRT engine cache root (xenoedge.edge.engines.model_cache_folder)
    )
    max_drop: float = 0.01  # pass/fail: largest mean-DSC drop vs the baseline (--dataset), as the export's gate


@dataclass
class _Config:
    target: str
    runtime: str
    precision: str
    devices: list[str]
    checkpoint: Path | None = None
    engine: object = None
    offline: object = None
    lat_ns: list[int] = field(default_factory=list)
    wall_ns: int = 0
    cpu_s: float = 0.0
    rss_before: float | None = None  # MB, before loading: rss_growth_mb
    result: dict = field(default_factory=dict)
    source: object = None  # a --compare source; None: the main one


# ---- settings and selection ---------------------------------------------------------------------


def _split(value: str | None, known: Sequence[str], what: str) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip().lower() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in known]
    if bad or not items:
        raise BenchError(f"unknown {what} {value!r}; available: {', '.join(known)}")
    return items


def check_settings(settings: BenchSettings) -> str:
    """Raises ``BenchError`` for a bad value (listing what is available); returns the scenario."""
    _split(settings.backend, list(BACKENDS), "backend")
    _split(settings.precision, PRECISIONS, "precision")
    if settings.mode not in MODES:
        raise BenchError(f"unknown mode {settings.mode!r}; available: {', '.join(MODES)}")
    if settings.scenario is not None and settings.scenario not in SCENARIOS:
        raise BenchError(f"unknown scenario {settings.scenario!r}; available: {', '.join(SCENARIOS)}")
    if settings.hint is not None and settings.hint not in HINTS:
        raise BenchError(f"unknown -hint {settings.hint!r}; available: {', '.join(HINTS)}")
    for name, value in (("-niter", settings.niter), ("-nireq", settings.nireq), ("-nstreams", settings.nstreams),
                        ("--threads", settings.threads), ("--baud", settings.baud)):  # fmt: skip
        if value is not None and value < 1:
            raise BenchError(f"{name} must be >= 1, got {value}")
    if settings.time_s is not None and settings.time_s <= 0:
        raise BenchError(f"-t must be > 0, got {settings.time_s}")
    if not 0 <= settings.max_drop <= 1:
        raise BenchError(f"--max-drop must be in [0, 1] (DSC; 0.01 = one point), got {settings.max_drop}")
    if not 0 <= settings.percentile <= 100:
        raise BenchError(f"--percentile must be in [0, 100], got {settings.percentile}")
    if settings.warmup < 0:
        raise BenchError(f"--warmup must be >= 0, got {settings.warmup}")
    scenario = settings.scenario
    if scenario is None:
        scenario = "offline" if settings.hint == "throughput" or (settings.nireq or 1) > 1 else "singlestream"
    if settings.mode == "pipeline" and scenario == "offline":
        raise BenchError("--scenario offline is for --mode engine; the daemon (pipeline mode) is one stream")
    return scenario


def _options(device: str | None, threads: int | None, manifest: Mapping):
    """EngineOptions and the target/runtime filter that ``-d`` asks for."""
    from xenoedge.edge.engines import DEFAULT_ORT_PROVIDERS, OPENVINO_DEVICES, EngineOptions

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
            f"{', '.join(sorted(set(RUNTIME_ALIASES.values())))}; targets of {manifest['name']}: "
            f"{', '.join(targets) or 'none'}"
        )
    options = EngineOptions(ort_providers=providers, openvino_device=ov_device, threads=threads)
    return options, only_target, only_runtime


def _torch_config(source, settings: BenchSettings, options, notes: list[str]) -> _Config | None:
    """The PyTorch baseline configuration, or None with a note when it cannot run here."""
    from xenoedge.bench.inputs import default_checkpoint
    from xenoedge.bench.torch_baseline import is_checkpoint, torch_available

    if settings.checkpoint is not None:
        checkpoint = Path(settings.checkpoint)
        if not is_checkpoint(checkpoint):
            raise BenchError(f"--checkpoint {checkpoint}: not a checkpoint folder (config.json + model.pt)")
    else:
        checkpoint = source.checkpoint or (default_checkpoint(source.name) if source.kind == "bundle" else None)
    if checkpoint is None:
        notes.append(f"no PyTorch baseline: {source.label} has no checkpoint; give --checkpoint FOLDER")
        return None
    if not torch_available():
        notes.append("skipped torch-fp32: torch is not installed (pip install torch); ratios use another baseline")
        return None
    if options.openvino_device in ("GPU", "NPU"):
        notes.append(f"skipped torch-fp32: -d {options.openvino_device} asked, the PyTorch baseline runs on the CPU")
        return None
    return _Config("torch-fp32", "torch", "fp32", ["cpu"], checkpoint=checkpoint)


def select_configs(source, settings: BenchSettings) -> tuple[list[_Config], list[str], object]:
    """The configurations to measure, notes on those skipped (runtime not installed / no device), options."""
    from xenoedge.edge.engines import ENGINES

    manifest = source.manifest
    backends = _split(settings.backend, list(BACKENDS), "backend") or ["all"]
    runtimes = {r for b in backends for r in BACKENDS[b]}
    precisions = _split(settings.precision, PRECISIONS, "precision")
    options, only_target, only_runtime = _options(settings.device, settings.threads, manifest)
    options = dataclasses.replace(
        options,
        profile=settings.profile and settings.mode == "engine",
        cache_dir=Path(settings.cache_dir) if settings.cache_dir else None,
    )
    targets = manifest["targets"]
    notes = list(source.notes)
    wanted = [
        name
        for name, spec in targets.items()
        if spec.get("runtime") in runtimes
        and (only_target is None or name == only_target)
        and (only_runtime is None or spec.get("runtime") == only_runtime)
        and (precisions is None or spec.get("precision") in precisions)
    ]
    want_torch = "torch" in runtimes and only_target is None and only_runtime in (None, "torch")
    torch_cfg = _torch_config(source, settings, options, notes) if want_torch else None
    if torch_cfg is not None and precisions is not None and "fp32" not in precisions and "torch" not in backends:
        notes.append("torch-fp32 measured as the baseline although --precision leaves fp32 out")
    if not wanted and torch_cfg is None:
        has = ", ".join(f"{n} ({t.get('runtime')}, {t.get('precision')})" for n, t in targets.items()) or "none"
        asked = f"backend {settings.backend}" + (f", device {settings.device}" if settings.device else "")
        asked += f", precision {settings.precision}" if settings.precision else ""
        extra = "; " + "; ".join(notes) if notes else ""
        raise BenchError(f"{source.label} has no target for {asked}; its targets: {has}{extra}")
    configs = []
    for name in wanted:
        spec = targets[name]
        kind = ENGINES.get(spec.get("runtime", ""))
        if kind is None:
            notes.append(f"skipped {name}: runtime {spec.get('runtime')!r} is not supported by xenoedge.edge.engines")
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
    if torch_cfg is not None:
        configs.insert(0, torch_cfg)
    return configs, notes, options


# ---- statistics -------------------------------------------------------------------------------


def _rss_mb() -> tuple[float | None, float | None]:
    """(current RSS, peak RSS) of this process in MB; None where the platform does not say.

    Linux: ``VmRSS`` / ``VmHWM`` of ``/proc/self/status`` (the high-water mark of this process's own
    memory; ``getrusage``'s ``ru_maxrss`` would carry a parent's peak over fork and exec).
    Elsewhere: ``ru_maxrss`` for the peak."""
    current = peak = None
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        current = int(fields["VmRSS"].split()[0]) / 1e3  # kB
        peak = int(fields["VmHWM"].split()[0]) / 1e3
    except (OSError, ValueError, KeyError, IndexError):
        try:
            import resource

            maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            peak = maxrss / 1e6 if sys.platform == "darwin" else maxrss / 1e3  # bytes on macOS, KiB on Linux
        except ImportError:
            pass
    return current, peak


# ---- engine mode ------------------------------------------------------------------------------


def _ov_properties(settings: BenchSettings, scenario: str) -> dict[str, str] | None:
    """OpenVINO properties asked for (``-hint``, ``-nstreams``; offline: hint THROUGHPUT by default), or None."""
    if scenario != "offline" and not (settings.hint or settings.nstreams):
        return None
    props = {"PERFORMANCE_HINT": (settings.hint or ("throughput" if scenario == "offline" else "latency")).upper()}
    if settings.nstreams:
        props["NUM_STREAMS"] = str(settings.nstreams)
    return props


def _open_config(source, cfg: _Config, options, hw: tuple[int, int], inputs: Mapping, selftest,
                 settings: BenchSettings, scenario: str) -> None:  # fmt: skip
    """Open the configuration (compiled once, with its OpenVINO properties if any; timed: ``open_ms``, and
    the runtime's own compile / session creation: ``load_ms``), fill its input and bind references
    (``bind_ms``), then run it once on the bound buffers (``first_inference_ms``: that run alone)."""
    from xenoedge.bench.offline import HintedOpenVinoEngine, ort_offline_threads
    from xenoedge.bench.settings import model_files
    from xenoedge.bench.torch_baseline import TorchEngine
    from xenoedge.edge.engines import ENGINES
    from xenoedge.export.bundle import check_selftest

    source = cfg.source or source
    manifest = source.manifest
    properties = _ov_properties(settings, scenario) if cfg.runtime == "openvino" else None
    if scenario == "offline" and cfg.runtime in ("onnxruntime", "tensorrt"):  # the offline requests' threads
        options = dataclasses.replace(options, threads=ort_offline_threads(settings.nireq, settings.threads)[1])
    rss0, _ = _rss_mb()
    clock = time.perf_counter_ns
    t0 = clock()
    if cfg.runtime == "torch":
        shape = (1, hw[0], hw[1], int(manifest["input"]["shape"][3]))
        engine = TorchEngine(cfg.checkpoint, shape, manifest["input"].get("variant", "raw"), settings.threads)
    else:
        target = cfg.target.split(":", 1)[1] if cfg.source is not None else cfg.target  # LABEL:TARGET
        if properties is not None:
            engine = HintedOpenVinoEngine(source.folder, manifest, target, device=cfg.devices[0], options=options,
                                          frame_hw=hw, properties=properties)  # fmt: skip
        else:
            engine = ENGINES[cfg.runtime].open(source.folder, manifest, target, cfg.devices, options, hw)
    t1 = clock()
    engine.input_buffer[...] = inputs[engine.input_name]
    if engine.variant == "raw":
        engine.bind_references(inputs["dark"], inputs["gain"])
    t2 = clock()
    classes = engine.infer().classes  # the first inference, alone: load and input copies excluded
    t3 = clock()
    cfg.engine = engine
    open_ms = (t1 - t0) / 1e6
    load_ms = open_ms if cfg.runtime == "torch" else float(engine.load_ms)
    files, size = model_files(cfg.checkpoint if cfg.runtime == "torch" else engine.model_path)
    cfg.result.update(
        device=engine.device,
        engine=engine.name,
        load_ms=round(load_ms, 3),
        open_ms=round(open_ms, 3),
        bind_ms=round((t2 - t1) / 1e6, 3),
        first_inference_ms=round((t3 - t2) / 1e6, 3),
        model_files=files,
        model_bytes=size,
        settings=_engine_settings(engine, load_ms),
    )
    cfg.rss_before = rss0
    if cfg.source is None and selftest is not None and selftest.expected.shape[1:] == classes.shape:
        try:
            cfg.result["selftest_agreement"] = round(check_selftest(classes[None], selftest), 5)
            cfg.result["selftest_passed"] = True
        except XenoedgeError as exc:
            cfg.result["selftest_agreement"] = None
            cfg.result["selftest_passed"] = False
            cfg.result["note"] = str(exc)


def _engine_settings(engine, load_ms: float) -> dict:
    """``Engine.settings()`` (runtime version, providers and options or OpenVINO properties, threads,
    effective precision, cache), and the same keys for the PyTorch baseline."""
    if hasattr(engine, "settings"):
        out = dict(engine.settings())
        properties = getattr(engine, "properties", None)  # a HintedOpenVinoEngine: what it was compiled with
        if properties:
            out["compile_config"] = dict(properties)
        return out
    import torch

    return {"target": engine.target, "runtime": "torch", "runtime_version": torch.__version__, "device": "cpu",
            "precision": "fp32", "effective_precision": "f32 (eager)", "threads": torch.get_num_threads(),
            "cache": "off", "cache_folder": None, "load_ms": round(load_ms, 3)}  # fmt: skip


def _run_chunk(cfg: _Config, n_until: int, ns_until: int) -> None:
    """Run ``cfg`` until it has ``n_until`` iterations and ``ns_until`` timed ns in total."""
    if cfg.offline is not None:
        wall, cpu = cfg.offline.run(n_until, ns_until, cfg.wall_ns)
        cfg.wall_ns += wall
        cfg.cpu_s += cpu
        return
    infer, lat = cfg.engine.infer, cfg.lat_ns
    clock = time.perf_counter_ns
    cpu0, start = cpu_seconds(), clock()
    while len(lat) < n_until or cfg.wall_ns + (clock() - start) < ns_until:
        t0 = clock()
        infer()
        lat.append(clock() - t0)
    cfg.wall_ns += clock() - start
    cfg.cpu_s += cpu_seconds() - cpu0


def bench_engine(source, configs: list[_Config], settings: BenchSettings, options, scenario: str, notes) -> dict:
    """Alternating rounds over ``configs`` (engines left open for accuracy); returns the input description."""
    from xenoedge.bench.common import bench_console
    from xenoedge.bench.inputs import bundle_inputs, frame_hw, synthetic_inputs
    from xenoedge.bench.offline import offline_runner

    console = bench_console()

    multiple = 1
    torch_cfg = next((c for c in configs if c.runtime == "torch"), None)
    if torch_cfg is not None:
        from xenoedge.xeno.checkpoint import read_config
        from xenoedge.xeno.models import model_from_config

        multiple = int(getattr(model_from_config(read_config(torch_cfg.checkpoint)["model"]), "required_multiple", 1))
    hw = frame_hw(source, settings.shape, multiple)
    manifest = source.manifest
    variant = manifest["input"].get("variant", "raw")
    shape = (1, hw[0], hw[1], int(manifest["input"]["shape"][3]))
    selftest = None
    if source.kind == "bundle":
        from xenoedge.export.bundle import load_selftest

        selftest = load_selftest(source.folder, manifest)
        inputs = bundle_inputs(selftest, shape, variant)
        where = "bundle self-test input, repeated to the frame size"
    else:
        inputs = synthetic_inputs(shape, variant, settings.seed)
        where = f"synthetic seeded frame (seed {settings.seed}; xenoedge.bench.inputs.synthetic_inputs)"
    for cfg in list(configs):
        _open_config(source, cfg, options, hw, inputs, selftest, settings, scenario)
        cfg.engine.warm_up(settings.warmup)
        if scenario == "offline":
            cfg.offline = offline_runner(cfg.engine, inputs, nireq=settings.nireq, hint=settings.hint,
                                         threads=settings.threads)  # fmt: skip
            if cfg.offline is None:
                notes.append(f"skipped {cfg.target} in the offline scenario: {cfg.runtime} is measured single-stream")
                cfg.engine.close()
                configs.remove(cfg)
                continue
            cfg.lat_ns = cfg.offline.lat_ns
            cfg.result.update(cfg.offline.info)
            if cfg.runtime != "openvino" and settings.nstreams:
                notes.append(f"{cfg.target}: -nstreams applies to OpenVINO only; ONNX Runtime runs -nireq threads")
            if settings.warmup:
                cfg.offline.run(cfg.offline.info["nireq"], 0, 0)  # one request per slot, untimed
            cfg.offline.lat_ns.clear()
        elif settings.hint or settings.nstreams:
            if cfg.runtime == "openvino":  # compiled with them (once), run one request at a time
                st = cfg.result["settings"]
                streams = str(st.get("streams", ""))
                hint = (st.get("performance_hint") or "").lower() or None
                cfg.result.update(nireq=1, hint=hint, nstreams=int(streams) if streams.isdigit() else None)
            else:
                notes.append(f"{cfg.target}: -hint/-nstreams are OpenVINO properties; not applied to {cfg.runtime}")
        rss, _ = _rss_mb()
        before = cfg.rss_before
        cfg.result["rss_growth_mb"] = rounded(rss - before) if rss is not None and before is not None else None
    if not configs:
        raise BenchError("nothing to measure: " + "; ".join(notes))
    niter, time_s = run_length(settings.niter, settings.time_s)
    rounds = max(1, min(settings.rounds, niter or settings.rounds))
    console.print(
        f"[bold]edge-bench[/]: {len(configs)} configuration(s), {scenario}, {rounds} alternating round(s), "
        f"{f'{niter} iterations' if niter else ''}{' and ' if niter and time_s else ''}"
        f"{f'{time_s:.1f} s' if time_s else ''} each"
    )
    for r in range(rounds):
        for cfg in configs:
            _run_chunk(cfg, math.ceil(niter * (r + 1) / rounds), int(time_s * 1e9 * (r + 1) / rounds))
    for cfg in configs:
        cfg.result.update(summarize(cfg.lat_ns, cfg.wall_ns, cfg.cpu_s, settings.percentile))
        if cfg.offline is not None:
            cfg.offline.close()
        if settings.profile:
            _profile(cfg, settings, scenario, notes)
    rss, peak = _rss_mb()
    for cfg in configs:
        cfg.result.update(rss_mb=rounded(rss), peak_rss_mb=rounded(peak))
    return {"shape": list(shape), "dtype": manifest["input"].get("dtype"), "variant": variant, "source": where}


def _profile(cfg: _Config, settings: BenchSettings, scenario: str, notes: list[str]) -> None:
    """``--profile``: the configuration's operator times summed by op type
    (``xenoedge.bench.settings.profile_by_type``):
    ONNX Runtime's profiler (totals over every run since the engine opened: first, warm-up, timed; per frame
    ÷ their number) or OpenVINO's performance counters (the last inference)."""
    from xenoedge.bench.settings import profile_by_type

    if cfg.runtime == "torch":
        notes.append("--profile: the PyTorch baseline is not profiled (torch.profiler is not wired in)")
        return
    if scenario == "offline":
        notes.append(f"--profile: {cfg.target} not profiled in the offline scenario (profile single-stream)")
        return
    ops = cfg.engine.operator_profile()
    if cfg.runtime == "openvino":
        frames, source = 1, "OpenVINO performance counters (PERF_COUNT), the last inference"
    else:
        frames = 1 + settings.warmup + len(cfg.lat_ns)
        source = f"ONNX Runtime profiler, totals over {frames} runs (first, warm-up, timed) / {frames}"
    rows = profile_by_type(ops, frames)
    cfg.result["profile"] = {
        "source": source,
        "frames": frames,
        "total_ms_per_frame": round(sum(r["ms_per_frame"] for r in rows), 4),
        "by_type": rows,
    }


# ---- accuracy ---------------------------------------------------------------------------------


def _sensor_for(source, bands: int):
    from xenoedge.sensors import SENSORS, get_sensor

    name = (source.manifest.get("sensor") or {}).get("name")
    if name:
        return get_sensor(name)
    matches = [s for s in SENSORS.values() if s.n_bands == bands]
    if len(matches) != 1:
        raise BenchError(
            f"--dataset: cannot tell the sensor of {source.label} ({bands} bands); sensors: "
            + ", ".join(f"{s.name} ({s.n_bands} bands)" for s in SENSORS.values())
        )
    return matches[0]


def bench_accuracy(source, configs: list[_Config], baseline: _Config, settings: BenchSettings, info: dict) -> None:
    """DSC of every configuration vs the data set's labels and vs the baseline's masks (``--dataset``)."""
    from xenoedge.edge.daemon import mean_dsc
    from xenoedge.export.export import frames_from_data

    _, h, w, c = info["shape"]
    data = Path(settings.dataset)
    if not data.is_dir():
        raise BenchError(f"--dataset {data}: no such folder (write one with `xenoedge simulate`)")
    try:
        frames = frames_from_data(data, _sensor_for(source, c), h, w, variant=info["variant"],
                                  limit=settings.dataset_frames, exclude=set())  # fmt: skip
    except XenoedgeError as exc:
        raise BenchError(f"--dataset {data}: {exc}") from None
    n_classes = len(source.manifest.get("labels") or []) or 1 + max(int(t.max()) for t in frames.truth)
    masks: dict[str, list[np.ndarray]] = {}
    for cfg in configs:
        engine = cfg.engine
        if engine.variant == "raw":
            engine.bind_references(frames.inputs[0]["dark"], frames.inputs[0]["gain"])
        out = []
        for inputs in frames.inputs:
            engine.input_buffer[...] = inputs[engine.input_name]
            out.append(engine.infer().classes.copy())
        masks[cfg.target] = out
    ref = masks[baseline.target]

    def mean(values):
        values = [v for v in values if v is not None]
        return round(float(np.mean(values)), 5) if values else None

    for cfg in configs:
        pred = masks[cfg.target]
        cfg.result["dsc_truth"] = mean(mean_dsc(p, t, n_classes) for p, t in zip(pred, frames.truth, strict=True))
        cfg.result["dsc_reference"] = mean(mean_dsc(p, r, n_classes) for p, r in zip(pred, ref, strict=True))
        cfg.result["agreement_reference"] = mean(float(np.mean(p == r)) for p, r in zip(pred, ref, strict=True))
    info["dataset"] = {"path": str(data), "frames": len(frames.ids), "ids": frames.ids}


# ---- baseline ---------------------------------------------------------------------------------


def pick_baseline(configs: list[_Config], wanted: str | None, notes: list[str]) -> _Config:
    """``--baseline`` (a configuration name or a runtime), else torch FP32, else ORT FP32, else the first."""
    if wanted:
        runtime = RUNTIME_ALIASES.get(wanted.lower())
        for cfg in configs:
            if cfg.target == wanted or cfg.runtime == runtime:
                return cfg
        raise BenchError(f"--baseline {wanted!r} is not measured in this run; configurations: "
                         + ", ".join(c.target for c in configs))  # fmt: skip
    for test in (lambda c: c.runtime == "torch", lambda c: c.runtime == "onnxruntime" and c.precision == "fp32",
                 lambda c: c.precision == "fp32"):  # fmt: skip
        for cfg in configs:
            if test(cfg):
                return cfg
    notes.append(f"no FP32 configuration in this run: ratios are to {configs[0].target}")
    return configs[0]


def _ratios(results: list[dict], base: dict) -> None:
    for r in results:
        r["baseline"] = r is base
        fps, bfps = r.get("throughput_fps"), base.get("throughput_fps")
        med, bmed = r.get("latency_ms", {}).get("median"), base.get("latency_ms", {}).get("median")
        r["fps_ratio"] = round(fps / bfps, 4) if fps and bfps and not math.isnan(fps) and bfps > 0 else None
        r["latency_ratio"] = round(med / bmed, 4) if med and bmed and not math.isnan(med) and bmed > 0 else None


def gate_results(results: list[dict], base: dict, max_drop: float) -> None:
    """``passed`` and ``gate`` (why) per result: it ran (timed iterations, no frame errors), a bundle's
    self-test passed on its first inference, and with ``--dataset`` its mean DSC vs the truth is at
    most ``max_drop`` below the baseline's (``dsc_drop``; the export's accuracy gate uses 0.01, one
    DSC point, per class)."""
    for r in results:
        failed, checked = [], []
        if r.get("status") != "ok" or not r.get("count") or r.get("errors"):
            failed.append("did not run" if not r.get("count") else f"frame errors {r.get('errors')}")
        if r.get("selftest_passed") is False:
            failed.append(r.get("note") or "self-test failed")
        elif r.get("selftest_agreement") is not None:
            checked.append(f"self-test {r['selftest_agreement']:.3f}")
        ref, dsc = base.get("dsc_truth"), r.get("dsc_truth")
        if r is not base and ref is not None and dsc is not None:
            drop = ref - dsc
            r["dsc_drop"] = round(drop, 5)
            words = f"DSC {dsc:.3f} vs {base['target']} {ref:.3f} (drop {100 * drop:.1f} / {100 * max_drop:g} points)"
            (failed if drop > max_drop else checked).append(words)
        r["passed"] = not failed
        r["gate"] = "; ".join(failed or checked) or "ran"


# ---- the report -------------------------------------------------------------------------------


def _host() -> dict:
    from importlib import metadata

    versions = {}
    for pkg in ("onnxruntime", "openvino", "numpy", "torch"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    from xenoedge.bench.settings import cpu_info, openvino_cpu

    cpu = cpu_info()
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": cpu["model"] or platform.processor() or None,
        "cpu": cpu,
        "openvino_cpu": openvino_cpu() if versions.get("openvino") else None,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "versions": versions,
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS") if k in os.environ},
    }


def peak_rss_alone(settings: BenchSettings, cfg: _Config, notes: list[str]) -> float | None:
    """Peak RSS (MB) of a fresh ``edge-bench`` process measuring ``cfg`` alone (``-d`` its target, a few
    iterations): the configuration's own footprint, interpreter and runtime included (``--rss-alone``)."""
    import subprocess

    with tempfile.TemporaryDirectory(prefix="edge-bench-rss-") as tmp:
        out = Path(tmp) / "alone.json"
        args = [sys.executable, "-m", "xenoedge.bench.main", settings.model, "-niter", "3", "--warmup", "1",
                "--rounds", "1",
                "--json", str(out), "--seed", str(settings.seed)]  # fmt: skip
        args += ["-d", "torch", "--checkpoint", str(cfg.checkpoint)] if cfg.runtime == "torch" else ["-d", cfg.target]
        for flag, value in (("-shape", settings.shape), ("--threads", settings.threads), ("-hint", settings.hint),
                            ("-nireq", settings.nireq), ("-nstreams", settings.nstreams),
                            ("--scenario", settings.scenario)):  # fmt: skip
            if value is not None:
                args += [flag, str(value)]
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=600)
            report = json.loads(out.read_text()) if done.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            report, done = None, exc
        if not report or not report["results"]:
            why = done.stderr.strip().splitlines()[-1:] if hasattr(done, "stderr") and done.stderr else [str(done)]
            notes.append(f"--rss-alone: {cfg.target} could not be measured alone ({'; '.join(why)})")
            return None
        return report["results"][0].get("peak_rss_mb")


def run_bench(settings: BenchSettings, latencies_ns: dict | None = None) -> dict:
    """Measure and return the report (``schema_version`` first); raises ``BenchError`` (any
    ``XenoedgeError``) on bad input. ``latencies_ns``: filled with configuration -> latencies (ns)."""
    from xenoedge.bench.inputs import open_source

    scenario = check_settings(settings)
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        want_graphs = settings.mode == "engine" and settings.backend != "torch"
        source = open_source(settings.model, Path(tmp), shape=settings.shape, want_graphs=want_graphs)
        configs, notes, options = select_configs(source, settings)
        configs += compared_configs(settings, Path(tmp), source, notes)
        if settings.mode == "pipeline":
            if settings.dataset:
                notes.append("--dataset is scored in engine mode only; ignored in pipeline mode")
            if settings.profile:
                notes.append("--profile is measured in engine mode only; ignored in pipeline mode")
            info = _pipeline(source, configs, settings, notes)
        else:
            if not configs:
                raise BenchError(f"nothing to measure in {source.label}: " + "; ".join(notes))
            info = bench_engine(source, configs, settings, options, scenario, notes)
            try:
                baseline = pick_baseline(configs, settings.baseline, notes)
                if settings.dataset:
                    bench_accuracy(source, configs, baseline, settings, info)
            finally:
                for cfg in configs:
                    if cfg.engine is not None:
                        cfg.engine.close()
            if settings.rss_alone:
                for cfg in configs:
                    cfg.result["peak_rss_alone_mb"] = peak_rss_alone(settings, cfg, notes)
    if settings.mode == "pipeline":
        baseline = pick_baseline(configs, settings.baseline, notes)
    if latencies_ns is not None:
        latencies_ns.update({c.target: c.lat_ns for c in configs})
    results = [
        {"model": source.label, "mode": settings.mode, "scenario": scenario if settings.mode == "engine" else
         "singlestream", "target": c.target, "runtime": c.runtime, "precision": c.precision, "status": "ok",
         "shape": "x".join(str(d) for d in info["shape"]), **c.result}
        for c in configs
    ]  # fmt: skip
    _ratios(results, results[configs.index(baseline)])
    gate_results(results, results[configs.index(baseline)], settings.max_drop)
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "edge-bench",
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(settings).items()},
            "scenario": scenario,
        },
        "host": _host(),
        "model": {"kind": source.kind, "name": source.label},
        "baseline": baseline.target,
        "input": info,
        "notes": notes,
        "results": results,
    }


def compared_configs(settings: BenchSettings, tmp: Path, source, notes: list[str]) -> list[_Config]:
    """The targets of ``--compare`` sources (an earlier bundle kept in benchmarks/, another graph), named
    ``LABEL:TARGET`` and measured in the same alternating rounds as the main source's (engine mode).

    They take the same frames: the same (1, H, W, C) input and the frame-size references (each engine
    pools them when its graph pools the frame).
    """
    from xenoedge.bench.inputs import open_source

    if not settings.compare:
        return []
    if settings.mode != "engine" or settings.rss_alone:
        raise BenchError("--compare is measured in engine mode, without --rss-alone")
    out = []
    channels = source.manifest["input"]["shape"][3]
    for i, arg in enumerate(a.strip() for a in settings.compare.split(",") if a.strip()):
        other = open_source(arg, tmp / f"compare-{i}", shape=settings.shape, want_graphs=False)
        if other.kind == "checkpoint":
            raise BenchError(f"--compare {arg}: give a bundle, ONNX file or OpenVINO IR (checkpoints: --checkpoint)")
        if other.manifest["input"]["shape"][3] != channels:
            raise BenchError(f"--compare {arg}: takes {other.manifest['input']['shape'][3]} bands, not {channels}")
        picked, more_notes, _ = select_configs(other, dataclasses.replace(settings, backend="ort,openvino"))
        notes += [f"{arg}: {note}" for note in more_notes if note not in notes]
        label = f"{Path(arg).parent.name}/{Path(arg).stem}" if Path(arg).suffix else arg  # e.g. pixel-mlp-2026-11/crop
        for cfg in picked:
            cfg.source, cfg.target = other, f"{label}:{cfg.target}"
            out.append(cfg)
    return out


def _pipeline(source, configs: list[_Config], settings: BenchSettings, notes: list[str]) -> dict:
    from xenoedge.bench.common import bench_console
    from xenoedge.bench.pipeline import bench_pipeline, pipeline_rounds

    console = bench_console()

    if source.kind != "bundle":
        raise BenchError(f"--mode pipeline runs the daemon, which takes a bundle; {settings.model} is a {source.kind}")
    for cfg in list(configs):
        if cfg.runtime == "torch":
            notes.append("skipped torch-fp32 in pipeline mode: the daemon runs bundle targets only")
            configs.remove(cfg)
    if not configs:
        raise BenchError(f"nothing to measure in {source.label}: " + "; ".join(notes))
    if settings.shape is not None:
        from xenoedge.bench.inputs import frame_hw

        frame_hw(source, settings.shape)  # a static bundle: only its own size (the camera's)
    by_target = {cfg.target: cfg for cfg in configs}
    rss_before: dict[str, float | None] = {}

    def on_open(target: str, phase: str) -> None:  # RSS added by starting and warming up this daemon
        rss, _ = _rss_mb()
        if phase == "before":
            rss_before[target] = rss
        else:
            rss0 = rss_before[target]
            by_target[target].result["rss_growth_mb"] = rounded(rss - rss0) if rss and rss0 else None

    niter, _ = run_length(settings.niter, settings.time_s)
    console.print(
        f"[bold]edge-bench[/]: {len(configs)} daemon(s), pipeline, "
        f"{pipeline_rounds(settings.rounds, niter)} alternating round(s)"
    )
    measured = bench_pipeline(source.bundle, source.manifest, list(by_target), settings, summarize, on_open)
    rss, peak = _rss_mb()
    for target, (fields, lat_ns) in measured.items():
        cfg = by_target[target]
        cfg.result.update(fields)
        cfg.result.update(rss_mb=rounded(rss), peak_rss_mb=rounded(peak))
        cfg.lat_ns = lat_ns
    return {"shape": list(source.manifest["input"]["shape"]), "dtype": source.manifest["input"].get("dtype"),
            "variant": source.manifest["input"].get("variant"), "source": "the daemon's camera"}  # fmt: skip


def _csv_row(r: Mapping) -> dict:
    row = {k: r.get(k) for k in CSV_COLUMNS}
    for k in ("effective_precision", "runtime_version", "threads", "cache"):
        row[k] = (r.get("settings") or {}).get(k)
    for k in LATENCY_KEYS:
        row[f"latency_{k}_ms"] = r.get("latency_ms", {}).get(k)
    for k in STAGE_KEYS:
        stage = (r.get("stages_ms") or {}).get(k) or {}
        row[f"stage_{k}_median_ms"] = stage.get("median")
        row[f"stage_{k}_p95_ms"] = stage.get("p95")
    return row


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) atomically: a half-written report never replaces a good one."""
    from xenoedge.atomic import atomic_write

    atomic_write(Path(path), lambda f: f.write(text.encode("utf-8")))


def write_csv(report: Mapping, path: Path) -> None:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in report["results"]:
        writer.writerow(_csv_row(r))
    _write_text(path, buf.getvalue())


def write_json(report: Mapping, path: Path) -> None:
    _write_text(path, json.dumps(_finite(report), indent=2, allow_nan=False) + "\n")


def _finite(obj):
    """NaN/inf -> None, recursively (JSON has no NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_plot(report: Mapping, path: Path, lat_by_config: Mapping[str, Sequence[int]]) -> str | None:
    """Latency distribution (box plot) and throughput per configuration (ratio to the baseline
    written on each bar); returns a note when skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "--plot skipped: matplotlib is not installed (pip install matplotlib)"
    names = [r["target"] for r in report["results"] if len(lat_by_config.get(r["target"], ()))]
    if not names:
        return "--plot skipped: no latencies"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.6 * len(names) + 2.5))
    data = [np.asarray(lat_by_config[n]) / 1e6 for n in names]
    try:
        ax1.boxplot(data, orientation="horizontal")  # matplotlib >= 3.10
    except TypeError:
        ax1.boxplot(data, vert=False)
    ax1.set_yticks(range(1, len(names) + 1), names)
    ax1.set_xscale("log")
    ax1.set_xlabel("latency (ms, log scale)")
    ax1.set_title("latency distribution (warm-up excluded)")
    by_name = {r["target"]: r for r in report["results"]}
    fps = [by_name[n]["throughput_fps"] for n in names]
    bars = ax2.barh(names, fps)
    for bar, n in zip(bars, names, strict=True):
        ratio = by_name[n].get("fps_ratio")
        if ratio is not None:
            ax2.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {ratio:.2f}x", va="center")
    ax2.invert_yaxis()
    ax1.invert_yaxis()
    ax2.set_xlabel(f"throughput (FPS); ratio to {report['baseline']}")
    ax2.set_title(f"{report['model']['name']}, {report['settings']['mode']} / {report['settings']['scenario']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


_fmt = fmt


def host_line(host: Mapping) -> str:
    """One line on the machine: CPU model, cores, ISA extensions present and absent, runtime versions."""
    cpu = host.get("cpu") or {}
    isa = cpu.get("isa") or {}
    present = ", ".join(cpu.get("flags_present") or []) or "unknown"
    absent = [f for f in ("avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16") if isa.get(f) is False]
    versions = ", ".join(f"{k} {v}" for k, v in (host.get("versions") or {}).items() if v)
    ov = host.get("openvino_cpu") or {}
    caps = f"; OpenVINO CPU capabilities {', '.join(ov['optimization_capabilities'])}" if ov else ""
    return (f"CPU {cpu.get('model') or host.get('processor') or 'unknown'} ({host.get('cpu_count')} logical cores), "
            f"ISA {present}{'; no ' + ', '.join(absent) if absent else ''}{caps}; {versions}")  # fmt: skip


def print_summary(report: Mapping, console) -> None:
    """One row per configuration: pass/fail, model size, accuracy, load, first inference, median, FPS."""
    from rich.table import Table

    s = report["settings"]
    table = Table(title=f"summary: {report['model']['name']} ({s['mode']} mode, {s['scenario']})")
    for i, col in enumerate(("configuration", "device", "precision (effective)", "pass", "size MB", "accuracy",
                             "load ms", "first inf. ms", "p50 ms", "FPS", "× baseline")):  # fmt: skip
        table.add_column(col, justify="left" if i < 4 else "right")
    for r in report["results"]:
        eff = (r.get("settings") or {}).get("effective_precision")
        acc = accuracy_text(r)
        size = r.get("model_bytes")
        table.add_row(
            r["target"], str(r.get("device")), f"{r.get('precision') or '-'} ({eff or '?'})",
            "[green]pass[/]" if r.get("passed") else "[red]FAIL[/]", _fmt(size / 1e6 if size else None, ".2f"), acc,
            _fmt(r.get("load_ms")), _fmt(r.get("first_inference_ms")),
            _fmt((r.get("latency_ms") or {}).get("median"), ".2f"), _fmt(r.get("throughput_fps")),
            _fmt(r.get("fps_ratio"), ".2f") + ("*" if r.get("baseline") else ""),
        )  # fmt: skip
    console.print(table)
    failed = [f"{r['target']}: {r.get('gate')}" for r in report["results"] if not r.get("passed")]
    for line in failed:
        console.print(f"[red]failed[/]: {line}")


def print_settings(report: Mapping, console) -> None:
    """What each configuration ran with (``Engine.settings()``), the machine, and ``--profile`` tables."""
    from rich.table import Table

    console.print(host_line(report.get("host") or {}), soft_wrap=True)
    table = Table(title="effective settings")
    for col in ("configuration", "runtime", "device / providers", "threads", "hint / streams", "effective precision",
                "cache", "model files"):  # fmt: skip
        table.add_column(col)
    for r in report["results"]:
        st = r.get("settings") or {}
        providers = st.get("providers")
        where = ", ".join(providers) if providers else ", ".join(st.get("execution_devices") or []) or st.get("device")
        options = {k: v for k, v in (st.get("provider_options") or {}).items() if v}
        if options:
            where += f" {options}"
        hint = "-" if st.get("performance_hint") is None else f"{st['performance_hint']} / {st.get('streams')}"
        version = str(st.get("runtime_version") or "").split("-")[0]  # OpenVINO: 2026.4.1-22982-<hash>-releases/...
        table.add_row(r["target"], f"{st.get('runtime', r.get('runtime'))} {version}".strip(),
                      str(where), str(st.get("threads") if st.get("threads") is not None else "default"), hint,
                      str(st.get("effective_precision") or "-"), str(st.get("cache") or "-"),
                      ", ".join(r.get("model_files") or []) or "-")  # fmt: skip
    console.print(table)
    for r in report["results"]:
        prof = r.get("profile")
        if not prof:
            continue
        t = Table(title=f"profile {r['target']}: {prof['total_ms_per_frame']:.2f} ms per frame ({prof['source']})")
        for i, col in enumerate(("op type", "precision / kernel", "nodes", "ms per frame", "% of total")):
            t.add_column(col, justify="left" if i < 2 else "right")
        for row in prof["by_type"]:
            t.add_row(row["op_type"], row["precision"], str(row["nodes"]), f"{row['ms_per_frame']:.3f}",
                      f"{row['percent']:.1f}")  # fmt: skip
        console.print(t)


def print_table(report: Mapping) -> None:
    """The summary (pass/fail, size, accuracy, load, first inference, median, FPS), the detailed table
    (one row per configuration, ratio column), the effective settings and the machine, ``--profile``
    tables, then pipeline stages when measured."""
    from rich.console import Console
    from rich.table import Table
    from xenoedge.bench.common import bench_console

    console = bench_console()

    if not console.is_terminal:  # a pipe or a log: rich would wrap the columns at 80 characters
        console = Console(width=180, highlight=False)
    print_summary(report, console)
    results = report["results"]
    pct = report["settings"]["percentile"]
    s = report["settings"]
    table = Table(title=f"edge-bench {report['model']['name']} ({s['mode']} mode, {s['scenario']}; "
                        f"ratios to {report['baseline']})")  # fmt: skip
    has_dsc = any(r.get("dsc_truth") is not None or r.get("dsc_reference") is not None for r in results)
    extra_pct = pct not in (50, 99)
    columns = ["configuration", "device", "prec.", "count", "FPS", "× baseline", "p50 ms",
               *([f"p{pct:g} ms"] if extra_pct else []), "p99 ms", "first inf. ms", "CPU cores", "RSS +MB"]  # fmt: skip
    offline = s["scenario"] == "offline" and s["mode"] == "engine"
    alone = any(r.get("peak_rss_alone_mb") is not None for r in results)
    if alone:
        columns += ["peak RSS alone MB"]
    if offline:
        columns += ["nireq", "streams"]
    if has_dsc:
        columns += ["DSC truth", "DSC vs ref"]
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i < 3 else "right")
    for r in results:
        lat = r.get("latency_ms", {})
        ratio = _fmt(r.get("fps_ratio"), ".2f") + ("*" if r.get("baseline") else "")
        row = [r["target"], str(r.get("device")), r.get("precision") or "-", str(r.get("count")),
               _fmt(r.get("throughput_fps")), ratio, _fmt(lat.get("median"), ".2f"),
               *([_fmt(r.get("latency_pct_ms"), ".2f")] if extra_pct else []), _fmt(lat.get("p99"), ".2f"),
               _fmt(r.get("first_inference_ms")),
               _fmt(r.get("cpu_util"), ".2f"), _fmt(r.get("rss_growth_mb"))]  # fmt: skip
        if alone:
            row += [_fmt(r.get("peak_rss_alone_mb"), ".0f")]
        if offline:
            row += [_fmt(r.get("nireq"), "d"), _fmt(r.get("nstreams"), "d")]
        if has_dsc:
            row += [_fmt(r.get("dsc_truth"), ".3f"), _fmt(r.get("dsc_reference"), ".3f")]
        table.add_row(*row)
    console.print(table)
    print_settings(report, console)
    if any(r.get("stages_ms") for r in results):
        stages = Table(title="pipeline stages, ms per mask: median / p95")
        stages.add_column("configuration")
        for k in STAGE_KEYS:
            stages.add_column(k, justify="right")
        for col in ("bytes/mask", "link B/s", "link util."):
            stages.add_column(col, justify="right")
        for r in results:
            st = r.get("stages_ms") or {}
            cells = [f"{_fmt((st.get(k) or {}).get('median'), '.2f')} / {_fmt((st.get(k) or {}).get('p95'), '.2f')}"
                     for k in STAGE_KEYS]  # fmt: skip
            stages.add_row(r["target"], *cells, _fmt(r.get("bytes_per_mask"), "d"),
                           _fmt(r.get("link_bytes_per_s"), ".0f"), _fmt(r.get("link_utilisation"), ".3f"))  # fmt: skip
        console.print(stages)
    for note in report["notes"]:
        console.print(f"[yellow]note[/]: {note}")


# ---- command line -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge-bench",
        description="Throughput, latency and accuracy of models on this device (benchmark_app/trtexec style; "
        "docs/bench.md).",
    )
    p.add_argument("model", metavar="MODEL_OR_BUNDLE",
                   help="bundle (.xeb or packaged name: surgical, crop), ONNX file, OpenVINO IR (.xml) or checkpoint "
                        "folder")  # fmt: skip
    p.add_argument("-d", "--device", help="CPU|GPU|NPU|AUTO, a runtime (onnxruntime, openvino, torch) or a target")
    p.add_argument("-niter", "--niter", type=int, help="iterations per configuration (minimum)")
    p.add_argument("-t", "--time", dest="time_s", type=float,
                   help=f"seconds per configuration (default {DEFAULT_TIME_S:g} when no -niter)")  # fmt: skip
    p.add_argument("--warmup", type=int, default=5, help="untimed runs before timing (default 5)")
    p.add_argument("--threads", type=int, help="inference threads (default: the runtime's)")
    p.add_argument("--backend", default="all", help=f"{'|'.join(BACKENDS)} or a comma list (default all)")
    p.add_argument("--precision", help=f"{'|'.join(PRECISIONS)} or a comma list (default: every precision)")
    p.add_argument("-shape", "--shape", help="frame size: HxW, 1xHxWxC (NHWC) or 1xCxHxW")
    p.add_argument("--mode", default="engine", help="engine|pipeline (default engine)")
    p.add_argument("--scenario", help="singlestream|offline (default singlestream; offline with -hint throughput)")
    p.add_argument("-hint", "--hint", help="latency|throughput (OpenVINO PERFORMANCE_HINT; offline scenario)")
    p.add_argument("-nireq", "--nireq", type=int, help="requests in flight (offline; default: the runtime's optimum)")
    p.add_argument("-nstreams", "--nstreams", type=int, help="OpenVINO NUM_STREAMS (offline)")
    p.add_argument(
        "--baseline", help="configuration or runtime the ratios refer to (default torch FP32, else ORT FP32)"
    )
    p.add_argument("--checkpoint", help="checkpoint folder for the PyTorch baseline of a bundle")
    p.add_argument("--percentile", type=float, default=50.0, help="extra latency percentile to report (default 50)")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="alternating rounds (both modes)")
    p.add_argument("--camera", help="pipeline mode: camera spec (default the bundle's simulated camera; replay:DIR)")
    p.add_argument("--link", default="null", help="pipeline mode: null|file:PATH|pty (default null)")
    p.add_argument("--baud", type=int, help="pipeline mode: line rate for link utilisation; paces the pty reader")
    p.add_argument("--references", help="pipeline mode: references file for a camera that cannot capture them")
    p.add_argument("--dataset", help="labelled data set (xenoedge simulate): DSC vs truth and vs the baseline")
    p.add_argument("--dataset-frames", type=int, default=8, help="frames of --dataset to score (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated camera / synthetic frame")
    p.add_argument(
        "--rss-alone", action="store_true", help="also each configuration's peak RSS alone, in a fresh process"
    )
    p.add_argument(
        "--compare",
        help="engine mode: other bundles/graphs (comma list) measured in the same rounds, "
        "e.g. the previous default kept in benchmarks/baselines",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="per-operator time and precision summed by op type (ORT profiler, OpenVINO counters)",
    )
    p.add_argument(
        "--cache-dir",
        help="compiled-model cache root (OpenVINO CACHE_DIR, TensorRT engines); "
        "default none: every configuration compiles",
    )
    p.add_argument(
        "--max-drop",
        type=float,
        default=0.01,
        help="pass/fail with --dataset: largest mean-DSC drop vs the baseline (default 0.01)",
    )
    p.add_argument("--json", type=Path, help="write the JSON report here")
    p.add_argument("--csv", type=Path, help="write one CSV row per configuration here")
    p.add_argument("--plot", type=Path, help="write a PNG of latency distributions and throughput here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The ``edge-bench`` console script; returns the exit code (1: bad input or failure)."""
    from xenoedge.bench.common import bench_console

    console = bench_console()

    args = build_parser().parse_args(argv)
    settings = BenchSettings(
        model=args.model, device=args.device, backend=args.backend, mode=args.mode, niter=args.niter,
        time_s=args.time_s, warmup=args.warmup, threads=args.threads, percentile=args.percentile,
        rounds=max(1, args.rounds), seed=args.seed, precision=args.precision, shape=args.shape,
        scenario=args.scenario, hint=args.hint, nireq=args.nireq, nstreams=args.nstreams, baseline=args.baseline,
        checkpoint=args.checkpoint, camera=args.camera, link=args.link, baud=args.baud, references=args.references,
        dataset=args.dataset, dataset_frames=args.dataset_frames, rss_alone=args.rss_alone,
        compare=args.compare, profile=args.profile, cache_dir=args.cache_dir, max_drop=args.max_drop,
    )  # fmt: skip
    lat: dict = {}
    try:
        report = run_bench(settings, lat)
    except XenoedgeError as exc:
        console.print(f"[red]edge-bench[/]: {exc}", soft_wrap=True)
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


def cli() -> None:
    """Console-script entry (``edge-bench``): exit with ``main()``'s code."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
