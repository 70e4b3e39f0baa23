"""The camera demo: real simulated frames through calibration into pictures on disk."""

import json

import cv2
import numpy as np

from calibration.sensors import get_sensor
from devices.simulated import SimulatedCamera
from edge.demo import run_camera_demo
from xeno.labels import CROP


def test_demo_calibrates_mosaic_frames_and_writes_pictures(tmp_path):
    camera = SimulatedCamera(get_sensor("mosaic-5x5-nir"), domain="crop", species=["wheat"], seed=4)
    summary = run_camera_demo(camera, tmp_path, 4, reference_frames=2, picture_every=2, label_colors=CROP.colors())
    assert not camera.is_open
    assert summary["pictures"] == ["frame_00000.png", "frame_00002.png"]
    picture = cv2.imread(str(tmp_path / "frame_00002.png"))
    assert picture.shape == (217, 2 * 409, 3) and picture.std() > 10
    assert json.loads((tmp_path / "summary.json").read_text())["frames"] == 4
    assert 0 <= summary["saturated_pixel_fraction"] < 0.05
    assert np.isfinite(summary["frames_per_second"])
