"""Run an unpacked bundle's golden self-test on this device's engine (load + infer + compare).

The same steps as the daemon's start-up self-test (edge/daemon.py ``Daemon._self_test``): the
golden inputs tiled to the graph input (``tile_to``), references bound for a raw bundle, a
warm-up, one inference, the fraction of pixels equal to the expected mask checked against the
manifest's ``selftest.min_agreement``. A dynamic-shape bundle runs at the self-test's own size.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from xenoedge.edge.flashing.errors import SelfTestFailed

from xenoedge.errors import XenoedgeError

__all__ = ["run_engine_selftest", "selftest_slot"]


def run_engine_selftest(engine, folder: Path, manifest: Mapping, *, warmup_runs: int = 0) -> float:
    """Self-test an open engine (``xenoedge.edge.engines.Engine``) on the bundle in ``folder``; returns
    the agreement (0..1). Raises ``xenoedge.export.bundle.SelftestError`` when it is below the threshold.
    ``warmup_runs``: runs before the one that counts (the daemon warms up here; an install need not)."""
    from xenoedge.export.bundle import check_selftest, load_selftest, tile_to

    selftest = load_selftest(folder, manifest)
    expected_shape = selftest.expected.shape
    cube = engine.cube_shape
    if expected_shape[1:] == cube[:2]:
        inputs = selftest.inputs
        engine.input_buffer[...] = tile_to(inputs[engine.input_name], engine.input_shape)
        if engine.variant == "raw":
            engine.bind_references(inputs["dark"], inputs["gain"])
        if warmup_runs > 0:
            engine.warm_up(warmup_runs)
        predicted = engine.infer().classes
    else:
        n, h, w = expected_shape
        c = cube[2]
        shapes = {engine.input_name: (n, h, w, c), "dark": (h, w, c), "gain": (h, w, c)}
        inputs = {k: tile_to(v, shapes[k]) for k, v in selftest.inputs.items()}
        predicted = engine.run_once(inputs)
    return check_selftest(predicted[None], selftest)


def selftest_slot(
    folder: Path,
    manifest: Mapping,
    *,
    prefer: Sequence[str] = (),
    runtimes: Sequence[str] | None = None,
    warmup_runs: int = 0,
) -> dict:
    """Open the best engine for the bundle in ``folder`` (targets whose runtime is in
    ``runtimes`` when given, ``prefer`` first) and run its self-test.

    Returns ``{"passed": True, "agreement", "min_agreement", "engine", "seconds"}``; raises
    :class:`SelfTestFailed` naming the bundle when the engine cannot load or the mask disagrees.
    """
    from xenoedge.edge.engines import open_engine

    start = time.perf_counter()
    label = f"bundle {manifest['name']} {manifest['version']}"
    if runtimes is not None:
        allowed = {n: t for n, t in manifest["targets"].items() if t["runtime"] in runtimes}
        manifest = dict(manifest, targets=allowed)
    engine = None
    try:
        shape = manifest["input"]["shape"]
        frame_hw = None
        if shape[1] is None or shape[2] is None:  # dynamic: run at the golden frame's size
            from xenoedge.export.bundle import load_selftest

            frame_hw = tuple(load_selftest(folder, manifest).expected.shape[1:3])
        engine = open_engine(folder, manifest, prefer=tuple(prefer), frame_hw=frame_hw, threads=1)
        agreement = run_engine_selftest(engine, folder, manifest, warmup_runs=warmup_runs)
        name = engine.name
    except XenoedgeError as exc:
        raise SelfTestFailed(f"{label}: self-test failed: {exc}") from exc
    except Exception as exc:  # a runtime's own error while loading or running a model
        raise SelfTestFailed(f"{label}: self-test failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if engine is not None:
            engine.close()
    return {
        "passed": True,
        "agreement": agreement,
        "min_agreement": float(manifest["selftest"]["min_agreement"]),
        "engine": name,
        "seconds": time.perf_counter() - start,
    }
