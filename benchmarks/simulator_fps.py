"""Simulator throughput: scene generation and simulated-camera frames per second.

    OPENBLAS_NUM_THREADS=1 python benchmarks/simulator_fps.py [--frames 300] [--json out.json]

Measures, on this machine's CPU, at the Tivita size (480x640x100) and the 5x5 mosaic size:
  * scene generation (layout + optics + shading), one new scene per call;
  * the live camera (default ``SimulatedCamera``): ``open()`` time (model + the rendered
    scene loop), the bytes it holds, one reference frame, and ``read()`` over ``--frames``
    frames with the default 30 frames per scene, so scene changes are included;
  * the exact-noise camera (``exact_noise=True``, what data sets use): ``read()`` with a new
    scene every 30 frames as well.
Warm-up excluded (first 3 reads); times by time.perf_counter_ns; median, p90, p99 and the
mean rate (frames / total read time). The numbers in docs/simulator.md and docs/cameras.md
come from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
from xenoedge.devices.simulated import SimulatedCamera
from xenoedge.xeno.scene import SceneConfig, simulate_scene

from xenoedge.sensors import get_sensor


def _stats(times_ns: list[int]) -> dict:
    t = np.asarray(times_ns) / 1e6
    return {
        "count": int(t.size),
        "median_ms": round(float(np.median(t)), 2),
        "p90_ms": round(float(np.percentile(t, 90)), 2),
        "p99_ms": round(float(np.percentile(t, 99)), 2),
        "fps_median": round(1000.0 / float(np.median(t)), 1),
        "fps_mean": round(1000.0 * t.size / float(t.sum()), 1),
    }


def bench_scenes(sensor_name: str, n: int) -> dict:
    sensor = get_sensor(sensor_name)
    h, w, _ = sensor.cube_shape
    simulate_scene(SceneConfig(height=h, width=w), 0, sensor.wavelengths(), sensor.fwhm())  # warm-up
    times = []
    for seed in range(1, n + 1):
        t0 = time.perf_counter_ns()
        simulate_scene(SceneConfig(height=h, width=w), seed, sensor.wavelengths(), sensor.fwhm())
        times.append(time.perf_counter_ns() - t0)
    return _stats(times)


def bench_camera(sensor_name: str, n: int, exact_noise: bool) -> dict:
    sensor = get_sensor(sensor_name)
    t0 = time.perf_counter_ns()
    cam = SimulatedCamera(sensor, frames_per_scene=30, exact_noise=exact_noise)
    with cam:
        report: dict = {"open_s": round((time.perf_counter_ns() - t0) / 1e9, 2)}
        if not exact_noise:
            scenes, k = cam.loop_shape
            report["loop"] = f"{scenes} scenes x {k} realisations"
            report["held_mib"] = round(cam.nbytes / 2**20, 1)
            t0 = time.perf_counter_ns()
            cam.read_reference("white")
            report["reference_frame_ms"] = round((time.perf_counter_ns() - t0) / 1e6, 1)
        for _ in range(3):
            cam.read()  # warm-up
        times = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            cam.read()
            times.append(time.perf_counter_ns() - t0)
    report.update(_stats(times))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300, help="live-camera frames timed per sensor")
    parser.add_argument("--exact-frames", type=int, default=40, help="exact-noise frames timed per sensor")
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args()
    report: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "command": "OPENBLAS_NUM_THREADS=1 python benchmarks/simulator_fps.py " + " ".join(sys.argv[1:]),
    }
    for sensor in ("tivita", "mosaic-5x5-nir"):
        report[sensor] = {
            "scene_generation": bench_scenes(sensor, args.scenes),
            "camera_live": bench_camera(sensor, args.frames, exact_noise=False),
            "camera_exact_noise": bench_camera(sensor, args.exact_frames, exact_noise=True),
        }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
