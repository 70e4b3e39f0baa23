"""Malperfusion strength against the physiological-only baseline, on a finished quick run.

    OPENBLAS_NUM_THREADS=1 python benchmarks/kidney_baseline_probe.py WORK --scale 0.3 0.4

For each ``--scale`` k, simulates the human malperfused kidney scoring sets the experiment uses
(human, 10 subjects x 32 images, 48x64, every organ pathological, data seed 7) with each strength
factor's departure from 1 scaled to k times the clamping-strength ranges used until 2026-12-07
(arterial StO2 x U(0.38, 0.55), blood x U(0.65, 0.85); venous StO2 x U(0.35, 0.50), blood
x U(1.30, 1.60)): factor = 1 - k (1 - clamping factor). Then scores WORK's physiological-only
human models (``runs/human-fold{f}-seed{s}``, every fold and seed) on their own fold's test
subjects, as the experiment scores its baseline: kidney DSC per state, mean over instances.
Needs nothing but a finished run's work folder (``xenoedge experiment xeno --preset quick``);
the models do not depend on the state strengths (they never see a pathological pixel).
Prints one line per (k, state). docs/simulator.md ("Calibration") quotes its output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from xenoedge.xeno import species as tables
from xenoedge.xeno.dataset import SpectralDataset, fold_split
from xenoedge.xeno.experiment_protocol import DATA_SEED
from xenoedge.xeno.experiment_runs import _records_of, _score
from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset

CLAMPING = {
    "malperfused_arterial": {"sto2_factor": (0.38, 0.55), "blood_factor": (0.65, 0.85)},
    "malperfused_venous": {"sto2_factor": (0.35, 0.50), "blood_factor": (1.30, 1.60)},
}


def scaled_ranges(state: str, k: float) -> dict[str, tuple[float, float]]:
    """The clamping ranges of ``state`` with each factor's departure from 1 scaled by ``k``."""
    return {name: (1 - k * (1 - lo), 1 - k * (1 - hi)) for name, (lo, hi) in CLAMPING[state].items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="a finished quick run's work folder")
    parser.add_argument("--scale", type=float, nargs="+", required=True)
    parser.add_argument("--out", type=Path, default=None, help="where to simulate (default WORK/../kidney-probe)")
    args = parser.parse_args(argv)

    results = json.loads((args.work / "results.json").read_text())
    preset = results["preset"]
    folds, seeds = preset["folds"], preset["seeds"]
    train_data = SpectralDataset.open(args.work / "data" / "surgical_physiological")
    out = args.out or args.work.parent / "kidney-probe"
    shipped = {state: dict(tables.STATE_RANGES[state]) for state in CLAMPING}
    for k in args.scale:
        for state in CLAMPING:
            folder = out / f"{state}-{k}"
            try:
                tables.STATE_RANGES[state] = scaled_ranges(state, k)
                if not (folder / "index.json").is_file():
                    spec = DatasetSpec(
                        domain="surgical",
                        species=("human",),
                        states=("physiological", state),
                        subjects_per_species=preset["subjects"],
                        images_per_subject=preset["images_path"],
                        height=preset["height"],
                        width=preset["width"],
                        pathological_probability=1.0,
                        seed=DATA_SEED,
                    )
                    write_dataset(folder, spec)
            finally:
                tables.STATE_RANGES[state] = shipped[state]
            data = SpectralDataset.open(folder)
            rows = []
            for fold in range(folds):
                test = {r.subject_key for r in fold_split(train_data.records, folds, fold, val_subjects=1, seed=0).test}
                for seed in seeds:
                    model = args.work / "runs" / f"human-fold{fold}-seed{seed}"
                    rows += _score(model, data, _records_of(data, test, "human"), data=state)
            kidney = [r["dsc"] for r in rows if r["label"] == "kidney"]
            ranges = {name: [round(v, 3) for v in lo_hi] for name, lo_hi in scaled_ranges(state, k).items()}
            print(f"k={k} {state} {json.dumps(ranges)}: kidney DSC {np.mean(kidney):.3f} (n={len(kidney)})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
