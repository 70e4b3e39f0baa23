"""How well pig/rat projections move human spectra to human pathology, against ``state_deviation``.

    OPENBLAS_NUM_THREADS=1 python benchmarks/state_deviation_transfer.py [--deviations 0 0.5 1 2]

For each state deviation d (``xenoedge.xeno.species.state_deviation_override``) the script simulates a
small data set (human, pig, rat; ``--subjects`` x ``--images`` per species, 48x64, Tivita
bands, each organ pathological with probability 0.6, seed ``--seed``), learns pig and rat maps
per pathological state (``xenoedge.xeno.projections.learn_projections``, 100 Adam steps), applies them
to *human* physiological pixels, and reports, summed over the organs that have maps and both
states, the L1 distance between median L1 spectra: human physiological -> human pathological
(what a physiological-only model faces) and mapped -> human pathological (what the maps leave),
as docs/projections.md does. ``left`` = mapped / physiological distance: 0 = maps learnt on
the animal reproduce human pathology exactly, 1 = they do nothing for human.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from xenoedge.xeno import species as tables
from xenoedge.xeno.projections import learn_projections, median_spectra, organ_samples_from_folder
from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset

STATES = ("malperfused_arterial", "malperfused_venous", "icg")


def measure(deviation: float, folder: Path, subjects: int, images: int, seed: int) -> dict:
    spec = DatasetSpec(
        species=("human", "pig", "rat"),
        subjects_per_species=subjects,
        images_per_subject=images,
        height=48,
        width=64,
        pathological_probability=0.6,
        seed=seed,
    )
    with tables.state_deviation_override(deviation):
        write_dataset(folder, spec)
    human, wavelengths = organ_samples_from_folder(folder, "human")
    out = {}
    for source in ("pig", "rat"):
        samples, _ = organ_samples_from_folder(folder, source)
        for state in STATES:
            ps = learn_projections(samples, state=state, source_species=source, wavelengths_nm=wavelengths, seed=seed)
            before = after = 0.0
            organs = 0
            human_state = [s for s in human if s.state in ("physiological", state)]
            for organ in sorted(set(ps.organs)):
                m = median_spectra(ps, human_state, organ)
                if m is None:
                    continue
                organs += 1
                before += float(np.abs(m["physiological"] - m["pathological"]).sum())
                after += float(np.abs(m["mapped"] - m["pathological"]).sum())
            out[f"{source}:{state}"] = {
                "organs": organs,
                "phys_to_path": before,
                "mapped_to_path": after,
                "left": after / before if before else float("nan"),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deviations", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--json", help="write every number here")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for d in args.deviations:
            results[d] = measure(d, Path(tmp) / f"d{d}", args.subjects, args.images, args.seed)
    keys = list(next(iter(results.values())))
    print("human phys->path vs mapped->path (L1, summed over organs; left = mapped / phys)")
    print("| source: state | " + " | ".join(f"d = {d:g}" for d in results) + " |")
    print("|---|" + "---|" * len(results))
    for key in keys:
        cells = [
            f"{r[key]['phys_to_path']:.3f} → {r[key]['mapped_to_path']:.3f} ({r[key]['left']:.2f})"
            for r in results.values()
        ]
        print(f"| {key} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": {str(k): v for k, v in results.items()}}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
