"""State-strength calibration probe: a human physiological-only model on human pathological tissue.

    OPENBLAS_NUM_THREADS=1 python benchmarks/state_calibration.py --work DIR \
        [--model pixel-mlp] [--model-options '{"pool": 2}'] [--steps 1000] [--seeds 0 1] \
        [--variants '{"name": {state: {key: [lo, hi]}}}']

Simulates (48x64, Tivita bands, data set seed 7) human physiological images of 10 subjects x 6
(training: subjects 0-5; physiological test: 6-9), trains ``--model`` on the training subjects
with ``xenoedge.xeno.train`` (no augmentation beyond the geometric one, no validation split), and for
each strength variant (``xenoedge.xeno.species.STATE_RANGES`` overridden in this process only; "{}" =
the shipped ranges) simulates and scores:

* human pathological images (10 subjects x 4, every organ pathological, states drawn evenly)
  of the held-out subjects 6-9: mean DSC over classes per state (``Evaluation.mean_dsc``) and
  the number of organ instances per state;
* kidney scenes (``SURGICAL_ARRANGEMENTS`` narrowed to the kidney group in this process), the
  paper's malperfusion target organ: kidney DSC per malperfusion state and its instances.

Prints one line per variant. docs/simulator.md ("Calibration") quotes its output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from xenoedge.xeno import layout
from xenoedge.xeno import species as tables
from xenoedge.xeno.checkpoint import load_model
from xenoedge.xeno.dataset import SpectralDataset
from xenoedge.xeno.evaluate import evaluate_model
from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset
from xenoedge.xeno.train import TrainConfig, train

PATHOLOGICAL = ("malperfused_arterial", "malperfused_venous", "icg")
KIDNEY_GROUP = ("kidney", "peritoneum", "colon", "small_bowel")
TRAIN_SUBJECTS = 6


def _subject(image_id: str) -> int:
    return int(image_id.split("_s")[1][:3])


def _simulate(folder: Path, images: int, states, probability: float) -> SpectralDataset:
    if not (folder / "index.json").is_file():
        spec = DatasetSpec(
            species=("human",),
            states=states,
            subjects_per_species=10,
            images_per_subject=images,
            height=48,
            width=64,
            pathological_probability=probability,
            seed=7,
        )
        write_dataset(folder, spec)
    return SpectralDataset.open(folder)


def _held_out(dataset: SpectralDataset) -> list[int]:
    return [dataset.index_of(r.image_id) for r in dataset.records if _subject(r.image_id) >= TRAIN_SUBJECTS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--model", default="pixel-mlp")
    parser.add_argument("--model-options", default="{}", help="JSON, e.g. '{\"pool\": 2}' for unet-edge")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", default='{"shipped": {}}', help="JSON: name -> {state: {key: [lo, hi]}}")
    args = parser.parse_args(argv)

    phys = _simulate(args.work / "phys", 6, ("physiological",), 0.0)
    train_ids = tuple(sorted(r.image_id for r in phys.records if _subject(r.image_id) < TRAIN_SUBJECTS))
    models = []
    for seed in args.seeds:
        config = TrainConfig(
            data=str(args.work / "phys"),
            model=args.model,
            model_options=json.loads(args.model_options),
            image_ids=train_ids,
            steps=args.steps,
            batch_size=8,
            crop=48,
            seed=seed,
            checkpoint_every=args.steps,
            val_fraction=0.0,
            threads=1,
        )
        models.append(load_model(train(config, args.work / f"run-{args.model}-{args.steps}-{seed}"))[0])
    physiological = [evaluate_model(m, phys, _held_out(phys)).mean_dsc() for m in models]
    print(f"{args.model}, {args.steps} steps, seeds {args.seeds}: physiological DSC {np.mean(physiological):.3f}")

    shipped = {state: dict(ranges) for state, ranges in tables.STATE_RANGES.items()}
    arrangements = layout.SURGICAL_ARRANGEMENTS
    for name, variant in json.loads(args.variants).items():
        try:
            for state, ranges in variant.items():
                tables.STATE_RANGES[state] = {k: tuple(v) for k, v in ranges.items()}
            ranges_now = {s: tables.STATE_RANGES[s] for s in PATHOLOGICAL}
            path = _simulate(args.work / f"path-{name}", 4, None, 1.0)
            layout.SURGICAL_ARRANGEMENTS = (KIDNEY_GROUP,)
            kidney = _simulate(args.work / f"kidney-{name}", 4, ("physiological", *PATHOLOGICAL[:2]), 1.0)
        finally:
            layout.SURGICAL_ARRANGEMENTS = arrangements
            tables.STATE_RANGES.clear()
            tables.STATE_RANGES.update(shipped)
        cells: dict[str, list[float]] = {}
        counts: dict[str, int] = {}
        for m in models:
            evaluation = evaluate_model(m, path, _held_out(path))
            kidney_evaluation = evaluate_model(m, kidney, _held_out(kidney))
            for state in PATHOLOGICAL:
                cells.setdefault(state, []).append(evaluation.mean_dsc(state=state))
                counts[state] = sum(r["state"] == state and r["label"] != "background" for r in evaluation.rows)
            for state in PATHOLOGICAL[:2]:
                key = f"kidney {state}"
                cells.setdefault(key, []).append(kidney_evaluation.mean_dsc(state=state, label="kidney"))
                counts[key] = sum(r["state"] == state and r["label"] == "kidney" for r in kidney_evaluation.rows)
        summary = ", ".join(f"{k} {np.mean(v):.3f} (n={counts[k]})" for k, v in cells.items())
        print(f"{name} {json.dumps(ranges_now)}: {summary}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
