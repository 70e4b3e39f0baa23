"""One raw cube to reflectance (``calibrate apply``'s arithmetic) and one reference into a file
(``calibrate dark|white``), without the command line."""

from __future__ import annotations

import numpy as np
import pytest
from xenoedge.calibration.calibrated_cube import calibrate_cube
from xenoedge.calibration.reference_update import capture_reference_update, references_to_update
from xenoedge.calibration.references import References
from xenoedge.calibration.store import save_references
from xenoedge.devices.simulated import SimulatedCamera

from xenoedge.errors import CalibrationError
from xenoedge.sensors import get_sensor

SENSOR = get_sensor("mosaic-5x5-nir")


def _references(sensor_name: str = "lab-camera") -> References:
    return References(
        camera_id="cam",
        sensor=sensor_name,
        sensor_signature=f"{sensor_name}:0",
        dark=np.full((1, 4, 3), 100, np.float32),
        white=np.full((1, 4, 3), 3100, np.float32),
    )


def test_reflectance_saturation_and_report_of_a_raw_cube():
    raw = np.full((2, 4, 3), 1600, np.uint16)
    raw[1, 2, 0] = 4095  # 12-bit full scale: saturated (4003 of 4095 for an inferred profile)
    result = calibrate_cube(raw, _references())
    assert result.saturation_counts == 4003
    assert result.reflectance.shape == (2, 4, 3) and np.allclose(result.reflectance[0], 0.5)
    assert result.saturated.tolist() == [[False] * 4, [False, False, True, False]]
    report = result.report("scan", "refs.npz", ["a.npz"])
    assert list(report) == [
        "capture",
        "references",
        "shape",
        "saturation_counts",
        "saturated_pixel_fraction",
        "reflectance_median",
        "reflectance_above_1_fraction",
        "outputs",
    ]
    assert report["saturated_pixel_fraction"] == pytest.approx(1 / 8) and report["reflectance_median"] == 0.5


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (np.full((2, 4, 3), 0.5, np.float32), "already reflectance"),
        (np.full((2, 4, 3), -1, np.int32), "negative raw counts"),
        (np.full((2, 5, 3), 1600, np.uint16), "dark reference of shape (1, 4, 3) (refs.npz) does not fit scan"),
    ],
)
def test_what_is_not_raw_counts_fitting_the_references_is_refused(raw, message):
    with pytest.raises(CalibrationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        calibrate_cube(raw, _references(), what="scan", references_source="refs.npz")


def test_a_reference_update_needs_the_dark_first_and_keeps_a_failed_capture_out(tmp_path):
    path = tmp_path / "refs.npz"
    with pytest.raises(CalibrationError, match="capture the dark reference first"):
        references_to_update(path, "white", "cam-A", SENSOR)
    with SimulatedCamera(SENSOR, seed=5, camera_id="cam-A") as cam:
        dark = capture_reference_update(cam, "dark", 2, references_to_update(path, "dark", "cam-A", SENSOR))
    assert dark.report.ok and dark.references is not None
    assert dark.references.dark_meta.stats["validation"]["ok"] is True
    save_references(path, dark.references)
    existing = references_to_update(path, "white", "cam-A", SENSOR)
    with SimulatedCamera(SENSOR, seed=5, camera_id="cam-A", exposure_ms=40.0) as cam:  # overexposed white
        white = capture_reference_update(cam, "white", 2, existing)
    assert not white.report.ok and white.references is None
