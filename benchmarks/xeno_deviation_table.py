"""Gap recovery against state deviation: one Markdown row per finished xeno experiment run.

    python benchmarks/xeno_deviation_table.py WORK_D0 WORK_D1 WORK_D2

Each WORK is the ``--work`` folder of ``xenoedge experiment xeno --preset quick --state-deviation D``
(its ``results.json``); the rows are sorted by D (a run without the option counts as D = 1, the
simulator's default), runs with ``--state-deviation pig=D,rat=D`` (sources only) last.
Cells: value [bootstrap 95 % interval over test subjects].
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ARMS = ("human+pig", "human+pig+rat")
STATES = ("malperfused_arterial", "malperfused_venous")


def _cell(entry: dict) -> str:
    return f"{entry['value']:.2f} [{entry['low']:.2f}, {entry['high']:.2f}]"


def row(results: dict) -> tuple[tuple[int, float], str]:
    """(sort key, Markdown row) of one run's results: runs at one deviation for every species
    first (by D), then runs that set it for some species (``pig=2,rat=2``)."""
    deviation = results.get("state_deviation")
    if isinstance(deviation, dict):
        label = ", ".join(f"{species} {d:g}" for species, d in deviation.items()) + " (human 1)"
        key = (1, max(deviation.values()))
    else:
        deviation = 1.0 if deviation is None else float(deviation)
        label, key = f"{deviation:g}", (0, deviation)
    by_arm = results["gap_recovery_by_arm"]
    cells = [_cell(by_arm[arm][state]) for arm in ARMS for state in STATES]
    icg = results["part2_icg"]
    cells += [_cell(icg[target]["gap_recovery"]) for target in ("pig", "rat")]
    drop = results["summary"]["physiological_dsc_drop"]
    cells.append(f"{drop['value']:.2f} ({drop['arm']})")
    return key, f"| {label} | " + " | ".join(cells) + " |"


def main(works: list[str]) -> str:
    header = [
        "| d | +pig arterial | +pig venous | +pig+rat arterial | +pig+rat venous | ICG, pig target | ICG, rat target "
        "| physiological drop, points (arm) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = sorted(row(json.loads((Path(w) / "results.json").read_text())) for w in works)
    return "\n".join(header + [r for _, r in rows])


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(main(sys.argv[1:]))
