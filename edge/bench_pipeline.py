"""``edge-bench --mode pipeline``: the daemon path itself, per stage, into a real link.

Each bundle target is one run of ``edge.daemon.Daemon`` (the ``xenoedge run`` path) with stage
timing on (``DaemonStats.stage_ns``): camera (simulated, or any ``camera_from_spec`` spec such
as ``replay:FOLDER``) → calibration → inference (in-graph post-processing) → the wire protocol
(``edge.protocol.ProtocolSink``) → a link (``null``, ``file:PATH`` or ``pty``).

Stages (ms per mask, median and p95; warm-up masks left out): ``capture`` (camera read, on the
capture thread), ``calibrate`` (frame check, demosaic / calibration into the input buffer),
``infer``, ``encode`` (packet encoding: ``send`` minus the link's ``write``), ``link`` (the
link's ``write``).

Link: ``bytes_per_mask`` (median size of one MASK frame on the wire), ``link_bytes_per_s``
(bytes written per second over the timed part) and, with ``--baud``, ``link_utilisation`` =
bytes/s ÷ (baud/10) (8N1: ten line bits per byte; above 1 the line cannot keep up). With
``--link pty``, a reader thread drains the other end at baud/10 bytes per second (unpaced
without ``--baud``) and decodes it: ``masks_received`` counts MASK packets that arrived whole;
a slow reader fills the pty and the daemon's writes stall, then drop (``link_dropped_bytes``).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edge.bench import BenchError, cpu_seconds

__all__ = ["LINK_KINDS", "STAGES", "BenchSink", "PtyReader", "run_pipeline", "stage_summary"]

STAGES = ("capture", "calibrate", "infer", "encode", "link")
LINK_KINDS = ("null", "file:PATH", "pty")


class _TimedLink:
    """Wraps a link: counts bytes and ns spent in ``write``."""

    def __init__(self, link) -> None:
        self.link = link
        self.bytes = 0
        self.write_ns = 0

    def write(self, data) -> bool:
        t0 = time.perf_counter_ns()
        ok = self.link.write(data)
        self.write_ns += time.perf_counter_ns() - t0
        self.bytes += len(data)
        return ok

    def flush(self) -> None:
        flush = getattr(self.link, "flush", None)
        if flush is not None:
            flush()


class BenchSink:
    """The daemon's sink: the wire protocol over ``link_spec``, with per-mask timing and byte counts."""

    def __init__(self, link_spec: str, warmup: int, stop_after_ns: int | None = None):
        from edge.links import open_link
        from edge.protocol.sink import ProtocolSink

        kind = link_spec.partition(":")[0]
        if kind not in ("null", "file", "pty"):
            raise BenchError(f"unknown --link {link_spec!r}; available: {', '.join(LINK_KINDS)}")
        options = {"announce": lambda msg: None} if kind == "pty" else {}
        self.link = open_link(link_spec, **options)
        self.timed = _TimedLink(self.link)
        self.protocol = ProtocolSink(self.timed, device_id="edge-bench")
        self.warmup = warmup
        self.stop_after_ns = stop_after_ns
        self.daemon = None
        self.masks = 0
        self.lat_ns: list[int] = []
        self.arrivals_ns: list[int] = []
        self.encode_ns: list[int] = []
        self.link_ns: list[int] = []
        self.mask_bytes: list[int] = []
        self.bytes_at_first_timed = 0
        self.hello: dict = {}
        self.errors: list[str] = []
        self.first_mask_ns: int | None = None

    def send(self, kind: str, **fields) -> None:
        t0 = time.perf_counter_ns()
        w0, b0 = self.timed.write_ns, self.timed.bytes
        self.protocol.send(kind, **fields)
        now = time.perf_counter_ns()
        if kind == "hello":
            self.hello = {k: fields.get(k) for k in ("engine", "model_id", "width", "height")}
        elif kind == "error":
            self.errors.append(f"{fields.get('code')}: {fields.get('message')}")
        elif kind == "mask":
            self.masks += 1
            if self.first_mask_ns is None:
                self.first_mask_ns = now
            if self.masks > self.warmup:
                if not self.arrivals_ns:
                    self.bytes_at_first_timed = b0
                write = self.timed.write_ns - w0
                self.link_ns.append(write)
                self.encode_ns.append(now - t0 - write)
                self.mask_bytes.append(self.timed.bytes - b0)
                self.lat_ns.append(int(fields["latency_ms"] * 1e6))
                self.arrivals_ns.append(now)
                if self.stop_after_ns is not None and self.daemon is not None:
                    if now - self.arrivals_ns[0] >= self.stop_after_ns:
                        self.daemon.stop()

    def flush(self) -> None:
        self.protocol.flush()

    def close(self) -> None:
        self.link.close()


class PtyReader:
    """Drains the slave end of a pty link at ``baud``/10 bytes per second (None: as fast as it can),
    decoding the stream; ``masks`` counts whole MASK packets received."""

    def __init__(self, slave_path: str, baud: int | None):
        from edge.protocol import StreamDecoder

        self.fd = os.open(slave_path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        self.rate = baud / 10.0 if baud else None
        self.decoder = StreamDecoder()
        self.masks = self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edge-bench-pty-reader", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        import select

        from edge.protocol.packets import PacketType

        chunk = 4096 if self.rate is None else max(1, min(4096, int(self.rate / 100)))  # ~10 ms of line time
        started = time.monotonic()
        while not self._stop.is_set():
            if self.rate is not None:
                due = started + self.bytes / self.rate  # pace: never ahead of the line rate
                if due > time.monotonic() and self._stop.wait(due - time.monotonic()):
                    break
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.fd, chunk)
            except BlockingIOError:
                continue
            except OSError:
                break
            self.bytes += len(data)
            for packet in self.decoder.feed(data):
                if packet.type == PacketType.MASK:
                    self.masks += 1

    def drain(self, expected_bytes: int, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until ``expected_bytes`` have been read."""
        deadline = time.monotonic() + timeout_s
        while self.bytes < expected_bytes and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        os.close(self.fd)


def stage_summary(values_ns, warmup: int = 0) -> dict | None:
    """{median, p95, mean} in ms of per-mask durations (ns), the first ``warmup`` left out."""
    ms = np.asarray(list(values_ns)[warmup:], dtype=np.float64) / 1e6
    if not ms.size:
        return None
    return {
        "median": round(float(np.median(ms)), 4),
        "p95": round(float(np.percentile(ms, 95)), 4),
        "mean": round(float(ms.mean()), 4),
    }


def run_pipeline(bundle: Path, manifest: Mapping, target: str, settings, summarize) -> dict:
    """One daemon run of ``target``; returns the result fields (the engine-mode ones plus stages, link)."""
    from edge.config import DaemonConfig
    from edge.daemon import Daemon
    from edge.device_cli import DEFAULT_BUNDLES

    sensor = manifest["sensor"]["name"]
    sim_cameras = {sensor_name: camera for camera, sensor_name in DEFAULT_BUNDLES.values()}  # the default camera
    camera = settings.camera or sim_cameras.get(sensor)
    if camera is None:
        raise BenchError(f"no simulated camera for sensor {sensor!r}; give --camera (e.g. replay:FOLDER)")
    time_s, niter = settings.time_s, settings.niter
    if niter is None and time_s is None:
        time_s = 10.0
    config = DaemonConfig(
        bundle=bundle, camera=camera, seed=settings.seed, prefer=(target,), threads=settings.threads,
        warmup_runs=max(1, settings.warmup), sink="null", references=settings.references,
    )  # fmt: skip
    sink = BenchSink(settings.link, settings.warmup, int(time_s * 1e9) if time_s and not niter else None)
    reader = PtyReader(sink.link.slave_path, settings.baud) if settings.link == "pty" else None
    t0 = time.perf_counter_ns()
    try:
        with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp, Daemon(config, sink, workdir=tmp) as daemon:
            sink.daemon = daemon
            daemon.start()
            daemon.stats.stage_ns = {}
            t_ready = time.perf_counter_ns()
            cpu0 = cpu_seconds()
            stats = daemon.run(max_frames=settings.warmup + niter if niter else None)
            cpu_s, run_ns = cpu_seconds() - cpu0, time.perf_counter_ns() - t_ready
    finally:
        if reader is not None:  # what is still in the pty reaches the reader at its pace (at most 5 s more)
            pending = sink.timed.bytes - sink.link.stats.dropped_bytes
            reader.drain(pending, min(5.0, 0.5 + (pending - reader.bytes) / reader.rate if reader.rate else 0.5))
            reader.close()
        link_stats = sink.link.stats
        sink.close()
    arrivals = sink.arrivals_ns
    wall = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0
    res = summarize(sink.lat_ns, wall, cpu_s * wall / max(1, run_ns), settings.percentile)
    if wall > 0:
        res["throughput_fps"] = round((len(arrivals) - 1) / (wall / 1e9), 3)
    stages = stats.stage_ns or {}
    w = settings.warmup
    res["stages_ms"] = {
        "capture": stage_summary(stages.get("capture", []), w),
        "calibrate": stage_summary(stages.get("calibrate", []), w),
        "infer": stage_summary(stages.get("infer", []), w),
        "encode": stage_summary(sink.encode_ns),
        "link": stage_summary(sink.link_ns),
    }
    timed_bytes = sink.timed.bytes - sink.bytes_at_first_timed
    bytes_per_s = timed_bytes / (wall / 1e9) if wall > 0 else None
    res.update(
        device=(sink.hello.get("engine") or "").rpartition("/")[2],
        engine=sink.hello.get("engine"),
        load_ms=round((t_ready - t0) / 1e6, 3),
        first_inference_ms=round(((sink.first_mask_ns or t_ready) - t0) / 1e6, 3),
        camera=camera,
        link=settings.link,
        baud=settings.baud,
        bytes_per_mask=int(np.median(sink.mask_bytes)) if sink.mask_bytes else None,
        link_bytes_per_s=round(bytes_per_s, 1) if bytes_per_s is not None else None,
        link_utilisation=round(bytes_per_s / (settings.baud / 10), 4) if bytes_per_s and settings.baud else None,
        link_dropped_bytes=link_stats.dropped_bytes,
        masks_received=reader.masks if reader is not None else None,
        daemon_fps=round(stats.fps, 3),
        dropped=stats.dropped,
        errors=dict(stats.errors),
    )
    if sink.hello.get("engine") and not str(sink.hello["engine"]).startswith(target + " "):
        res["note"] = f"the daemon fell back to {sink.hello['engine']}"
    return res
