"""Random crops, whole images and loaders over a simulated data set on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from xenoedge.xeno.dataset import NO_STATE, SpectralDataset
from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset
from xenoedge.xeno.torch_data import RandomCrops, full_images, make_loader

from xenoedge.errors import XenoedgeError
from xenoedge.sensors import get_sensor

H, W = 24, 32


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sim")
    spec = DatasetSpec(
        species=("human", "pig"), subjects_per_species=2, images_per_subject=1, height=H, width=W, seed=2
    )
    write_dataset(root, spec)
    return root


@pytest.fixture(scope="module")
def ds(root) -> SpectralDataset:
    return SpectralDataset.open(root, sensor=get_sensor("mosaic-5x5-nir"))


def test_crop_shapes_and_dtypes(ds):
    crops = RandomCrops(ds, [0, 1, 2], crop_size=(16, 20), samples_per_epoch=12, seed=3)
    assert len(crops) == 12
    x, y, s = crops[5]
    assert x.shape == (25, 16, 20) and x.dtype == torch.float32
    assert y.shape == s.shape == (16, 20) and y.dtype == s.dtype == torch.int64
    torch.testing.assert_close(x.sum(0), torch.ones(16, 20), atol=1e-4, rtol=0)
    assert int(y.max()) < len(ds.label_set.labels)
    with pytest.raises(IndexError):
        crops[12]


def test_crops_match_the_image_they_come_from(ds):
    crops = RandomCrops(ds, [0, 3], crop_size=(8, 8), samples_per_epoch=6, seed=0)
    for k in range(6):
        index, top, left = crops.crop_box(k)
        x, y, s = crops[k]
        sample = ds.load(index)
        np.testing.assert_array_equal(y.numpy(), sample.labels[top : top + 8, left : left + 8])
        np.testing.assert_array_equal(s.numpy(), sample.states[top : top + 8, left : left + 8])
        np.testing.assert_array_equal(x.numpy(), sample.cube[top : top + 8, left : left + 8].transpose(2, 0, 1))


def test_crops_are_deterministic_per_seed_epoch_and_index(ds):
    a = RandomCrops(ds, [0, 1, 2, 3], crop_size=(8, 8), samples_per_epoch=10, seed=1)
    b = RandomCrops(ds, [0, 1, 2, 3], crop_size=(8, 8), samples_per_epoch=10, seed=1)
    boxes = [a.crop_box(k) for k in range(10)]
    assert boxes == [b.crop_box(k) for k in reversed(range(10))][::-1]  # order of access does not matter
    torch.testing.assert_close(a[4][0], b[4][0])
    a.set_epoch(1)
    assert [a.crop_box(k) for k in range(10)] != boxes
    a.set_epoch(0)
    assert [a.crop_box(k) for k in range(10)] == boxes
    other = RandomCrops(ds, [0, 1, 2, 3], crop_size=(8, 8), samples_per_epoch=10, seed=2)
    assert [other.crop_box(k) for k in range(10)] != boxes


def test_crops_mostly_show_labelled_tissue(ds):
    crops = RandomCrops(ds, range(len(ds)), crop_size=(6, 6), samples_per_epoch=60, seed=0)
    with_tissue = sum(bool((crops[k][1] > 0).any()) for k in range(60))
    assert with_tissue >= 50
    # background-only crops still happen sometimes when asked for
    anywhere = RandomCrops(ds, range(len(ds)), crop_size=(6, 6), samples_per_epoch=60, foreground_probability=0.0)
    assert len(anywhere) == 60


def test_small_images_are_padded(ds):
    crops = RandomCrops(ds, [1], crop_size=(30, 40), samples_per_epoch=3, seed=0, pad_label=255)
    x, y, s = crops[0]
    assert x.shape == (25, 30, 40) and y.shape == (30, 40)
    sample = ds.load(1)
    np.testing.assert_array_equal(y[3:27, 4:36].numpy(), sample.labels)  # centred
    assert (y[:3] == 255).all() and (y[:, :4] == 255).all() and (s[:3] == NO_STATE).all()
    assert float(x[:, :3].abs().sum()) == 0.0
    assert RandomCrops(ds, [1], crop_size=(30, 40), samples_per_epoch=1)[0][1][0, 0] == 0  # default pad label


def test_full_images(ds):
    items = list(full_images(ds, [2, 0]))
    assert [r.image_id for *_, r in items] == [ds.records[2].image_id, ds.records[0].image_id]
    x, y, s, record = items[1]
    assert x.shape == (1, 25, H, W) and x.dtype == torch.float32
    assert y.shape == s.shape == (1, H, W) and y.dtype == s.dtype == torch.int64
    np.testing.assert_array_equal(y[0].numpy(), ds.load(record.image_id).labels)
    assert len(list(full_images(ds))) == len(ds)


def test_loader_batches_and_is_reproducible(ds):
    crops = RandomCrops(ds, [0, 1, 2, 3], crop_size=(8, 12), samples_per_epoch=10, seed=5)
    loader = make_loader(crops, batch_size=4, seed=0)
    assert loader.num_workers == 0
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(4, 25, 8, 12), (4, 25, 8, 12), (2, 25, 8, 12)]
    again = list(make_loader(crops, batch_size=4, seed=0))
    torch.testing.assert_close(batches[1][0], again[1][0])
    torch.testing.assert_close(batches[2][1], again[2][1])


def test_bad_arguments(ds):
    with pytest.raises(XenoedgeError):
        RandomCrops(ds, [], crop_size=(8, 8), samples_per_epoch=4)
    with pytest.raises(XenoedgeError):
        RandomCrops(ds, [0], crop_size=(0, 8), samples_per_epoch=4)
    with pytest.raises(IndexError):
        RandomCrops(ds, [99], crop_size=(8, 8), samples_per_epoch=4)
