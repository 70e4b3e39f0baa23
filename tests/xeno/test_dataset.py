"""Data sets: both layouts, preprocessing, caches, splits by subject, selections, every error path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from xenoedge.devices.formats import write_cube, write_label_png
from xenoedge.xeno.dataset import (
    NO_STATE,
    DatasetError,
    SpectralDataset,
    records_with_only_state,
    records_with_state,
    select,
    split_by_subject,
)
from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset

from xenoedge.errors import FileFormatError, InvalidCubeError, UnknownNameError, XenoedgeError
from xenoedge.sensors import get_sensor

H, W = 24, 32


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory) -> Path:
    """6 simulated images: human and pig, 3 subjects each, one image per subject, Tivita bands."""
    root = tmp_path_factory.mktemp("sim")
    spec = DatasetSpec(
        species=("human", "pig"), subjects_per_species=3, images_per_subject=1, height=H, width=W, seed=4
    )
    write_dataset(root, spec)
    return root


@pytest.fixture()
def sim_copy(sim_root, tmp_path) -> Path:
    """A private copy of the simulated set, for tests that break it."""
    return Path(shutil.copytree(sim_root, tmp_path / "copy"))


def write_real(root: Path, cubes: dict[str, tuple[np.ndarray, np.ndarray | None]], *, suffix: str = ".npz", **info):
    """A real-layout folder: metadata.csv + dataset.json, cubes/<id><suffix>, labels/<id>.png."""
    (root / "cubes").mkdir(parents=True)
    (root / "labels").mkdir()
    lines = ["image_id,species,subject,cube,labels,site"]
    for n, (image_id, (cube, wavelengths)) in enumerate(cubes.items()):
        write_cube(root / "cubes" / f"{image_id}{suffix}", cube, wavelengths)
        labels = np.zeros(cube.shape[:2], dtype=np.uint8)
        labels[2:10, 3:12] = 6  # kidney
        write_label_png(root / "labels" / f"{image_id}.png", labels)
        lines.append(f"{image_id},human,P{n // 2},cubes/{image_id}{suffix},labels/{image_id}.png,hospital-a")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    (root / "dataset.json").write_text(json.dumps({"label_set": "surgical", **info}))
    return root


def reflectance(n_bands: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.05, 0.9, (12, 16, n_bands)).astype(np.float32)


# ---------------------------------------------------------------- simulator layout


def test_simulator_records_and_properties(sim_root):
    ds = SpectralDataset.open(sim_root)
    assert ds.layout == "simulator" and len(ds) == 6
    assert ds.label_set.name == "surgical"
    assert ds.states == ("physiological", "malperfused_arterial", "malperfused_venous", "icg")
    assert ds.wavelengths_nm.shape == (100,) and ds.n_bands == 100 and ds.sensor is None
    r = ds.records[0]
    assert (r.image_id, r.species, r.subject) == ("human_s000_000", "human", 0)
    assert r.cube_path.is_file() and r.labels_path.is_file() and r.states_path.is_file()
    assert ds.record("pig_s002_000").subject_key == ("pig", "2")
    assert ds.image_meta(0)["species"] == "human"


def test_load_is_l1_normalised_with_masks(sim_root):
    ds = SpectralDataset.open(sim_root)
    s = ds.load("human_s001_000")
    assert s.cube.shape == (H, W, 100) and s.cube.dtype == np.float32
    np.testing.assert_allclose(s.cube.sum(axis=-1), 1.0, atol=1e-4)
    assert s.labels.shape == s.states.shape == (H, W) and s.labels.dtype == s.states.dtype == np.uint8
    assert set(np.unique(s.states)) <= {*range(len(ds.states)), NO_STATE}
    assert not s.cube.flags.writeable  # shared with the cache
    present = {
        (ds.label_set.names[lb], ds.states[st])
        for lb, st in zip(s.labels.ravel(), s.states.ravel(), strict=True)
        if st != NO_STATE
    }
    assert present <= set(s.record.region_states)


def test_resampling_to_mosaic_gives_25_bands(sim_root):
    mosaic = get_sensor("mosaic-5x5-nir")
    ds = SpectralDataset.open(sim_root, sensor=mosaic)
    s = ds.load(0)
    assert s.cube.shape == (H, W, 25) and ds.n_bands == 25
    np.testing.assert_allclose(ds.wavelengths_out_nm, mosaic.wavelengths())
    np.testing.assert_allclose(s.cube.sum(axis=-1), 1.0, atol=1e-4)
    # the same sensor as stored: no resampling
    assert SpectralDataset.open(sim_root, sensor=get_sensor("tivita")).load(0).cube.shape[2] == 100


def test_memory_cache_hits_and_budget(sim_root):
    ds = SpectralDataset.open(sim_root)
    first = ds.load(0)
    again = ds.load("human_s000_000")
    assert ds.stats.cube_reads == 1 and ds.stats.memory_hits == 1
    assert again.cube is first.cube
    one_image = first.cube.nbytes + first.labels.nbytes + first.states.nbytes
    small = SpectralDataset.open(sim_root, memory_budget_bytes=2 * one_image)
    for i in (0, 1, 2, 0):
        small.load(i)
    assert small.stats.cube_reads == 4 and small.memory_cache_bytes <= 2 * one_image  # image 0 was evicted
    off = SpectralDataset.open(sim_root, memory_budget_bytes=0)
    off.load(0), off.load(0)
    assert off.stats.cube_reads == 2 and off.stats.memory_hits == 0


def test_disk_cache_is_written_once_and_reopened_with_mmap(sim_root, tmp_path):
    cache = tmp_path / "cache"
    mosaic = get_sensor("mosaic-5x5-nir")
    ds = SpectralDataset.open(sim_root, sensor=mosaic, cache_dir=cache)
    loaded = [ds.load(i).cube for i in range(len(ds))]
    files = sorted(cache.glob("*.npy"))
    assert len(files) == 6 and ds.stats.disk_writes == 6
    stamps = [f.stat().st_mtime_ns for f in files]

    ds2 = SpectralDataset.open(sim_root, sensor=mosaic, cache_dir=cache)
    cube = ds2.load(3).cube
    assert ds2.stats.cube_reads == 0 and ds2.stats.disk_hits == 1
    assert isinstance(cube, np.memmap)
    np.testing.assert_array_equal(cube, loaded[3])
    assert [f.stat().st_mtime_ns for f in sorted(cache.glob("*.npy"))] == stamps

    # other preprocessing settings (no resampling): other keys, no reuse
    ds3 = SpectralDataset.open(sim_root, cache_dir=cache)
    ds3.load(3)
    assert ds3.stats.cube_reads == 1 and len(list(cache.glob("*.npy"))) == 7


# ---------------------------------------------------------------- splits and selections


def test_split_by_subject_no_overlap_deterministic_complete(sim_root):
    records = SpectralDataset.open(sim_root).records
    split = split_by_subject(records, val_fraction=0.3, test_fraction=0.3, seed=7)
    sides = [{r.subject_key for r in side} for side in (split.train, split.val, split.test)]
    assert all(sides)  # 3 subjects per species: one on each side
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert sum(len(s) for s in (split.train, split.val, split.test)) == len(records)
    assert {r.species for r in split.test} == {"human", "pig"}  # stratified by species
    assert split_by_subject(records, val_fraction=0.3, test_fraction=0.3, seed=7) == split
    assert split_by_subject(tuple(reversed(records)), val_fraction=0.3, test_fraction=0.3, seed=7).test == tuple(
        reversed(split.test)
    )
    seeds = {split_by_subject(records, val_fraction=0.3, test_fraction=0.3, seed=s).test for s in range(8)}
    assert len(seeds) > 1
    only_train = split_by_subject(records, val_fraction=0.0, test_fraction=0.0)
    assert len(only_train.train) == 6 and not only_train.val and not only_train.test


def test_split_never_puts_a_subject_on_two_sides_with_many_images(sim_root):
    ds = SpectralDataset.open(sim_root)
    many = [r for r in ds.records for _ in range(3)]  # 3 images per subject
    split = split_by_subject(many, val_fraction=0.34, test_fraction=0.34, seed=1, stratify_species=False)
    keys = [{r.subject_key for r in side} for side in (split.train, split.val, split.test)]
    assert keys[0].isdisjoint(keys[1]) and keys[0].isdisjoint(keys[2]) and keys[1].isdisjoint(keys[2])
    assert len(split.train) + len(split.val) + len(split.test) == 18
    with pytest.raises(DatasetError, match="must be < 1"):
        split_by_subject(many, val_fraction=0.5, test_fraction=0.5)


def test_select_and_state_selections(sim_root):
    ds = SpectralDataset.open(sim_root)
    humans = select(ds.records, species="human")
    assert [r.species for r in humans] == ["human"] * 3
    assert [r.image_id for r in select(ds.records, image_ids=["pig_s001_000"])] == ["pig_s001_000"]
    assert len(select(ds.records, subjects=[("pig", 0), ("human", "1")])) == 2
    with pytest.raises(UnknownNameError, match="human_s009_000"):
        select(ds.records, image_ids=["human_s009_000"])
    with pytest.raises(UnknownNameError, match="Did you mean 'human'"):
        select(ds.records, species="humna")

    for state in ds.states:
        expected = {r.image_id for r in ds.records if any(s == state for _, s in r.region_states)}
        assert {r.image_id for r in ds.records_with_state(state)} == expected
        only = {r.image_id for r in ds.records_with_only_state(state)}
        assert only == {r.image_id for r in ds.records if {s for _, s in r.region_states} - {"none"} == {state}}
    phys = ds.records_with_only_state("physiological")
    patho = set(ds.records) - set(phys)
    assert phys and patho  # the fixture has both kinds of images
    r = next(iter(patho))
    label, state = next((lb, s) for lb, s in r.region_states if s not in ("physiological", "none"))
    assert r in records_with_state(ds.records, state, label)
    with pytest.raises(UnknownNameError, match="ischemic"):
        ds.records_with_state("ischemic")
    with pytest.raises(UnknownNameError, match="kidny"):
        ds.records_with_state("icg", label="kidny")
    assert records_with_only_state(ds.records, "no-such-state") == ()


# ---------------------------------------------------------------- real-data layout


def test_real_layout_npz_and_region_states_from_masks(tmp_path):
    wl = np.linspace(500, 1000, 100, dtype=np.float32)
    root = write_real(tmp_path / "real", {f"img{i}": (reflectance(100, i), wl) for i in range(4)})
    ds = SpectralDataset.open(root, sensor=get_sensor("mosaic-5x5-nir"))
    assert ds.layout == "real" and len(ds) == 4 and ds.states == ()
    r = ds.record("img3")
    assert r.subject == "P1" and r.meta["site"] == "hospital-a" and r.states_path is None
    assert set(r.region_states) == {("background", "none"), ("kidney", "none")}
    s = ds.load("img3")
    assert s.cube.shape == (12, 16, 25) and not s.states.any() and s.states.dtype == np.uint8
    np.testing.assert_allclose(s.cube.sum(-1), 1.0, atol=1e-4)
    split = split_by_subject(ds.records, val_fraction=0.0, test_fraction=0.5, seed=0)
    assert len(split.test) == 2 and {x.subject for x in split.test} != {x.subject for x in split.train}


def test_real_layout_tivita_and_npy_with_declared_wavelengths(tmp_path):
    tiv = write_real(tmp_path / "tivita", {"a": (reflectance(100), None)}, suffix="_SpecCube.dat")
    assert SpectralDataset.open(tiv).load("a").cube.shape == (12, 16, 100)
    wl = list(np.linspace(600, 900, 7))
    npy = write_real(tmp_path / "npy", {"a": (reflectance(7), None)}, suffix=".npy", wavelengths_nm=wl)
    ds = SpectralDataset.open(npy)
    np.testing.assert_allclose(ds.wavelengths_nm, wl, rtol=1e-6)
    assert ds.load(0).cube.shape == (12, 16, 7)
    no_wl = write_real(tmp_path / "npy2", {"a": (reflectance(7), None)}, suffix=".npy")
    with pytest.raises(FileFormatError, match="wavelengths_nm"):
        SpectralDataset.open(no_wl)


def test_real_layout_region_states_column_and_state_masks(tmp_path):
    wl = np.linspace(500, 1000, 100, dtype=np.float32)
    root = write_real(tmp_path / "r", {"a": (reflectance(100), wl), "b": (reflectance(100, 1), wl)})
    (root / "states").mkdir()
    states = np.full((12, 16), NO_STATE, np.uint8)
    states[2:10, 3:12] = 1
    write_label_png(root / "states" / "a.png", states)
    write_label_png(root / "states" / "b.png", np.where(states == 1, 0, NO_STATE).astype(np.uint8))
    (root / "metadata.csv").write_text(
        "image_id,species,subject,cube,labels,states,region_states\n"
        "a,human,1,cubes/a.npz,labels/a.png,states/a.png,kidney:malperfused\n"
        "b,human,2,cubes/b.npz,labels/b.png,states/b.png,\n"
    )
    (root / "dataset.json").write_text(
        json.dumps({"label_set": "surgical", "states": ["physiological", "malperfused"]})
    )
    ds = SpectralDataset.open(root)
    assert [r.image_id for r in ds.records_with_state("malperfused", "kidney")] == ["a"]
    assert [r.image_id for r in ds.records_with_only_state("physiological")] == ["b"]  # from b's masks
    assert ds.load("a").states[5, 5] == 1 and ds.load("a").states[0, 0] == NO_STATE


# ---------------------------------------------------------------- errors


def test_missing_mask_names_the_mask_and_the_image(sim_copy):
    mask = sim_copy / "labels" / "pig_s001_000.png"
    mask.unlink()
    with pytest.raises(FileFormatError, match="label mask of image 'pig_s001_000' is missing") as e:
        SpectralDataset.open(sim_copy)
    assert e.value.path == mask


def test_missing_mask_in_real_layout(tmp_path):
    wl = np.linspace(500, 1000, 100, dtype=np.float32)
    root = write_real(tmp_path / "r", {"a": (reflectance(100), wl), "b": (reflectance(100), wl)})
    (root / "labels" / "b.png").unlink()
    with pytest.raises(FileFormatError, match=r"b\.png: label mask of image 'b' is missing"):
        SpectralDataset.open(root)


def test_mixed_band_counts_list_ids_and_counts(tmp_path):
    root = write_real(
        tmp_path / "mixed",
        {
            "a": (reflectance(100), np.linspace(500, 1000, 100, dtype=np.float32)),
            "b": (reflectance(25), np.linspace(600, 975, 25, dtype=np.float32)),
            "c": (reflectance(100), np.linspace(500, 1000, 100, dtype=np.float32)),
        },
    )
    with pytest.raises(DatasetError, match=r"mixed band counts \(25 bands: b; 100 bands: a, c\)"):
        SpectralDataset.open(root)


def test_same_band_count_other_wavelengths(tmp_path):
    root = write_real(
        tmp_path / "wl",
        {
            "a": (reflectance(25), np.linspace(600, 975, 25, dtype=np.float32)),
            "b": (reflectance(25), np.linspace(500, 900, 25, dtype=np.float32)),
        },
    )
    with pytest.raises(DatasetError, match="cubes b have other wavelengths than 'a'"):
        SpectralDataset.open(root)


def test_labels_outside_the_label_set(sim_copy):
    mask = sim_copy / "labels" / "human_s002_000.png"
    labels = np.zeros((H, W), np.uint8)
    labels[0, 0], labels[1, 1] = 200, 13
    write_label_png(mask, labels)
    ds = SpectralDataset.open(sim_copy)
    with pytest.raises(FileFormatError, match=r"label ids 13, 200 .*image 'human_s002_000'") as e:
        ds.load("human_s002_000")
    assert e.value.path == mask


def test_bad_state_ids_and_mask_shape(sim_copy):
    write_label_png(sim_copy / "states" / "human_s000_000.png", np.full((H, W), 9, np.uint8))
    write_label_png(sim_copy / "labels" / "pig_s000_000.png", np.zeros((H, W + 1), np.uint8))
    ds = SpectralDataset.open(sim_copy)
    with pytest.raises(FileFormatError, match="state ids 9 of image 'human_s000_000'"):
        ds.load("human_s000_000")
    with pytest.raises(FileFormatError, match=r"mask is \(24, 33\)"):
        ds.load("pig_s000_000")


def test_missing_index_or_metadata(tmp_path, sim_copy):
    with pytest.raises(FileFormatError, match=r"no index\.json .* no metadata\.csv"):
        SpectralDataset.open(tmp_path)
    (sim_copy / "index.json").write_text("{not json")
    with pytest.raises(FileFormatError, match=r"index\.json: not readable JSON"):
        SpectralDataset.open(sim_copy)
    real = tmp_path / "real"
    real.mkdir()
    (real / "metadata.csv").write_text("image_id,species\nx,human\n")
    with pytest.raises(FileFormatError, match=r"dataset\.json: no such file"):
        SpectralDataset.open(real)
    (real / "dataset.json").write_text('{"label_set": "surgical"}')
    with pytest.raises(FileFormatError, match="missing column"):
        SpectralDataset.open(real)
    (real / "dataset.json").write_text('{"label_set": "surgicle"}')
    with pytest.raises(UnknownNameError, match="Did you mean 'surgical'"):
        SpectralDataset.open(real)


def test_resample_target_outside_the_stored_range(tmp_path):
    wl = np.linspace(500, 700, 40, dtype=np.float32)
    root = write_real(tmp_path / "vis", {"a": (reflectance(40), wl)})
    with pytest.raises(InvalidCubeError, match=r"vis: cannot resample .* to sensor 'mosaic-5x5-nir'.*outside") as e:
        SpectralDataset.open(root, sensor=get_sensor("mosaic-5x5-nir"))
    assert isinstance(e.value.__cause__, InvalidCubeError)


def test_unknown_image_id_and_index(sim_root):
    ds = SpectralDataset.open(sim_root)
    with pytest.raises(UnknownNameError, match="Did you mean 'human_s000_000'"):
        ds.load("human_s000_00")
    with pytest.raises(IndexError):
        ds.load(6)


def test_bad_reflectance_and_raw_counts_are_refused(tmp_path):
    wl = np.linspace(500, 1000, 100, dtype=np.float32)
    bad = reflectance(100)
    bad[0, 0, :3] = -0.5  # far below the dark-noise tolerance
    root = write_real(tmp_path / "negative", {"a": (bad, wl)})
    with pytest.raises(InvalidCubeError, match=r"a\.npz \(image 'a'\): 3 reflectance values below"):
        SpectralDataset.open(root).load(0)
    raw = write_real(tmp_path / "raw", {"a": ((reflectance(100) * 800).astype(np.uint16), wl)})
    with pytest.raises(InvalidCubeError, match="raw counts"):
        SpectralDataset.open(raw).load(0)


def test_errors_share_the_root():
    assert issubclass(DatasetError, XenoedgeError)
