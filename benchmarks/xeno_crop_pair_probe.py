"""The crop part of a finished quick run again with another source crop (default: tomato for wheat).

    XENO_WORKERS=2 python benchmarks/xeno_crop_pair_probe.py WORK [--source tomato]

WORK is the ``--work`` folder of a finished ``xenoedge experiment xeno --preset quick`` run. The
probe simulates the crop data sets with ``--source`` in place of the preset's source crop (same
target crop, seeds, sizes and states), learns that crop's maps and trains the three crop arms
(target baseline, source baseline, target + source maps) over every fold and seed, in
``WORK-crops-SOURCE``; the run's surgical data and maps are linked, not redone. It prints the crop
summary of the run and of the probe side by side. Wheat and maize are both grasses; a dicot
source (tomato) asks how far the crop part's transfer and recoveries depend on that choice.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from xenoedge.xeno.experiment_analysis import analyse
from xenoedge.xeno.experiment_data import simulate_folders, worker_pool
from xenoedge.xeno.experiment_runs import _projection_files, _run_one, _training_tasks, read_finished_run


def _summary_row(label: str, crops: dict) -> str:
    gap = crops["gap_recovery"]
    cells = [f"{gap[s]['value']:.2f} [{gap[s]['low']:.2f}, {gap[s]['high']:.2f}]" for s in gap]
    transfer = crops["transfer"]
    return (
        f"| {label} | " + " | ".join(cells) + f" | {100 * transfer['relative_drop']:.0f} % "
        f"({transfer['cross_species']:.3f} vs {transfer['in_species']:.3f}) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--source", default="tomato", help="source crop replacing the preset's (default tomato)")
    args = parser.parse_args()
    results, preset, rows = read_finished_run(args.work)
    protocol = results["protocol"]
    probe = dataclasses.replace(preset, source_crop=args.source)
    out = args.work.parent / f"{args.work.name}-crops-{args.source}"
    (out / "data").mkdir(parents=True, exist_ok=True)
    for folder in (args.work / "data").glob("s*_*"):  # surgical_* and source_*: reused as they are
        link = out / "data" / folder.name
        if not link.exists():
            link.symlink_to(folder.resolve(), target_is_directory=True)
    for maps in args.work.glob("projections-*-*.npz"):  # the surgical maps (pig-/rat-...)
        link = out / maps.name
        if not link.exists():
            link.symlink_to(maps.resolve())
    workers = max(1, int(os.environ.get("XENO_WORKERS", "1")))
    with worker_pool(workers) as run_all:
        folders = simulate_folders(out, probe, protocol, print, run_all, results.get("state_deviation"))
        projections = _projection_files(out, probe, protocol, folders, print, run_all)
        tasks = [t for t in _training_tasks(out, probe, protocol, folders, projections) if t[2].domain == "crop"]
        print(f"{len(tasks)} crop training runs on {workers} process(es)")
        done = run_all([(_run_one, task) for task in tasks], None)
    old_crop_arms = {preset.target_crop, preset.source_crop, f"{preset.target_crop}+{preset.source_crop}"}
    rows = [r for r in rows if r["arm"] not in old_crop_arms] + [row for _, scored in done for row in scored]
    runs = [r for r in results["runs"] if r["arm"] not in old_crop_arms] + [record for record, _ in done]
    crops = analyse(rows, probe, protocol, runs)["summary"]["crops"]
    states = " | ".join(crops["gap_recovery"])
    print(f"\n{args.work}: crop part, target {preset.target_crop}; gap recovery [bootstrap 95 %], direct transfer")
    print(f"| source crop | {states} | direct transfer below in-species |")
    print("|---|" + "---|" * len(crops["gap_recovery"]) + "---|")
    print(_summary_row(f"{preset.source_crop} (the run)", results["summary"]["crops"]))
    print(_summary_row(args.source, crops))


if __name__ == "__main__":
    main()
