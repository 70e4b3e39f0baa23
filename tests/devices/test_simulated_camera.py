"""The simulated camera behind the camera interface: clock, truth, live loop and its noise."""

import itertools

import numpy as np
import pytest
from xenoedge.calibration.reflectance import reflectance_from_raw
from xenoedge.devices.simulated import SimulatedCamera, loop_plan
from xenoedge.xeno.camera_model import (
    CompactCameraModel,
    expected_counts,
    make_camera_model,
    mosaic_from_cube,
    noise_sigma,
)
from xenoedge.xeno.noise_realisations import NoiseRealisations
from xenoedge.xeno.scene import SceneConfig, simulate_scene

from xenoedge.errors import CameraError, CameraExhaustedError
from xenoedge.sensors import get_sensor


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


# -- live mode: a loop of pre-rendered scenes, frames mixed from noisy realisations -----------
@pytest.fixture(scope="module")
def live(tivita):
    """Seven frames of a live Tivita camera (scenes 0, 0, 0, 1, 1, 1, 0) and the truth of scene 0."""
    with SimulatedCamera(tivita, species=("human", "pig"), frames_per_scene=3, seed=7) as cam:
        frames = [cam.read() for _ in range(7)]
        reflectance, sigma = cam.ground_truth()  # the scene behind the last frame: scene 0
        loop = cam.loop_shape
        seeds = [cam.scene_seed(n) for n in range(2)]
    model = make_camera_model(tivita, *tivita.cube_shape[:2], 7)
    mean = expected_counts(model, reflectance, 10.0)
    return frames, mean, sigma, noise_sigma(model, mean), loop, seeds


def test_live_loop_fits_the_memory_budget_and_repeats_its_scenes(live):
    frames, *_, loop, _ = live
    assert loop == (2, 2)  # tivita in 256 MiB: two scenes, two realisations each
    sources = [f.source for f in frames]
    assert sources[:3] == ["sim:surgical:human:scene0"] * 3
    assert sources[3:6] == ["sim:surgical:pig:scene1"] * 3
    assert sources[6] == "sim:surgical:human:scene0"  # the loop wraps round
    for a, b in itertools.pairwise(frames):
        assert not np.array_equal(a.data, b.data)  # every frame differs from the one before


def test_live_labels_and_meta_are_the_scene_behind_the_frame(tivita, live):
    frames, *_, seeds = live
    for frame, number in ((frames[0], 0), (frames[4], 1)):
        config = SceneConfig(species=("human", "pig")[number], subject=0, height=480, width=640)
        scene = simulate_scene(config, seeds[number], tivita.wavelengths(), tivita.fwhm())
        np.testing.assert_array_equal(frame.labels, scene.labels)
        np.testing.assert_array_equal(frame.meta["states"], scene.states)
        assert frame.meta["scene"]["seed"] == scene.meta["seed"]


def test_live_noise_is_the_camera_models_shot_and_read_noise(live):
    frames, mean, sigma, model_sigma, *_ = live
    np.testing.assert_allclose(sigma, model_sigma, atol=0.01)  # ground_truth() sigma is the model's
    unclipped = mean + 6 * model_sigma < 1023
    for frame in (frames[0], frames[6]):
        z = (frame.data.astype(np.float32) - mean)[unclipped] / model_sigma[unclipped]
        assert abs(float(z.mean())) < 0.01
        # Unit variance plus rounding to whole counts (1/12 count^2).
        expected = float(np.sqrt(np.mean(1 + 1 / (12 * model_sigma[unclipped] ** 2))))
        assert float(z.std()) == pytest.approx(expected, rel=0.01)
    # Two frames of one scene: independent noise in the rows they took from different realisations.
    d = frames[0].data.astype(np.float32) - frames[1].data.astype(np.float32)
    differs = (d != 0).any(axis=(1, 2))
    assert 0.2 < differs.mean() < 0.8
    ratio = (d[differs][unclipped[differs]] / model_sigma[differs][unclipped[differs]]).std()
    assert ratio == pytest.approx(np.sqrt(2), rel=0.03)


def test_live_frames_clip_at_the_sensors_maximum(tivita, live):
    frames, mean, _, model_sigma, *_ = live
    data = frames[6].data
    assert data.max() == tivita.max_counts
    saturated = mean - 6 * model_sigma > tivita.max_counts
    assert saturated.sum() > 100  # specular highlights
    assert np.all(data[saturated] == tivita.max_counts)


def test_live_frames_are_reproducible_from_the_seed():
    sensor = get_sensor("mosaic-5x5-nir")
    runs = []
    for seed in (3, 3, 4):
        with SimulatedCamera(sensor, domain="crop", species=("wheat",), seed=seed, frames_per_scene=2) as cam:
            runs.append([cam.read().data for _ in range(5)] + [cam.read_reference("dark").data])
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not any(np.array_equal(a, b) for a, b in zip(runs[0], runs[2], strict=True))


def test_live_mosaic_frames_follow_the_camera_model():
    sensor = get_sensor("mosaic-5x5-nir")
    with SimulatedCamera(sensor, domain="crop", species=("maize",), seed=5, loop_scenes=1, realisations=3) as cam:
        frames = [cam.read() for _ in range(3)]
        reflectance, _ = cam.ground_truth()
        assert cam.loop_shape == (1, 3)
    model = make_camera_model(sensor, *sensor.cube_shape[:2], 5)
    mean = expected_counts(model, reflectance, 10.0)
    sigma = mosaic_from_cube(noise_sigma(model, mean), sensor)
    mean = mosaic_from_cube(mean, sensor)
    active = (sigma > 0) & (mean + 6 * sigma < sensor.max_counts)
    for frame in frames:
        assert frame.kind == "mosaic_raw" and frame.data.shape == (1088, 2048)
        z = (frame.data.astype(np.float32) - mean)[active] / sigma[active]
        assert abs(float(z.mean())) < 0.02 and 0.98 < float(z.std()) < 1.03
    assert not np.array_equal(frames[0].data, frames[1].data)


def test_live_references_have_fresh_noise_per_frame():
    sensor = get_sensor("mosaic-5x5-nir")
    with SimulatedCamera(sensor, domain="crop", species=("wheat",), seed=2) as cam:
        darks = np.stack([cam.read_reference("dark").data for _ in range(8)]).astype(np.float32)
    active = darks[0] > 0
    # Read noise only, plus rounding: the temporal spread of 8 independent frames.
    spread = float(np.sqrt(np.mean(darks.var(axis=0, ddof=1)[active])))
    assert spread == pytest.approx(np.sqrt(sensor.read_noise_counts**2 + 1 / 12), rel=0.03)


def test_loop_plan_spends_the_memory_budget():
    tivita_frame, mosaic_frame = 480 * 640 * 100 * 2, 1088 * 2048 * 2
    assert loop_plan(tivita_frame, 62_700_000, 256) == (2, 2)
    assert loop_plan(tivita_frame, 62_700_000, 128) == (1, 2)  # never fewer than 1 scene x 2
    assert loop_plan(mosaic_frame, 9_000_000, 256) == (4, 4)
    with pytest.raises(CameraError, match="realisations must be >= 2"):
        SimulatedCamera(get_sensor("tivita"), realisations=1)


def test_compact_model_keeps_the_counts_to_a_fraction_of_a_count():
    sensor = get_sensor("mosaic-5x5-nir")
    model = make_camera_model(sensor, *sensor.cube_shape[:2], 9)
    compact = CompactCameraModel(model)
    dark, white = compact.rows(0, sensor.cube_shape[0])
    assert np.abs(dark - model.dark_counts).max() <= 0.5 / compact.scale + 1e-4
    assert np.abs(white - model.white_counts).max() < 0.01
    assert compact.nbytes < 0.3 * (model.dark_counts.nbytes + model.white_counts.nbytes)


def test_noise_realisations_mix_whole_row_blocks():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 1024, (20, 3, 4), dtype=np.uint16)
    b = np.clip(a.astype(np.int32) + rng.integers(-40, 40, a.shape), 0, 1023).astype(np.uint16)
    c = rng.integers(0, 1024, a.shape, dtype=np.uint16)  # far from a: kept whole, not as differences
    r = NoiseRealisations(a.copy(), rows_per_block=8)
    r.add(b)
    r.add(c)
    assert r.k == 3 and r.n_blocks == 3
    assert r.nbytes == a.nbytes + a.size + c.nbytes
    for choice in ([0, 1, 2], [2, 0, 1], [1, 1, 0]):
        expected = np.concatenate([(a, b, c)[k][i * 8 : (i + 1) * 8] for i, k in enumerate(choice)])
        np.testing.assert_array_equal(r.frame(np.array(choice)), expected)
    choices = [r.choose(rng) for _ in range(200)]
    assert all(not np.array_equal(x, y) for x, y in itertools.pairwise(choices))


def test_noise_realisations_reuse_a_frame_buffer_only_when_nobody_holds_it():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 1024, (16, 3, 4), dtype=np.uint16)
    b = np.clip(a.astype(np.int32) + rng.integers(-40, 40, a.shape), 0, 1023).astype(np.uint16)
    r = NoiseRealisations(a.copy(), rows_per_block=8)
    r.add(b)
    held = r.frame(np.array([0, 1]))
    view = r.frame(np.array([1, 0]))[4:12]  # only a view of the second frame survives
    kept = held.copy(), view.copy()
    third = r.frame(np.array([1, 1]))
    assert not np.shares_memory(third, held) and not np.shares_memory(third, view)
    np.testing.assert_array_equal(held, kept[0])  # frames still in use are never overwritten
    np.testing.assert_array_equal(view, kept[1])
    np.testing.assert_array_equal(third, b)
    address = third.__array_interface__["data"][0]
    del third
    again = r.frame(np.array([0, 0]))
    assert again.__array_interface__["data"][0] == address  # released: its buffer serves the next frame
    np.testing.assert_array_equal(again, a)


def test_ring_camera_hands_out_its_prepared_frames_in_turn(tivita):
    """``ring=N``: N frames per loop scene assembled at open, then handed out without copying."""
    with SimulatedCamera(tivita, species=("human",), frames_per_scene=5, seed=3, loop_scenes=1, ring=3) as cam:
        frames = [cam.read() for _ in range(7)]
        assert cam.loop_shape == (1, 2)
        assert cam.nbytes < 3 * frames[0].data.nbytes + 10 * 2**20 + cam._compact.nbytes  # ring only, no realisations
    assert frames[3].data is frames[0].data and frames[4].data is frames[1].data  # in turn, no copy
    assert not np.array_equal(frames[0].data, frames[1].data)  # and different frames
    assert frames[0].labels is frames[6].labels  # one scene
    with pytest.raises(CameraError, match="ring must be >= 2"):
        SimulatedCamera(tivita, ring=1)
    with pytest.raises(CameraError, match="needs live mode"):
        SimulatedCamera(tivita, ring=3, exact_noise=True)
