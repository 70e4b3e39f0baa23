"""Physiology-based and geometric augmentation on real simulated images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from xenoedge.calibration.normalise import L1_EPS, l1_normalise
from xenoedge.devices.formats import read_cube, read_label_png
from xenoedge.xeno.augment import FILL_LABEL, PhysiologyAugmentation, geometric_augment
from xenoedge.xeno.labels import SURGICAL
from xenoedge.xeno.projections import (
    ProjectionError,
    identity_projections,
    learn_projections,
    organ_samples_from_folder,
)
from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset

STATE = "malperfused_venous"


@pytest.fixture(scope="module")
def batch_and_maps(tmp_path_factory):
    """Human images as a batch (B, C, H, W) + labels, and pig maps learnt with the defaults."""
    root = tmp_path_factory.mktemp("sim")
    spec = DatasetSpec(
        species=("pig", "human"),
        states=("physiological", STATE),
        subjects_per_species=2,
        images_per_subject=3,
        height=32,
        width=40,
        pathological_probability=0.6,
        seed=11,
    )
    write_dataset(root, spec)
    pig, wavelengths = organ_samples_from_folder(root, "pig")
    maps = learn_projections(pig, state=STATE, source_species="pig", wavelengths_nm=wavelengths)
    index = json.loads((root / "index.json").read_text())
    xs, ys = [], []
    for entry in index["images"]:
        if entry["species"] == "human":
            cube, _ = read_cube(root / entry["cube"])
            xs.append(torch.from_numpy(l1_normalise(cube)).permute(2, 0, 1))
            ys.append(torch.from_numpy(read_label_png(root / entry["labels"]).astype(np.int64)))
    return torch.stack(xs), torch.stack(ys), maps


def test_p0_changes_nothing(batch_and_maps):
    x, y, maps = batch_and_maps
    augment = PhysiologyAugmentation(maps, SURGICAL.names, p=0.0, generator=torch.Generator().manual_seed(0))
    out = augment(x, y)
    assert torch.equal(out, x) and out is not x


def test_only_organs_with_maps_change_and_stay_l1_normalised(batch_and_maps):
    x, y, maps = batch_and_maps
    augment = PhysiologyAugmentation(maps, SURGICAL.names, p=1.0, generator=torch.Generator().manual_seed(1))
    out = augment(x, y)
    mapped_ids = [SURGICAL.names.index(o) for o in maps.organ_names()]
    has_map = torch.isin(y, torch.tensor(mapped_ids))
    assert has_map.any() and (~has_map).any()
    changed = (out != x).any(dim=1)  # (B, H, W)
    assert not changed[~has_map].any(), "pixels of organs without maps must stay bit-identical"
    assert changed[has_map].float().mean() > 0.99
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.abs().sum(dim=1)[has_map], torch.ones(int(has_map.sum())), atol=1e-5, rtol=0)
    assert torch.equal(y, batch_and_maps[1])  # labels untouched


def recomputed(x, y, maps, seed: int, *, whole: bool = False) -> np.ndarray:
    """The augmentation by its documented draw order: per image (p = 1: no draw), per organ in label
    order: map index, then blend weight (drawn even when ``whole`` applies the map at weight 1)."""
    g = torch.Generator().manual_seed(seed)
    expected = x.numpy().copy()
    for b in range(x.shape[0]):
        present = set(torch.unique(y[b]).tolist())
        for organ in sorted(maps.organ_names(), key=SURGICAL.names.index):
            label = SURGICAL.names.index(organ)
            if label not in present:
                continue
            indices = maps.maps_for(organ)
            index = int(indices[int(torch.randint(len(indices), (), generator=g))])
            drawn = float(torch.rand((), generator=g))
            blend = 1.0 if whole else drawn
            mask = y[b].numpy() == label
            pixels = expected[b][:, mask].T
            mixed = blend * maps.apply(pixels, index) + (1 - blend) * pixels
            expected[b][:, mask] = (mixed / (np.abs(mixed).sum(axis=1, keepdims=True) + L1_EPS)).T
    return expected


def test_augmentation_follows_its_definition(batch_and_maps):
    x, y, maps = batch_and_maps
    out = PhysiologyAugmentation(maps, SURGICAL.names, p=1.0, generator=torch.Generator().manual_seed(7))(x, y)
    np.testing.assert_allclose(out.numpy(), recomputed(x, y, maps, 7), atol=1e-6)


def test_seeded_generator_is_deterministic(batch_and_maps):
    x, y, maps = batch_and_maps

    def run(seed: int) -> torch.Tensor:
        return PhysiologyAugmentation(maps, SURGICAL.names, p=0.8, generator=torch.Generator().manual_seed(seed))(x, y)

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_identity_maps_leave_spectra_as_they_are(batch_and_maps):
    x, y, maps = batch_and_maps
    identity = identity_projections(maps.organ_names(), maps.wavelengths_nm)
    out = PhysiologyAugmentation(identity, SURGICAL.names, p=1.0, generator=torch.Generator().manual_seed(0))(x, y)
    torch.testing.assert_close(out, x, atol=1e-6, rtol=1e-4)


def test_bad_inputs_are_clear_errors(batch_and_maps):
    x, y, maps = batch_and_maps
    augment = PhysiologyAugmentation(maps, SURGICAL.names)
    with pytest.raises(ProjectionError, match=r"25 channels.*100 bands"):
        augment(x[:, :25], y)
    with pytest.raises(ProjectionError, match=r"expected x \(B, C, H, W\)"):
        augment(x, y[:, :5])
    with pytest.raises(ProjectionError, match="not in the label set"):
        PhysiologyAugmentation(maps, ["background", "leaf"])
    with pytest.raises(ProjectionError, match="probability"):
        PhysiologyAugmentation(maps, SURGICAL.names, p=1.5)
    with pytest.raises(ProjectionError, match=r"blend range .* got \(0\.5, 0\.2\)"):
        PhysiologyAugmentation(maps, SURGICAL.names, blend_range=(0.5, 0.2))


def test_blend_range_1_1_applies_every_map_whole_and_0_1_is_the_default(batch_and_maps):
    x, y, maps = batch_and_maps

    def run(**options) -> torch.Tensor:
        return PhysiologyAugmentation(
            maps, SURGICAL.names, p=1.0, generator=torch.Generator().manual_seed(5), **options
        )(x, y)

    assert torch.equal(run(blend_range=(0.0, 1.0)), run())
    np.testing.assert_allclose(run(blend_range=(1.0, 1.0)).numpy(), recomputed(x, y, maps, 5, whole=True), atol=1e-6)


def test_relabel_threshold_gives_augmented_pixels_the_target_label(batch_and_maps):
    x, y, maps = batch_and_maps
    maps.target_labels = ["spleen"] * len(maps)  # pretend the state has its own label (as crops do)
    try:
        augment = PhysiologyAugmentation(
            maps, SURGICAL.names, p=1.0, generator=torch.Generator().manual_seed(2), relabel_threshold=0.0
        )
        _, labels = augment.with_labels(x, y)
    finally:
        maps.target_labels = list(maps.organs)
    has_map = torch.isin(y, torch.tensor([SURGICAL.names.index(o) for o in maps.organ_names()]))
    assert (labels[has_map] == SURGICAL.names.index("spleen")).all()
    assert torch.equal(labels[~has_map], y[~has_map])


def _one_hot_batch(y: torch.Tensor, n: int = 12) -> torch.Tensor:
    return torch.nn.functional.one_hot(y, n).permute(0, 3, 1, 2).float()


def test_geometric_flips_and_rotations_keep_spectra_and_labels_together(batch_and_maps):
    _, y, _ = batch_and_maps
    x = _one_hot_batch(y)
    states = (y * 3) % 7
    g = torch.Generator().manual_seed(0)
    xo, yo, so = geometric_augment(x, y, states, generator=g, affine_p=0.0)
    assert xo.shape == x.shape and yo.shape == y.shape  # 32 x 40: only 180° rotations
    assert torch.equal(xo.argmax(dim=1), yo) and torch.equal(so, (yo * 3) % 7)
    assert not torch.equal(yo, y)
    xf, yf = geometric_augment(x, y, generator=torch.Generator(), flip_p=1.0, rotate=False, affine_p=0.0)
    assert torch.equal(yf, y.flip(-1).flip(-2)) and torch.equal(xf, x.flip(-1).flip(-2))


def test_geometric_square_images_get_quarter_turns_and_affine_is_nearest_for_labels(batch_and_maps):
    _, y, _ = batch_and_maps
    y = y[:, :32, :32].contiguous()
    x = _one_hot_batch(y)
    for seed in range(6):
        xo, yo = geometric_augment(x, y, generator=torch.Generator().manual_seed(seed), affine_p=1.0)
        assert xo.shape == x.shape and torch.isfinite(xo).all()
        assert set(torch.unique(yo).tolist()) <= set(torch.unique(y).tolist()) | {FILL_LABEL}
        inside = yo != FILL_LABEL
        agree = (xo.argmax(dim=1) == yo)[inside].float().mean()
        assert agree > 0.85  # bilinear spectra vs nearest labels differ only along borders
    a = geometric_augment(x, y, generator=torch.Generator().manual_seed(5))
    b = geometric_augment(x, y, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
