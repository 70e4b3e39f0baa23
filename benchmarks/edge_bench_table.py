"""Markdown tables of edge-bench JSON reports, as docs/bench.md shows them.

    python benchmarks/edge_bench_table.py benchmarks/results/crop.json [more.json ...]

One table per report: configuration, device, precision, count, FPS, ratio to the baseline,
latency p50/p99, first inference, CPU cores, RSS growth and, when measured, DSC and pipeline
stages. Reads only the JSON (schema 2), so the table is exactly what the run measured.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edge.bench import STAGE_KEYS
from edge.bench import _fmt as _f


def table(report: dict) -> str:
    s = report["settings"]
    lines = [f"**{report['model']['name']}**, {s['mode']} mode, {s['scenario']}, input {report['input']['shape']}; "
             f"ratios to `{report['baseline']}`", ""]  # fmt: skip
    results = report["results"]
    dsc = any(r.get("dsc_truth") is not None for r in results)
    offline = s["scenario"] == "offline" and s["mode"] == "engine"
    alone = any(r.get("peak_rss_alone_mb") is not None for r in results)
    head = ["Configuration", "Device", "Precision", "Count", "FPS", "× baseline FPS", "p50 ms", "p99 ms",
            "First inference ms", "CPU cores", "RSS +MB"]  # fmt: skip
    head += ["Peak RSS alone MB"] if alone else []
    head += ["nireq", "streams"] if offline else []
    head += ["DSC vs truth", "DSC vs baseline"] if dsc else []
    lines += [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" if i < 3 else "---:" for i in range(len(head))) + "|",
    ]
    for r in results:
        lat = r["latency_ms"]
        row = [f"`{r['target']}`" + (" (baseline)" if r.get("baseline") else ""), str(r.get("device")),
               r.get("precision") or "-", str(r["count"]), _f(r["throughput_fps"]), _f(r.get("fps_ratio"), ".2f"),
               _f(lat["median"]), _f(lat["p99"]), _f(r.get("first_inference_ms"), ".0f"), _f(r.get("cpu_util"), ".2f"),
               _f(r.get("rss_growth_mb"), ".0f")]  # fmt: skip
        row += [_f(r.get("peak_rss_alone_mb"), ".0f")] if alone else []
        row += [_f(r.get("nireq"), "d"), _f(r.get("nstreams"), "d")] if offline else []
        row += [_f(r.get("dsc_truth"), ".3f"), _f(r.get("dsc_reference"), ".3f")] if dsc else []
        lines.append("| " + " | ".join(row) + " |")
    if any(r.get("stages_ms") for r in results):
        stages = STAGE_KEYS
        lines += ["", "| Configuration | " + " | ".join(f"{k} ms (p50 / p95)" for k in stages)
                  + " | bytes/mask | link B/s | link utilisation | masks received |",
                  "|---|" + "---:|" * (len(stages) + 4)]  # fmt: skip
        for r in results:
            st = r.get("stages_ms") or {}
            cells = [f"{_f((st.get(k) or {}).get('median'), '.2f')} / {_f((st.get(k) or {}).get('p95'), '.2f')}"
                     for k in stages]  # fmt: skip
            lines.append(f"| `{r['target']}` | " + " | ".join(cells) + f" | {_f(r.get('bytes_per_mask'), 'd')} | "
                         f"{_f(r.get('link_bytes_per_s'), '.0f')} | {_f(r.get('link_utilisation'), '.3f')} | "
                         f"{_f(r.get('masks_received'), 'd')} |")  # fmt: skip
    if any(r.get("rounds") for r in results):  # pipeline mode: FPS per round, in the order the rounds ran
        lines += ["", "| Configuration | FPS per round (rounds ran in turn: A, B, A, B, ...) |", "|---|---|"]
        for r in results:
            fps = ", ".join(_f(x.get("fps")) for x in r.get("rounds") or [])
            lines.append(f"| `{r['target']}` | {fps} |")
    if report["notes"]:
        lines += ["", *(f"Note: {n}" for n in report["notes"])]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    for path in argv:
        print(table(json.loads(Path(path).read_text())))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
