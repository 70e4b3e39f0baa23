"""Markdown tables of edge-bench JSON reports, as docs/bench.md shows them.

    python benchmarks/edge_bench_table.py benchmarks/results/crop.json [more.json ...]

Per report: the machine (CPU model, ISA flags, runtime versions); the summary (pass/fail, model
size, accuracy, load, first inference, p50, FPS, ratio); the detailed table (configuration,
device, precision, count, FPS, ratio to the baseline, latency p50/p99, first inference, CPU
cores, RSS growth and, when measured, DSC); the effective settings per configuration; pipeline
stages; ``--profile`` tables. Reads only the JSON (schema 3; schema 2 reports print without the
summary and settings), so the tables are exactly what the run measured.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from xenoedge.bench.common import STAGE_KEYS, accuracy_text
from xenoedge.bench.common import fmt as _f
from xenoedge.bench.report import host_line


def summary(report: dict) -> list[str]:
    """The machine, then one row per configuration: pass/fail, size, accuracy, load, first inference, p50, FPS."""
    lines = [f"Machine: {host_line(report.get('host') or {})}", ""]
    lines += ["| Configuration | Precision (effective) | Pass | Size MB | Accuracy | Load ms | First inference ms | "
              "p50 ms | FPS | × baseline |", "|---|---|---|---:|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in report["results"]:
        eff = (r.get("settings") or {}).get("effective_precision") or "?"
        acc = accuracy_text(r)
        size = r.get("model_bytes")
        lines.append(
            f"| `{r['target']}`{' (baseline)' if r.get('baseline') else ''} | {r.get('precision') or '-'} ({eff}) | "
            f"{'pass' if r.get('passed') else '**fail**: ' + str(r.get('gate'))} | "
            f"{_f(size / 1e6 if size else None, '.2f')} | {acc} | {_f(r.get('load_ms'), '.0f')} | "
            f"{_f(r.get('first_inference_ms'), '.0f')} | {_f(r['latency_ms']['median'])} | "
            f"{_f(r['throughput_fps'])} | {_f(r.get('fps_ratio'), '.2f')} |"
        )
    lines += ["", "| Configuration | Runtime | Device / providers | Threads | Hint / streams | Effective precision | "
              "Cache |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in report["results"]:
        st = r.get("settings") or {}
        where = ", ".join(st.get("providers") or st.get("execution_devices") or [str(st.get("device"))])
        hint = "-" if st.get("performance_hint") is None else f"{st['performance_hint']} / {st.get('streams')}"
        version = str(st.get("runtime_version") or "").split("-")[0]
        lines.append(f"| `{r['target']}` | {st.get('runtime')} {version} | {where} | "
                     f"{st.get('threads') if st.get('threads') is not None else 'default'} | {hint} | "
                     f"{st.get('effective_precision') or '-'} | {st.get('cache') or '-'} |")  # fmt: skip
    return [*lines, ""]


def profiles(report: dict) -> list[str]:
    """``--profile``: per configuration, time per frame by operator type and precision/kernel."""
    lines = []
    for r in report["results"]:
        prof = r.get("profile")
        if not prof:
            continue
        lines += ["", f"Profile of `{r['target']}`: {prof['total_ms_per_frame']:.1f} ms per frame ({prof['source']})",
                  "", "| Op type | Precision / kernel | Nodes | ms per frame | % of total |",
                  "|---|---|---:|---:|---:|"]  # fmt: skip
        for row in prof["by_type"]:
            if row["percent"] >= 1.0:
                lines.append(f"| {row['op_type']} | {row['precision']} | {row['nodes']} | "
                             f"{row['ms_per_frame']:.2f} | {row['percent']:.1f} |")  # fmt: skip
    return lines


def table(report: dict) -> str:
    s = report["settings"]
    lines = [f"**{report['model']['name']}**, {s['mode']} mode, {s['scenario']}, input {report['input']['shape']}; "
             f"ratios to `{report['baseline']}`", ""]  # fmt: skip
    if report.get("schema_version", 2) >= 3:
        lines += summary(report)
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
    lines += profiles(report)
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
