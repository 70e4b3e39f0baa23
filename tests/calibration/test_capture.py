"""Reference capture from real (simulated) cameras: averaging, noise, fallback, bad frames."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import numpy as np
import pytest
from xenoedge.calibration.capture import capture_reference, dark_line_band, iso_utc, parse_iso_utc
from xenoedge.devices.camera import Camera
from xenoedge.devices.simulated import SimulatedCamera
from xenoedge.xeno.camera_model import make_camera_model

from xenoedge.errors import CalibrationError, CameraError
from xenoedge.sensors import get_sensor

SENSOR = get_sensor("mosaic-5x5-nir")  # 217 x 409 x 25 cubes from 1088 x 2048 mosaic frames
SEED = 3


def fixed_clock() -> datetime:
    return datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def dark():
    with SimulatedCamera(SENSOR, seed=SEED, exact_noise=True) as cam:
        return capture_reference(cam, "dark", 8, clock=fixed_clock)


def test_dark_capture_averages_to_the_cameras_dark_with_read_noise(dark):
    h, w, c = SENSOR.cube_shape
    model = make_camera_model(SENSOR, h, w, SEED)
    assert dark.mean.shape == dark.temporal_noise.shape == (h, w, c)
    assert dark.mean.dtype == dark.temporal_noise.dtype == np.float32
    # Per-pixel noise in the mean is read_noise / sqrt(8) ~ 1.1 counts.
    err = dark.mean - model.dark_counts
    assert abs(float(err.mean())) < 0.05
    assert float(err.std()) == pytest.approx(SENSOR.read_noise_counts / np.sqrt(8), rel=0.05)
    # Temporal noise is the read noise (plus 1/12 count^2 of rounding to integers).
    rms_noise = float(np.sqrt(np.mean(dark.temporal_noise.astype(np.float64) ** 2)))
    assert rms_noise == pytest.approx(np.sqrt(SENSOR.read_noise_counts**2 + 1 / 12), rel=0.03)


def test_capture_records_its_provenance(dark):
    assert dark.kind == "dark" and dark.n_frames == 8 and not dark.fallback
    assert dark.camera_id == f"sim-{SENSOR.name}-{SEED}" and dark.sensor == SENSOR.name
    assert dark.exposure_ms == 10.0
    assert dark.captured_at == "2026-01-02T03:04:05Z"
    assert parse_iso_utc(dark.captured_at) == fixed_clock()
    assert dark.frame_means.shape == (8,)
    assert np.ptp(dark.frame_means) < 0.1
    assert dark.saturated_fraction == 0.0
    meta = dark.to_meta()
    assert meta.frames == 8 and meta.source == "camera" and meta.stats["fallback"] is False


def test_single_frame_has_zero_noise_and_progress_is_reported():
    calls = []
    with SimulatedCamera(SENSOR, seed=SEED) as cam:
        white = capture_reference(cam, "white", 1, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 1)]
    assert not white.temporal_noise.any()
    assert float(np.median(white.mean)) > 300  # a white tile, well above the dark


def test_progress_is_called_per_frame():
    calls = []
    with SimulatedCamera(SENSOR, seed=SEED) as cam:
        capture_reference(cam, "dark", 3, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


class NoShutterCamera(SimulatedCamera):
    """A simulated camera without shutter or white tile: references must come from read()."""

    def _read_reference(self, kind):
        return Camera._read_reference(self, kind)


def test_camera_without_reference_capture_falls_back_to_read():
    with NoShutterCamera(SENSOR, seed=SEED) as cam:
        with pytest.raises(CameraError):
            cam.read_reference("dark")
        capture = capture_reference(cam, "white", 2)
        assert cam._next_index == 2  # both frames came from read()
    assert capture.fallback
    assert capture.to_meta().stats["fallback"] is True


def test_too_few_frames_and_bad_kind_are_refused():
    with SimulatedCamera(SENSOR, seed=SEED) as cam:
        with pytest.raises(CalibrationError, match="at least 1 frame"):
            capture_reference(cam, "dark", 0)
        with pytest.raises(CalibrationError, match="'dark' or 'white'"):
            capture_reference(cam, "grey", 2)  # type: ignore[arg-type]


class ListCamera:
    """Duck-typed camera delivering given frames (as a driver with a broken sensor mode would)."""

    def __init__(self, sensor, frames):
        self.sensor, self.camera_id, self.exposure_ms = sensor, "list-cam", 5.0
        self._frames = iter(frames)

    def read_reference(self, kind):
        return next(self._frames)


def _frame(data, index=0, kind="raw", exposure_ms=5.0):
    return type("F", (), {"data": data, "kind": kind, "index": index, "exposure_ms": exposure_ms})()


def test_frame_of_wrong_shape_is_named():
    small = dataclasses.replace(get_sensor("tivita"), name="tiny", height=4, width=5)
    good = np.full(small.cube_shape, 60, np.uint16)
    bad = np.full((4, 5, 99), 60, np.uint16)
    cam = ListCamera(small, [_frame(good, 0), _frame(good, 1), _frame(bad, 2)])
    with pytest.raises(CalibrationError, match=r"frame 2 .*\(4, 5, 99\)"):
        capture_reference(cam, "dark", 3)


def test_mosaic_frame_of_wrong_size_is_named():
    cam = ListCamera(SENSOR, [_frame(np.zeros((10, 10), np.uint16), 0, kind="mosaic_raw")])
    with pytest.raises(CalibrationError, match="dark reference frame 0"):
        capture_reference(cam, "dark", 1)


def test_reflectance_frames_and_changing_exposure_are_refused():
    small = dataclasses.replace(get_sensor("tivita"), name="tiny", height=4, width=5)
    refl = np.full(small.cube_shape, 0.5, np.float32)
    with pytest.raises(CalibrationError, match="needs raw counts"):
        capture_reference(ListCamera(small, [_frame(refl, kind="reflectance")]), "white", 1)
    raw = np.full(small.cube_shape, 500, np.uint16)
    frames = [_frame(raw, 0, exposure_ms=5.0), _frame(raw, 1, exposure_ms=8.0)]
    with pytest.raises(CalibrationError, match=r"frame 1 .*exposure 8\.0 ms"):
        capture_reference(ListCamera(small, frames), "white", 2)


def test_dark_line_band_recovers_the_per_line_pattern(dark):
    h, w, c = SENSOR.cube_shape
    model = make_camera_model(SENSOR, h, w, SEED)
    lines = dark_line_band(dark.mean)
    assert lines.shape == (h, 1, c) and lines.dtype == np.float32
    # Hot pixels do not pull the median; the line-band pattern (sigma 1.5 counts) is kept.
    expected = np.median(model.dark_counts, axis=1, keepdims=True)
    assert float(np.abs(lines - expected).max()) < 0.5
    assert float(np.std(lines)) > 1.0


def test_iso_utc_treats_naive_as_utc():
    assert iso_utc(datetime(2026, 5, 6, 7, 8, 9)) == "2026-05-06T07:08:09Z"


def test_accumulator_matches_numpy_on_bright_drifting_frames_with_little_memory():
    """Mean and temporal noise agree with float64 NumPy where a naive float32 sum of squares would
    not (bright counts, small noise, a drift); memory is the uint16 first frame and two float32 sums."""
    import tracemalloc

    from xenoedge.calibration.capture import FrameAccumulator

    rng = np.random.default_rng(7)
    shape = (240, 50, 30)
    base = rng.uniform(30_000, 60_000, size=shape)
    frames = [np.round(base + 40.0 * i + rng.normal(0, 3.0, size=shape)).astype(np.uint16) for i in range(12)]
    stack = np.stack(frames).astype(np.float64)

    class FourLineBlocks(FrameAccumulator):
        block_values = 4 * shape[1] * shape[2]  # scratch and temporaries of 4 lines, as a Tivita cube has 8

    tracemalloc.start()
    acc = FourLineBlocks(shape, saturation_counts=65_535)
    for i, frame in enumerate(frames):
        acc.add(frame, f"frame {i}")
    got = acc.result("white", camera_id="c", sensor="s", exposure_ms=1.0, captured_at="t")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    np.testing.assert_allclose(got.mean, stack.mean(axis=0), rtol=0, atol=0.01)
    np.testing.assert_allclose(got.temporal_noise, stack.std(axis=0, ddof=1), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(got.frame_means, stack.mean(axis=(1, 2, 3)))
    cube_f32 = int(np.prod(shape)) * 4
    assert peak <= 2.75 * cube_f32, f"{peak} bytes at the peak for a {cube_f32}-byte float32 cube"
    with pytest.raises(CalibrationError, match="already summarised"):
        acc.add(frames[0], "one more")
