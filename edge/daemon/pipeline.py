"""The frame pipeline: camera -> calibration -> engine -> sink, one frame at a time.

Owns the camera, the capture thread and its drop-oldest queue, the frame loop (check a frame,
feed it into the engine's input buffer, infer, send the mask), the calibration references as
they come from the camera or the references store (``obtain_references``), the maintenance
loop (status and watchdog without a model), the counts in ``DaemonStats``, the status packets
and the link's health.

It talks to: the model manager (``xenoedge.edge.daemon.models.ModelManager``) through the small
``ModelSource`` interface below (the engine, sensor and calibrator serving now; the hot swap
and the probation between two frames); the sink and the systemd notifier; an ``announce``
callback that sends a HELLO (built by the control channel); ``xenoedge.edge.daemon.events`` (errors,
statistics, ``Events`` to the sink). It imports nothing from the model manager or the control
channel.

Why one file (~650 lines): the frame loop, its capture thread and drop-oldest queue, and the
link-health counts run on the same frames under the same stop flag; the model manager and the
control channel, which have their own ideas, are already apart (``models.py``, ``control.py``).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from xenoedge.calibration.references import References
from xenoedge.edge.config import DaemonConfig
from xenoedge.edge.daemon.events import DaemonError, DaemonStats, Events, StartupInterrupted, mean_dsc
from xenoedge.edge.engines import Engine, EngineError
from xenoedge.edge.sdnotify import SdNotifier

from xenoedge.errors import CameraError, CameraExhaustedError, XenoedgeError
from xenoedge.sensors import SensorProfile, get_sensor

__all__ = [
    "HELLO_EVERY_STATUSES",
    "IDLE_POLL_S",
    "DropOldestQueue",
    "FramePipeline",
    "ModelSource",
    "StopAwareCamera",
    "can_flash_over_link",
    "protocol_sink",
]

log = logging.getLogger("xenoedge.daemon")

#: Camera retry back-off: first wait, factor, longest wait (seconds); reopen after this many failures.
RETRY_INITIAL_S, RETRY_FACTOR, RETRY_MAX_S, REOPEN_AFTER = 0.05, 2.0, 5.0, 2
#: How long the worker waits for a frame before it looks at status, errors and the watchdog.
IDLE_POLL_S = 0.05


#: The HELLO (device, bundle, labels) is repeated with every this many status packets.
HELLO_EVERY_STATUSES = 10


class StopAwareCamera:
    """A camera seen through a stop flag: ``read``/``read_reference`` raise ``StartupInterrupted``
    once a stop is requested, so a reference capture of many frames ends within one frame."""

    def __init__(self, camera: Any, stopped: Callable[[], str | None]):
        self._camera, self._stopped = camera, stopped

    def _check(self) -> None:
        why = self._stopped()
        if why is not None:
            raise StartupInterrupted(why)

    def read(self) -> Any:
        self._check()
        return self._camera.read()

    def read_reference(self, kind: str) -> Any:
        self._check()
        return self._camera.read_reference(kind)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._camera, name)


class DropOldestQueue:
    """A bounded FIFO that never blocks the producer: when full, ``put`` drops the oldest item.

    ``dropped`` counts the items dropped. Thread-safe for one producer and one consumer.
    """

    def __init__(self, maxsize: int):
        if maxsize < 1:
            raise DaemonError(f"queue size must be >= 1, got {maxsize}")
        self._items: collections.deque = collections.deque()
        self.maxsize = maxsize
        self.dropped = 0
        self._cond = threading.Condition()

    def put(self, item: Any) -> None:
        with self._cond:
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()

    def wait_for_room(self, timeout: float) -> bool:
        """Block until the queue is not full (True) or ``timeout`` seconds pass (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._items) < self.maxsize, timeout)

    def get(self, timeout: float) -> Any | None:
        """The oldest item, or None after ``timeout`` seconds without one."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            item = self._items.popleft() if self._items else None
            self._cond.notify_all()  # a producer may be waiting for room
            return item

    def clear(self) -> None:
        with self._cond:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def protocol_sink(sink: Any) -> Any:
    """The wire-protocol sink the daemon writes to (None for a PNG/null sink)."""
    from xenoedge.edge.protocol.sink import ProtocolSink

    protocol = sink if isinstance(sink, ProtocolSink) else getattr(sink, "protocol", None)
    return protocol if isinstance(protocol, ProtocolSink) else None


def can_flash_over_link(sink: Any) -> bool:
    """The sink's link can carry flashing packets both ways (a host can flash this device)."""
    from xenoedge.edge.links.file_link import FileLink, NullLink

    protocol = protocol_sink(sink)
    if protocol is None or isinstance(protocol.link, (FileLink, NullLink)):  # no inbound channel
        return False
    return callable(getattr(protocol.link, "read", None))


class ModelSource(Protocol):
    """What the frame pipeline needs from the model manager (``xenoedge.edge.daemon.models.ModelManager``)."""

    engine: Engine | None
    sensor: SensorProfile | None
    calibrator: Any
    maintenance: str | None

    @property
    def model_id(self) -> str: ...

    @property
    def n_classes(self) -> int: ...

    def install_references(self, refs: References) -> None: ...

    def report_maintenance(self) -> None: ...

    def loop_started(self) -> None: ...

    def between_frames(self) -> None: ...

    def loop_ended(self) -> None: ...

    def mask_served(self) -> None: ...

    def engine_failed(self, reason: str) -> None: ...


class FramePipeline:
    """Camera, capture thread, queue and frame loop of one daemon (see the module docstring).

    ``models``: the model serving the frames; ``announce``: sends a HELLO; ``stopped``: why
    start-up stops now (None to go on), checked between the frames of a reference capture.
    """

    def __init__(
        self,
        config: DaemonConfig,
        events: Events,
        models: ModelSource,
        *,
        camera: Any | None,
        clock: Callable[[], float],
        notifier: SdNotifier,
        announce: Callable[[], None],
        stopped: Callable[[], str | None],
    ):
        self.config = config
        self.events = events
        self.stats = events.stats
        self.sink = events.sink
        self.models = models
        self.camera = camera
        self.notifier = notifier
        self._clock = clock
        self._announce = announce
        self._stopped = stopped
        self.queue = DropOldestQueue(config.queue_size)
        self._stop = threading.Event()
        self._stop_requested = threading.Event()  # stop(): kept until run() returns, start-up included
        self._link_state: str | None = None
        self._reload = threading.Event()
        self._capture_done = threading.Event()
        self._capture_beat = 0.0
        self.capture_thread: threading.Thread | None = None
        self._statuses_sent = 0

    # ---- stop flags ------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop the frame loop after the current frame and start-up after its current step."""
        self._stop_requested.set()
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested.is_set()

    def clear_stop_request(self) -> None:
        """``run`` returned: the next ``run`` starts afresh."""
        self._stop_requested.clear()

    def halt(self) -> None:
        """End the capture thread and the loops (``close``)."""
        self._stop.set()

    # ---- camera and references ---------------------------------------------------------------------
    def open_camera_object(self, sensor_name: str) -> Any:
        """The camera (made from ``config.camera`` for the sensor ``sensor_name`` unless one was
        given), not opened yet."""
        if self.camera is None:
            from xenoedge.devices.open_camera import camera_from_spec

            self.camera = camera_from_spec(
                self.config.camera, get_sensor(sensor_name), seed=self.config.seed, exposure_ms=self.config.exposure_ms
            )
        return self.camera

    def open_camera(self, *, unless_open: bool = False) -> None:
        if unless_open and self.camera.is_open:
            return
        self.camera.open()

    def close_camera(self) -> None:
        if self.camera is not None:
            try:
                self.camera.close()
            except Exception:
                pass

    def _may_capture(self) -> bool:
        mode = self.config.capture_references
        if mode != "auto":
            return mode == "always"
        from xenoedge.devices.simulated import SimulatedCamera

        return isinstance(self.camera, SimulatedCamera)

    def obtain_references(self) -> References:
        """The references from ``[references] path`` (checked against this camera and sensor), or,
        when that file does not exist and capture is allowed, captured now (and stored there)."""
        from xenoedge.calibration.store import load_references, save_references

        path = self.config.references
        if path is not None and Path(path).exists():
            return load_references(
                path,
                camera_id=self.camera.camera_id,
                sensor=self.models.sensor,
                exposure_ms=self.camera.exposure_ms,
                require_complete=True,
            )
        if not self._may_capture():
            where = f"{path} does not exist" if path is not None else "no references file is configured"
            raise DaemonError(
                f"no calibration references: {where}; capture them with `xenoedge calibrate dark` and "
                '`xenoedge calibrate white` (or set [references] capture = "always")'
            )
        refs = self._capture_references()
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            save_references(path, refs)
        return refs

    def _capture_references(self) -> References:
        from xenoedge.calibration.capture import capture_reference

        n = self.config.capture_frames
        sensor = self.models.sensor
        camera = StopAwareCamera(self.camera, self._stopped)  # a stop ends the capture within a frame
        dark = capture_reference(camera, "dark", n)
        dark_meta = dark.to_meta("camera")
        # the dark's mean waits on disk (memory-mapped) and its temporal noise (a cube of float32)
        # is in the meta's figures: neither is held in memory during the white's capture
        dark_mean = self.models.memory_mapped("dark-capture", dark.mean)
        del dark
        white = capture_reference(camera, "white", n)
        return References(
            self.camera.camera_id,
            sensor.name,
            sensor.signature,
            dark=dark_mean,
            white=white.mean,
            dark_meta=dark_meta,
            white_meta=white.to_meta("camera"),
        )

    def request_reload(self) -> None:
        """Ask for a reference reload between two frames (safe to call from a signal handler)."""
        self._reload.set()

    def reload_references(self) -> bool:
        """Reload the references from the store now and swap them in; on failure keep the old ones,
        send an ``error`` and return False. Call between frames (the worker does, after
        ``request_reload``)."""
        self._reload.clear()
        self.notifier.reloading()
        try:
            if self.config.references is None or not Path(self.config.references).exists():
                raise DaemonError(f"no references file to reload ({self.config.references or 'none configured'})")
            self.models.install_references(self.obtain_references())
        except XenoedgeError as exc:
            self.events.error("references", f"reload failed, keeping the previous references: {exc}")
            self.notifier.ready()
            return False
        self.notifier.ready("references reloaded")
        return True

    # ---- the frame loop -------------------------------------------------------------------------
    def serve(self, max_frames: int | None) -> DaemonStats:
        """After start-up: serve frames (or idle in maintenance mode) until stopped, the camera's
        end, or ``max_frames`` frames taken off the queue; flush the sink, return the statistics."""
        self._stop.clear()
        self._watch_link()
        if self.models.maintenance is not None and not self._maintenance_loop():
            self.events.drain()
            self.stats.elapsed_s = self._clock() - self.stats.started_s
            self._send_status(0.0)
            return self.stats
        self._capture_done.clear()
        self.queue.clear()
        self._capture_beat = self._clock()
        self.capture_thread = threading.Thread(target=self._capture_loop, name="xenoedge-capture", daemon=True)
        self.capture_thread.start()
        run_started = self._clock()
        window_start, window_masks = run_started, 0
        next_status = run_started + self.config.status_interval_s
        taken, masks_before = 0, self.stats.masks

        def masks_in_run(total: int) -> int:
            return total - masks_before

        self.models.loop_started()
        try:
            while (
                not self._stop.is_set()
                and not self._stop_requested.is_set()
                and (max_frames is None or taken < max_frames)
            ):
                self.models.between_frames()
                if self._reload.is_set():
                    self.reload_references()
                self.events.drain()
                frame = self.queue.get(IDLE_POLL_S)
                if frame is not None:
                    taken += 1
                    if self._process(frame):
                        window_masks += 1
                    self.notifier.watchdog()
                else:
                    if self._capture_done.is_set() and not len(self.queue):
                        break
                    if self._clock() - self._capture_beat < self.notifier.watchdog_period_s * 2:
                        self.notifier.watchdog()  # capture is alive (maybe retrying): not a stall
                self._watch_link()
                now = self._clock()
                if now >= next_status:
                    self._send_status(window_masks / max(now - window_start, 1e-9))
                    window_start, window_masks, next_status = now, 0, now + self.config.status_interval_s
        finally:
            self.models.loop_ended()
            self._stop.set()
            if self.capture_thread is not None:
                self.capture_thread.join(timeout=5.0)
            self.events.drain()
            now = self._clock()
            self.stats.elapsed_s = now - self.stats.started_s
            self._send_status(masks_in_run(self.stats.masks) / max(now - run_started, 1e-9))
            flush = getattr(self.sink, "flush", None)
            if flush is not None:
                try:
                    flush()
                except Exception:
                    self.events.count("sink")
            self.update_link_stats()
        return self.stats

    def join_capture(self) -> None:
        """Wait (up to 5 s) for a capture thread still running (``close``)."""
        if self.capture_thread is not None and self.capture_thread.is_alive():
            self.capture_thread.join(timeout=5.0)

    def _maintenance_loop(self) -> bool:
        """Idle without camera or model: status packets, watchdog, events. True when a flashed
        (or rolled-back-to) model ended maintenance mode, False when stopped."""
        next_status = self._clock() + self.config.status_interval_s
        while not self._stop.is_set():
            self.events.drain()
            if self.models.maintenance is None:
                return True
            self.notifier.watchdog()
            now = self._clock()
            if now >= next_status:
                self._send_status(0.0)
                if self._statuses_sent % HELLO_EVERY_STATUSES == 0:
                    self.models.report_maintenance()
                next_status = now + self.config.status_interval_s
            self._stop.wait(IDLE_POLL_S)
        return False

    def _capture_loop(self) -> None:
        failures = 0
        # A simulator or replay makes frames when asked: wait for room rather than render frames to drop
        # (they would take the CPU the engine needs). A real-time camera's frames are dropped oldest-first.
        on_demand = bool(getattr(self.camera, "on_demand", False))
        period = 1.0 / self.config.max_fps if self.config.max_fps else 0.0
        due = time.monotonic()
        while not self._stop.is_set():
            if period:  # pace a free-running source (simulator, replay) so it does not starve the worker
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                due = max(due + period, time.monotonic())
            if on_demand and not self.queue.wait_for_room(IDLE_POLL_S):
                self._capture_beat = self._clock()  # waiting for the worker, not stalled
                continue
            self._capture_beat = self._clock()
            try:
                if not self.camera.is_open:
                    self.camera.open()
                read_started = time.perf_counter_ns()
                frame = self.camera.read()
                self.stats.record_stage("capture", time.perf_counter_ns() - read_started)
            except CameraExhaustedError as exc:
                self.events.later("camera", f"camera finished: {exc}", None)
                break
            except Exception as exc:  # CameraError, or a driver bug: retry, then reopen
                failures += 1
                wait = min(RETRY_INITIAL_S * RETRY_FACTOR ** (failures - 1), RETRY_MAX_S)
                reopen = failures >= REOPEN_AFTER
                kind = "" if isinstance(exc, CameraError) else f"{type(exc).__name__}: "
                self.events.later(
                    "camera",
                    f"camera read failed ({kind}{exc}); {'reopening' if reopen else 'retrying'} in {wait:.2f} s "
                    f"(failure {failures})",
                    None,
                )
                if reopen:
                    try:
                        self.camera.close()
                    except Exception:
                        pass
                if self._stop.wait(wait):
                    break
                continue
            failures = 0
            self.queue.put(frame)
        self._capture_done.set()

    def _process(self, frame: Any) -> bool:
        """One frame: check, feed, infer, send. False (and an ``error`` event) when skipped."""
        models = self.models
        self.stats.frames += 1
        started = time.perf_counter()
        t0 = time.perf_counter_ns()
        try:
            frame_input = self._feed(frame)
            t1 = time.perf_counter_ns()
            result = models.engine.infer(frame_input)
            t2 = time.perf_counter_ns()
        except XenoedgeError as exc:
            self.stats.skipped += 1
            self.events.error("engine" if isinstance(exc, EngineError) else "frame", str(exc), frame.index)
            if isinstance(exc, EngineError):
                models.engine_failed(f"frame {frame.index}: {exc}")
            return False
        except Exception as exc:  # a frame NumPy cannot handle: name it, skip it, keep going
            self.stats.skipped += 1
            self.events.error("frame", f"frame {frame.index}: {type(exc).__name__}: {exc}", frame.index)
            return False
        dsc = None
        if self.config.score_ground_truth and getattr(frame, "labels", None) is not None:
            if frame.labels.shape == result.classes.shape:
                dsc = mean_dsc(result.classes, frame.labels, models.n_classes)
                if dsc is not None:
                    self.stats.dsc.append(dsc)
        delivered = self.events.send(
            "mask",
            frame_index=frame.index,
            timestamp_us=frame.timestamp_us,
            classes=result.classes,
            confidence=result.confidence,
            n_classes=models.n_classes,
            model_id=models.model_id,
            latency_ms=(time.perf_counter() - started) * 1e3,
            dsc=dsc,
        )
        if self.stats.stage_ns is not None:
            self.stats.record_stage("calibrate", t1 - t0)
            self.stats.record_stage("infer", t2 - t1)
            self.stats.record_stage("send", time.perf_counter_ns() - t2)
        self.stats.masks += 1
        if delivered:
            self.stats.delivered += 1
        else:
            self.stats.lost += 1
        models.mask_served()
        return True

    def _feed(self, frame: Any) -> np.ndarray | None:
        """Check the frame and prepare the engine's input: returns a raw uint16 frame for the
        engine to read in place (``Engine.infer``), or None when the frame was written into the
        engine's input buffer (reflectance, demosaiced mosaic, converted counts); raises
        ``DaemonError`` naming the frame when it has the wrong kind, shape, dtype or values."""
        data, what = frame.data, f"frame {frame.index}"
        engine, sensor = self.models.engine, self.models.sensor
        if not isinstance(data, np.ndarray):
            raise DaemonError(f"{what}: data is {type(data).__name__}, not an array")
        if data.dtype.kind == "f":
            n_bad = data.size - int(np.count_nonzero(np.isfinite(data))) if not np.isfinite(data.sum()) else 0
            if n_bad:
                raise DaemonError(f"{what}: {n_bad} NaN/inf values; frame skipped")
        if frame.kind == "reflectance":
            if data.shape != sensor.cube_shape:
                raise DaemonError(
                    f"{what}: reflectance of shape {data.shape}, the {sensor.name} cube is {sensor.cube_shape}"
                )
            if engine.variant == "raw":
                raise DaemonError(
                    f"{what}: the camera delivered reflectance, but bundle {self.models.model_id} takes raw counts"
                )
            np.copyto(engine.input_buffer[0], data, casting="same_kind")
            return None
        # a mosaic sensor's raw frame, or its cube already demosaiced (a replayed raw cube file)
        is_cube = bool(sensor.mosaic) and data.shape == sensor.cube_shape
        if data.shape != sensor.raw_shape and not is_cube:
            raise DaemonError(f"{what}: raw frame of shape {data.shape}, {sensor.name} frames are {sensor.raw_shape}")
        if data.dtype.kind not in "ui":
            raise DaemonError(f"{what}: raw counts must be integers, got {data.dtype}")
        if data.dtype != np.uint16:
            if data.size and (int(data.min()) < 0 or int(data.max()) > 65535):
                raise DaemonError(f"{what}: raw counts outside 0..65535")
            data = data.astype(np.uint16)
        if engine.variant == "raw":
            if sensor.mosaic and not is_cube:
                from xenoedge.calibration.mosaic import cube_from_mosaic

                cube_from_mosaic(data, sensor, out=engine.input_buffer[0])
                return None
            return data  # read in place when it can be (C-contiguous uint16), else copied by the engine
        else:
            if is_cube:
                raise DaemonError(f"{what}: a demosaiced raw cube; the reflectance path calibrates mosaic frames only")
            calibrated = self.models.calibrator.process(data, what)
            np.copyto(engine.input_buffer[0], calibrated.reflectance, casting="same_kind")
        return None

    # ---- link health (docs/daemon.md, "Link states") ------------------------------------------
    def _link(self) -> Any:
        """The link under the sink (None for a PNG/null/collecting sink)."""
        protocol = protocol_sink(self.sink)
        link = protocol.link if protocol is not None else getattr(self.sink, "link", None)
        return link if isinstance(getattr(link, "state", None), str) else None

    def update_link_stats(self) -> None:
        """Copy the link's description, state and down time into the statistics."""
        link = self._link()
        if link is None:
            return
        self.stats.link = getattr(link, "description", None)
        self.stats.link_state = link.state
        self.stats.link_down_s = float(link.down_s())

    def _watch_link(self) -> None:
        """On a change of the link's state: log it, count an outage, tell systemd (STATUS=)."""
        link = self._link()
        if link is None:
            return
        state, before = link.state, self._link_state
        if state == before:
            return
        self._link_state = state
        self.update_link_stats()
        if state == "down":
            self.events.count("link")
            reason = getattr(getattr(link, "stats", None), "last_error", None)
            log.warning("xenoedge run: link %s DOWN (%s); masks are lost until it is back", link.description, reason)
        elif state == "waiting":
            log.warning("xenoedge run: link %s WAITING for its first connection", link.description)
        elif before is not None:
            log.warning(
                "xenoedge run: link %s UP again (down %.1f s in all, %d masks lost so far)",
                link.description,
                link.down_s(),
                self.stats.lost,
            )
        self.notifier.status(self._status_text(None))

    def _status_text(self, fps: float | None) -> str:
        """The systemd STATUS= line: rate, masks made / delivered / lost, and the link's state."""
        rate = f"{fps:.1f} fps, " if fps is not None else ""
        text = (
            f"{rate}{self.stats.masks} masks, {self.stats.delivered} delivered, {self.stats.lost} lost, "
            f"{self.queue.dropped} frames dropped"
        )
        link = self._link()
        if link is None:
            return text
        state = link.state
        if state == "up":
            return f"{text}; link UP"
        if state == "waiting":
            return f"link WAITING for {link.description}; {text}"
        reason = getattr(getattr(link, "stats", None), "last_error", None)
        return f"link DOWN ({reason}), down {link.down_s():.0f} s in all; {text}"

    def _send_status(self, fps: float) -> None:
        self.stats.dropped = self.queue.dropped
        self.update_link_stats()
        self._statuses_sent += 1
        if self._statuses_sent % HELLO_EVERY_STATUSES == 0:
            self._announce()  # a receiver that attaches late learns labels and model
        now = self._clock()
        self.events.send(
            "status",
            fps=float(fps),
            frames=self.stats.masks,
            dropped=self.queue.dropped,
            uptime_s=now - self.stats.started_s,
            errors=self.stats.error_total,
            error_counts=dict(self.stats.errors),
            model_id=self.models.model_id,
            queue_depth=len(self.queue),
            mean_dsc=self.stats.mean_dsc,
            masks_delivered=self.stats.delivered,
            masks_lost=self.stats.lost,
            link_state=self.stats.link_state,
            link_down_s=self.stats.link_down_s,
        )
        self.notifier.status(self._status_text(fps))
