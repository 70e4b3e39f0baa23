"""Per-frame calibration against the simulator's ground truth, plus every refusal."""

import numpy as np
import pytest
from xenoedge.calibration.calibrator import FrameCalibrator
from xenoedge.calibration.mosaic import correct_crosstalk
from xenoedge.calibration.normalise import L1_EPS, l1_normalise
from xenoedge.calibration.references import References
from xenoedge.devices.simulated import SimulatedCamera

from xenoedge.errors import CalibrationError
from xenoedge.sensors import get_sensor

NIR = get_sensor("mosaic-5x5-nir")


def averaged(camera, kind, n):
    from xenoedge.calibration.mosaic import cube_from_mosaic

    frames = [camera.read_reference(kind).data for _ in range(n)]
    cubes = [cube_from_mosaic(f, camera.sensor) if f.ndim == 2 else f for f in frames]
    return np.mean(cubes, axis=0, dtype=np.float64).astype(np.float32)


def references_from(camera, n=16):
    return References(
        camera_id=camera.camera_id,
        sensor=camera.sensor.name,
        sensor_signature=camera.sensor.signature,
        dark=averaged(camera, "dark", n),
        white=averaged(camera, "white", n),
    )


@pytest.mark.parametrize("threads", [1, 2])
def test_references_turn_raw_frames_back_into_truth_within_the_noise(threads):
    n_ref = 16
    with SimulatedCamera(NIR, seed=11, exact_noise=True, species=["pig"]) as cam:
        refs = references_from(cam, n_ref)
        frame = cam.read()
        truth, sigma_counts = cam.ground_truth()
    with FrameCalibrator(refs, NIR, threads=threads) as calibrator:
        result = calibrator.process(frame.data, frame="frame 0")
        signal = refs.white - refs.dark
        usable = result.valid & (truth < 0.95).all(axis=2)
        usable = usable[..., None] & (signal > 100)
        # Expected spread: the frame's noise plus the references' averaged noise, plus rounding.
        sigma = np.sqrt(sigma_counts**2 * (1 + 1 / n_ref) + 1 / 12) / signal
        z = ((result.reflectance - truth) / sigma)[usable]
        assert z.size > 100_000
        assert abs(z.mean()) < 0.1
        assert 0.85 < z.std() < 1.2


def test_saturated_and_defective_pixels_are_invalid():
    with SimulatedCamera(NIR, seed=3, exposure_ms=10.0) as cam:
        refs = references_from(cam, 4)
    defects = np.zeros(NIR.cube_shape[:2], dtype=bool)
    defects[5, 7] = True
    with FrameCalibrator(refs, NIR, defects=defects) as calibrator:
        raw = np.full(NIR.raw_shape, 300, dtype=np.uint16)
        raw[0:5, 0:5] = 1023  # one super-pixel fully saturated
        raw[10, 12] = 1000  # one band of super-pixel (2, 2) at the threshold
        result = calibrator.process(raw)
    assert result.saturated[0, 0] and result.saturated[2, 2]
    assert not result.valid[0, 0] and not result.valid[2, 2] and not result.valid[5, 7]
    assert result.valid.sum() == result.valid.size - 3
    assert result.saturated_fraction == pytest.approx(2 / result.valid.size)
    assert result.reflectance.min() >= 0.0


def test_per_line_dark_broadcasts_like_tivita_darkpattern():
    sensor = get_sensor("tivita")
    h, w, c = sensor.cube_shape
    dark_lines = np.linspace(50, 70, h, dtype=np.float32)[:, None, None] * np.ones((1, 1, c), np.float32)
    refs = References("cam", sensor.name, sensor.signature, dark=dark_lines, white=np.full((h, w, c), 860, np.float32))
    raw = (dark_lines + 0.5 * (860 - dark_lines)).round().astype(np.uint16) * np.ones((1, w, 1), np.uint16)
    with FrameCalibrator(refs, sensor, defects=np.zeros((h, w), bool)) as calibrator:
        r = calibrator.process(raw).reflectance
    np.testing.assert_allclose(r, 0.5, atol=1e-3)


def test_crosstalk_correction_undoes_band_mixing():
    c = NIR.n_bands
    mixing = np.eye(c, dtype=np.float32) * 0.9 + np.roll(np.eye(c, dtype=np.float32), 1, axis=1) * 0.1
    h, w, _ = NIR.cube_shape
    true_signal = np.random.default_rng(0).uniform(100, 600, (h, w, c)).astype(np.float32)
    white_signal = np.full((h, w, c), 700, np.float32)
    dark = np.full((1, 1, c), 40, np.float32)
    measured = correct_crosstalk(true_signal, mixing) + dark
    white = correct_crosstalk(white_signal, mixing) + dark
    from xenoedge.xeno.camera_model import mosaic_from_cube

    raw = mosaic_from_cube(np.rint(measured).astype(np.uint16), NIR)
    refs = References("cam", NIR.name, NIR.signature, dark=dark, white=white)
    kwargs = {"defects": np.zeros((h, w), bool)}
    with FrameCalibrator(refs, NIR, crosstalk=np.linalg.inv(mixing), **kwargs) as corrected:
        r = corrected.process(raw).reflectance.copy()
    np.testing.assert_allclose(r, true_signal / white_signal, atol=3e-3)
    with FrameCalibrator(refs, NIR, **kwargs) as uncorrected:
        assert np.abs(uncorrected.process(raw).reflectance - true_signal / white_signal).max() > 0.02


def test_refusals_name_what_is_wrong():
    sensor = get_sensor("tivita")
    h, w, c = sensor.cube_shape
    white = np.full((h, w, c), 800, np.float32)
    with pytest.raises(CalibrationError, match="no white reference"):
        FrameCalibrator(References("cam", sensor.name, sensor.signature, dark=white * 0), sensor)
    with pytest.raises(CalibrationError, match="taken with sensor mosaic-5x5-nir"):
        FrameCalibrator(References("cam", NIR.name, NIR.signature, dark=white * 0, white=white), sensor)
    with pytest.raises(CalibrationError, match=r"dark reference of shape \(480, 640, 25\)"):
        FrameCalibrator(References("cam", sensor.name, sensor.signature, dark=white[..., :25], white=white), sensor)
    calibrator = FrameCalibrator(
        References("cam", sensor.name, sensor.signature, dark=white * 0.05, white=white),
        sensor,
        defects=np.zeros((h, w), bool),
    )
    with pytest.raises(CalibrationError, match=r"frame 7: raw shape \(480, 640, 25\)"):
        calibrator.process(np.zeros((h, w, 25), np.uint16), frame="frame 7")
    negative = np.zeros((h, w, c), np.int16)
    negative[3, 3, 3] = -5
    with pytest.raises(CalibrationError, match=r"frame 9: negative raw counts \(min -5\)"):
        calibrator.process(negative, frame="frame 9")
    with pytest.raises(CalibrationError, match="already reflectance"):
        calibrator.process(np.zeros((h, w, c), np.float32), frame="frame 8")
    with pytest.raises(CalibrationError, match="crosstalk matrix must be"):
        FrameCalibrator(
            References("cam", NIR.name, NIR.signature, dark=np.zeros((1, 1, 25)), white=np.ones((1, 1, 25))),
            NIR,
            crosstalk=np.eye(3),
            defects=np.zeros(NIR.cube_shape[:2], bool),
        )


def test_l1_normalise_sums_to_one_and_keeps_zero_spectra_finite():
    cube = np.random.default_rng(0).uniform(0, 1, (4, 5, 25)).astype(np.float32)
    cube[0, 0] = 0
    out = l1_normalise(cube)
    np.testing.assert_allclose(out[1:].sum(axis=-1), 1.0, rtol=1e-5)
    assert np.all(out[0, 0] == 0) and np.all(np.isfinite(out))
    buf, norm = np.empty_like(cube), np.empty((4, 5, 1), np.float32)
    assert l1_normalise(cube, out=buf, norm=norm) is buf
    np.testing.assert_array_equal(buf, out)
    assert L1_EPS > 0


def test_resampled_tivita_cube_matches_simulating_the_target_sensor_directly():
    from xenoedge.calibration.resample import resample_cube
    from xenoedge.xeno.scene import SceneConfig, simulate_scene

    tivita = get_sensor("tivita")
    config = SceneConfig(height=40, width=50, specular=False)
    fine = simulate_scene(config, 5, tivita.wavelengths(), tivita.fwhm())
    direct = simulate_scene(config, 5, NIR.wavelengths(), NIR.fwhm())
    resampled = resample_cube(fine.reflectance, tivita.wavelengths(), NIR)
    assert resampled.shape == (40, 50, 25)
    # Resampling a 5 nm, 10 nm-FWHM cube approximates the 1 nm integration closely.
    assert np.median(np.abs(resampled - direct.reflectance) / direct.reflectance) < 0.03
