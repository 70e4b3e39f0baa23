"""``edge-bench`` with OpenVINO properties and several requests in flight, like benchmark_app.

One compile per configuration: a configuration that asks for OpenVINO properties (``-hint``,
``-nstreams``, or the offline scenario, whose default hint is THROUGHPUT) is opened as a
``HintedOpenVinoEngine``: the daemon's OpenVINO engine (same precision hint, threads, model
cache, tensors bound once) compiled once with ``PERFORMANCE_HINT`` / ``NUM_STREAMS`` added. Its
``load_ms`` times that compile, its first inference and single-stream runs use its request, and
the offline queue runs on the same compiled model.

- OpenVINO offline: an ``AsyncInferQueue`` of ``-nireq`` requests (default: the plugin's
  ``OPTIMAL_NUMBER_OF_INFER_REQUESTS``) on the engine's compiled model, each request with its
  own input tensor.
- ONNX Runtime offline (decision, docs/bench.md): ``-nireq`` threads (default: the CPU count)
  calling the engine's own session concurrently (``Engine.run_once``: ``InferenceSession.run``
  is thread-safe and releases the GIL), each with its own input arrays. Intra-op threads per
  run: ``--threads``, else CPU count // nireq (at least 1; ``ort_offline_threads``), given to
  the engine when it is opened, so the requests do not oversubscribe the cores. ``-nstreams``
  has no ONNX Runtime equivalent and is noted, not applied.
- PyTorch: not measured offline (the baseline is single-stream); skipped with a note.

Latency of a request: its start (after waiting for a free request: queueing is not counted) to
its completion (``perf_counter_ns``); throughput: completed requests per wall second of the
timed chunks.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
from xenoedge.bench.common import cpu_seconds
from xenoedge.edge.engines import OpenVinoEngine

__all__ = ["HintedOpenVinoEngine", "OrtOffline", "OvOffline", "offline_runner", "ort_offline_threads"]


def ort_offline_threads(nireq: int | None, threads: int | None) -> tuple[int, int]:
    """(requests, intra-op threads per request) of the ONNX Runtime offline scenario.

    >>> ort_offline_threads(2, None)[1] == max(1, (os.cpu_count() or 1) // 2), ort_offline_threads(4, 3)
    (True, (4, 3))
    """
    nireq = nireq or os.cpu_count() or 1
    return nireq, threads or max(1, (os.cpu_count() or 1) // nireq)


class HintedOpenVinoEngine(OpenVinoEngine):
    """The daemon's OpenVINO engine for a target, compiled once with ``properties`` (``PERFORMANCE_HINT``,
    ``NUM_STREAMS``) on top of the engine's own configuration (``xenoedge.export.bundle.runtime.openvino_config``:
    precision hint, threads, ``CACHE_DIR``; ``PERF_COUNT`` with ``EngineOptions.profile``), through
    ``EngineOptions.openvino_properties``. ``properties``: what it was compiled with; ``compiled``: the
    compiled model (the offline queue's).
    """

    def __init__(self, folder, manifest, target, *, device, options, frame_hw=None, properties=None):
        extra = tuple((name, str(value)) for name, value in (properties or {}).items())
        options = replace(options, openvino_properties=(*options.openvino_properties, *extra))
        super().__init__(folder, manifest, target, device=device, options=options, frame_hw=frame_hw)


class _Offline:
    def __init__(self) -> None:
        self.lat_ns: list[int] = []
        self.info: dict = {}

    def close(self) -> None:
        pass


class OvOffline(_Offline):
    """An AsyncInferQueue over a ``HintedOpenVinoEngine``'s compiled model; ``inputs``: graph name -> array."""

    def __init__(self, engine: HintedOpenVinoEngine, inputs: Mapping[str, np.ndarray], *, nireq):
        import openvino as ov

        super().__init__()
        self.compiled = engine.compiled
        nireq = nireq or int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.queue = ov.AsyncInferQueue(self.compiled, nireq)
        self._keep = []
        for request in self.queue:
            for name, array in inputs.items():
                own = np.array(array, copy=True)
                self._keep.append(own)
                request.set_tensor(name, ov.Tensor(own, shared_memory=True))
        self._done: list[None] = []  # one entry per finished callback
        self._started = 0  # requests started
        lat, done = self.lat_ns, self._done
        clock = time.perf_counter_ns

        def finished(request, started: int) -> None:  # on an OpenVINO thread, with the GIL
            lat.append(clock() - started)
            done.append(None)

        self.queue.set_callback(finished)
        self.info = {"nireq": nireq, "nstreams": int(self.compiled.get_property("NUM_STREAMS")),
                     "hint": str(self.compiled.get_property("PERFORMANCE_HINT")).lower()}  # fmt: skip

    def run(self, n_until: int, ns_until: int, wall_ns: int) -> tuple[int, float]:
        """Submit until ``n_until`` completed and ``ns_until`` ns (with ``wall_ns`` already run);
        returns (wall ns, CPU s) of this chunk."""
        clock = time.perf_counter_ns
        cpu0, start = cpu_seconds(), clock()
        submitted = len(self.lat_ns)
        queue = self.queue
        while submitted < n_until or wall_ns + (clock() - start) < ns_until:
            queue.get_idle_request_id()  # wait for a free request, so latency starts when the request does
            queue.start_async(userdata=clock())
            submitted += 1
            self._started += 1
        queue.wait_all()
        self._settle()
        return clock() - start, cpu_seconds() - cpu0

    def _settle(self, timeout_s: float = 30.0) -> None:
        """Wait until every started request's Python callback has run. ``wait_all`` can return while a
        callback still waits for the GIL; destroying the queue then (with the GIL held) deadlocks."""
        deadline = time.monotonic() + timeout_s
        while len(self._done) < self._started and time.monotonic() < deadline:
            time.sleep(0.001)  # releases the GIL to the callbacks

    def close(self) -> None:
        if self.queue is not None:
            self.queue.wait_all()
            self._settle()
            time.sleep(0.01)  # let the last callback return from Python before the queue goes
        self.queue = self.compiled = None


class OrtOffline(_Offline):
    """``nireq`` threads running the engine's ONNX Runtime session concurrently (see the module docstring)."""

    def __init__(self, engine, inputs: Mapping[str, np.ndarray], *, nireq, hint, threads):
        super().__init__()
        nireq, intra = ort_offline_threads(nireq, threads)
        self.engine = engine
        self.feeds = [{k: np.array(v, copy=True) for k, v in inputs.items()} for _ in range(nireq)]
        self.nireq = nireq
        self.info = {"nireq": nireq, "nstreams": None, "hint": hint, "intra_op_threads": intra}

    def run(self, n_until: int, ns_until: int, wall_ns: int) -> tuple[int, float]:
        clock = time.perf_counter_ns
        lock = threading.Lock()
        cpu0, start = cpu_seconds(), clock()
        state = {"submitted": len(self.lat_ns)}

        def take() -> bool:
            with lock:
                if state["submitted"] < n_until or wall_ns + (clock() - start) < ns_until:
                    state["submitted"] += 1
                    return True
                return False

        def worker(feeds) -> None:
            run, lat = self.engine.run_once, self.lat_ns
            while take():
                t0 = clock()
                run(feeds)
                lat.append(clock() - t0)

        threads = [threading.Thread(target=worker, args=(f,), daemon=True) for f in self.feeds]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return clock() - start, cpu_seconds() - cpu0

    def close(self) -> None:
        self.engine = None


def offline_runner(engine, inputs: Mapping[str, np.ndarray], *, nireq, hint, threads) -> _Offline | None:
    """The offline runner on ``engine`` (a ``HintedOpenVinoEngine`` or an ONNX Runtime engine opened with
    ``ort_offline_threads``), or None (PyTorch: single-stream only)."""
    if engine.runtime != "torch":
        inputs = engine.graph_inputs(inputs)  # references pooled for an edge-first graph
    if isinstance(engine, HintedOpenVinoEngine):
        return OvOffline(engine, inputs, nireq=nireq)
    if engine.runtime in ("onnxruntime", "tensorrt"):
        return OrtOffline(engine, inputs, nireq=nireq, hint=hint, threads=threads)
    return None
