"""Shared test data of the export tests: simulated data sets and the classes they do not show.

Imported by ``test_export.py``, ``test_npu_export.py`` and ``test_tensorrt_export.py``
(``from export_fixtures import ...``). The data sets are small on purpose: the tests check the
export's mechanics (gate, bundle, refusals), not the models' accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from xenoedge.xeno.dataset import SpectralDataset
from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset


def write_crop_data(folder: Path, *, images_per_subject: int = 2, seed: int = 21) -> Path:
    """A simulated crop data set in ``folder``: one maize subject, ``images_per_subject`` images of
    48 x 64 pixels on the mosaic-5x5-nir sensor (the shipped crop model's). Returns ``folder``."""
    write_dataset(
        folder,
        DatasetSpec(
            domain="crop",
            species=("maize",),
            subjects_per_species=1,
            images_per_subject=images_per_subject,
            sensor="mosaic-5x5-nir",
            height=48,
            width=64,
            seed=seed,
        ),
    )
    return folder


def write_surgical_data(folder: Path) -> Path:
    """A simulated surgical data set in ``folder``: two human subjects, three images each, of 192 x 256
    pixels. Returns ``folder``.

    192 x 256: the default surgical model pools 4x and was trained at the Tivita's 480 x 640 scale;
    at 48 x 64 its 12 x 16 working image would be far smaller than anything it has seen.
    """
    write_dataset(
        folder,
        DatasetSpec(species=("human",), subjects_per_species=2, images_per_subject=3, height=192, width=256, seed=21),
    )
    return folder


def absent_classes(folder: Path, model_dir: Path) -> tuple[str, ...]:
    """Foreground classes of the model's label set that no image of the data set in ``folder`` holds."""
    names = [label["name"] for label in json.loads((model_dir / "config.json").read_text())["labels"]]
    dataset = SpectralDataset.open(folder)
    present = set().union(*(np.unique(dataset.load(i).labels).tolist() for i in range(len(dataset.records))))
    return tuple(name for i, name in enumerate(names) if i and i not in present)
