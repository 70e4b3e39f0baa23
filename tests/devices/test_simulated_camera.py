"""The simulated camera behind the camera interface, with an injected clock."""

import numpy as np
import pytest

from calibration.errors import CameraError, CameraExhaustedError
from calibration.reflectance import reflectance_from_raw
from calibration.sensors import get_sensor
from devices.simulated import SimulatedCamera


class FakeClock:
    def __init__(self):
        self.now_ns = 1_000_000_000
        self.slept: list[float] = []

    def __call__(self) -> int:
        return self.now_ns

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now_ns += int(seconds * 1e9)


@pytest.fixture(scope="module")
def tivita():
    return get_sensor("tivita")


def test_frames_carry_index_time_and_truth(tivita):
    clock = FakeClock()
    with SimulatedCamera(tivita, species=["human", "rat"], frames_per_scene=2, seed=1, clock_ns=clock) as cam:
        frames = [cam.read() for _ in range(3)]
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[0].data.shape == (480, 640, 100) and frames[0].data.dtype == np.uint16
    assert frames[0].kind == "raw" and frames[0].camera_id == "sim-tivita-1"
    assert frames[0].timestamp_us == 1_000_000
    assert frames[0].labels.shape == (480, 640)
    assert frames[0].source.endswith("human:scene0") and frames[2].source.endswith("rat:scene1")
    assert not np.array_equal(frames[0].data, frames[1].data)  # fresh noise per frame
    np.testing.assert_array_equal(frames[0].labels, frames[1].labels)  # same scene


def test_fps_pacing_uses_the_injected_clock(tivita):
    clock = FakeClock()
    cam = SimulatedCamera(tivita, fps=20.0, clock_ns=clock, sleep=clock.sleep)
    with cam:
        for _ in range(3):
            cam.read()
    assert clock.slept == pytest.approx([0.05, 0.05])


def test_references_calibrate_the_camera(tivita):
    with SimulatedCamera(tivita, seed=2, exact_noise=True) as cam:
        dark = np.mean([cam.read_reference("dark").data for _ in range(4)], axis=0, dtype=np.float32)
        white = np.mean([cam.read_reference("white").data for _ in range(4)], axis=0, dtype=np.float32)
        frame = cam.read()
    r = reflectance_from_raw(frame.data, dark, white)
    tissue = frame.labels > 0
    assert 0.02 < np.median(r[tissue]) < 0.8
    assert np.median(white - dark) > 150


def test_mosaic_camera_delivers_mosaic_frames():
    sensor = get_sensor("mosaic-4x4-vis")
    with SimulatedCamera(sensor, domain="crop", species=["maize"]) as cam:
        frame = cam.read()
    assert frame.kind == "mosaic_raw" and frame.data.shape == (1088, 2048)
    assert frame.labels.shape == sensor.cube_shape[:2]


def test_errors_are_typed_and_clear(tivita):
    cam = SimulatedCamera(tivita, max_frames=1)
    with pytest.raises(CameraError, match="not open"):
        cam.read()
    with cam:
        cam.read()
        with pytest.raises(CameraExhaustedError, match="all 1 frames"):
            cam.read()
        with pytest.raises(CameraError, match="'dark' or 'white'"):
            cam.read_reference("grey")
    with pytest.raises(CameraError, match="cannot simulate"), SimulatedCamera(tivita, species=["dog"]) as cam:
        cam.read()
