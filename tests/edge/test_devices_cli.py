"""`xenoedge devices list|read` and `xenoedge camera-record` through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
from xenoedge.calibration.store import load_references
from xenoedge.devices.open_camera import CAMERA_KINDS, camera_from_spec


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "250", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "xenoedge.cli.main", *args], capture_output=True, text=True, timeout=300, env=env
    )


def test_devices_list_shows_every_kind_and_the_video_devices(tmp_path):
    result = run_cli("devices", "list", "--pattern", str(tmp_path / "video*"))
    assert result.returncode == 0, result.stderr
    for kind in CAMERA_KINDS.values():
        assert kind.form in result.stdout and kind.example in result.stdout
    assert f"V4L2 devices: none found ({tmp_path / 'video*'})" in result.stdout
    (tmp_path / "video3").write_text("a file where a device node should be")
    result = run_cli("devices", "list", "--pattern", str(tmp_path / "video*"))
    assert result.returncode == 0, result.stderr
    assert "video3" in result.stdout and "not a character device" in result.stdout


def test_record_then_read_the_sequence_and_the_video(tmp_path):
    out = tmp_path / "seq"
    result = run_cli("camera-record", "--camera", "sim:crop?species=maize", "--frames", "3", "--size", "100x130",
                     "--seed", "4", "--references", "2", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"file:{out}/%05d.png"
    frames = [cv2.imread(str(out / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED) for i in range(3)]
    assert all(f.dtype == np.uint16 and f.shape == (100, 130) for f in frames)
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    info = json.loads((out / "camera.json").read_text())
    assert info["camera"] == "sim:crop?species=maize&size=100x130" and info["profile"] == "mosaic-5x5-nir"

    result = run_cli("devices", "read", "--camera", f"file:{out}/%05d.png", "--frames", "10", "--demosaic")
    assert result.returncode == 0, result.stderr
    assert "read + demosaic: 2 frames in" in result.stdout  # the first frame is read before timing starts
    assert "file-seq: mosaic-5x5-nir, frames 100x130 uint16" in result.stderr

    # the recorded dark/white frames are real references for `xenoedge calibrate` (no fallback)
    refs = tmp_path / "refs.npz"
    for kind in ("dark", "white"):
        result = run_cli("calibrate", kind, "--camera", f"file:{out}/%05d.png", "--sensor", "mosaic-5x5-nir",
                         "--frames", "2", "--out", str(refs))  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert "cannot capture" not in result.stderr
    stored = load_references(refs, camera_id="file-seq")
    assert stored.dark.shape == stored.white.shape == (20, 26, 25)
    assert stored.sensor_signature == camera_from_spec(f"file:{out}/%05d.png").sensor.signature
    result = run_cli("devices", "read", "--camera", f"file:{out}/%05d.png", "--refs", str(refs))
    assert result.returncode == 0, result.stderr
    assert "read + calibrate: 2 frames in" in result.stdout

    again = run_cli("camera-record", "--frames", "2", "--size", "100x130", "--out", str(out))
    assert again.returncode == 2 and "folder is not empty; pass --force" in again.stderr
    video = run_cli("camera-record", "--frames", "2", "--size", "100x130", "--video", "--force", "--out", str(out))
    assert video.returncode == 0, video.stderr
    assert not (out / "00000.png").exists() and (out / "frames.mkv").is_file()
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["00000.png", "00001.png"]
    assert not (out / "dark").exists() or not any((out / "dark").iterdir())
    result = run_cli("devices", "read", "--camera", f"file:{out}/frames.mkv", "--frames", "5")
    assert result.returncode == 0, result.stderr
    assert "read: 1 frames in" in result.stdout


def test_bad_camera_strings_are_one_red_line_and_exit_2(tmp_path):
    result = run_cli("devices", "read", "--camera", "webcam:0")
    assert result.returncode == 2
    assert "unknown camera kind 'webcam'; accepted forms:" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("devices", "read", "--camera", "v4l2:/dev/null?profile=mosaic-5x5-nir")
    assert result.returncode == 2 and "cannot open /dev/null: not a video capture device" in result.stderr
    result = run_cli("camera-record", "--camera", "sim:surgical", "--frames", "1", "--size", "48x64",
                     "--out", str(tmp_path / "cubes"))  # fmt: skip
    assert result.returncode == 2 and "a recording holds 2-D mosaic/mono raw frames" in result.stderr
