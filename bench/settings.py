"""What a configuration ran with, for ``edge-bench`` reports: host and CPU, model files, operator profile.

- ``host_info()``: the machine for a report's ``host``: platform, CPU (``cpu_info``, and OpenVINO's view of
  it), core count and affinity, Python, runtime versions, the thread variables of the environment.
- ``cpu_info()``: the CPU model and the ISA extensions that decide which kernels the runtimes
  pick (from ``/proc/cpuinfo`` on Linux: AVX2, AVX-512, VNNI, BF16, AMX, ...). OpenVINO runs
  INT8 and BF16 kernels only where the CPU has them: the same bundle runs at different speeds and
  effective precisions on an AVX2 laptop and an AMX server, and the report says which it was.
- ``model_files(path)``: the files a loaded model reads from disk (an IR's ``.xml`` and its
  ``.bin``, an ONNX file and its external data) and their bytes.
- ``profile_by_type(ops, frames)``: per-operator times (``xenoedge.edge.engines.OperatorTime``, from ONNX
  Runtime's profiler or OpenVINO's performance counters) summed by operator type and precision,
  as ms per frame and share of the total (``edge-bench --profile``).

Imports no runtime at module level (OpenVINO is asked lazily in ``openvino_cpu``).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Sequence
from pathlib import Path

from xenoedge.edge.host_cpu import ARM_ISA_FLAGS, ISA_FLAGS, cpu_info  # re-exported: the report's CPU

__all__ = [
    "ARM_ISA_FLAGS",
    "ISA_FLAGS",
    "cpu_info",
    "host_info",
    "model_files",
    "openvino_cpu",
    "profile_by_type",
]


def openvino_cpu() -> dict | None:
    """OpenVINO's view of the CPU: ``FULL_DEVICE_NAME`` and ``OPTIMIZATION_CAPABILITIES`` (e.g. FP32,
    INT8, BF16, FP16: what its CPU plugin can compute in here); None without OpenVINO."""
    try:
        import openvino as ov

        core = ov.Core()
        return {
            "full_device_name": str(core.get_property("CPU", "FULL_DEVICE_NAME")),
            "optimization_capabilities": [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")],
        }
    except Exception:  # not installed, or no CPU plugin
        return None


def model_files(path: Path | str | None) -> tuple[list[str], int | None]:
    """(file names, total bytes) of the model at ``path`` as it is read from disk: an ``.xml`` with its
    ``.bin``, an ONNX file with its external data (``<name>.data`` / ``<name>_data``), a checkpoint
    folder's ``model.pt``. (None, None)-like ([], None) when ``path`` is None or missing."""
    if path is None:
        return [], None
    path = Path(path)
    if path.is_dir():
        candidates = [path / "model.pt"]
    else:
        candidates = [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]
        if path.suffix == ".onnx":
            candidates += [path.with_name(path.name + ".data"), path.with_name(path.stem + ".onnx_data")]
    found = [p for p in candidates if p.is_file()]
    if not found:
        return [], None
    return [p.name for p in found], sum(p.stat().st_size for p in found)


def profile_by_type(ops: Iterable, frames: int | Sequence[int] = 1) -> list[dict]:
    """Operator times summed by (op type, precision): ``[{op_type, precision, nodes, calls, ms_per_frame,
    percent}]``, slowest first. ``ops``: ``OperatorTime`` records (``ms`` totals over ``frames``
    inferences; OpenVINO's counters cover one inference: ``calls`` 1, ``frames`` 1).

    >>> from types import SimpleNamespace as T
    >>> rows = profile_by_type([T(op_type="Conv", precision="f32", ms=6.0, calls=2),
    ...                         T(op_type="Conv", precision="f32", ms=2.0, calls=2),
    ...                         T(op_type="Relu", precision="f32", ms=2.0, calls=2)], frames=2)
    >>> [(r["op_type"], r["nodes"], r["ms_per_frame"], r["percent"]) for r in rows]
    [('Conv', 2, 4.0, 80.0), ('Relu', 1, 1.0, 20.0)]
    """
    frames = max(1, int(frames))
    totals: dict[tuple[str, str], list] = {}
    for op in ops:
        entry = totals.setdefault((str(op.op_type), str(op.precision)), [0.0, 0, 0])
        entry[0] += float(op.ms)
        entry[1] += 1
        entry[2] += int(op.calls)
    grand = sum(v[0] for v in totals.values())
    rows = [
        {
            "op_type": op_type,
            "precision": precision,
            "nodes": nodes,
            "calls": calls,
            "ms_per_frame": round(ms / frames, 4),
            "percent": round(100.0 * ms / grand, 2) if grand > 0 else 0.0,
        }
        for (op_type, precision), (ms, nodes, calls) in totals.items()
    ]
    rows.sort(key=lambda r: -r["ms_per_frame"])
    return rows


def host_info() -> dict:
    """The report's ``host``: platform, machine, processor, ``cpu`` (``cpu_info()``), ``openvino_cpu``, cpu_count,
    cpu_affinity, python, ``versions`` of onnxruntime/openvino/numpy/torch (None: not installed), ``env``
    (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS when set)."""
    from importlib import metadata

    versions = {}
    for pkg in ("onnxruntime", "openvino", "numpy", "torch"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    cpu = cpu_info()
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": cpu["model"] or platform.processor() or None,
        "cpu": cpu,
        "openvino_cpu": openvino_cpu() if versions.get("openvino") else None,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "versions": versions,
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS") if k in os.environ},
    }
