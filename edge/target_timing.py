"""Which of a bundle's targets is fastest on this device, measured here and remembered.

A bundle's ``rank`` is the export host's measurement (docs/export.md): on a device with another
kind of CPU the order can be wrong (OpenVINO INT8 ranks first when built on a CPU with AVX-512
BF16, ONNX Runtime FP32 is faster on an AVX2-only one). With ``EngineOptions(target_order=
"measured")`` ``open_engine`` asks ``measured_order``: every runnable target is opened in turn
(one at a time, so the device never holds two), fed the bundle's self-test frame tiled to full
size, warmed up and timed; the medians are written to ``<cache_dir>/target-times/<key>.json``
so that later starts on the same device and bundle read them instead of measuring again. The key
is a hash of the bundle's targets (their files' SHA-256) and of this CPU (model, flags, core
count) and the thread setting: another bundle, CPU or thread count measures afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from xenoedge.edge.engine_base import Engine, EngineOptions
from xenoedge.edge.host_cpu import cpu_info

from xenoedge.atomic import atomic_write
from xenoedge.errors import XenoedgeError

__all__ = ["TIMING_RUNS", "feed_selftest", "measured_order", "timing_cache_path"]

log = logging.getLogger(__name__)

TIMING_RUNS = 7  # timed inferences per target (median); after WARMUP_RUNS untimed ones
WARMUP_RUNS = 2


def measured_order(
    folder: Path,
    manifest: Mapping,
    candidates: Sequence[tuple[str, list[str]]],
    options: EngineOptions,
    open_target: Callable[[str, list[str]], Engine],
) -> list[str]:
    """Target names of ``candidates`` ((name, devices) as ``engine_candidates`` gives them),
    fastest first by median latency on this device: from the cache when it holds this bundle
    and CPU, else measured now (and cached when ``options.cache_dir`` is set). A target that
    fails to open or run is left out (``open_engine`` still tries it last)."""
    cache = timing_cache_path(options.cache_dir, manifest, options) if options.cache_dir else None
    times = _read_cache(cache, [name for name, _ in candidates]) if cache else None
    if times is None:
        from xenoedge.export.bundle import load_selftest

        selftest = load_selftest(folder, manifest)  # one frame for every target
        times = {}
        for name, devices in candidates:
            try:
                times[name] = _median_ms(open_target(name, devices), selftest)
            except XenoedgeError as exc:  # the target does not open or run here
                log.warning("target %s not timed: %s", name, exc)
        if cache is not None and times:
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(cache, lambda f: f.write(json.dumps({"median_ms": times}, indent=1).encode()))
        log.info("targets timed on this device (median ms): %s", times)
    return sorted(times, key=times.__getitem__)


def timing_cache_path(cache_dir: Path, manifest: Mapping, options: EngineOptions) -> Path:
    """``<cache_dir>/target-times/<key>.json`` for this bundle's targets, this CPU and options."""
    identity = {
        "targets": manifest["targets"],
        "cpu": {**cpu_info(), "machine": platform.machine(), "cores": os.cpu_count()},
        "threads": options.threads,
        "ort_providers": list(options.ort_providers),
        "openvino_device": options.openvino_device,
        "openvino_precision_hint": options.openvino_precision_hint,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return Path(cache_dir) / "target-times" / f"{key}.json"


def _read_cache(path: Path, names: list[str]) -> dict[str, float] | None:
    """The cached medians when the file is readable and covers exactly ``names``; None otherwise
    (missing, unreadable or from another set of targets: measure again)."""
    try:
        times = json.loads(path.read_text())["median_ms"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(times, dict) or sorted(times) != sorted(names):
        return None
    if not all(isinstance(v, (int, float)) and v > 0 for v in times.values()):
        return None
    return {name: float(v) for name, v in times.items()}


def feed_selftest(engine: Engine, selftest) -> None:
    """Bind the self-test's references (raw bundles) and put its input, tiled to the full frame,
    in ``engine.input_buffer``: what a timing of the engine runs on."""
    from xenoedge.export.bundle import tile_to

    if engine.variant == "raw":
        engine.bind_references(selftest.inputs["dark"], selftest.inputs["gain"])
    engine.input_buffer[...] = tile_to(selftest.inputs[engine.input_name], engine.input_shape)


def _median_ms(engine: Engine, selftest) -> float:
    """Median latency of ``engine`` (closed afterwards) on the self-test frame tiled to full size."""
    try:
        feed_selftest(engine, selftest)
        engine.warm_up(WARMUP_RUNS)
        values = []
        for _ in range(TIMING_RUNS):
            start = time.perf_counter()
            engine.infer()
            values.append((time.perf_counter() - start) * 1e3)
        return round(statistics.median(values), 3)
    finally:
        engine.close()
