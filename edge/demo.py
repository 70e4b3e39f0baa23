"""Camera demo: references, frames, calibration, pictures — the daemon's path without a model yet.

Captures averaged dark and white references from the camera, reads frames, turns them into
reflectance with ``calibration.FrameCalibrator`` (the daemon's per-frame path), and writes
pseudo-RGB | ground-truth pictures a person can look at, plus a JSON summary. The daemon
issue replaces the ground truth with the model's masks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from calibration.atomic import atomic_write
from calibration.calibrator import FrameCalibrator
from calibration.capture import capture_reference
from calibration.references import References
from devices.camera import Camera


def run_camera_demo(
    camera: Camera,
    out: Path,
    frames: int,
    *,
    reference_frames: int = 8,
    picture_every: int = 5,
    label_colors: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Run the demo on an opened-or-not camera; returns the summary also written to out/summary.json."""
    from devices.formats import write_rgb_png
    from xeno.previews import label_overlay, pseudo_rgb

    out.mkdir(parents=True, exist_ok=True)
    sensor = camera.sensor
    with camera:
        dark = capture_reference(camera, "dark", reference_frames)
        white = capture_reference(camera, "white", reference_frames)
        refs = References(camera.camera_id, sensor.name, sensor.signature, dark=dark.mean, white=white.mean)
        saturated, pictures, started = 0.0, [], time.perf_counter()
        with FrameCalibrator(refs, sensor) as calibrator:
            for i in range(frames):
                frame = camera.read()
                result = calibrator.process(frame.data, frame=f"frame {frame.index}")
                saturated += result.saturated_fraction
                if i % picture_every == 0:
                    rgb = pseudo_rgb(result.reflectance, frame.wavelengths_nm)
                    panels = [rgb]
                    if frame.labels is not None and label_colors is not None:
                        panels.append(label_overlay(rgb, frame.labels, label_colors))
                    path = out / f"frame_{frame.index:05d}.png"
                    write_rgb_png(path, np.hstack(panels))
                    pictures.append(path.name)
                if progress:
                    progress(i + 1)
        elapsed = time.perf_counter() - started
    h, w, c = camera.sensor.cube_shape
    summary = {
        "camera_id": camera.camera_id,
        "sensor": camera.sensor.name,
        "cube_shape": [h, w, c],
        "frames": frames,
        "seconds": round(elapsed, 3),
        "frames_per_second": round(frames / elapsed, 2) if elapsed > 0 else None,
        "saturated_pixel_fraction": saturated / frames if frames else 0.0,
        "pictures": pictures,
    }
    atomic_write(out / "summary.json", lambda f: f.write(json.dumps(summary, indent=2).encode()))
    return summary
