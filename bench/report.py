"""Writing and printing an ``edge-bench`` report: the JSON (NaN written as null), the CSV (the fixed
``CSV_COLUMNS``, units in the names), the PNG plot, and the console tables (summary with pass/fail,
details with ratios, effective settings and the machine, ``--profile``, pipeline stages).

Reads only the report (a mapping, as ``xenoedge.bench.main.run_bench`` returns it); measures nothing.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from xenoedge.bench.common import LATENCY_KEYS, STAGE_KEYS, accuracy_text, fmt

__all__ = [
    "CSV_COLUMNS",
    "host_line",
    "print_settings",
    "print_summary",
    "print_table",
    "write_csv",
    "write_json",
    "write_plot",
]

#: Fixed CSV columns (units in the names).
CSV_COLUMNS = (
    "model", "mode", "scenario", "target", "runtime", "precision", "device", "status", "baseline", "shape",
    "nireq", "nstreams", "count", "duration_s", "throughput_fps", "fps_ratio",
    *(f"latency_{k}_ms" for k in LATENCY_KEYS), "latency_ratio", "latency_percentile", "latency_pct_ms",
    "load_ms", "open_ms", "bind_ms", "first_inference_ms", "start_ms", "first_mask_ms",
    "cpu_util", "rss_mb", "rss_growth_mb", "peak_rss_mb", "peak_rss_alone_mb",
    "selftest_agreement", "passed", "gate", "model_bytes", "effective_precision", "runtime_version", "threads",
    "cache",
    *(f"stage_{k}_median_ms" for k in STAGE_KEYS), *(f"stage_{k}_p95_ms" for k in STAGE_KEYS),
    "bytes_per_mask", "link_bytes_per_s", "link_utilisation", "masks_received", "engine_fps", "pipeline_vs_engine",
    "dsc_truth", "dsc_reference", "agreement_reference", "note",
)  # fmt: skip


# ---- files ------------------------------------------------------------------------------------


def _csv_row(r: Mapping) -> dict:
    row = {k: r.get(k) for k in CSV_COLUMNS}
    for k in ("effective_precision", "runtime_version", "threads", "cache"):
        row[k] = (r.get("settings") or {}).get(k)
    for k in LATENCY_KEYS:
        row[f"latency_{k}_ms"] = r.get("latency_ms", {}).get(k)
    for k in STAGE_KEYS:
        stage = (r.get("stages_ms") or {}).get(k) or {}
        row[f"stage_{k}_median_ms"] = stage.get("median")
        row[f"stage_{k}_p95_ms"] = stage.get("p95")
    return row


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) atomically: a half-written report never replaces a good one."""
    from xenoedge.atomic import atomic_write

    atomic_write(Path(path), lambda f: f.write(text.encode("utf-8")))


def write_csv(report: Mapping, path: Path) -> None:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in report["results"]:
        writer.writerow(_csv_row(r))
    _write_text(path, buf.getvalue())


def write_json(report: Mapping, path: Path) -> None:
    _write_text(path, json.dumps(_finite(report), indent=2, allow_nan=False) + "\n")


def _finite(obj):
    """NaN/inf -> None, recursively (JSON has no NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_plot(report: Mapping, path: Path, lat_by_config: Mapping[str, Sequence[int]]) -> str | None:
    """Latency distribution (box plot) and throughput per configuration (ratio to the baseline
    written on each bar); returns a note when skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "--plot skipped: matplotlib is not installed (pip install matplotlib)"
    names = [r["target"] for r in report["results"] if len(lat_by_config.get(r["target"], ()))]
    if not names:
        return "--plot skipped: no latencies"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.6 * len(names) + 2.5))
    data = [np.asarray(lat_by_config[n]) / 1e6 for n in names]
    try:
        ax1.boxplot(data, orientation="horizontal")  # matplotlib >= 3.10
    except TypeError:
        ax1.boxplot(data, vert=False)
    ax1.set_yticks(range(1, len(names) + 1), names)
    ax1.set_xscale("log")
    ax1.set_xlabel("latency (ms, log scale)")
    ax1.set_title("latency distribution (warm-up excluded)")
    by_name = {r["target"]: r for r in report["results"]}
    fps = [by_name[n]["throughput_fps"] for n in names]
    bars = ax2.barh(names, fps)
    for bar, n in zip(bars, names, strict=True):
        ratio = by_name[n].get("fps_ratio")
        if ratio is not None:
            ax2.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {ratio:.2f}x", va="center")
    ax2.invert_yaxis()
    ax1.invert_yaxis()
    ax2.set_xlabel(f"throughput (FPS); ratio to {report['baseline']}")
    ax2.set_title(f"{report['model']['name']}, {report['settings']['mode']} / {report['settings']['scenario']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


# ---- console ----------------------------------------------------------------------------------


_fmt = fmt


def host_line(host: Mapping) -> str:
    """One line on the machine: CPU model, cores, ISA extensions present and absent, runtime versions."""
    cpu = host.get("cpu") or {}
    isa = cpu.get("isa") or {}
    present = ", ".join(cpu.get("flags_present") or []) or "unknown"
    absent = [f for f in ("avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16") if isa.get(f) is False]
    versions = ", ".join(f"{k} {v}" for k, v in (host.get("versions") or {}).items() if v)
    ov = host.get("openvino_cpu") or {}
    caps = f"; OpenVINO CPU capabilities {', '.join(ov['optimization_capabilities'])}" if ov else ""
    return (f"CPU {cpu.get('model') or host.get('processor') or 'unknown'} ({host.get('cpu_count')} logical cores), "
            f"ISA {present}{'; no ' + ', '.join(absent) if absent else ''}{caps}; {versions}")  # fmt: skip


def print_summary(report: Mapping, console) -> None:
    """One row per configuration: pass/fail, model size, accuracy, load, first inference, median, FPS."""
    from rich.table import Table

    s = report["settings"]
    table = Table(title=f"summary: {report['model']['name']} ({s['mode']} mode, {s['scenario']})")
    for i, col in enumerate(("configuration", "device", "precision (effective)", "pass", "size MB", "accuracy",
                             "load ms", "first inf. ms", "p50 ms", "FPS", "× baseline")):  # fmt: skip
        table.add_column(col, justify="left" if i < 4 else "right")
    for r in report["results"]:
        eff = (r.get("settings") or {}).get("effective_precision")
        acc = accuracy_text(r)
        size = r.get("model_bytes")
        table.add_row(
            r["target"], str(r.get("device")), f"{r.get('precision') or '-'} ({eff or '?'})",
            "[green]pass[/]" if r.get("passed") else "[red]FAIL[/]", _fmt(size / 1e6 if size else None, ".2f"), acc,
            _fmt(r.get("load_ms")), _fmt(r.get("first_inference_ms")),
            _fmt((r.get("latency_ms") or {}).get("median"), ".2f"), _fmt(r.get("throughput_fps")),
            _fmt(r.get("fps_ratio"), ".2f") + ("*" if r.get("baseline") else ""),
        )  # fmt: skip
    console.print(table)
    failed = [f"{r['target']}: {r.get('gate')}" for r in report["results"] if not r.get("passed")]
    for line in failed:
        console.print(f"[red]failed[/]: {line}")


def print_settings(report: Mapping, console) -> None:
    """What each configuration ran with (``Engine.settings()``), the machine, and ``--profile`` tables."""
    from rich.table import Table

    console.print(host_line(report.get("host") or {}), soft_wrap=True)
    table = Table(title="effective settings")
    for col in ("configuration", "runtime", "device / providers", "threads", "hint / streams", "effective precision",
                "cache", "model files"):  # fmt: skip
        table.add_column(col)
    for r in report["results"]:
        st = r.get("settings") or {}
        providers = st.get("providers")
        where = ", ".join(providers) if providers else ", ".join(st.get("execution_devices") or []) or st.get("device")
        options = {k: v for k, v in (st.get("provider_options") or {}).items() if v}
        if options:
            where += f" {options}"
        hint = "-" if st.get("performance_hint") is None else f"{st['performance_hint']} / {st.get('streams')}"
        version = str(st.get("runtime_version") or "").split("-")[0]  # OpenVINO: 2026.4.1-22982-<hash>-releases/...
        table.add_row(r["target"], f"{st.get('runtime', r.get('runtime'))} {version}".strip(),
                      str(where), str(st.get("threads") if st.get("threads") is not None else "default"), hint,
                      str(st.get("effective_precision") or "-"), str(st.get("cache") or "-"),
                      ", ".join(r.get("model_files") or []) or "-")  # fmt: skip
    console.print(table)
    for r in report["results"]:
        prof = r.get("profile")
        if not prof:
            continue
        t = Table(title=f"profile {r['target']}: {prof['total_ms_per_frame']:.2f} ms per frame ({prof['source']})")
        for i, col in enumerate(("op type", "precision / kernel", "nodes", "ms per frame", "% of total")):
            t.add_column(col, justify="left" if i < 2 else "right")
        for row in prof["by_type"]:
            t.add_row(row["op_type"], row["precision"], str(row["nodes"]), f"{row['ms_per_frame']:.3f}",
                      f"{row['percent']:.1f}")  # fmt: skip
        console.print(t)


def print_table(report: Mapping) -> None:
    """The summary (pass/fail, size, accuracy, load, first inference, median, FPS), the detailed table
    (one row per configuration, ratio column), the effective settings and the machine, ``--profile``
    tables, then pipeline stages when measured."""
    from rich.console import Console
    from rich.table import Table
    from xenoedge.bench.common import bench_console

    console = bench_console()

    if not console.is_terminal:  # a pipe or a log: rich would wrap the columns at 80 characters
        console = Console(width=180, highlight=False)
    print_summary(report, console)
    results = report["results"]
    pct = report["settings"]["percentile"]
    s = report["settings"]
    table = Table(title=f"edge-bench {report['model']['name']} ({s['mode']} mode, {s['scenario']}; "
                        f"ratios to {report['baseline']})")  # fmt: skip
    has_dsc = any(r.get("dsc_truth") is not None or r.get("dsc_reference") is not None for r in results)
    extra_pct = pct not in (50, 99)
    columns = ["configuration", "device", "prec.", "count", "FPS", "× baseline", "p50 ms",
               *([f"p{pct:g} ms"] if extra_pct else []), "p99 ms", "first inf. ms", "CPU cores", "RSS +MB"]  # fmt: skip
    offline = s["scenario"] == "offline" and s["mode"] == "engine"
    alone = any(r.get("peak_rss_alone_mb") is not None for r in results)
    if alone:
        columns += ["peak RSS alone MB"]
    if offline:
        columns += ["nireq", "streams"]
    if has_dsc:
        columns += ["DSC truth", "DSC vs ref"]
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i < 3 else "right")
    for r in results:
        lat = r.get("latency_ms", {})
        ratio = _fmt(r.get("fps_ratio"), ".2f") + ("*" if r.get("baseline") else "")
        row = [r["target"], str(r.get("device")), r.get("precision") or "-", str(r.get("count")),
               _fmt(r.get("throughput_fps")), ratio, _fmt(lat.get("median"), ".2f"),
               *([_fmt(r.get("latency_pct_ms"), ".2f")] if extra_pct else []), _fmt(lat.get("p99"), ".2f"),
               _fmt(r.get("first_inference_ms")),
               _fmt(r.get("cpu_util"), ".2f"), _fmt(r.get("rss_growth_mb"))]  # fmt: skip
        if alone:
            row += [_fmt(r.get("peak_rss_alone_mb"), ".0f")]
        if offline:
            row += [_fmt(r.get("nireq"), "d"), _fmt(r.get("nstreams"), "d")]
        if has_dsc:
            row += [_fmt(r.get("dsc_truth"), ".3f"), _fmt(r.get("dsc_reference"), ".3f")]
        table.add_row(*row)
    console.print(table)
    print_settings(report, console)
    if any(r.get("stages_ms") for r in results):
        stages = Table(title="pipeline stages, ms per mask: median / p95")
        stages.add_column("configuration")
        for k in STAGE_KEYS:
            stages.add_column(k, justify="right")
        for col in ("bytes/mask", "link B/s", "link util.", "engine FPS", "× engine"):
            stages.add_column(col, justify="right")
        for r in results:
            st = r.get("stages_ms") or {}
            cells = [f"{_fmt((st.get(k) or {}).get('median'), '.2f')} / {_fmt((st.get(k) or {}).get('p95'), '.2f')}"
                     for k in STAGE_KEYS]  # fmt: skip
            stages.add_row(r["target"], *cells, _fmt(r.get("bytes_per_mask"), "d"),
                           _fmt(r.get("link_bytes_per_s"), ".0f"), _fmt(r.get("link_utilisation"), ".3f"),
                           _fmt(r.get("engine_fps")), _fmt(r.get("pipeline_vs_engine"), ".2f"))  # fmt: skip
        console.print(stages)
    for note in report["notes"]:
        console.print(f"[yellow]note[/]: {note}")
