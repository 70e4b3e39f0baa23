"""Measuring ``edge-bench``'s configurations, and judging them against the baseline.

Opening each engine (the runtime's load, binding the inputs, the first inference, timed apart),
timing them in alternating rounds (``bench_engine``: engine mode, single stream or offline;
``bench_pipeline_mode``: the daemon, per stage), ``--profile``, accuracy on a data set
(``bench_accuracy``), a configuration's peak RSS alone in a fresh process (``peak_rss_alone``), then
the ratios to the baseline (``add_ratios``) and pass/fail (``gate_results``).

Imports no runtime at module level: the engines open through ``xenoedge.edge.engines`` and
``xenoedge.bench.torch_baseline`` inside the functions.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from xenoedge.bench.common import BenchError, cpu_seconds, rounded, run_length, summarize
from xenoedge.bench.configs import BenchConfig, BenchSettings

from xenoedge.errors import XenoedgeError

__all__ = ["add_ratios", "bench_accuracy", "bench_engine", "bench_pipeline_mode", "gate_results", "peak_rss_alone"]


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


def _open_config(source, cfg: BenchConfig, options, hw: tuple[int, int], inputs: Mapping, selftest,
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


def _run_chunk(cfg: BenchConfig, n_until: int, ns_until: int) -> None:
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


def bench_engine(source, configs: list[BenchConfig], settings: BenchSettings, options, scenario: str, notes) -> dict:
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


def _profile(cfg: BenchConfig, settings: BenchSettings, scenario: str, notes: list[str]) -> None:
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


# ---- pipeline mode ----------------------------------------------------------------------------


def bench_pipeline_mode(source, configs: list[BenchConfig], settings: BenchSettings, notes: list[str]) -> dict:
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


def bench_accuracy(
    source, configs: list[BenchConfig], baseline: BenchConfig, settings: BenchSettings, info: dict
) -> None:
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


# ---- against the baseline ---------------------------------------------------------------------


def add_ratios(results: list[dict], base: dict) -> None:
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


# ---- alone ------------------------------------------------------------------------------------


def peak_rss_alone(settings: BenchSettings, cfg: BenchConfig, notes: list[str]) -> float | None:
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
