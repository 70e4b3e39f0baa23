"""Reference validation and the defect map, on captures from the simulated camera."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from xenoedge.calibration.capture import capture_reference, dark_line_band
from xenoedge.calibration.validation import (
    ValidationLimits,
    defect_map,
    raise_if_failed,
    validate_dark,
    validate_white,
)
from xenoedge.devices.simulated import SimulatedCamera
from xenoedge.xeno.camera_model import make_camera_model

from xenoedge.errors import CalibrationError, ReferenceValidationError
from xenoedge.sensors import get_sensor

SENSOR = get_sensor("mosaic-5x5-nir")
SEED = 3


@pytest.fixture(scope="module")
def captures():
    with SimulatedCamera(SENSOR, seed=SEED, exact_noise=True) as cam:
        return capture_reference(cam, "dark", 6), capture_reference(cam, "white", 6)


@pytest.fixture(scope="module")
def model():
    h, w, _ = SENSOR.cube_shape
    return make_camera_model(SENSOR, h, w, SEED)


def test_good_references_pass_with_a_readable_report(captures):
    dark, white = captures
    d, w = validate_dark(dark, SENSOR), validate_white(white, dark.mean, SENSOR)
    assert d.ok and w.ok, d.to_text() + "\n" + w.to_text()
    assert [c.name for c in d.checks] == ["finite", "level", "noise", "stability"]
    assert [c.name for c in w.checks] == ["finite", "signal", "saturation", "stability"]
    text = d.to_text()
    assert text.splitlines()[0] == "dark reference: passed"
    assert "[  ok] noise" in text
    data = json.loads(w.to_json())
    assert data["ok"] is True and len(data["checks"]) == 4
    raise_if_failed(d, "dark")  # no error


def test_white_with_the_lights_off_fails_naming_every_band(captures):
    dark, _ = captures
    lights_off = dataclasses.replace(dark, kind="white")  # dark frames handed in as the white
    report = validate_white(lights_off, dark.mean, SENSOR)
    assert not report.ok
    assert [c.name for c in report.failed] == ["signal"]
    detail = report.failed[0].detail
    assert "bands 0 (600.0 nm): 100%" in detail
    assert "24 (975.0 nm): 100% of pixels below 50 counts" in detail
    assert report.failed[0].values["failing_bands"] == list(range(25))
    with pytest.raises(ReferenceValidationError, match=r"white reference rejected") as info:
        raise_if_failed(report, "white reference")
    assert info.value.report is report
    assert "[FAIL] signal" in str(info.value)


def test_one_weak_band_is_named_alone(captures):
    dark, white = captures
    mean = white.mean.copy()
    h = mean.shape[0]
    mean[: h // 8, :, 3] = dark.mean[: h // 8, :, 3] + 10  # 12.5% of band 3 barely lit
    report = validate_white(dataclasses.replace(white, mean=mean), dark.mean, SENSOR)
    detail = report.failed[0].detail
    assert detail.startswith("bands 3 (646.9 nm): 12.")
    assert "% of pixels below 50 counts" in detail
    assert report.failed[0].values["failing_bands"] == [3]


def test_overexposed_white_fails_saturation():
    with SimulatedCamera(SENSOR, seed=SEED, exposure_ms=40) as cam:
        dark = capture_reference(cam, "dark", 2)
        white = capture_reference(cam, "white", 2)
    report = validate_white(white, dark.mean, SENSOR)
    failed = {c.name: c for c in report.failed}
    assert set(failed) == {"saturation"}
    assert white.saturated_fraction > 0.5
    assert "lower the exposure" in failed["saturation"].detail
    assert "0 (600.0 nm)" in failed["saturation"].detail


def test_nan_anywhere_fails_the_finite_check(captures):
    dark, white = captures
    mean = white.mean.copy()
    mean[5, 6, 7] = np.nan
    report = validate_white(dataclasses.replace(white, mean=mean), dark.mean, SENSOR)
    assert [c.name for c in report.checks] == ["finite"]
    assert "white mean has 1 NaN/inf values" in report.failed[0].detail
    bad_dark = dark.mean.copy()
    bad_dark[0, 0, 0] = np.inf
    report = validate_dark(dataclasses.replace(dark, mean=bad_dark), SENSOR)
    assert "dark mean has 1 NaN/inf" in report.failed[0].detail


def test_dark_with_a_light_leak_fails_level(captures):
    _, white = captures
    report = validate_dark(dataclasses.replace(white, kind="dark"), SENSOR)
    assert "level" in [c.name for c in report.failed]
    assert "light leak" in report.to_text()


def test_unstable_frames_and_noisy_dark_fail(captures):
    dark, white = captures
    drifting = dataclasses.replace(dark, frame_means=dark.frame_means + np.arange(dark.n_frames))
    noisy = dataclasses.replace(drifting, temporal_noise=dark.temporal_noise * 5)
    assert {c.name for c in validate_dark(noisy, SENSOR).failed} == {"noise", "stability"}
    flicker = dataclasses.replace(white, frame_means=white.frame_means * np.linspace(0.97, 1.03, 6))
    assert [c.name for c in validate_white(flicker, dark.mean, SENSOR).failed] == ["stability"]
    # Limits are configurable.
    loose = ValidationLimits(white_stability_fraction=0.2)
    assert validate_white(flicker, dark.mean, SENSOR, loose).ok


def test_dark_of_the_wrong_shape_is_refused(captures):
    dark, white = captures
    with pytest.raises(CalibrationError, match="does not fit the white"):
        validate_white(white, dark.mean[:, :5], SENSOR)


def test_defect_map_finds_the_simulators_hot_and_dead_pixels(captures, model):
    dark, white = captures
    band_median_dark = np.median(model.dark_counts, axis=(0, 1))
    hot = (model.dark_counts - band_median_dark > 50).any(axis=-1)  # +100..400 counts
    dead = (model.white_counts < 0.1 * np.median(model.white_counts, axis=(0, 1))).any(axis=-1)
    assert hot.sum() >= 10 and dead.sum() >= 10
    found = defect_map(dark.mean, white.mean, SENSOR.cube_shape)
    assert found.shape == SENSOR.cube_shape[:2] and found.dtype == bool
    np.testing.assert_array_equal(found, hot | dead)


def test_defect_map_with_a_per_line_dark_keeps_dead_pixels(captures, model):
    dark, white = captures
    dead = (model.white_counts < 0.1 * np.median(model.white_counts, axis=(0, 1))).any(axis=-1)
    found = defect_map(dark_line_band(dark.mean), white.mean, SENSOR.cube_shape)
    np.testing.assert_array_equal(found, dead)


def test_defect_map_with_per_column_references_flags_whole_columns(captures):
    dark, white = captures
    h, w, _ = SENSOR.cube_shape
    col_dark = np.median(dark.mean, axis=0, keepdims=True)
    col_white = np.median(white.mean, axis=0, keepdims=True)
    col_dark[0, 7, 4] += 300  # a hot detector element
    col_white[0, 11, :] = col_dark[0, 11, :] + 2  # a dead one
    found = defect_map(col_dark, col_white, SENSOR.cube_shape)
    assert found.shape == (h, w)
    assert found[:, 7].all() and found[:, 11].all()
    assert found.sum() == 2 * h
    with pytest.raises(CalibrationError, match="does not fit the cube"):
        defect_map(col_dark[:, :5], col_white, SENSOR.cube_shape)
