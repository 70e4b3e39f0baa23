"""Gap recovery of human+pig with another blend-weight range, against a finished quick run.

    XENO_WORKERS=2 python benchmarks/xeno_blend_probe.py WORK [--blend LO,HI]

WORK is the ``--work`` folder of a finished ``xenoedge experiment xeno --preset quick`` run (any
``--state-deviation``). The probe retrains only the ``human+pig`` arm (paper protocol, the run's
data and projection files, every fold and seed) with the physiology maps' blend weight drawn from
U(LO, HI) instead of the paper's U(0, 1) (default LO,HI = 1,1: every map applied whole), into
``WORK-blend-LO-HI/runs``, then re-analyses the run's rows with the new arm in place of the old
one and prints both gap recoveries. Same seeds, folds, data and maps: only the blend differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from xenoedge.xeno.experiment_analysis import analyse
from xenoedge.xeno.experiment_data import worker_pool
from xenoedge.xeno.experiment_protocol import protocol_arms
from xenoedge.xeno.experiment_runs import _run_one, read_finished_run

ARM = "human+pig"
STATES = ("malperfused_arterial", "malperfused_venous")


def _cell(entry: dict) -> str:
    return f"{entry['value']:.2f} [{entry['low']:.2f}, {entry['high']:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--blend", default="1,1", help="LO,HI of the blend weight's uniform range (default 1,1)")
    args = parser.parse_args()
    lo, hi = (float(v) for v in args.blend.split(","))
    results, preset, rows = read_finished_run(args.work)
    protocol = results["protocol"]
    arm = dataclasses.replace(next(a for a in protocol_arms(protocol) if a.name == ARM), augment_blend=(lo, hi))
    folders = {p.name: p for p in (args.work / "data").iterdir() if p.is_dir()}
    files = tuple(args.work / f"projections-{s}-{arm.task}.npz" for s in arm.sources)
    out = args.work.parent / f"{args.work.name}-blend-{lo:g}-{hi:g}"
    tasks = [
        (out, preset, arm, preset.model, dict(preset.model_options), folders, fold, seed, files)
        for fold in range(preset.folds)
        for seed in preset.seeds
    ]
    with worker_pool(max(1, int(os.environ.get("XENO_WORKERS", "1")))) as run_all:
        done = run_all([(_run_one, task) for task in tasks], None)
    new_runs = [record for record, _ in done]
    new_rows = [row for _, scored in done for row in scored]

    def replaced(items: list[dict], new: list[dict]) -> list[dict]:
        return [r for r in items if not (r["arm"] == ARM and r["model"] == preset.model)] + new

    probe = analyse(replaced(rows, new_rows), preset, protocol, replaced(results["runs"], new_runs))
    print(f"{args.work} (state deviation {results.get('state_deviation')}), {ARM}, gap recovery:")
    print("| blend weight | " + " | ".join(STATES) + " | physiological drop, points |")
    print("|---|---|---|---|")
    for label, res in (("U(0, 1) (the run)", results), (f"U({lo:g}, {hi:g})", probe)):
        cells = [_cell(res["gap_recovery_by_arm"][ARM][s]) for s in STATES]
        drop = res["summary"]["physiological_dsc_drop"]
        print(f"| {label} | " + " | ".join(cells) + f" | {drop['value']:.2f} ({drop['arm']}) |")


if __name__ == "__main__":
    main()
