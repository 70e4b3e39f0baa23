"""Simulator throughput: scene generation and simulated-camera frames per second.

    python benchmarks/simulator_fps.py [--frames 40] [--json out.json]

Measures, on this machine's CPU, at the Tivita size (480x640x100) and the mosaic sizes:
  * scene generation (layout + optics + shading), one new scene per call;
  * camera frames from a cached scene with pooled noise (the live camera's default) and
    with exact per-frame noise (what data sets use).
Warm-up excluded; times by time.perf_counter_ns; median and p90 reported. The numbers in
docs/simulator.md come from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from calibration.sensors import get_sensor
from devices.simulated import SimulatedCamera
from xeno.scene import SceneConfig, simulate_scene


def _stats(times_ns: list[int]) -> dict:
    t = np.asarray(times_ns) / 1e6
    return {
        "count": int(t.size),
        "median_ms": round(float(np.median(t)), 1),
        "p90_ms": round(float(np.percentile(t, 90)), 1),
        "fps_median": round(1000.0 / float(np.median(t)), 2),
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
    with SimulatedCamera(sensor, frames_per_scene=10**9, exact_noise=exact_noise) as cam:
        for _ in range(3):
            cam.read()  # warm-up: first scene, buffers
        times = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            cam.read()
            times.append(time.perf_counter_ns() - t0)
    return _stats(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args()
    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}
    for sensor in ("tivita", "mosaic-5x5-nir"):
        report[sensor] = {
            "scene_generation": bench_scenes(sensor, args.scenes),
            "camera_pooled_noise": bench_camera(sensor, args.frames, exact_noise=False),
            "camera_exact_noise": bench_camera(sensor, args.frames // 2, exact_noise=True),
        }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
