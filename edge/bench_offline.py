"""``edge-bench --scenario offline``: several requests in flight, like benchmark_app's throughput mode.

- OpenVINO: the target's model compiled again with ``PERFORMANCE_HINT`` (``-hint``,
  default THROUGHPUT), ``NUM_STREAMS`` (``-nstreams``) and ``INFERENCE_NUM_THREADS``
  (``--threads``), run through an ``AsyncInferQueue`` of ``-nireq`` requests (default: the
  plugin's ``OPTIMAL_NUMBER_OF_INFER_REQUESTS``), each request with its own input tensor.
- ONNX Runtime (decision, docs/bench.md): ``-nireq`` threads (default: the CPU count) calling
  ``InferenceSession.run`` on one shared session concurrently (thread-safe; it releases the
  GIL), each with its own input arrays. Intra-op threads per run: ``--threads``, else
  CPU count // nireq (at least 1), so the requests do not oversubscribe the cores.
  ``-nstreams`` has no ONNX Runtime equivalent and is noted, not applied.
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

import numpy as np

from edge.bench_common import cpu_seconds

__all__ = ["OrtOffline", "OvOffline", "offline_runner"]


class _Offline:
    def __init__(self) -> None:
        self.lat_ns: list[int] = []
        self.info: dict = {}

    def close(self) -> None:
        pass


class OvOffline(_Offline):
    """An AsyncInferQueue over the OpenVINO target of ``engine`` with ``inputs`` (graph name -> array)."""

    def __init__(self, engine, inputs: Mapping[str, np.ndarray], *, nireq, hint, nstreams, threads):
        import openvino as ov

        super().__init__()
        core = ov.Core()
        model = core.read_model(str(engine.model_path))
        if any(port.get_partial_shape().is_dynamic for port in model.inputs):
            model.reshape({k: list(v.shape) for k, v in inputs.items()})
        config = {"PERFORMANCE_HINT": (hint or "throughput").upper()}
        if nstreams:
            config["NUM_STREAMS"] = str(nstreams)
        if threads:
            config["INFERENCE_NUM_THREADS"] = str(threads)
        if engine.precision == "fp32" and engine.device == "CPU":
            config["INFERENCE_PRECISION_HINT"] = "f32"  # as the engine does (no bf16 on AMX CPUs)
        self.compiled = core.compile_model(model, engine.device, config)
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
                     "hint": config["PERFORMANCE_HINT"].lower()}  # fmt: skip

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
    """``nireq`` threads running one ONNX Runtime session concurrently (see the module docstring)."""

    def __init__(self, engine, inputs: Mapping[str, np.ndarray], *, nireq, hint, nstreams, threads):
        import onnxruntime as ort

        super().__init__()
        nireq = nireq or os.cpu_count() or 1
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or max(1, (os.cpu_count() or 1) // nireq)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(engine.model_path), options, providers=engine.providers)
        self.feeds = [{k: np.array(v, copy=True) for k, v in inputs.items()} for _ in range(nireq)]
        self.nireq = nireq
        self.info = {"nireq": nireq, "nstreams": None, "hint": hint, "intra_op_threads": options.intra_op_num_threads}

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
            run, lat = self.session.run, self.lat_ns
            while take():
                t0 = clock()
                run(["classes"], feeds)
                lat.append(clock() - t0)

        threads = [threading.Thread(target=worker, args=(f,), daemon=True) for f in self.feeds]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return clock() - start, cpu_seconds() - cpu0

    def close(self) -> None:
        self.session = None


def offline_runner(engine, inputs: Mapping[str, np.ndarray], **kw) -> _Offline | None:
    """The offline runner for ``engine``'s runtime, or None (PyTorch: single-stream only)."""
    if engine.runtime != "torch":
        inputs = engine.graph_inputs(inputs)  # references pooled for an edge-first graph
    if engine.runtime == "openvino":
        return OvOffline(engine, inputs, **kw)
    if engine.runtime in ("onnxruntime", "tensorrt"):
        return OrtOffline(engine, inputs, **kw)
    return None
