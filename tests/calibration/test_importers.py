"""Importing Tivita DarkPattern and Specim DARKREF/WHITEREF references from real files."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from xenoedge.calibration.importers import references_from_dark_pattern, references_from_specim, specim_captures
from xenoedge.calibration.store import load_references, save_references
from xenoedge.calibration.validation import validate_dark, validate_white
from xenoedge.devices.formats.envi import read_specim_capture, write_specim_capture
from xenoedge.devices.formats.tivita import read_dark_pattern, write_dark_pattern
from xenoedge.xeno import camera_model

from xenoedge.errors import CalibrationError
from xenoedge.sensors import get_sensor

TIVITA = get_sensor("tivita")
MOSAIC = get_sensor("mosaic-5x5-nir")
WHEN = datetime(2026, 4, 1, 8, 30, tzinfo=timezone.utc)


def test_dark_pattern_file_becomes_a_per_line_dark(tmp_path):
    rng = np.random.default_rng(1)
    pattern = TIVITA.dark_level_counts + 1.5 * rng.standard_normal((480, 100))
    path = write_dark_pattern(tmp_path / "DarkPattern.dpic", pattern)
    refs = references_from_dark_pattern(read_dark_pattern(path), TIVITA, "tivita-0042", captured_at=WHEN)
    assert refs.dark.shape == (480, 1, 100) and refs.dark.dtype == np.float32
    np.testing.assert_allclose(refs.dark[:, 0, :], pattern, rtol=1e-6)
    assert refs.white is None and refs.sensor_signature == TIVITA.signature
    assert refs.dark_meta.source == "import:tivita-darkpattern" and refs.dark_meta.frames == 1
    assert np.isnan(refs.dark_meta.exposure_ms)  # unknown
    stored = save_references(tmp_path / "refs.npz", refs)
    loaded = load_references(stored, camera_id="tivita-0042", sensor=TIVITA, exposure_ms=10.0)
    np.testing.assert_array_equal(loaded.dark, refs.dark)
    assert np.isnan(loaded.dark_meta.exposure_ms) and loaded.dark_meta.captured_at == "2026-04-01T08:30:00Z"


def test_dark_pattern_with_the_wrong_line_count_is_refused(tmp_path):
    path = write_dark_pattern(tmp_path / "DarkPattern.dpic", np.full((479, 100), 60.0))
    with pytest.raises(CalibrationError, match=r"DarkPattern has 479 lines x 100 bands; .* needs 480 lines"):
        references_from_dark_pattern(read_dark_pattern(path), TIVITA, "t")


def test_dark_pattern_with_nan_or_the_wrong_bands_is_refused():
    with pytest.raises(CalibrationError, match="DarkPattern has 480 lines x 25 bands"):
        references_from_dark_pattern(np.full((480, 25), 60.0), TIVITA, "t")
    bad = np.full((480, 100), 60.0)
    bad[3, 4] = np.nan
    with pytest.raises(CalibrationError, match="DarkPattern: 1 NaN/inf"):
        references_from_dark_pattern(bad, TIVITA, "t")


@pytest.fixture(scope="module")
def specim_stacks():
    """(dark, white) uint16 (30, W, C) stacks of one detector line read 30 times, as a Specim stores them."""
    _, w, _ = MOSAIC.cube_shape
    model = camera_model.make_camera_model(MOSAIC, 1, w, seed=11)
    rng = np.random.default_rng(2)
    stacks = []
    for kind in ("dark", "white"):
        mean = camera_model.reference_counts(model, kind, 10.0)
        sigma = camera_model.noise_sigma(model, mean)
        lines = [camera_model.sample_raw(model, mean, sigma, rng, mosaic=False) for _ in range(30)]
        stacks.append(np.concatenate(lines, axis=0))
    return model, stacks[0], stacks[1]


def test_specim_folder_references_average_over_lines(tmp_path, specim_stacks):
    model, dark, white = specim_stacks
    scene = (dark[:4] // 2 + white[:4] // 2).astype(np.uint16)
    write_specim_capture(tmp_path / "scan", "scan", scene, dark, white, MOSAIC.wavelengths())
    capture = read_specim_capture(tmp_path / "scan")
    refs = references_from_specim(
        capture.dark, capture.white, MOSAIC, "specim-7", wavelengths_nm=capture.wavelengths_nm, exposure_ms=10.0
    )
    assert refs.dark.shape == refs.white.shape == (1, MOSAIC.cube_shape[1], 25)
    assert refs.dark.dtype == refs.white.dtype == np.float32
    assert refs.dark_meta.frames == 30 and refs.white_meta.source == "import:specim"
    # Mean over 30 readings: noise 3/sqrt(30) ~ 0.55 counts.
    assert float(np.abs(refs.dark - model.dark_counts).mean()) < 0.6
    rel = np.abs(refs.white - camera_model.reference_counts(model, "white", 10.0)) / refs.white
    assert float(np.median(rel)) < 0.01

    dark_capture, white_capture = specim_captures(capture.dark, capture.white, MOSAIC, "specim-7")
    assert validate_dark(dark_capture, MOSAIC).ok
    assert float(np.median(dark_capture.temporal_noise)) == pytest.approx(MOSAIC.read_noise_counts, rel=0.1)
    assert validate_white(white_capture, dark_capture.mean, MOSAIC).ok


def test_specim_references_that_do_not_fit_are_refused(specim_stacks):
    _, dark, white = specim_stacks
    with pytest.raises(CalibrationError, match=r"Specim WHITEREF has shape \(30, 100, 25\)"):
        references_from_specim(dark, white[:, :100], MOSAIC, "s")
    with pytest.raises(CalibrationError, match=r"wavelengths .* differ from sensor mosaic-5x5-nir"):
        references_from_specim(dark, white, MOSAIC, "s", wavelengths_nm=MOSAIC.wavelengths() + 5)
