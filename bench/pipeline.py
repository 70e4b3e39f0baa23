"""``edge-bench --mode pipeline``: the daemon path itself, per stage, into a real link.

Every bundle target is an open ``xenoedge.edge.daemon.Daemon`` (the ``xenoedge run`` path) with stage
timing on (``DaemonStats.stage_ns``): camera (simulated, or any ``camera_from_spec`` spec such
as ``replay:FOLDER``) → calibration → inference (in-graph post-processing) → the wire protocol
(``xenoedge.edge.protocol.ProtocolSink``) → a link (``null``, ``file:PATH`` or ``pty``), each target its
own sink and link. All daemons are started and warmed up first, then measured in alternating
rounds (A, B, A, B, ...; ``--rounds``) like engine mode, so drift hits all alike: a round is one
``Daemon.run`` (its capture thread starts, frames flow until the round's share of ``-niter`` /
``-t`` is done, the capture thread is joined), so only one daemon works at a time; each
result's ``rounds`` lists its rounds (``seq``: place in the alternation, start/end seconds, count, FPS).

Stages (ms per mask, median and p95 over the timed rounds): ``capture`` (camera read, on the
capture thread), ``calibrate`` (frame check, demosaic / calibration into the input buffer),
``infer``, ``encode`` (packet encoding: ``send`` minus the link's ``write``), ``link`` (the
link's ``write``).

Throughput: masks per second within rounds, (masks − 1) per round over the first-to-last-mask
span, summed over rounds (the pause between rounds and the pipeline's fill are left out).
Right after each daemon round, the same daemon's engine runs bare (``engine.infer()`` on its
input buffer, filled once with the bundle's self-test frame tiled to the frame size, as engine
mode does) for as long as the round took: ``engine_fps`` over those runs and
``pipeline_vs_engine`` = throughput ÷ ``engine_fps``, measured side by side on the same engine
in the same minutes, so a busy host hits both alike.
Link: ``bytes_per_mask`` (median size of one MASK frame on the wire), ``link_bytes_per_s``
(bytes written per second over the same spans) and, with ``--baud``, ``link_utilisation`` =
bytes/s ÷ (baud/10) (8N1: ten line bits per byte; above 1 the line cannot keep up). With
``--link pty``, a reader thread drains the other end at baud/10 bytes per second (unpaced
without ``--baud``) and decodes it: ``masks_received`` counts MASK packets that arrived whole;
a slow reader fills the pty and the daemon's writes stall, then drop (``link_dropped_bytes``).
The reader is paused while its daemon is (its line's clock stops too), so a backlog does not
drain during other targets' rounds: each line sees the time its daemon runs, as in one run.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from xenoedge.bench.common import STAGE_KEYS, BenchError, cpu_seconds, latency_stats, run_length

__all__ = [
    "LINK_KINDS",
    "STAGES",
    "BenchSink",
    "PipelineTarget",
    "PtyReader",
    "bench_pipeline",
    "pipeline_rounds",
    "stage_summary",
]

STAGES = STAGE_KEYS
LINK_KINDS = ("null", "file:PATH", "pty")
#: A timed round (``-t``) ends at the latest after ROUND_GUARD_S + ROUND_GUARD_FACTOR × its share of the
#: time, when frames fail or the camera stalls (no masks: the sink never stops it); a note names the round.
ROUND_GUARD_S = 10.0
ROUND_GUARD_FACTOR = 10.0


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
    """The daemon's sink: the wire protocol over ``link_spec``, with per-mask timing and byte counts.

    Masks before the first ``begin_round`` are warm-up (counted in ``masks``, not timed). In a
    round, the first mask starts the round's span; ``span_ns`` / ``span_bytes`` / ``intervals``
    add up first-to-last-mask time, the bytes written after the first mask and (masks − 1) over
    all rounds. With a time share, the sink stops the daemon once both minima are reached."""

    def __init__(self, link_spec: str):
        from xenoedge.edge.links import open_link
        from xenoedge.edge.protocol.sink import ProtocolSink

        kind = link_spec.partition(":")[0]
        if kind not in ("null", "file", "pty"):
            raise BenchError(f"unknown --link {link_spec!r}; available: {', '.join(LINK_KINDS)}")
        options = {"announce": lambda msg: None} if kind == "pty" else {}
        self.link = open_link(link_spec, **options)
        self.timed = _TimedLink(self.link)
        self.protocol = ProtocolSink(self.timed, device_id="edge-bench")
        self.daemon = None
        self.masks = 0
        self.lat_ns: list[int] = []
        self.encode_ns: list[int] = []
        self.link_ns: list[int] = []
        self.mask_bytes: list[int] = []
        self.hello: dict = {}
        self.errors: list[str] = []
        self.first_mask_ns: int | None = None
        self.timing = False
        self.count = self.round_count = self.intervals = 0
        self.span_ns = self.span_bytes = 0
        self._span_before = self._bytes_before = 0
        self._round_first_ns: int | None = None
        self._round_bytes0 = 0
        self._n_until = self._ns_until = 0

    def begin_round(self, n_until: int, ns_until: int) -> None:
        """Time the masks from here on; stop the daemon at ``n_until`` masks and ``ns_until`` ns in
        total when ``ns_until`` (else ``Daemon.run(max_frames)`` ends the round)."""
        self.timing = True
        self.round_count = 0
        self._round_first_ns = None
        self._span_before, self._bytes_before = self.span_ns, self.span_bytes
        self._n_until, self._ns_until = n_until, ns_until

    def round_span_ns(self) -> int:
        return self.span_ns - self._span_before

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
            if not self.timing:
                return
            write = self.timed.write_ns - w0
            self.link_ns.append(write)
            self.encode_ns.append(now - t0 - write)
            self.mask_bytes.append(self.timed.bytes - b0)
            self.lat_ns.append(int(fields["latency_ms"] * 1e6))
            self.count += 1
            self.round_count += 1
            if self._round_first_ns is None:
                self._round_first_ns, self._round_bytes0 = now, self.timed.bytes
            else:
                self.intervals += 1
                self.span_ns = self._span_before + (now - self._round_first_ns)
                self.span_bytes = self._bytes_before + (self.timed.bytes - self._round_bytes0)
            if self._ns_until and self.daemon is not None:
                if self.count >= self._n_until and self.span_ns >= self._ns_until:
                    self.daemon.stop()

    def flush(self) -> None:
        self.protocol.flush()

    def close(self) -> None:
        self.link.close()


class PtyReader:
    """Drains the slave end of a pty link at ``baud``/10 bytes per second (None: as fast as it can),
    decoding the stream; ``masks`` counts whole MASK packets received. ``pause`` / ``resume`` stop
    the line's clock: paused, it reads nothing, and the pacing resumes where it stopped."""

    def __init__(self, slave_path: str, baud: int | None):
        from xenoedge.edge.protocol import StreamDecoder

        self.fd = os.open(slave_path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        self.rate = baud / 10.0 if baud else None
        self.decoder = StreamDecoder()
        self.masks = self.bytes = 0
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._paused_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edge-bench-pty-reader", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        with self._lock:
            if self._paused_at is None:
                self._paused_at = time.monotonic()

    def resume(self) -> None:
        with self._lock:
            if self._paused_at is not None:
                self._started += time.monotonic() - self._paused_at
                self._paused_at = None

    def _loop(self) -> None:
        import select

        from xenoedge.edge.protocol.packets import PacketType

        chunk = 4096 if self.rate is None else max(1, min(4096, int(self.rate / 100)))  # ~10 ms of line time
        while not self._stop.is_set():
            with self._lock:
                paused, started = self._paused_at is not None, self._started
            if paused:
                self._stop.wait(0.01)
                continue
            if self.rate is not None:
                due = started + self.bytes / self.rate  # pace: never ahead of the line rate
                if due > time.monotonic():
                    if self._stop.wait(min(due - time.monotonic(), 0.05)):
                        break
                    continue
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


def stage_summary(values_ns) -> dict | None:
    """{median, p95, mean} in ms of per-mask durations (ns) (``common.latency_stats``); None when empty."""
    if not len(values_ns):
        return None
    stats = latency_stats(values_ns, 50)
    return {k: stats[k] for k in ("median", "p95", "mean")}


def default_camera(manifest: Mapping, camera: str | None) -> str:
    """``camera`` or the simulated camera of the bundle's sensor (``xenoedge.edge.builtin_bundles.DEFAULT_BUNDLES``)."""
    from xenoedge.edge.builtin_bundles import DEFAULT_BUNDLES

    sensor = manifest["sensor"]["name"]
    sim_cameras = {sensor_name: cam for cam, sensor_name in DEFAULT_BUNDLES.values()}
    camera = camera or sim_cameras.get(sensor)
    if camera is None:
        raise BenchError(f"no simulated camera for sensor {sensor!r}; give --camera (e.g. replay:FOLDER)")
    return camera


class PipelineTarget:
    """One bundle target as an open daemon (``xenoedge.edge.daemon.Daemon``) with its own sink, link and pty
    reader, measured in rounds: ``open`` (start + untimed warm-up), ``run_round`` (one
    ``Daemon.run``: the capture thread starts, frames flow until the round's share is done, the
    capture thread is joined, so the daemon is idle between its rounds), ``result``, ``close``."""

    def __init__(self, bundle: Path, manifest: Mapping, target: str, settings):
        self.bundle, self.manifest, self.target, self.settings = bundle, manifest, target, settings
        self.camera = default_camera(manifest, settings.camera)
        self._stack = contextlib.ExitStack()
        self.daemon = None
        self.sink: BenchSink | None = None
        self.reader: PtyReader | None = None
        self.rounds: list[dict] = []
        self.cpu_s = 0.0
        self.run_ns = 0
        self.engine_ns: list[int] = []  # bare engine.infer() times, the rounds after the daemon's
        self.start_ms = self.first_mask_ms = 0.0
        self._dropped0 = 0

    def open(self) -> None:
        """Start the daemon (timed: ``start_ms``), then ``--warmup`` untimed masks (at least one; the
        first one's time from the start: ``first_mask_ms``)."""
        from xenoedge.edge.config import DaemonConfig
        from xenoedge.edge.daemon import Daemon

        s = self.settings
        config = DaemonConfig(
            bundle=self.bundle, camera=self.camera, seed=s.seed, prefer=(self.target,), threads=s.threads,
            warmup_runs=max(1, s.warmup), sink="null", references=s.references,
        )  # fmt: skip
        try:
            self.sink = self._stack.enter_context(contextlib.closing(BenchSink(s.link)))
            if s.link == "pty":
                self.reader = self._stack.enter_context(
                    contextlib.closing(PtyReader(self.sink.link.slave_path, s.baud))
                )
            tmp = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="edge-bench-"))
            t0 = time.perf_counter_ns()
            self.daemon = self._stack.enter_context(Daemon(config, self.sink, workdir=tmp))
            self.sink.daemon = self.daemon
            self.daemon.start()
            t_ready = time.perf_counter_ns()
            self.daemon.run(max_frames=max(1, s.warmup))
            self.start_ms = round((t_ready - t0) / 1e6, 3)
            self.first_mask_ms = round(((self.sink.first_mask_ns or t_ready) - t0) / 1e6, 3)
            self.daemon.stats.stage_ns = {}  # stage timing from here on: the warm-up is left out
            self._fill_engine_input()
            self._dropped0 = self.daemon.stats.dropped
            if self.reader is not None:
                self.reader.pause()
        except BaseException:
            self.close()
            raise

    def run_round(self, index: int, seq: int, t_origin_ns: int, n_until: int, ns_until: int) -> None:
        """Round ``index`` (``seq``: its place in the whole alternation): run until this target has
        ``n_until`` timed masks and ``ns_until`` timed ns in total (both minima)."""
        sink, daemon = self.sink, self.daemon
        sink.begin_round(n_until, ns_until)
        if self.reader is not None:
            self.reader.resume()
        start = time.perf_counter_ns()
        cpu0 = cpu_seconds()
        if ns_until:  # the sink stops it once both minima are reached; the timer if masks stop coming
            guard = threading.Timer(ROUND_GUARD_S + ROUND_GUARD_FACTOR * (ns_until - sink.span_ns) / 1e9, daemon.stop)
            guard.daemon = True
            guard.start()
            try:
                daemon.run()
            finally:
                guard.cancel()
        else:
            daemon.run(max_frames=max(0, n_until - sink.count))
        cpu_s, run_ns = cpu_seconds() - cpu0, time.perf_counter_ns() - start
        if self.reader is not None:
            self.reader.pause()
        self.cpu_s += cpu_s
        self.run_ns += run_ns
        self._bare_engine(run_ns)
        span = sink.round_span_ns()
        self.rounds.append(
            {
                "round": index,
                "seq": seq,
                "start_s": round((start - t_origin_ns) / 1e9, 4),
                "end_s": round((start + run_ns - t_origin_ns) / 1e9, 4),
                "count": sink.round_count,
                "fps": round((sink.round_count - 1) / (span / 1e9), 3) if span > 0 else None,
            }
        )

    def _fill_engine_input(self) -> None:
        """The engine's input buffer holds the self-test frame tiled to the frame size (a raw cube is
        read in place by the daemon, so the buffer would otherwise hold zeros)."""
        from xenoedge.export.bundle import load_selftest, tile_to

        engine = self.daemon.engine
        if engine is not None:
            selftest = load_selftest(engine.folder, engine.manifest)
            engine.input_buffer[...] = tile_to(selftest.inputs[engine.input_name], engine.input_shape)

    def _bare_engine(self, duration_ns: int) -> None:
        """``engine.infer()`` alone, for ``duration_ns`` (at least two runs), into ``engine_ns``."""
        engine = self.daemon.engine
        if engine is None:
            return
        end = time.perf_counter_ns() + duration_ns
        runs = 0
        while runs < 2 or time.perf_counter_ns() < end:
            t0 = time.perf_counter_ns()
            engine.infer()
            self.engine_ns.append(time.perf_counter_ns() - t0)
            runs += 1

    def result(self, summarize) -> dict:
        """The result fields: the engine-mode ones over all timed rounds, plus stages, link and the
        bare engine's rate beside the pipeline's."""
        s, sink, stats = self.settings, self.sink, self.daemon.stats
        if self.reader is not None:  # what is still in the pty reaches the reader at its pace (at most 5 s more)
            self.reader.resume()
            pending = sink.timed.bytes - sink.link.stats.dropped_bytes
            rate = self.reader.rate
            self.reader.drain(pending, min(5.0, 0.5 + (pending - self.reader.bytes) / rate if rate else 0.5))
        wall = sink.span_ns
        res = summarize(sink.lat_ns, wall, self.cpu_s * wall / max(1, self.run_ns), s.percentile)
        if wall > 0:
            res["throughput_fps"] = round(sink.intervals / (wall / 1e9), 3)
        if self.engine_ns:
            res["engine_fps"] = round(len(self.engine_ns) / (sum(self.engine_ns) / 1e9), 3)
            if res.get("throughput_fps"):
                res["pipeline_vs_engine"] = round(res["throughput_fps"] / res["engine_fps"], 3)
        stages = {**(stats.stage_ns or {}), "encode": sink.encode_ns, "link": sink.link_ns}
        res["stages_ms"] = {k: stage_summary(stages.get(k, ())) for k in STAGES}
        bytes_per_s = sink.span_bytes / (wall / 1e9) if wall > 0 else None
        res.update(
            device=(sink.hello.get("engine") or "").rpartition("/")[2],
            engine=sink.hello.get("engine"),
            **self._engine_fields(),
            start_ms=self.start_ms,
            first_mask_ms=self.first_mask_ms,
            camera=self.camera,
            link=s.link,
            baud=s.baud,
            bytes_per_mask=int(np.median(sink.mask_bytes)) if sink.mask_bytes else None,
            link_bytes_per_s=round(bytes_per_s, 1) if bytes_per_s is not None else None,
            link_utilisation=round(bytes_per_s / (s.baud / 10), 4) if bytes_per_s and s.baud else None,
            link_dropped_bytes=sink.link.stats.dropped_bytes,
            masks_received=self.reader.masks if self.reader is not None else None,
            dropped=stats.dropped - self._dropped0,
            errors=dict(stats.errors),
            rounds=self.rounds,
        )
        notes = []
        if sink.hello.get("engine") and not str(sink.hello["engine"]).startswith(self.target + " "):
            notes.append(f"the daemon fell back to {sink.hello['engine']}")
        empty = [r["round"] for r in self.rounds if not r["count"]]
        if empty:  # a finite replay (no ?loop) that the warm-up or earlier rounds used up, or a stalled camera
            notes.append(f"no masks in round(s) {', '.join(map(str, empty))} of {len(self.rounds)} (camera finished?)")
        if notes:
            res["note"] = "; ".join(notes)
        return res

    def _engine_fields(self) -> dict:
        """The daemon's engine: ``load_ms`` (its compile / session creation alone), settings, model size.
        ``first_inference_ms`` is None here: the daemon runs its self-test and warm-up inside ``start``,
        so no mask is a first inference (engine mode measures it)."""
        from xenoedge.bench.settings import model_files

        engine = self.daemon.engine
        if engine is None:
            return {"load_ms": None, "first_inference_ms": None}
        files, size = model_files(engine.model_path)
        return {"load_ms": round(float(engine.load_ms), 3), "first_inference_ms": None, "model_files": files,
                "model_bytes": size, "settings": engine.settings()}  # fmt: skip

    def close(self) -> None:
        self._stack.close()


def pipeline_rounds(rounds: int, niter: int) -> int:
    """``--rounds``, at most ``niter`` / 2: a round's throughput needs two masks (one interval)."""
    return max(1, min(rounds, niter // 2 if niter else rounds))


def bench_pipeline(bundle: Path, manifest: Mapping, targets: Sequence[str], settings, summarize,
                   on_open=None) -> dict[str, tuple[dict, list[int]]]:  # fmt: skip
    """All ``targets`` as open daemons, measured in alternating rounds (A, B, A, B, ...; ``--rounds``,
    at most ``niter`` / 2); returns target -> (result fields, timed per-mask latencies in ns).
    ``on_open(target, phase)``: called with ``"before"`` / ``"after"`` around each target's start
    and warm-up (RSS accounting)."""
    niter, time_s = run_length(settings.niter, settings.time_s)
    rounds = pipeline_rounds(settings.rounds, niter)
    runs: dict[str, PipelineTarget] = {}
    with contextlib.ExitStack() as stack:
        for target in targets:
            if on_open is not None:
                on_open(target, "before")
            run = PipelineTarget(bundle, manifest, target, settings)
            run.open()
            stack.callback(run.close)
            runs[target] = run
            if on_open is not None:
                on_open(target, "after")
        origin, seq = time.perf_counter_ns(), 0
        for r in range(rounds):
            for run in runs.values():
                run.run_round(r, seq, origin, math.ceil(niter * (r + 1) / rounds), int(time_s * 1e9 * (r + 1) / rounds))
                seq += 1
        return {target: (run.result(summarize), run.sink.lat_ns) for target, run in runs.items()}
