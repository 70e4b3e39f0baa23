"""The daemon on a `file:` camera: a recorded full-size 5x5 mosaic sequence through `xenoedge run`
with the packaged crop bundle and references taken from the recording's dark/white frames."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from xenoedge.calibration.capture import capture_reference
from xenoedge.calibration.references import References
from xenoedge.calibration.store import save_references
from xenoedge.devices.open_camera import camera_from_spec
from xenoedge.devices.recording import record
from xenoedge.edge.builtin_bundles import default_bundle


def _run_recorded(tmp_path, frames: int, options: str = "") -> tuple[subprocess.CompletedProcess, str]:
    """Record ``frames`` full-size crop frames, store references from the recording and run the daemon on them."""
    rec = tmp_path / "rec"
    record(camera_from_spec("sim:crop?species=wheat&seed=2"), rec, frames, references=2)
    camera = f"file:{rec}/%05d.png{options}"
    with camera_from_spec(camera) as cam:
        assert cam.sensor.raw_shape == (1088, 2048)
        dark, white = capture_reference(cam, "dark", 2), capture_reference(cam, "white", 2)
        assert not dark.fallback and not white.fallback
        refs = References(cam.camera_id, cam.sensor.name, cam.sensor.signature, dark=dark.mean, white=white.mean)
        refs.dark_meta, refs.white_meta = dark.to_meta("camera"), white.to_meta("camera")
    save_references(tmp_path / "refs.npz", refs)
    config = tmp_path / "run.toml"
    config.write_text(
        f'[camera]\nspec = "{camera}"\nmax_fps = 5\n\n'
        f'[bundle]\npath = "{default_bundle("crop")}"\n\n'
        f'[references]\npath = "{tmp_path / "refs.npz"}"\ncapture = "never"\n\n'
        f'[output]\nsink = "png:{tmp_path / "masks"}"\n'
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "xenoedge.cli.main", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    return result, result.stdout + result.stderr


def test_daemon_runs_the_crop_bundle_on_a_recorded_mosaic_sequence(tmp_path):
    result, output = _run_recorded(tmp_path, 3)
    assert result.returncode == 0, output
    assert "xenoedge run: 3 masks" in output and "errors: none" in output, output
    assert len(list((tmp_path / "masks").glob("*.png"))) >= 1


def test_a_crosstalk_matrix_with_a_bundle_that_calibrates_inside_its_model_is_refused(tmp_path):
    """The packaged crop bundle takes raw counts (calibration inside the graph): it cannot apply
    the camera's crosstalk correction, so the daemon says so instead of silently skipping it."""
    np.save(tmp_path / "xt.npy", np.eye(25, dtype=np.float32))
    result, output = _run_recorded(tmp_path, 1, f"?crosstalk={tmp_path / 'xt.npy'}")
    assert result.returncode != 0, output
    assert "crosstalk" in output and "reflectance variant" in output, output
