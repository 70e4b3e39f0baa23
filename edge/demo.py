"""Camera demo: references, frames, calibration, pictures — the daemon's path without a model yet.

Captures averaged dark and white references from the camera, reads frames, turns them into
reflectance with ``calibration.FrameCalibrator`` (the daemon's per-frame path), and writes
pictures a person can look at (``frame_<index>.png``: title, the calibrated frame as pseudo-RGB,
the simulator's ground truth over it, a legend of class names and colours), plus a JSON summary. The daemon
issue replaces the ground truth with the model's masks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from xenoedge.calibration.calibrator import FrameCalibrator
from xenoedge.calibration.capture import capture_reference
from xenoedge.calibration.references import References
from xenoedge.devices.camera import Camera

from xenoedge.atomic import atomic_write


def run_camera_demo(
    camera: Camera,
    out: Path,
    frames: int,
    *,
    reference_frames: int = 8,
    picture_every: int = 5,
    label_colors: np.ndarray | None = None,
    label_names: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Run the demo on an opened-or-not camera; returns the summary also written to out/summary.json."""
    from xenoedge.devices.formats import write_rgb_png
    from xenoedge.xeno.previews import compose, label_overlay, legend, pseudo_rgb

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
                    panels, side = [("frame: calibrated reflectance as pseudo-RGB", rgb)], None
                    if frame.labels is not None and label_colors is not None:
                        panels.append(("ground truth over the frame", label_overlay(rgb, frame.labels, label_colors)))
                        names = label_names or [f"class {k}" for k in range(len(label_colors))]
                        side = legend(names, label_colors, 0, heading="class")
                    title = (
                        f"{camera.camera_id}  frame {frame.index}  ({sensor.name}, "
                        f"saturated {100 * result.saturated_fraction:.1f}% of pixels)"
                    )
                    path = out / f"frame_{frame.index:05d}.png"
                    write_rgb_png(path, compose(panels, title, side=side, min_panel_height=0))
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
