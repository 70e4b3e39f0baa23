"""Scenes: reproducible, labelled, plausible; the camera model exercises calibration."""

import numpy as np
import pytest
from xenoedge.calibration.reflectance import reflectance_from_raw
from xenoedge.xeno import camera_model
from xenoedge.xeno.labels import CROP, SURGICAL
from xenoedge.xeno.scene import NO_STATE, SceneConfig, simulate_scene

from xenoedge.errors import UnknownNameError
from xenoedge.sensors import get_sensor

TIVITA = get_sensor("tivita")


def scene(seed=3, **kw):
    config = SceneConfig(**{"height": 96, "width": 128, **kw})
    return simulate_scene(config, seed, TIVITA.wavelengths(), TIVITA.fwhm())


def test_same_seed_same_scene_other_seed_other_scene():
    a, b, c = scene(5), scene(5), scene(6)
    np.testing.assert_array_equal(a.reflectance, b.reflectance)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.meta == b.meta
    assert not np.array_equal(a.labels, c.labels) or not np.array_equal(a.reflectance, c.reflectance)


def test_scene_contract_shapes_and_metadata():
    s = scene(species="pig", subject=4)
    assert s.reflectance.shape == (96, 128, 100) and s.reflectance.dtype == np.float32
    assert s.labels.shape == s.states.shape == (96, 128) and s.labels.dtype == np.uint8
    assert s.meta["species"] == "pig" and s.meta["subject"] == 4 and s.meta["seed"] == 3
    # Every region listed in the metadata covers exactly the pixels its label and state say.
    for region in s.meta["regions"]:
        assert region["label"] in SURGICAL.names
    assert set(np.unique(s.labels)) <= set(range(len(SURGICAL.labels)))
    assert (s.labels > 0).mean() > 0.3  # organs fill much of the operating field
    # Background (drape, instruments) carries no state; organs always do.
    assert np.all(s.states[s.labels == 0] == NO_STATE)
    assert np.all(s.states[s.labels > 0] != NO_STATE)


def test_reflectance_positive_and_mostly_below_one():
    s = scene()
    assert s.reflectance.min() > 0
    assert np.mean(s.reflectance > 1.0) < 0.02  # only specular highlights exceed 1


def test_physiological_only_scenes_have_only_physiological_tissue():
    for seed in range(5):
        s = scene(seed, states=("physiological",))
        assert {r["state"] for r in s.meta["regions"] if r["kind"] == "tissue"} == {"physiological"}


def test_crop_scene_labels_follow_leaf_states():
    s = scene(2, domain="crop", species="tomato", pathological_probability=1.0, states=("healthy", "lesion"))
    names = {r["label"] for r in s.meta["regions"]}
    assert "lesion" in names and "stressed_leaf" not in names
    assert set(np.unique(s.labels)) <= set(range(len(CROP.labels)))
    leaf = s.labels == CROP.id_of("healthy_leaf")
    # Healthy leaves: red edge, NIR far brighter than red.
    red, nir = np.argmin(np.abs(TIVITA.wavelengths() - 670)), np.argmin(np.abs(TIVITA.wavelengths() - 800))
    assert np.median(s.reflectance[leaf][:, nir]) > 3 * np.median(s.reflectance[leaf][:, red])


def test_unknown_species_and_state_are_named():
    with pytest.raises(UnknownNameError, match="species 'dog'"):
        scene(species="dog")
    with pytest.raises(UnknownNameError, match="state 'frozen'"):
        scene(states=("physiological", "frozen"))


def test_camera_raw_counts_calibrate_back_to_reflectance():
    s = scene()
    model = camera_model.make_camera_model(TIVITA, 96, 128, seed=1)
    mean = camera_model.expected_counts(model, s.reflectance, 10.0)
    raw = camera_model.sample_raw(model, mean, camera_model.noise_sigma(model, mean), np.random.default_rng(0))
    assert raw.dtype == np.uint16 and raw.shape == (96, 128, 100)
    assert raw.max() <= TIVITA.max_counts
    dark = camera_model.reference_counts(model, "dark", 10.0)
    white = camera_model.reference_counts(model, "white", 10.0)
    r = reflectance_from_raw(raw, dark, white)
    ok = (s.reflectance < 0.9) & (model.white_counts > 100)
    assert np.median(np.abs(r - s.reflectance)[ok]) < 0.02
    # Noise is real: repeated frames differ, and their spread grows with the signal (shot noise).
    raw2 = camera_model.sample_raw(model, mean, camera_model.noise_sigma(model, mean), np.random.default_rng(1))
    assert np.mean(raw != raw2) > 0.5


def test_highlights_saturate_and_clip_at_max_count():
    s = scene()
    model = camera_model.make_camera_model(TIVITA, 96, 128, seed=1)
    mean = camera_model.expected_counts(model, s.reflectance, 40.0)  # 4x exposure: overexposed
    raw = camera_model.sample_raw(model, mean, camera_model.noise_sigma(model, mean), np.random.default_rng(0))
    assert raw.max() == TIVITA.max_counts
    assert np.any(raw >= TIVITA.saturation_counts)


def test_mosaic_frame_follows_the_profile_pattern():
    sensor = get_sensor("mosaic-5x5-nir")
    h, w, c = sensor.cube_shape
    cube = np.broadcast_to(np.arange(c, dtype=np.uint16) * 10 + 1, (h, w, c)).copy()
    cube[3, 7] += 1000  # mark one super-pixel
    frame = camera_model.mosaic_from_cube(cube, sensor)
    assert frame.shape == (sensor.height, sensor.width)
    pattern = sensor.mosaic_array()
    for r in range(5):
        for col in range(5):
            assert frame[r, col] == pattern[r, col] * 10 + 1
            assert frame[3 * 5 + r, 7 * 5 + col] == pattern[r, col] * 10 + 1 + 1000
    # Rows and columns outside whole super-pixels (1088 = 217*5 + 3) read zero.
    assert np.all(frame[h * 5 :] == 0) and np.all(frame[:, w * 5 :] == 0)


def test_noise_pool_gives_unit_gaussian_noise_that_changes_per_frame():
    rng = np.random.default_rng(0)
    pool = camera_model.NoisePool(10_000, rng)
    a, b = pool.fill(np.empty(10_000, np.float32), rng), pool.fill(np.empty(10_000, np.float32), rng)
    assert abs(a.mean()) < 0.05 and abs(a.std() - 1) < 0.05
    assert not np.array_equal(a, b)
