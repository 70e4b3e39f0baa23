import numpy as np
import pytest
from xenoedge.calibration.bands import band_response_matrix
from xenoedge.calibration.reflectance import reflectance_from_raw

from xenoedge.errors import InvalidCubeError, UnknownNameError
from xenoedge.sensors import SENSORS, get_sensor


def test_band_matrix_keeps_flat_spectra_flat_and_finds_peaks():
    grid = np.arange(450.0, 1001.0)
    m = band_response_matrix(grid, np.array([600.0, 800.0]), np.array([10.0, 20.0]))
    np.testing.assert_allclose(np.ones(grid.size) @ m, 1.0, rtol=1e-5)
    line = np.zeros(grid.size)
    line[grid == 800] = 1.0
    assert (line @ m)[1] > 10 * (line @ m)[0]


def test_band_outside_the_grid_is_refused():
    with pytest.raises(InvalidCubeError, match=r"1200\.0 nm"):
        band_response_matrix(np.arange(450.0, 1001.0), np.array([600.0, 1200.0]), np.array([10.0, 10.0]))


def test_reflectance_from_raw_with_per_line_dark():
    raw = np.full((4, 5, 3), 460, dtype=np.uint16)
    dark = np.full((4, 1, 3), 60.0, dtype=np.float32)
    white = np.full((4, 5, 3), 860.0, dtype=np.float32)
    out = np.empty((4, 5, 3), np.float32)
    r = reflectance_from_raw(raw, dark, white, out=out)
    assert r is out
    np.testing.assert_allclose(r, 0.5)


def test_reflectance_rejects_mismatched_references():
    with pytest.raises(InvalidCubeError, match="references do not fit"):
        reflectance_from_raw(np.zeros((4, 5, 3)), np.zeros((4, 5, 2)), np.ones((4, 5, 3)))


def test_sensor_profiles_are_consistent():
    for p in SENSORS.values():
        assert len(p.wavelengths_nm) == len(p.fwhm_nm) == p.n_bands
        assert np.all(np.diff(p.wavelengths()) > 0)
        assert p.saturation_counts <= p.max_counts
        if p.mosaic:
            assert sorted(p.mosaic_array().ravel()) == list(range(p.n_bands))
    assert get_sensor("tivita").cube_shape == (480, 640, 100)
    assert get_sensor("mosaic-5x5-nir").cube_shape == (217, 409, 25)
    assert get_sensor("mosaic-4x4-vis").cube_shape == (272, 512, 16)
    assert len({p.signature for p in SENSORS.values()}) == len(SENSORS)
    with pytest.raises(UnknownNameError, match="available: mosaic-4x4-vis, mosaic-5x5-nir, tivita"):
        get_sensor("specim-iq")


def test_cube_from_mosaic_inverts_the_camera_model_mosaic():
    from xenoedge.calibration.mosaic import cube_from_mosaic
    from xenoedge.xeno.camera_model import mosaic_from_cube

    for name in ("mosaic-5x5-nir", "mosaic-4x4-vis"):
        sensor = get_sensor(name)
        cube = np.random.default_rng(0).integers(0, 1024, sensor.cube_shape).astype(np.uint16)
        np.testing.assert_array_equal(cube_from_mosaic(mosaic_from_cube(cube, sensor), sensor), cube)
    with pytest.raises(InvalidCubeError, match="1088x2048"):
        cube_from_mosaic(np.zeros((10, 10), np.uint16), get_sensor("mosaic-5x5-nir"))


def test_precomputed_signal_gives_the_same_reflectance_and_is_floored():
    from xenoedge.calibration.reflectance import MIN_SIGNAL_COUNTS, signal_range

    rng = np.random.default_rng(1)
    raw = rng.integers(0, 1024, (3, 4, 5)).astype(np.uint16)
    dark = np.full((3, 4, 5), 50.0, np.float32)
    white = rng.uniform(40, 900, (3, 4, 5)).astype(np.float32)  # some white below dark: dead band
    signal = signal_range(dark, white)
    assert signal.min() >= MIN_SIGNAL_COUNTS
    np.testing.assert_array_equal(
        reflectance_from_raw(raw, dark, white, signal=signal), reflectance_from_raw(raw, dark, white)
    )
