"""The camera demo: real simulated frames through calibration into pictures on disk."""

import json

import cv2
import numpy as np
from xenoedge.devices.simulated import SimulatedCamera
from xenoedge.edge.demo import run_camera_demo
from xenoedge.xeno.labels import CROP
from xenoedge.xeno.previews import LEGEND_PX, PAD_PX, PANEL_TOP_PX

from xenoedge.sensors import get_sensor


def test_demo_calibrates_mosaic_frames_and_writes_pictures(tmp_path):
    camera = SimulatedCamera(get_sensor("mosaic-5x5-nir"), domain="crop", species=["wheat"], seed=4)
    summary = run_camera_demo(
        camera, tmp_path, 4, reference_frames=2, picture_every=2, label_colors=CROP.colors(), label_names=CROP.names
    )
    assert not camera.is_open
    assert summary["pictures"] == ["frame_00000.png", "frame_00002.png"]
    picture = cv2.imread(str(tmp_path / "frame_00002.png"))[..., ::-1]
    # title bars, then frame | ground truth over it | legend
    assert picture.shape == (PANEL_TOP_PX + 217, 2 * (409 + PAD_PX) + LEGEND_PX, 3)
    assert picture[PANEL_TOP_PX:, :409].std() > 10
    legend = picture[:, -LEGEND_PX:].reshape(-1, 3)
    for color in CROP.colors():
        assert (legend == color).all(axis=1).sum() >= 100
    assert json.loads((tmp_path / "summary.json").read_text())["frames"] == 4
    assert 0 <= summary["saturated_pixel_fraction"] < 0.05
    assert np.isfinite(summary["frames_per_second"])
