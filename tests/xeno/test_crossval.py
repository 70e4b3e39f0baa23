"""Subject-level k-fold cross-validation and bootstrap intervals over subjects."""

from pathlib import Path

import numpy as np
import pytest
from xenoedge.xeno.dataset import DatasetError, ImageRecord, fold_split, subject_folds
from xenoedge.xeno.evaluate import bootstrap_interval, class_mean_dsc, paired_bootstrap


def _records(subjects=10, images=3, species=("human", "pig")):
    return [
        ImageRecord(f"{sp}_{s}_{i}", sp, s, Path("c"), Path("l"), None)
        for sp in species
        for s in range(subjects)
        for i in range(images)
    ]


@pytest.mark.parametrize("k", [2, 3, 5])
def test_folds_are_subject_disjoint_and_cover_every_subject_once(k):
    records = _records(subjects=11)
    folds = subject_folds(records, k, seed=4)
    assert len(folds) == k
    every = [key for fold in folds for key in fold]
    assert sorted(every) == sorted({r.subject_key for r in records})  # each subject exactly once
    for sp in ("human", "pig"):
        sizes = [sum(1 for key in f if key[0] == sp) for f in folds]
        assert max(sizes) - min(sizes) <= 1
    tested = []
    for fold in range(k):
        split = fold_split(records, k, fold, val_subjects=1, seed=4)
        sides = [{r.subject_key for r in side} for side in (split.train, split.val, split.test)]
        assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
        assert len(split.train) + len(split.val) + len(split.test) == len(records)
        assert {key[0] for key in sides[1]} == {"human", "pig"} and len(sides[1]) == 2
        tested += sorted(sides[2])
    assert sorted(tested) == sorted({r.subject_key for r in records})
    assert subject_folds(records, k, seed=4) == folds  # seeded
    with pytest.raises(DatasetError, match="fewer than"):
        subject_folds(_records(subjects=2), 3)


def _rows(n_subjects, rng):
    rows = []
    for s in range(n_subjects):
        for label in ("kidney", "liver"):
            for _ in range(2):
                rows.append({"subject": f"h/{s}", "label": label, "dsc": float(np.clip(rng.normal(0.7, 0.15), 0, 1))})
    return rows


def test_bootstrap_interval_contains_the_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, large = _rows(6, rng), _rows(60, rng)
    a = bootstrap_interval(small, class_mean_dsc, n_boot=400, seed=1)
    b = bootstrap_interval(large, class_mean_dsc, n_boot=400, seed=1)
    for r in (a, b):
        assert r["low"] <= r["value"] <= r["high"]
    assert a["n"] == len(small) and a["subjects"] == 6 and b["subjects"] == 60
    assert (b["high"] - b["low"]) < 0.6 * (a["high"] - a["low"])
    assert bootstrap_interval(small, class_mean_dsc, n_boot=400, seed=1) == a  # seeded
    assert np.isnan(bootstrap_interval([], class_mean_dsc)["low"])


def test_paired_bootstrap_of_a_difference():
    rng = np.random.default_rng(2)
    base = _rows(20, rng)
    better = [{**r, "dsc": r["dsc"] + 0.1} for r in base]
    diff = paired_bootstrap(better, base, lambda a, b: class_mean_dsc(a) - class_mean_dsc(b), n_boot=200)
    assert diff["value"] == pytest.approx(0.1)
    assert diff["low"] == pytest.approx(0.1) and diff["high"] == pytest.approx(0.1)  # same subjects both sides
