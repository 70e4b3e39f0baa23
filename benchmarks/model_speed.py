"""CPU latency of every registered model on one Tivita-sized frame, side by side in one run.

    python benchmarks/model_speed.py [--threads 2] [--rounds 5] [--warmup 2] [--onnxruntime] [--json F] [--csv F]

For each model in ``xenoedge.xeno.models.MODELS``: PyTorch eager FP32, ``torch.set_num_threads(threads)``,
``torch.inference_mode()``, batch 1, input (1, 100, 480, 640) of L1-normalised random spectra,
10 classes. The first inference (build excluded) is reported on its own; then ``warmup`` more
runs are discarded and ``rounds`` timed runs follow. Rounds alternate between models (A, B, C,
A, B, C, ...) so that drift on a shared machine hits all alike. Reported per model, in the
words of OpenVINO benchmark_app / trtexec: count, latency median/mean/min/max/p90 in ms, FPS
from the median, parameters, multiply-accumulates of the convolutions (GMAC), and the ratio of
the reference network's median latency to the model's. The paper's figure for the reference
(~1.8 s per frame on 2 CPU cores) is printed beside ours.

With ``--onnxruntime`` each model is also exported (ONNX opset 17, static shape) and run in
ONNX Runtime FP32 on the CPU with the same thread count, in the same alternating rounds: the
engine the device uses, before any quantisation (that is ``export``'s benchmark).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from xenoedge.xeno.models import MODELS, build_model, count_parameters

REFERENCE = "unet-effb5"
PAPER_REFERENCE_S = 1.8
FRAME = (1, 100, 480, 640)
N_CLASSES = 10


def conv_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of all Conv2d layers for one forward pass of ``x`` (B, C, H, W)."""
    total = 0

    def hook(module: nn.Conv2d, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def _time_once(model: nn.Module, x: torch.Tensor) -> int:
    with torch.inference_mode():
        t0 = time.perf_counter_ns()
        model(x)
        return time.perf_counter_ns() - t0


def _ort_runner(model: nn.Module, x: torch.Tensor, threads: int, folder: Path):
    """Export ``model`` to ONNX and return a zero-argument callable running it once in ONNX Runtime."""
    import warnings

    import onnxruntime as ort

    path = folder / f"{model.registry_name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), opset_version=17, dynamo=False, input_names=["x"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}
    return lambda: session.run(None, feed)


def _time_call(fn) -> int:
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


def run(threads: int, rounds: int, warmup: int, onnxruntime: bool = False) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.rand(FRAME)
    x = x / x.sum(1, keepdim=True)
    models = {name: build_model(name, FRAME[1], N_CLASSES).eval() for name in MODELS}
    runners = {}
    for name, m in models.items():
        runners[(name, "torch")] = lambda m=m: _time_once(m, x)
    with tempfile.TemporaryDirectory() as tmp:
        if onnxruntime:
            for name, m in models.items():
                fn = _ort_runner(m, x, threads, Path(tmp))
                runners[(name, "onnxruntime")] = lambda fn=fn: _time_call(fn)
        first = {key: r() / 1e6 for key, r in runners.items()}
        for _ in range(warmup):
            for r in runners.values():
                r()
        timed: dict[tuple[str, str], list[int]] = {key: [] for key in runners}
        for _ in range(rounds):
            for key, r in runners.items():
                timed[key].append(r())
    first_ms = {name: first[(name, "torch")] for name in models}
    times = {name: timed[(name, "torch")] for name in models}
    ref_median = float(np.median(times[REFERENCE])) / 1e6 if REFERENCE in times else float("nan")
    rows = []
    for name, m in models.items():
        ms = np.asarray(times[name], dtype=np.float64) / 1e6
        median = float(np.median(ms))
        rows.append(
            {
                "model": name,
                "edge": MODELS[name].edge,
                "parameters": count_parameters(m),
                "gmac": round(conv_macs(m, x) / 1e9, 2),
                "count": len(ms),
                "first_inference_ms": round(first_ms[name], 1),
                "median_ms": round(median, 1),
                "mean_ms": round(float(ms.mean()), 1),
                "min_ms": round(float(ms.min()), 1),
                "max_ms": round(float(ms.max()), 1),
                "p90_ms": round(float(np.percentile(ms, 90)), 1),
                "fps": round(1000.0 / median, 2),
                "speedup_vs_reference": round(ref_median / median, 1),
            }
        )
        if onnxruntime:
            ort_median = float(np.median(timed[(name, "onnxruntime")])) / 1e6
            rows[-1]["ort_first_inference_ms"] = round(first[(name, "onnxruntime")], 1)
            rows[-1]["ort_median_ms"] = round(ort_median, 1)
            rows[-1]["ort_speedup_vs_torch_reference"] = round(ref_median / ort_median, 1)
    return {
        "benchmark": "model_speed",
        "engine": f"pytorch {torch.__version__} eager fp32",
        "threads": threads,
        "input": list(FRAME),
        "n_classes": N_CLASSES,
        "warmup": warmup,
        "cpu": platform.processor() or platform.machine(),
        "paper_reference_s": PAPER_REFERENCE_S,
        "reference_vs_paper": round(ref_median / 1000.0 / PAPER_REFERENCE_S, 2),
        "results": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="timed runs per model")
    parser.add_argument("--warmup", type=int, default=2, help="discarded runs per model after the first inference")
    parser.add_argument("--onnxruntime", action="store_true", help="also time ONNX Runtime FP32 exports")
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--csv", help="write the per-model rows here")
    args = parser.parse_args()
    report = run(args.threads, args.rounds, args.warmup, args.onnxruntime)
    print(json.dumps({k: v for k, v in report.items() if k != "results"}))
    header = (
        f"{'model':<12} {'params':>11} {'GMAC':>7} {'first ms':>9} {'median ms':>10} {'min':>8} {'max':>8} {'FPS':>6}"
    )
    print(header + "  speed-up vs reference")
    for r in report["results"]:
        print(
            f"{r['model']:<12} {r['parameters']:>11,} {r['gmac']:>7} {r['first_inference_ms']:>9} {r['median_ms']:>10}"
            f" {r['min_ms']:>8} {r['max_ms']:>8} {r['fps']:>6}  {r['speedup_vs_reference']}x"
            + (
                f"  | ORT median {r['ort_median_ms']} ms, {r['ort_speedup_vs_torch_reference']}x"
                if args.onnxruntime
                else ""
            )
        )
    print(f"reference: ours / paper ({PAPER_REFERENCE_S} s) = {report['reference_vs_paper']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(report["results"][0]))
            writer.writeheader()
            writer.writerows(report["results"])


if __name__ == "__main__":
    main()
