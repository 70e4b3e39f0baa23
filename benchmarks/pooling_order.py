"""Calibrate then pool, or pool then calibrate? The error of the edge-first graph's order.

    python benchmarks/pooling_order.py [--checkpoint xeno/default_models/surgical] [--frames 6] [--json OUT]

An edge-first bundle pools the raw frame p x p inside its graph and calibrates the pooled counts
with references pooled the same way (``xenoedge.calibration.pooling``). The exact order would calibrate
every pixel first and pool the reflectance. This script simulates Tivita frames through the
camera model (vignetted white reference, shot and read noise, saturation), takes both orders
and reports:

- reflectance: mean and 99th-percentile absolute difference of the pooled reflectance, and of
  the L1 spectra the model sees (relative to the mean spectrum value);
- masks: the checkpoint's (H, W) masks from the graph's order (``xenoedge.xeno.evaluate.predict_working``)
  and from the exact order (the PyTorch model on full-size spectra), their pixel agreement, and
  the mean DSC of each against the simulated ground truth.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from xenoedge.calibration.normalise import l1_normalise
from xenoedge.calibration.pooling import pool_blocks, pooled_references
from xenoedge.calibration.reflectance import MAX_REFLECTANCE
from xenoedge.export.onnx_export import preprocess_reference, reference_gain

from xenoedge.sensors import get_sensor

EXPOSURE_MS = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("xeno/default_models/surgical"))
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from xenoedge.xeno.camera_model import expected_counts, make_camera_model, noise_sigma, reference_counts, sample_raw
    from xenoedge.xeno.checkpoint import load_model
    from xenoedge.xeno.evaluate import dice, predict, predict_working
    from xenoedge.xeno.scene import SceneConfig, simulate_scene

    model, config = load_model(args.checkpoint)
    pool = int(getattr(model, "input_pool", 1))
    sensor = get_sensor(config.get("sensor") or "tivita")
    h, w, _ = sensor.cube_shape
    camera = make_camera_model(sensor, h, w, args.seed)
    dark = reference_counts(camera, "dark", EXPOSURE_MS)
    white = reference_counts(camera, "white", EXPOSURE_MS)
    gain = reference_gain(dark, white)
    pooled_dark, pooled_gain = pooled_references(dark, gain, pool)
    rng = np.random.default_rng(args.seed)
    n_classes = len(config["labels"])
    rows = []
    for i in range(args.frames):
        scene = simulate_scene(
            SceneConfig(height=h, width=w, pathological_probability=0.5 if i % 2 else 0.0),
            args.seed + i,
            sensor.wavelengths(),
            sensor.fwhm(),
        )
        mean = expected_counts(camera, scene.reflectance, EXPOSURE_MS)
        raw = sample_raw(camera, mean, noise_sigma(camera, mean), rng, mosaic=False)
        exact = np.clip((raw.astype(np.float32) - dark) * gain, 0.0, MAX_REFLECTANCE)
        exact_pooled = pool_blocks(exact, pool)
        graph_order = np.clip((pool_blocks(raw, pool) - pooled_dark) * pooled_gain, 0.0, MAX_REFLECTANCE)
        diff = np.abs(graph_order - exact_pooled)
        spectra_graph = preprocess_reference(raw, pooled_dark, pooled_gain, pool=pool)
        spectra_exact = l1_normalise(exact)
        spectra_diff = np.abs(spectra_graph - pool_blocks(spectra_exact, pool)) * sensor.n_bands
        mask_graph = predict_working(model, spectra_graph, (h, w)) if pool > 1 else predict(model, spectra_graph)
        mask_exact = predict(model, spectra_exact)
        present = [k for k in range(1, n_classes) if np.any(scene.labels == k)]
        rows.append(
            {
                "frame": i,
                "pathological": bool(i % 2),
                "reflectance_abs_mean": float(diff.mean()),
                "reflectance_abs_p99": float(np.percentile(diff, 99)),
                "reflectance_mean": float(exact_pooled.mean()),
                "l1_spectra_rel_mean": float(spectra_diff.mean()),
                "l1_spectra_rel_p99": float(np.percentile(spectra_diff, 99)),
                "mask_agreement": float(np.mean(mask_graph == mask_exact)),
                "dsc_graph_order": float(np.mean([dice(mask_graph, scene.labels, k) for k in present])),
                "dsc_exact_order": float(np.mean([dice(mask_exact, scene.labels, k) for k in present])),
            }
        )
        print(json.dumps(rows[-1]))
    summary = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("frame", "pathological")}
    summary.update({"frames": len(rows), "pool": pool, "checkpoint": str(args.checkpoint), "seed": args.seed})
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "frames": rows}, indent=2))


if __name__ == "__main__":
    main()
