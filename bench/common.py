"""What every part of ``edge-bench`` shares: its error, the run length, CPU time and latency statistics.

``xenoedge.bench.main`` (the command), ``configs``, ``measure``, ``report``, ``inputs``, ``offline``
and ``pipeline`` import these from here; this module imports none of them, so the
bench modules form no import circle.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from xenoedge.errors import XenoedgeError

__all__ = [
    "DEFAULT_TIME_S",
    "LATENCY_KEYS",
    "STAGE_KEYS",
    "BenchError",
    "accuracy_text",
    "bench_console",
    "cpu_seconds",
    "fmt",
    "latency_stats",
    "rounded",
    "run_length",
    "summarize",
]

DEFAULT_TIME_S = 10.0
LATENCY_KEYS = ("min", "median", "mean", "p90", "p95", "p99", "max")
STAGE_KEYS = ("capture", "calibrate", "infer", "encode", "link")


class BenchError(XenoedgeError):
    """Bad edge-bench input: unknown backend/device/precision/scenario, a shape or target the model lacks."""


def run_length(niter: int | None, time_s: float | None) -> tuple[int, float]:
    """(minimum iterations, minimum seconds) per configuration: ``DEFAULT_TIME_S`` when neither is given.

    >>> run_length(None, None), run_length(5, None), run_length(5, 2.0)
    ((0, 10.0), (5, 0.0), (5, 2.0))
    """
    if niter is None and time_s is None:
        time_s = DEFAULT_TIME_S
    return niter or 0, time_s or 0.0


def cpu_seconds() -> float:
    """CPU seconds (user + system) this process has used: all its threads, the runtimes' pools included."""
    t = os.times()
    return t.user + t.system


def latency_stats(lat_ns: Sequence[int], percentile: float) -> dict[str, float]:
    """Latency statistics in ms of per-iteration times in ns.

    >>> latency_stats([1_000_000, 2_000_000, 3_000_000], 50)["median"]
    2.0
    """
    if not len(lat_ns):
        return {**dict.fromkeys(LATENCY_KEYS, math.nan), "pct": math.nan}
    ms = np.asarray(lat_ns, dtype=np.float64) / 1e6
    out = {"min": ms.min(), "median": np.median(ms), "mean": ms.mean(), "max": ms.max()}
    for p in (90, 95, 99):
        out[f"p{p}"] = np.percentile(ms, p)
    out["pct"] = np.percentile(ms, percentile)
    return {k: round(float(v), 4) for k, v in out.items()}


def summarize(lat_ns: Sequence[int], wall_ns: int, cpu_s: float, percentile: float) -> dict:
    """count, duration_s, throughput_fps, latency_ms {...}, cpu_util of one configuration."""
    duration_s = wall_ns / 1e9
    stats = latency_stats(lat_ns, percentile)
    pct = stats.pop("pct")
    return {
        "count": len(lat_ns),
        "duration_s": round(duration_s, 4),
        "throughput_fps": round(len(lat_ns) / duration_s, 3) if duration_s > 0 else math.nan,
        "latency_ms": stats,
        "latency_percentile": percentile,
        "latency_pct_ms": pct,
        "cpu_util": round(cpu_s / duration_s, 3) if duration_s > 0 else math.nan,
    }


def rounded(x: float | None, n: int = 1) -> float | None:
    """``round(x, n)``, None stays None."""
    return None if x is None else round(x, n)


def fmt(value, spec: str = ".1f", none: str = "-") -> str:
    """``format(value, spec)`` for tables; None and NaN print as ``none``.

    >>> fmt(3.14159, ".2f"), fmt(None), fmt(float("nan"))
    ('3.14', '-', '-')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return none
    return format(value, spec)


def bench_console():
    """The console edge-bench prints its tables and progress on (stderr: stdout stays for --json)."""
    global _CONSOLE
    if _CONSOLE is None:
        from rich.console import Console

        _CONSOLE = Console(stderr=True)
    return _CONSOLE


_CONSOLE = None


def accuracy_text(result: dict) -> str:
    """A report row's accuracy for the summary tables: DSC against the truth, else the self-test agreement."""
    if result.get("dsc_truth") is not None:
        return f"DSC {result['dsc_truth']:.3f}"
    if result.get("selftest_agreement") is not None:
        return f"self-test {result['selftest_agreement']:.3f}"
    return "-"
