"""Gap recovery of human+pig with another blend-weight range or step budget, against a finished quick run.

    XENO_WORKERS=2 python benchmarks/xeno_blend_probe.py WORK [--blend LO,HI] [--max-steps N]

WORK is the ``--work`` folder of a finished ``xenoedge experiment xeno --preset quick`` run (any
``--state-deviation``). The probe retrains only the ``human+pig`` arm (paper protocol, the run's
data and projection files, every fold and seed) with the physiology maps' blend weight drawn from
U(LO, HI) instead of the paper's U(0, 1) (default LO,HI = 1,1: every map applied whole), into
``WORK-blend-LO-HI/runs``, then re-analyses the run's rows with the new arm in place of the old
one and prints both gap recoveries. Same seeds, folds, data and maps: only the blend differs.

``--max-steps N`` trains with a step budget of N instead of the preset's (the stopping rule is
unchanged) and then retrains the ``human`` baseline too, so that both sides of each gap have the
same budget; the output folder is ``WORK-blend-LO-HI-stepsN``.

``--projection-steps N`` first learns the run's projection files again with N Adam steps instead
of the preset's (``projection_steps``; the paper's code uses 100) into the output folder
(``...-mapsN``), with the experiment's own jobs, and trains on those.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from xenoedge.xeno.experiment_analysis import analyse
from xenoedge.xeno.experiment_data import worker_pool
from xenoedge.xeno.experiment_protocol import protocol_arms
from xenoedge.xeno.experiment_runs import _projection_files, _run_one, read_finished_run

ARM = "human+pig"
STATES = ("malperfused_arterial", "malperfused_venous")


def _cell(entry: dict) -> str:
    return f"{entry['value']:.2f} [{entry['low']:.2f}, {entry['high']:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--blend", default="1,1", help="LO,HI of the blend weight's uniform range (default 1,1)")
    parser.add_argument("--max-steps", type=int, default=None, help="step budget (default: the run's preset's)")
    parser.add_argument("--projection-steps", type=int, default=None, help="relearn the maps with this many steps")
    args = parser.parse_args()
    lo, hi = (float(v) for v in args.blend.split(","))
    results, preset, rows = read_finished_run(args.work)
    protocol = results["protocol"]
    arms = {a.name: a for a in protocol_arms(protocol)}
    arm = dataclasses.replace(arms[ARM], augment_blend=(lo, hi))
    retrained = [arm]
    out = args.work.parent / f"{args.work.name}-blend-{lo:g}-{hi:g}"
    if args.max_steps is not None:
        preset = dataclasses.replace(preset, max_steps=args.max_steps)
        retrained.append(arms["human"])
        out = out.with_name(f"{out.name}-steps{args.max_steps}")
    folders = {p.name: p for p in (args.work / "data").iterdir() if p.is_dir()}
    maps = args.work
    if args.projection_steps is not None:
        out = out.with_name(f"{out.name}-maps{args.projection_steps}")
        maps = out
        maps.mkdir(parents=True, exist_ok=True)
        relearn = dataclasses.replace(preset, projection_steps=args.projection_steps)
        with worker_pool(max(1, int(os.environ.get("XENO_WORKERS", "1")))) as run_all:
            _projection_files(maps, relearn, protocol, folders, lambda line: None, run_all)
    tasks = [
        (out, preset, a, preset.model, dict(preset.model_options), folders, fold, seed,
         tuple(maps / f"projections-{s}-{a.task}.npz" for s in a.sources))
        for a in retrained
        for fold in range(preset.folds)
        for seed in preset.seeds
    ]  # fmt: skip
    with worker_pool(max(1, int(os.environ.get("XENO_WORKERS", "1")))) as run_all:
        done = run_all([(_run_one, task) for task in tasks], None)
    new_runs = [record for record, _ in done]
    new_rows = [row for _, scored in done for row in scored]
    names = {a.name for a in retrained}

    def replaced(items: list[dict], new: list[dict]) -> list[dict]:
        return [r for r in items if not (r["arm"] in names and r["model"] == preset.model)] + new

    probe = analyse(replaced(rows, new_rows), preset, protocol, replaced(results["runs"], new_runs))
    print(f"{args.work} (state deviation {results.get('state_deviation')}), {ARM}, gap recovery:")
    print("| blend weight | " + " | ".join(STATES) + " | physiological drop, points |")
    print("|---|---|---|---|")
    budget = "" if args.max_steps is None else f", budget {args.max_steps} steps (human retrained too)"
    if args.projection_steps is not None:
        budget += f", maps learnt in {args.projection_steps} steps"
    for label, res in (("U(0, 1) (the run)", results), (f"U({lo:g}, {hi:g}){budget}", probe)):
        cells = [_cell(res["gap_recovery_by_arm"][ARM][s]) for s in STATES]
        drop = res["summary"]["physiological_dsc_drop"]
        print(f"| {label} | " + " | ".join(cells) + f" | {drop['value']:.2f} ({drop['arm']}) |")
    for name in sorted(names):
        stopped = [r.get("stopped") for r in new_runs if r["arm"] == name]
        steps = sorted(r["steps"] for r in new_runs if r["arm"] == name)
        print(f"{name}: {stopped.count('converged')} of {len(stopped)} runs stopped by the rule, "
              f"{stopped.count('budget')} at the budget; median {steps[len(steps) // 2]} steps")  # fmt: skip


if __name__ == "__main__":
    main()
