"""Scan-loop speed against the bare engine, side by side in one run, on the same frames and model.

    python benchmarks/scan_speed.py [--frames 40] [--threads 1] [--prefer onnxruntime] [--json out.json]

1. The simulated crop camera (``sim:crop``, seed 0) is recorded as a 16-bit PNG mosaic sequence
   (2048x1088, 5x5 pattern) with dark and white reference frames (``xenoedge.devices.recording``); not timed.
2. Bare engine: the packaged crop bundle's target that the daemon picks (same ``--prefer`` and
   ``--threads``), loaded with ``xenoedge.edge.engines.open_engine``; the recorded frames are demosaiced
   into cubes beforehand and each inference is timed alone (``engine.infer()`` on its bound
   buffers, warm-up excluded): what the model costs.
3. Scan loop: ``xenoedge scan`` on ``file:REC/%05d.png`` (the OpenCV driver reading the PNGs),
   ``--interval 0``, the recording's references, until the sequence ends; frames per second from
   the first trigger to the last record on disk: 1 frame in flight, 2 in flight, and 1 in flight with
   the tables and plot summary rewritten after every frame (``--tables-every 0``). Per frame: the
   camera's read (the OpenCV driver: PNG read and decode), the daemon's feed (demosaic into the
   engine's buffer) + inference latency, and the session's record time (measure, pictures, atomic
   writes with fsync, tables, plot summary); the rest is hand-over between the threads.
4. The bare engine again, so drift on a shared machine shows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from xenoedge.calibration.mosaic import cube_from_mosaic
from xenoedge.calibration.reflectance import signal_range
from xenoedge.devices.open_camera import camera_from_spec
from xenoedge.devices.recording import record
from xenoedge.edge.builtin_bundles import default_bundle
from xenoedge.edge.engines import open_engine
from xenoedge.edge.scan import ScanOptions, ScanSession
from xenoedge.export.bundle import extract_bundle, read_manifest

from xenoedge.sensors import get_sensor


def _stats_ms(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {
        "median": round(float(np.median(a)), 2),
        "mean": round(float(a.mean()), 2),
        "p90": round(float(np.percentile(a, 90)), 2),
    }


def bare_engine(folder: Path, manifest: dict, frames: list[np.ndarray], refs: dict, args) -> dict:
    sensor = get_sensor(manifest["sensor"]["name"])
    h, w, _ = sensor.cube_shape
    engine = open_engine(folder, manifest, prefer=args.prefer, threads=args.threads, frame_hw=(h, w))
    try:
        engine.bind_references(refs["dark"], 1.0 / signal_range(refs["dark"], refs["white"]))
        cubes = [cube_from_mosaic(f, sensor) for f in frames]
        engine.infer(cubes[0])
        engine.warm_up(3)
        times = []
        for cube in cubes:
            np.copyto(engine.input_buffer[0], cube)
            t = time.perf_counter()
            engine.infer()
            times.append((time.perf_counter() - t) * 1e3)
        return {
            "engine": engine.name,
            "frames": len(times),
            "fps": round(1e3 / float(np.median(times)), 2),
            "infer_ms": _stats_ms(times),
        }
    finally:
        engine.close()


def scan_loop(recording: Path, workdir: Path, in_flight: int, tables_every_s: float, args) -> dict:
    options = ScanOptions(
        session=workdir / f"session-{in_flight}-{tables_every_s:g}",
        tables_every_s=tables_every_s,
        field="bench",
        camera=f"file:{recording}/%05d.png",
        interval_s=0.0,
        reference_frames=args.reference_frames,
        threads=args.threads,
        prefer=tuple(args.prefer),
        frames_in_flight=in_flight,
    )
    with ScanSession(options, log=lambda _line: None) as session:
        result = session.run()
    return {
        "frames_in_flight": in_flight,
        "tables_every_s": tables_every_s,
        "engine": result.engine,
        "frames": result.frames,
        "seconds": round(result.scan_s, 3),
        "fps": round(result.fps, 2),
        "camera_read_ms": _stats_ms(result.camera_ms),
        "feed_infer_ms": _stats_ms(result.latencies_ms),
        "record_ms": _stats_ms(result.record_ms),
        "stop_reason": result.stop_reason,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--reference-frames", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--prefer", default="", help="comma-separated targets/runtimes, as xenoedge scan --prefer")
    parser.add_argument("--json", default=None)
    parser.add_argument("--keep", default=None, help="keep the recording and sessions in this folder")
    args = parser.parse_args()
    args.prefer = [p for p in args.prefer.split(",") if p]
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="scan-speed-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        sensor = get_sensor("mosaic-5x5-nir")
        recording = workdir / "recording"
        if not (recording / "camera.json").is_file():
            camera = camera_from_spec("sim:crop", sensor, seed=0)
            record(camera, recording, args.frames, references=args.reference_frames, camera_text="sim:crop")
        frames = [cv2.imread(str(recording / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED) for i in range(args.frames)]
        refs = {
            kind: np.mean(
                [
                    cube_from_mosaic(cv2.imread(str(p), cv2.IMREAD_UNCHANGED), sensor)
                    for p in sorted((recording / kind).glob("*.png"))
                ],
                axis=0,
                dtype=np.float64,
            ).astype(np.float32)
            for kind in ("dark", "white")
        }
        folder = (
            extract_bundle(default_bundle("crop"), workdir / "bundle")
            if not (workdir / "bundle").exists()
            else workdir / "bundle"
        )
        manifest = read_manifest(folder)
        report = {
            "machine": {
                "cpu_count": os.cpu_count(),
                "platform": platform.platform(),
                "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            },
            "bundle": f"{manifest['name']}@{manifest['version']}",
            "frames": args.frames,
            "threads": args.threads,
            "runs": [],
        }
        for name, run in (
            ("bare_engine", lambda: bare_engine(folder, manifest, frames, refs, args)),
            ("scan_loop", lambda: scan_loop(recording, workdir, 1, 1.0, args)),
            ("scan_loop", lambda: scan_loop(recording, workdir, 2, 1.0, args)),
            ("scan_loop", lambda: scan_loop(recording, workdir, 1, 0.0, args)),
            ("bare_engine", lambda: bare_engine(folder, manifest, frames, refs, args)),
        ):
            for old in workdir.glob("session-*"):
                shutil.rmtree(old)
            result = {"run": name, **run()}
            report["runs"].append(result)
            extra = (
                f" ({result['frames_in_flight']} in flight, tables every {result['tables_every_s']:g} s)"
                if "frames_in_flight" in result
                else ""
            )
            print(
                f"{name}{extra}: {result['fps']} frames/s over {result['frames']} frames on {result['engine']}",
                flush=True,
            )
        bare = np.median([r["fps"] for r in report["runs"] if r["run"] == "bare_engine"])
        for r in report["runs"]:
            if r["run"] == "scan_loop":
                r["share_of_bare_engine"] = round(r["fps"] / bare, 3)
        print(json.dumps(report, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
