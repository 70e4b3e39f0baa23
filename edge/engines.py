"""Inference engines of the device daemon: one registry, ONNX Runtime and OpenVINO behind one class.

This module is the registry (``ENGINES``) and the choice of target (``open_engine``); it
re-exports the engines' public names, so callers import from here. The parts, one job each:
``xenoedge.edge.engine_base`` (the ``Engine`` base class, ``EngineOptions``, ``EngineError``,
``Inference``, ``OperatorTime``), ``xenoedge.edge.engine_ort`` (``OrtEngine``),
``xenoedge.edge.engine_openvino`` (``OpenVinoEngine``) and ``xenoedge.edge.engine_cache``
(the compiled-model cache folders).

The graph contract and the allocation-free per-frame path: ``xenoedge.edge.engine_base``.

Which target runs (``open_engine``): the targets of the bundle whose runtime is installed and
has a usable device here, ordered by ``prefer`` (target names or runtime names, first match
wins), then by the target's ``rank`` (written by the export where it measured the targets side
by side: fastest first), then by ``DEFAULT_RUNTIME_ORDER`` and ``DEFAULT_PRECISION_ORDER``.
Every target in a bundle passed the export accuracy gate, so the order goes for speed. With
``EngineOptions(target_order="measured")`` the targets not named in ``prefer`` are ordered by
their latency on this device instead (measured once, cached: ``xenoedge.edge.target_timing``),
for a device whose CPU differs from the export host's.

Runtime settings (OpenVINO precision hint, threads, which outputs to compute) come from
``xenoedge.export.bundle.runtime``, the one definition the export's accuracy gate uses too. The
``confidence`` output is computed only when ``EngineOptions.confidence`` asks for it (the
handheld scan does; the serial sink does not): OpenVINO compiles the model without the
confidence result, ONNX Runtime loads the target's ``model_classes_only`` file when the bundle
has one (ONNX Runtime still runs a branch whose output is not fetched).

Compiled-model caches (``EngineOptions.cache_dir``, the daemon's ``cache_dir``, by default
``<state_dir>/cache``): OpenVINO's ``CACHE_DIR`` and TensorRT's engine and timing caches, one
folder per model file (``model_cache_folder``: named by the file's SHA-256, so a new bundle
never reads an old engine and an A/B rollback finds its own still there; the least recently
used folders beyond ``CACHE_KEEP`` are removed). The first start compiles and stores, later
starts import (``Engine.cache_state``: ``"built"``, ``"loaded"`` or ``"off"``; ``load_ms`` the
wall time of the load/compile); docs/targets.md lists the measured times.

Each engine reports what it runs with (``Engine.settings()``: runtime version, providers and
their options, threads, effective precision, cache) and, with ``EngineOptions.profile``, the
time per operator (``Engine.operator_profile()``: ONNX Runtime's profiler, OpenVINO's
performance counters), which ``edge-bench --profile`` sums by operator type.

``onnxruntime`` and ``openvino`` are imported lazily, inside the functions that need them:
these modules never import torch, onnx or nncf, and importing them costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from xenoedge.edge.engine_base import (
    DEFAULT_ORT_PROVIDERS,
    OPENVINO_DEVICES,
    TARGET_ORDERS,
    Engine,
    EngineError,
    EngineOptions,
    Inference,
    OperatorTime,
)
from xenoedge.edge.engine_cache import CACHE_KEEP, model_cache_folder
from xenoedge.edge.engine_openvino import OpenVinoEngine, openvino_available, openvino_devices
from xenoedge.edge.engine_ort import OrtEngine, ort_available, ort_providers
from xenoedge.export.bundle.runtime import DEFAULT_PRECISION_ORDER, DEFAULT_RUNTIME_ORDER, target_rank

__all__ = [
    "CACHE_KEEP",
    "DEFAULT_ORT_PROVIDERS",
    "DEFAULT_PRECISION_ORDER",
    "DEFAULT_RUNTIME_ORDER",
    "ENGINES",
    "OPENVINO_DEVICES",
    "Engine",
    "EngineError",
    "EngineKind",
    "EngineOptions",
    "Inference",
    "OpenVinoEngine",
    "OperatorTime",
    "OrtEngine",
    "engine_candidates",
    "model_cache_folder",
    "open_engine",
]


@dataclass(frozen=True)
class EngineKind:
    """One manifest runtime: how to find its usable devices here and how to open it.

    ``devices(target_spec, options)`` lists the providers/devices usable here, best first
    (empty: the runtime cannot run that target here); ``open(folder, manifest, target,
    devices, options, frame_hw)`` loads it.
    """

    runtime: str
    devices: Callable[[Mapping, EngineOptions], list[str]]
    open: Callable[..., Engine]
    installed: Callable[[], tuple[str, ...]] = field(default=lambda: ())


ENGINES: dict[str, EngineKind] = {
    "onnxruntime": EngineKind(
        "onnxruntime",
        lambda spec, o: ort_providers("onnxruntime", o),
        lambda folder, m, t, devices, o, hw: OrtEngine(folder, m, t, providers=devices, options=o, frame_hw=hw),
        ort_available,
    ),
    "tensorrt": EngineKind(
        "tensorrt",
        lambda spec, o: ort_providers("tensorrt", o),
        lambda folder, m, t, devices, o, hw: OrtEngine(folder, m, t, providers=devices, options=o, frame_hw=hw),
        ort_available,
    ),
    "openvino": EngineKind(
        "openvino",
        openvino_devices,
        lambda folder, m, t, devices, o, hw: OpenVinoEngine(folder, m, t, device=devices[0], options=o, frame_hw=hw),
        openvino_available,
    ),
}


def _rank(name: str, spec: Mapping, prefer: Sequence[str]) -> tuple:
    return target_rank(name, spec, tuple(prefer))


def engine_candidates(
    manifest: Mapping, *, prefer: Sequence[str] = (), options: EngineOptions | None = None
) -> list[tuple[str, list[str]]]:
    """(target name, usable providers/devices) of every target runnable here, in the order
    ``open_engine`` tries them. Raises ``EngineError`` listing what the bundle has and what this
    device has when none can run."""
    options = options or EngineOptions()
    targets = manifest["targets"]
    ordered = sorted(targets, key=lambda n: _rank(n, targets[n], prefer))
    out = []
    for name in ordered:
        kind = ENGINES.get(targets[name].get("runtime", ""))
        if kind is None:
            continue
        devices = kind.devices(targets[name], options)
        if devices:
            out.append((name, devices))
    if not out:
        raise EngineError(_nothing_runs(manifest, options))
    return out


def _nothing_runs(manifest: Mapping, options: EngineOptions) -> str:
    has = ", ".join(
        f"{n} ({t.get('runtime')}{', ' + t['device'] if t.get('device') else ''})"
        for n, t in manifest["targets"].items()
    )
    ort = ", ".join(ort_available()) or "not installed"
    ov = ", ".join(openvino_available()) or "not installed"
    wanted = f"; OpenVINO device asked for: {options.openvino_device}" if options.openvino_device else ""
    return (
        f"no target of bundle {manifest['name']} {manifest['version']} can run on this device: the bundle has {has}; "
        f"this device has onnxruntime providers: {ort}; openvino devices: {ov}{wanted}"
    )


def open_engine(
    bundle_folder: str | Path,
    manifest: Mapping,
    *,
    prefer: Sequence[str] | None = None,
    threads: int | None = None,
    options: EngineOptions | None = None,
    frame_hw: tuple[int, int] | None = None,
) -> Engine:
    """Load the first runnable target of an extracted bundle (order: module docstring).

    ``prefer``: target or runtime names tried first, in order; ``threads`` overrides
    ``options.threads``; ``frame_hw`` the camera's (H, W) (fills dynamic dimensions and must
    equal static ones). A target that is runnable here but fails to load is skipped for the next
    one; when all fail the error names each failure.
    """
    options = options or EngineOptions()
    if threads is not None:
        options = replace(options, threads=threads)
    if options.target_order not in TARGET_ORDERS:
        raise EngineError(f"target_order must be one of {', '.join(TARGET_ORDERS)}, got {options.target_order!r}")
    prefer = tuple(prefer or ())
    candidates = engine_candidates(manifest, prefer=prefer, options=options)
    if options.target_order == "measured" and len(candidates) > 1:
        candidates = _fastest_first(Path(bundle_folder), manifest, candidates, prefer, options, frame_hw)
    failures = []
    for name, devices in candidates:
        kind = ENGINES[manifest["targets"][name]["runtime"]]
        try:
            return kind.open(Path(bundle_folder), manifest, name, devices, options, frame_hw)
        except EngineError as exc:
            if "camera delivers" in str(exc) or "dynamic input shape" in str(exc):
                raise
            failures.append(f"{name}: {exc}")
    raise EngineError(f"no target of bundle {manifest['name']} could be loaded: " + "; ".join(failures))


def _fastest_first(
    folder: Path,
    manifest: Mapping,
    candidates: list[tuple[str, list[str]]],
    prefer: Sequence[str],
    options: EngineOptions,
    frame_hw: tuple[int, int] | None,
) -> list[tuple[str, list[str]]]:
    """``candidates`` with the ``prefer`` matches kept first and the others in the order
    measured on this device (``xenoedge.edge.target_timing``)."""
    from xenoedge.edge.target_timing import measured_order

    targets = manifest["targets"]
    preferred = [c for c in candidates if _rank(c[0], targets[c[0]], prefer)[0] < len(prefer)]  # prefer matched
    others = [c for c in candidates if c not in preferred]
    timing = replace(options, profile=False)

    def open_target(name: str, devices: list[str]) -> Engine:
        return ENGINES[targets[name]["runtime"]].open(folder, manifest, name, devices, timing, frame_hw)

    order = measured_order(folder, manifest, others, timing, open_target) if len(others) > 1 else []
    others.sort(key=lambda c: order.index(c[0]) if c[0] in order else len(order))
    return preferred + others
