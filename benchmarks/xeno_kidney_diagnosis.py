"""Where human kidney gap recovery stops: how well the source maps fit, and what malperfused kidney is read as.

    python benchmarks/xeno_kidney_diagnosis.py WORK [--arms human,human+pig]

WORK is the ``--work`` folder of a finished ``xenoedge experiment xeno --preset quick`` run (its
``data/``, projection files and ``runs/`` must still be there). Two tables, in Markdown:

1. **Map fit.** For each source species' kidney maps and each malperfusion state, the maps are
   applied whole (blend weight 1) to 3,000 physiological kidney pixels of the human target and of
   the source itself, and the median mapped spectrum is compared with the median pathological one.
   With d = true change (pathological − physiological medians, L1 spectra) and m = mapped change,
   ``along`` = m·d / d·d (1: the maps reach the true change exactly, > 1: they overshoot) and
   ``across`` = |m − along·d| / |d| (the part of the mapped change that points elsewhere).
   ``--maps-only`` prints this table alone (the run may have stopped after learning its maps).
2. **What kidney pixels are predicted as**, per arm and test data, pooled over every fold's test
   subjects and every seed (the run's own checkpoints), the four most frequent classes.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
from xenoedge.calibration.normalise import l1_normalise
from xenoedge.xeno.checkpoint import load_model
from xenoedge.xeno.dataset import SpectralDataset, fold_split
from xenoedge.xeno.evaluate import predict_batch
from xenoedge.xeno.experiment_runs import read_finished_run
from xenoedge.xeno.projections import load_projections, organ_samples_from_folder

STATES = ("malperfused_arterial", "malperfused_venous")
ORGAN = "kidney"
MAPPED_PIXELS = 3000


@functools.cache  # each (folder, species, state) is read once: every source's maps meet the same target pixels
def _kidney_spectra(folder: Path, species: str, state: str) -> np.ndarray | None:
    """(N, C) L1 spectra of every ``state`` kidney pixel of ``species`` in ``folder``, or None."""
    samples, _ = organ_samples_from_folder(folder, species, states=[state], organs=[ORGAN])
    return np.concatenate([s.spectra for s in samples]) if samples else None


def map_fit_rows(work: Path) -> list[str]:
    data = work / "data"
    rows = []
    for source in ("pig", "rat"):
        maps = load_projections(work / f"projections-{source}-malperfusion.npz")
        for state in STATES:
            chosen = [i for i in maps.maps_for(ORGAN) if maps.states[i] == state]
            for target, pathological in (("human", f"surgical_{state}"), (source, f"source_{state}")):
                phys = _kidney_spectra(data / "surgical_physiological", target, "physiological")
                path = _kidney_spectra(data / pathological, target, state)
                if phys is None or path is None:
                    continue
                rng = np.random.default_rng(0)
                x = phys[rng.choice(len(phys), min(MAPPED_PIXELS, len(phys)), replace=False)]
                mapped = l1_normalise(np.concatenate([maps.apply(x, i) for i in chosen]))
                p0, p1 = np.median(phys, axis=0), np.median(path, axis=0)
                true, moved = p1 - p0, np.median(mapped, axis=0) - p0
                along = float(moved @ true / (true @ true))
                across = float(np.linalg.norm(moved - along * true) / np.linalg.norm(true))
                rows.append(
                    f"| {source} -> {target} | {state} | {len(chosen)} | {np.abs(true).sum():.3f} "
                    f"| {along:.2f} | {across:.2f} |"
                )
    return rows


def confusion_rows(work: Path, arms: list[str]) -> list[str]:
    _, preset, _ = read_finished_run(work)
    data = work / "data"
    train = SpectralDataset.open(data / "surgical_physiological")
    names = train.label_set.names
    kidney = names.index(ORGAN)
    tests = (*STATES, "physiological")
    datasets = {t: SpectralDataset.open(data / f"surgical_{t}") for t in tests}
    counts = {(t, arm): np.zeros(len(names)) for t in tests for arm in arms}
    for fold in range(preset.folds):
        split = fold_split(train.records, preset.folds, fold, val_subjects=1, seed=0)  # as the run's folds
        held_out = {r.subject_key for r in split.test}
        samples = {
            t: [ds.load(i) for i, r in enumerate(ds.records) if r.subject_key in held_out and r.species == "human"]
            for t, ds in datasets.items()
        }
        for arm in arms:
            for seed in preset.seeds:
                model, _ = load_model(work / "runs" / f"{arm}-fold{fold}-seed{seed}")  # once per checkpoint
                for t in tests:
                    cubes = [s.cube for s in samples[t]]
                    for sample, pred in zip(samples[t], predict_batch(model, cubes), strict=True):
                        truth = np.asarray(sample.labels)
                        counts[t, arm] += np.bincount(pred[truth == kidney].ravel(), minlength=len(names))
    rows = []
    for (t, arm), count in counts.items():
        top = np.argsort(-count)[:4]
        shares = ", ".join(f"{names[i]} {count[i] / count.sum():.2f}" for i in top if count[i])
        rows.append(f"| {t} | {arm} | {shares} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--arms", default="human,human+pig", help="arms to read (comma-separated)")
    parser.add_argument(
        "--maps-only", action="store_true", help="only the map fit (needs data/ and the projection files)"
    )
    args = parser.parse_args()
    print("| maps | state | maps | true change, L1 | along | across |")
    print("|---|---|---|---|---|---|")
    print("\n".join(map_fit_rows(args.work)))
    if args.maps_only:
        return
    print()
    print("| human test kidneys | arm | predicted as (share of kidney pixels) |")
    print("|---|---|---|")
    print("\n".join(confusion_rows(args.work, args.arms.split(","))))


if __name__ == "__main__":
    main()
