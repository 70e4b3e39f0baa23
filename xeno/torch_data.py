"""Torch views of a ``SpectralDataset``: random training crops, whole images for evaluation, loaders.

Every crop is a pure function of ``(seed, epoch, k)``, so training is reproducible whatever the
number of workers; call ``RandomCrops.set_epoch(e)`` before each epoch (the loader's workers are
not persistent, so they pick the new epoch up). Defaults suit a 2-core CPU: ``num_workers=0``,
preprocessed cubes come from the data set's caches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from xenoedge.calibration.pooling import pool_blocks
from xenoedge.xeno.dataset import NO_STATE, ImageRecord, Sample, SpectralDataset

from xenoedge.errors import XenoedgeError

#: Random positions tried to hit a labelled pixel before scanning the whole label map.
_FOREGROUND_TRIES = 16


def majority_blocks(labels: np.ndarray, pool: int) -> np.ndarray:
    """(H, W) uint8 ids -> (H/p, W/p) uint8: each p x p block's most frequent id (ties: the lower id).

    H and W must divide by ``pool``.

    >>> majority_blocks(np.array([[1, 1, 2, 2], [1, 3, 2, 2]], np.uint8), 2).tolist()
    [[1, 2]]
    """
    h, w = labels.shape
    if h % pool or w % pool:
        raise XenoedgeError(f"label map {h}x{w} does not divide into {pool}x{pool} blocks")
    blocks = labels.reshape(h // pool, pool, w // pool, pool)
    values = np.unique(labels)
    counts = np.stack([(blocks == v).sum(axis=(1, 3)) for v in values])
    return values[np.argmax(counts, axis=0)].astype(labels.dtype)


class PooledImages:
    """A ``SpectralDataset`` seen at the working size of a model that pools the frame ``pool`` x ``pool``.

    ``load(i)`` gives the image's cube block-averaged (L1 spectra stay L1) and its label and state
    maps by block majority, cropped to multiples of ``pool``; results are kept in memory (a
    480 x 640 x 100 image pooled 4x is 7.7 MB). Training crops drawn from it equal crops of the full
    image, aligned to the pooling grid, pooled afterwards, at 1/p^2 of the reading.
    """

    def __init__(self, dataset: SpectralDataset, pool: int):
        self.dataset, self.pool = dataset, int(pool)
        self._samples: dict[int, Sample] = {}

    def record(self, key: int) -> ImageRecord:
        return self.dataset.record(key)

    def load(self, index: int) -> Sample:
        index = int(index)
        if index not in self._samples:
            sample, p = self.dataset.load(index), self.pool
            h, w = (sample.labels.shape[0] // p) * p, (sample.labels.shape[1] // p) * p
            pooled = pool_blocks(sample.cube[:h, :w], p)
            labels = majority_blocks(np.asarray(sample.labels[:h, :w]), p)
            states = majority_blocks(np.asarray(sample.states[:h, :w]), p)
            self._samples[index] = Sample(pooled, labels, states, sample.record)
        return self._samples[index]


class RandomCrops(Dataset):
    """Map-style data set of ``samples_per_epoch`` random crops from the images at ``indices``.

    Item ``k`` is ``(x, y, s)``: ``x`` (C, h, w) float32 L1-normalised reflectance, ``y`` (h, w)
    int64 label ids, ``s`` (h, w) int64 state ids (``NO_STATE`` = 255 where none). With
    probability ``foreground_probability`` the crop is placed around a random labelled
    (non-background) pixel, so most crops show tissue; otherwise anywhere. Images smaller than
    the crop are padded: cube 0, label ``pad_label`` (0 = background; pass the loss's ignore
    index to leave padding out), state ``NO_STATE``.
    ``label_balanced`` (default False): each crop is instead placed around a pixel of a label drawn
    uniformly among the foreground labels the pool shows (then a subject showing it, then one of
    its images), as the paper's label-balanced sampling; ``foreground_probability`` does not
    apply then.
    """

    def __init__(
        self,
        dataset: SpectralDataset,
        indices: Sequence[int],
        *,
        crop_size: tuple[int, int] = (64, 64),
        samples_per_epoch: int = 256,
        seed: int = 0,
        foreground_probability: float = 0.9,
        pad_label: int = 0,
        label_balanced: bool = False,
    ):
        if len(indices) == 0:
            raise XenoedgeError("RandomCrops needs at least one image index")
        if min(crop_size) < 1 or samples_per_epoch < 1:
            raise XenoedgeError(f"crop_size {crop_size} and samples_per_epoch {samples_per_epoch} must be positive")
        for i in indices:
            dataset.record(int(i))  # IndexError early, not inside a worker
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.foreground_probability = float(foreground_probability)
        self.pad_label = int(pad_label)
        self.label_balanced = bool(label_balanced)
        self.epoch = 0
        #: label balancing: label id -> subject key -> image indices showing that label
        self._label_images: dict[int, dict[tuple[str, str], list[int]]] = {}
        if self.label_balanced:
            for i in self.indices:
                labels = np.asarray(dataset.load(i).labels)
                subject = dataset.record(i).subject_key
                for label in np.unique(labels):
                    if label not in (0, self.pad_label):
                        self._label_images.setdefault(int(label), {}).setdefault(subject, []).append(i)
            if not self._label_images:
                raise XenoedgeError("label-balanced sampling needs images with labelled (non-background) pixels")
            self._label_images = {k: dict(sorted(v.items())) for k, v in sorted(self._label_images.items())}

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch: crops differ between epochs and repeat for the same epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def crop_box(self, k: int) -> tuple[int, int, int]:
        """(image index, top, left) of item ``k`` in the current epoch; top/left may be negative
        or run past the image when it is smaller than the crop (that part is padded)."""
        rng = np.random.default_rng([self.seed, self.epoch, k])
        if self.label_balanced:
            return self._balanced_box(rng)
        index = self.indices[int(rng.integers(len(self.indices)))]
        labels = self.dataset.load(index).labels
        h, w = labels.shape
        ch, cw = self.crop_size
        centre = None
        if rng.random() < self.foreground_probability:
            centre = _random_foreground_pixel(labels, rng)
        if centre is None:
            top = int(rng.integers(h - ch + 1)) if h >= ch else -((ch - h) // 2)
            left = int(rng.integers(w - cw + 1)) if w >= cw else -((cw - w) // 2)
            return index, top, left
        y, x = centre
        return index, _place(int(y), ch, h, rng), _place(int(x), cw, w, rng)

    def _balanced_box(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """Label-balanced draw (the paper's ``hierarchical_sampling: "label"``): a label uniformly
        among the labels of the pool, a subject uniformly among the subjects showing it, an image of
        that subject showing it, and a crop around a random pixel of that label."""
        labels = list(self._label_images)
        label = labels[int(rng.integers(len(labels)))]
        subjects = list(self._label_images[label].values())
        images = subjects[int(rng.integers(len(subjects)))]
        index = images[int(rng.integers(len(images)))]
        label_map = self.dataset.load(index).labels
        h, w = label_map.shape
        ys, xs = np.nonzero(np.asarray(label_map) == label)
        pick = int(rng.integers(ys.size))
        ch, cw = self.crop_size
        return index, _place(int(ys[pick]), ch, h, rng), _place(int(xs[pick]), cw, w, rng)

    def label_frequencies(self, epochs: int = 1) -> dict[int, float]:
        """Share of crops centred on each label over ``epochs`` epochs (label-balanced mode only)."""
        if not self.label_balanced:
            raise XenoedgeError("label_frequencies needs label_balanced=True")
        counts = dict.fromkeys(self._label_images, 0)
        saved = self.epoch
        for e in range(epochs):
            self.set_epoch(e)
            for k in range(self.samples_per_epoch):
                rng = np.random.default_rng([self.seed, self.epoch, k])
                labels = list(self._label_images)
                counts[labels[int(rng.integers(len(labels)))]] += 1
        self.set_epoch(saved)
        total = sum(counts.values())
        return {k: v / total for k, v in counts.items()}

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not 0 <= k < self.samples_per_epoch:
            raise IndexError(f"crop {k} out of range for {self.samples_per_epoch} per epoch")
        index, top, left = self.crop_box(k)
        sample = self.dataset.load(index)
        ch, cw = self.crop_size
        x = _window(sample.cube, top, left, ch, cw, 0)
        y = _window(sample.labels, top, left, ch, cw, self.pad_label)
        s = _window(sample.states, top, left, ch, cw, NO_STATE)
        return (
            torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)),
            torch.from_numpy(y.astype(np.int64)),
            torch.from_numpy(s.astype(np.int64)),
        )


def _random_foreground_pixel(labels: np.ndarray, rng: np.random.Generator) -> tuple[int, int] | None:
    """A random (row, col) with a non-zero label, or None if the image has none."""
    h, w = labels.shape
    for _ in range(_FOREGROUND_TRIES):
        y, x = int(rng.integers(h)), int(rng.integers(w))
        if labels[y, x]:
            return y, x
    flat = np.flatnonzero(labels)
    if flat.size == 0:
        return None
    return divmod(int(flat[rng.integers(flat.size)]), w)


def _place(pixel: int, crop: int, size: int, rng: np.random.Generator) -> int:
    """Start of a ``crop``-long window containing ``pixel``, inside [0, size) where it fits."""
    if size <= crop:
        return -((crop - size) // 2)
    low, high = max(0, pixel - crop + 1), min(pixel, size - crop)
    return int(rng.integers(low, high + 1))


def _window(array: np.ndarray, top: int, left: int, ch: int, cw: int, fill: int) -> np.ndarray:
    """``array[top:top+ch, left:left+cw]`` (H, W[, C]); the part outside the array is ``fill``."""
    h, w = array.shape[:2]
    if 0 <= top and top + ch <= h and 0 <= left and left + cw <= w:
        return array[top : top + ch, left : left + cw]
    out = np.full((ch, cw, *array.shape[2:]), fill, dtype=array.dtype)
    y0, y1 = max(top, 0), min(top + ch, h)
    x0, x1 = max(left, 0), min(left + cw, w)
    if y1 > y0 and x1 > x0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = array[y0:y1, x0:x1]
    return out


def full_images(
    dataset: SpectralDataset, indices: Sequence[int] | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, ImageRecord]]:
    """Whole images for evaluation: ``(x (1, C, H, W) float32, y (1, H, W) int64, s (1, H, W) int64, record)``.

    ``indices`` default to every image, in data set order.
    """
    for i in range(len(dataset)) if indices is None else indices:
        sample = dataset.load(int(i))
        x = np.ascontiguousarray(sample.cube.transpose(2, 0, 1), dtype=np.float32)[None]
        yield (
            torch.from_numpy(x),
            torch.from_numpy(sample.labels.astype(np.int64)[None]),
            torch.from_numpy(sample.states.astype(np.int64)[None]),
            sample.record,
        )


def make_loader(
    crops: RandomCrops,
    *,
    batch_size: int = 8,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """A ``DataLoader`` over ``crops`` in item order (the items are already random), seeded.

    ``num_workers=0`` by default (2-core CI); with workers, each has its own in-memory cache,
    so give the data set a ``cache_dir`` to share preprocessed cubes. Workers are not
    persistent, so ``crops.set_epoch(e)`` before iterating reaches them.
    """
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return DataLoader(
        crops,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        generator=generator,
        drop_last=drop_last,
        persistent_workers=False,
    )


__all__ = ["RandomCrops", "full_images", "make_loader"]
