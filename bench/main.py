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

This module is the command (``run_bench``, the parser, ``main``); what to measure is
``xenoedge.bench.configs``, the measuring ``xenoedge.bench.measure``, the files and tables
``xenoedge.bench.report``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from xenoedge.bench.common import DEFAULT_TIME_S, BenchError
from xenoedge.bench.configs import (
    BACKENDS,
    DEFAULT_ROUNDS,
    PRECISIONS,
    BenchSettings,
    check_settings,
    compared_configs,
    pick_baseline,
    select_configs,
)
from xenoedge.bench.measure import (
    add_ratios,
    bench_accuracy,
    bench_engine,
    bench_pipeline_mode,
    gate_results,
    peak_rss_alone,
)
from xenoedge.bench.report import print_table, write_csv, write_json, write_plot
from xenoedge.bench.settings import host_info

from xenoedge.errors import XenoedgeError

__all__ = ["SCHEMA_VERSION", "build_parser", "cli", "main", "run_bench"]

#: 2: inputs other than bundles, torch baseline, ratios, scenarios, stages, link, accuracy, rss_growth_mb.
#: 3: load_ms is the runtime's compile / session creation, first_inference_ms one run on bound inputs (open_ms,
#: bind_ms apart); per-result settings, model size, pass/fail, profile; host.cpu (model, ISA flags).
SCHEMA_VERSION = 3


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
            info = bench_pipeline_mode(source, configs, settings, notes)
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
    add_ratios(results, results[configs.index(baseline)])
    gate_results(results, results[configs.index(baseline)], settings.max_drop)
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "edge-bench",
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(settings).items()},
            "scenario": scenario,
        },
        "host": host_info(),
        "model": {"kind": source.kind, "name": source.label},
        "baseline": baseline.target,
        "input": info,
        "notes": notes,
        "results": results,
    }


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
