"""Latency of every artifact of the default surgical model and of the reference network.

    python benchmarks/export_speed.py [--frames 4] [--repeats 10] [--json out.json]

At 480x640x100 (one Tivita frame): PyTorch eager FP32 (NumPy preprocessing + model) against
ONNX Runtime FP32/INT8 and OpenVINO FP32/FP16/INT8 graphs with the preprocessing folded in,
for the shipped ``surgical`` model (pixel-mlp) and the paper's reference U-Net +
EfficientNet-B5 (untrained weights: speed only). Runs alternate between artifacts in every
round so drift on this shared machine hits all alike; medians reported, warm-up excluded,
first inference (load + compile + first run) reported separately. DSC against the simulated
ground truth (and its drop against PyTorch FP32) comes from ``--frames`` simulated frames.
INT8 keeps the first (spectral) layer in float, as the export default for this model.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def simulated_frames(n: int, sensor):
    from xenoedge.export.export import camera_references
    from xenoedge.xeno.scene import SceneConfig, simulate_scene

    h, w, _ = sensor.cube_shape
    dark, gain = camera_references(sensor, h, w)
    frames, truth = [], []
    for seed in range(n):
        scene = simulate_scene(
            SceneConfig(height=h, width=w, subject=50 + seed), 900 + seed, sensor.wavelengths(), sensor.fwhm()
        )
        raw = np.clip(np.rint(scene.reflectance / gain + dark), 0, sensor.max_counts).astype(np.uint16)
        frames.append({"raw": raw[None], "dark": dark, "gain": gain})
        truth.append(scene.labels)
    return frames, truth


def mean_dsc(pred, truth) -> float:
    from xenoedge.xeno.evaluate import dice

    return float(np.mean([dice(p, t, int(c)) for p, t in zip(pred, truth, strict=True) for c in np.unique(t) if c]))


def build_artifacts(model, sensor, work: Path, calibration, keep_float):
    from xenoedge.export.onnx_export import export_onnx
    from xenoedge.export.openvino_export import convert_to_ir, quantize_ir_int8
    from xenoedge.export.quantize import quantize_int8
    from xenoedge.export.runners import OpenVinoRunner, OrtRunner

    h, w, c = sensor.cube_shape
    fp32 = export_onnx(model, height=h, width=w, n_bands=c, path=work / "model.fp32.onnx")
    int8 = quantize_int8(fp32, work / "model.int8.onnx", calibration, keep_float=keep_float)
    ir32 = convert_to_ir(fp32, work / "model.fp32.xml", precision="fp32")
    ir16 = convert_to_ir(fp32, work / "model.fp16.xml", precision="fp16")
    ir8 = quantize_ir_int8(fp32, work / "model.int8.xml", calibration, ignored_names=keep_float)
    return {
        "onnxruntime_fp32": lambda: OrtRunner(fp32, threads=2),
        "onnxruntime_int8": lambda: OrtRunner(int8, threads=2),
        "openvino_fp32": lambda: OpenVinoRunner(ir32, precision_hint="f32", threads=2),
        "openvino_fp16": lambda: OpenVinoRunner(ir16, precision_hint="f16", threads=2),
        "openvino_int8": lambda: OpenVinoRunner(ir8, threads=2),
    }


def bench_model(name, model, sensor, frames, truth, repeats, keep_float) -> dict:
    import torch
    from xenoedge.export.onnx_export import preprocess_reference
    from xenoedge.xeno.evaluate import predict

    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))

    def torch_predict(inputs):
        return predict(model, preprocess_reference(inputs["raw"][0], inputs["dark"], inputs["gain"]))

    makers = build_artifacts(model, sensor, work, frames, keep_float)
    runners, first = {"pytorch_fp32": torch_predict}, {}
    for key, make in makers.items():
        t0 = time.perf_counter_ns()
        runner = make()
        runner.predict(frames[0])
        first[key] = (time.perf_counter_ns() - t0) / 1e6
        runners[key] = runner.predict
    torch_predict(frames[0])  # warm-up
    times = {key: [] for key in runners}
    outputs = {key: [fn(f) for f in frames] for key, fn in runners.items()}
    for _ in range(repeats):
        for key, fn in runners.items():
            t0 = time.perf_counter_ns()
            fn(frames[0])
            times[key].append(time.perf_counter_ns() - t0)
    reference_dsc = mean_dsc(outputs["pytorch_fp32"], truth)
    result = {}
    for key in runners:
        median = float(np.median(times[key])) / 1e6
        dsc = mean_dsc(outputs[key], truth)
        result[key] = {
            "median_ms": round(median, 1),
            "first_inference_ms": round(first.get(key, float("nan")), 1),
            "agreement_vs_pytorch": round(
                float(np.mean([np.mean(a == b) for a, b in zip(outputs[key], outputs["pytorch_fp32"], strict=True)])), 4
            ),
            "mean_dsc": round(dsc, 4),
            "dsc_drop_points": round(100 * (reference_dsc - dsc), 2),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    import logging

    logging.getLogger("nncf").setLevel(logging.WARNING)
    from xenoedge.xeno.checkpoint import load_model
    from xenoedge.xeno.default_models import default_model_dir
    from xenoedge.xeno.models import build_model

    from xenoedge.sensors import get_sensor

    sensor = get_sensor("tivita")
    frames, truth = simulated_frames(args.frames, sensor)
    surgical, _ = load_model(default_model_dir("surgical"))
    report = {"machine": f"{os.uname().machine}, {os.cpu_count()} cores", "frame": list(sensor.cube_shape)}
    report["surgical_pixel_mlp"] = bench_model("surgical", surgical, sensor, frames, truth, args.repeats, ("first",))
    if not args.skip_reference:
        reference = build_model("unet-effb5", sensor.n_bands, 12).eval()
        report["reference_unet_effb5"] = bench_model(
            "effb5", reference, sensor, frames[:2], truth[:2], max(3, args.repeats // 3), ()
        )
    ref_torch = report.get("reference_unet_effb5", {}).get("pytorch_fp32", {}).get("median_ms")
    s = report["surgical_pixel_mlp"]
    report["ratios"] = {
        "default_int8_ort_vs_fp32_ort": round(
            s["onnxruntime_fp32"]["median_ms"] / s["onnxruntime_int8"]["median_ms"], 2
        ),
        "default_int8_openvino_vs_fp32_ort": round(
            s["onnxruntime_fp32"]["median_ms"] / s["openvino_int8"]["median_ms"], 2
        ),
        "reference_pytorch_vs_default_int8_ort": None
        if ref_torch is None
        else round(ref_torch / s["onnxruntime_int8"]["median_ms"], 1),
        "reference_pytorch_vs_default_int8_openvino": None
        if ref_torch is None
        else round(ref_torch / s["openvino_int8"]["median_ms"], 1),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
