"""Calibration speed, measured side by side with a plain memory copy.

    python benchmarks/calibration_speed.py [--repeats 30] [--json out.json]

For one 480x640x100 uint16 Tivita frame: the whole per-frame path of FrameCalibrator
(saturation mask, (raw − dark)/(white − dark), clipping, validity mask) and the
reflectance alone (saturation_mask=False), each with 1 and 2 threads, against
``np.copyto`` of the same frame into a preallocated float32 array.
Runs alternate (copy, 1 thread, 2 threads, copy, ...) so drift on this shared machine
hits all alike; medians and their ratio to the copy are reported. Also: demosaicing one
2048x1088 5x5-mosaic frame, and the whole mosaic calibration path.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from xenoedge.calibration.calibrator import FrameCalibrator
from xenoedge.calibration.mosaic import cube_from_mosaic
from xenoedge.calibration.references import References

from xenoedge.sensors import get_sensor


def _refs(sensor, rng):
    h, w, c = sensor.cube_shape
    dark = (60 + rng.normal(0, 1.5, (h, 1, c)) + rng.normal(0, 0.4, (h, w, c))).astype(np.float32)
    white = (dark + rng.uniform(150, 750, (h, w, c))).astype(np.float32)
    return References("bench", sensor.name, sensor.signature, dark=dark, white=white)


def _median_ms(times_ns: list[int]) -> float:
    return round(float(np.median(times_ns)) / 1e6, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    tivita = get_sensor("tivita")
    h, w, c = tivita.cube_shape
    raw = rng.integers(0, 1024, (h, w, c)).astype(np.uint16)
    refs = _refs(tivita, rng)
    no_defects = np.zeros((h, w), dtype=bool)
    copy_target = np.empty((h, w, c), dtype=np.float32)
    runs = {
        "copy": lambda: np.copyto(copy_target, raw, casting="unsafe"),
        "calibrate_1_thread": FrameCalibrator(refs, tivita, defects=no_defects, threads=1).process,
        "calibrate_2_threads": FrameCalibrator(refs, tivita, defects=no_defects, threads=2).process,
        "reflectance_only_1_thread": FrameCalibrator(
            refs, tivita, defects=no_defects, threads=1, saturation_mask=False
        ).process,
        "reflectance_only_2_threads": FrameCalibrator(
            refs, tivita, defects=no_defects, threads=2, saturation_mask=False
        ).process,
    }
    times: dict[str, list[int]] = {name: [] for name in runs}
    for name, run in runs.items():  # warm-up
        run() if name == "copy" else run(raw)
    for _ in range(args.repeats):
        for name, run in runs.items():
            t0 = time.perf_counter_ns()
            run() if name == "copy" else run(raw)
            times[name].append(time.perf_counter_ns() - t0)
    copy_ms = _median_ms(times["copy"])
    tivita_report = {
        name: {"median_ms": _median_ms(t), "ratio_to_copy": round(_median_ms(t) / copy_ms, 2)}
        for name, t in times.items()
    }

    nir = get_sensor("mosaic-5x5-nir")
    frame = rng.integers(0, 1024, nir.raw_shape).astype(np.uint16)
    cube = np.empty(nir.cube_shape, dtype=np.uint16)
    nir_calibrator = FrameCalibrator(_refs(nir, rng), nir, defects=np.zeros(nir.cube_shape[:2], bool))
    demosaic, calibrate = [], []
    cube_from_mosaic(frame, nir, out=cube)
    nir_calibrator.process(frame)
    for _ in range(args.repeats):
        t0 = time.perf_counter_ns()
        cube_from_mosaic(frame, nir, out=cube)
        t1 = time.perf_counter_ns()
        nir_calibrator.process(frame)
        t2 = time.perf_counter_ns()
        demosaic.append(t1 - t0)
        calibrate.append(t2 - t1)
    report = {
        "machine": f"{os.uname().machine}, {os.cpu_count()} cores",
        "repeats": args.repeats,
        "tivita_480x640x100_uint16": tivita_report,
        "mosaic_5x5_2048x1088": {"demosaic_ms": _median_ms(demosaic), "calibrate_ms": _median_ms(calibrate)},
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
