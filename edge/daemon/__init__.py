"""The device daemon: camera frames in, calibration, inference, masks out to a sink.

Pipeline (docs/daemon.md)::

    capture thread --(bounded queue, drop-oldest)--> worker: check frame -> calibrate/bind
        -> engine.infer -> sink.send("mask", ...) ; every status_interval_s sink.send("status", ...)

Start-up, in order, before anything is reported ready: verify and unpack the bundle (hashes,
and the signature when a public key is configured), refuse a bundle for another sensor
signature, open the engine, warm it up on the bundle's golden input and run the self-test,
open the camera, load (or, for a simulated camera, capture) the references, bind them. Then
``ready_callback`` / systemd ``READY=1``. ``WATCHDOG=1`` goes out from the frame loop itself.

The daemon is three parts, one module each, composed here by ``Daemon`` (which owns them, the
start-up order, maintenance mode's end and the order of shutdown):

- ``xenoedge.edge.daemon.pipeline``: the frame pipeline (camera, capture thread, drop-oldest queue, frame
  loop, references from camera or store, statistics, status, link health, events to the sink);
- ``xenoedge.edge.daemon.models``: the model manager (bundle or A/B slot, engine, self-test, references
  bound to the engine, maintenance mode, hot swap, probation);
- ``xenoedge.edge.daemon.control``: the control channel (flashing requests and replies over the link,
  HELLO and INFO).

``xenoedge.edge.daemon.events`` holds what they share (errors, ``DaemonStats``, ``Events`` to the sink);
``xenoedge.edge.daemon.main`` holds the entry points: ``run_daemon``, ``daemon_main``, ``StopSignals``.

Public entry points: ``Daemon(config, sink)`` (``start``, ``run(max_frames)``, ``stop``,
``request_reload``, ``reload_references``, ``close``) and ``run_daemon(config, sink=None)``,
which installs the signal handlers (SIGTERM/SIGINT: finish the frame, flush, return;
SIGHUP: reload the references) and talks to systemd.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xenoedge.calibration.references import References
from xenoedge.edge.config import DaemonConfig
from xenoedge.edge.daemon.control import ControlChannel
from xenoedge.edge.daemon.events import DaemonError, DaemonStats, Events, StartupInterrupted, mean_dsc
from xenoedge.edge.daemon.main import StopSignals, daemon_main, run_daemon, summary_line
from xenoedge.edge.daemon.models import SWAP_TIMEOUT_S, ModelManager
from xenoedge.edge.daemon.pipeline import HELLO_EVERY_STATUSES, DropOldestQueue, FramePipeline, can_flash_over_link
from xenoedge.edge.engines import Engine
from xenoedge.edge.sdnotify import SdNotifier

from xenoedge.sensors import SensorProfile

__all__ = [
    "HELLO_EVERY_STATUSES",
    "SWAP_TIMEOUT_S",
    "Daemon",
    "DaemonError",
    "DaemonStats",
    "DropOldestQueue",
    "StartupInterrupted",
    "StopSignals",
    "daemon_main",
    "mean_dsc",
    "run_daemon",
    "summary_line",
]


class Daemon:
    """One camera, one bundle, one sink. See the module docstring for the order of start-up.

    ``camera``: an unopened camera (default: ``camera_from_spec(config.camera, sensor)``);
    ``clock``: monotonic seconds (injected in tests); ``ready_callback``: called once when ready
    (after the self-test); ``notifier``: systemd notifier (default: none).
    """

    def __init__(
        self,
        config: DaemonConfig,
        sink: Any,
        *,
        camera: Any | None = None,
        clock: Callable[[], float] = time.monotonic,
        ready_callback: Callable[[], None] | None = None,
        notifier: SdNotifier | None = None,
        workdir: str | Path | None = None,
    ):
        self.config = config
        self.sink = sink
        self._clock = clock
        self._ready_callback = ready_callback
        self.notifier = notifier or SdNotifier(None)
        self._startup_steps: list[str] = []
        self.stats = DaemonStats()
        self.started = False
        self.events = Events(sink, self.stats)
        self.models = ModelManager(
            config,
            self.events,
            announce=self._send_hello,
            can_flash=lambda: can_flash_over_link(sink),
            rolled_back=self._report_rollback,
            workdir=workdir,
        )
        self.pipeline = FramePipeline(
            config,
            self.events,
            self.models,
            camera=camera,
            clock=clock,
            notifier=self.notifier,
            announce=self._send_hello,
            stopped=self._stopped_reason,
        )
        self.control = ControlChannel(config, sink, self.models, self.events, activate=self.activate_slot)

    # ---- what the parts know, read-only -------------------------------------------------------
    @property
    def camera(self) -> Any:
        return self.pipeline.camera

    @property
    def engine(self) -> Engine | None:
        return self.models.engine

    @property
    def manifest(self) -> dict | None:
        return self.models.manifest

    @property
    def sensor(self) -> SensorProfile | None:
        return self.models.sensor

    @property
    def references(self) -> References | None:
        return self.models.references

    @property
    def selftest_agreement(self) -> float | None:
        return self.models.selftest_agreement

    @property
    def store(self) -> Any:
        return self.models.store

    @property
    def slot(self) -> Any:
        return self.models.slot

    @property
    def maintenance(self) -> str | None:
        """Why the daemon runs in maintenance mode (no model, no camera; flashing only), None when serving."""
        return self.models.maintenance

    @property
    def model_id(self) -> str:
        return self.models.model_id

    @property
    def flash(self) -> Any:
        return self.control.flash

    @property
    def control_stats(self) -> Any:
        """DecoderStats of the inbound control channel, once it runs."""
        return self.control.stats

    @property
    def _capture_thread(self) -> Any:  # tests look at it
        return self.pipeline.capture_thread

    # ---- start-up ---------------------------------------------------------------------------
    def start(self) -> None:
        """Load and check everything, self-test, then report ready. Idempotent."""
        if self.started:
            return
        self._startup_steps = []
        models, pipeline = self.models, self.pipeline
        try:
            self._step(None)
            folder = models.load_bundle()
            self._step("bundle")
            if folder is None:  # maintenance mode: the slot store cannot serve a model
                self._start_maintenance()
                return
            models.attach_camera(pipeline.open_camera_object(models.sensor_name()))
            models.check_sensor()
            models.open_engine(folder)
            self._step("engine")
            models.self_test(folder)
            self._step("self-test")
            pipeline.open_camera()
            self._step("camera")
            models.install_references(pipeline.obtain_references())
            self._step("references")
        except BaseException:
            self.close()
            raise
        self.started = True
        self.stats.started_s = self._clock()
        models.begin_serving()
        self.control.start()
        self._send_hello()
        if self._ready_callback is not None:
            self._ready_callback()
        self.notifier.ready(f"running {self.model_id} on {self.engine.name}")

    def _stopped_reason(self) -> str | None:
        """Why start-up stops now (a stop was requested), or None to go on."""
        if not self.pipeline.stop_requested:
            return None
        done = ", ".join(self._startup_steps) or "nothing"
        return f"stopped during start-up (done: {done})"

    def _step(self, done: str | None) -> None:
        """Record a finished start-up step; raise ``StartupInterrupted`` when a stop was requested."""
        if done is not None:
            self._startup_steps.append(done)
        why = self._stopped_reason()
        if why is not None:
            raise StartupInterrupted(why)

    def _send_hello(self) -> None:
        self.events.send("hello", **self.control.hello())

    def _report_rollback(self, message: str, target: Any, reason: str) -> None:
        self.control.report_rollback(message, target, reason)

    # ---- maintenance mode (docs/flashing.md): no model, no camera, flashing only -------------
    def _start_maintenance(self) -> None:
        """Report ready without a model: the flashing service answers on the link, HELLO and
        ERROR say why; an install or rollback that loads ends it (``_leave_maintenance``)."""
        self.models.enter_maintenance(self.pipeline.camera)
        self.started = True
        self.stats.started_s = self._clock()
        self.control.start()
        self._send_hello()
        self.models.report_maintenance()
        if self._ready_callback is not None:
            self._ready_callback()
        self.notifier.ready(f"maintenance mode: {self.maintenance}")

    def _leave_maintenance(self, slot: Any) -> dict:
        """Start serving ``slot`` (installed or rolled back to while in maintenance mode): the
        start-up sequence from the camera on; on success the start counters are reset and the
        frame loop begins. On failure everything opened is released and maintenance goes on."""
        models, pipeline = self.models, self.pipeline
        with models.swap_lock:
            models.adopt_slot(slot)
            try:
                models.attach_camera(pipeline.open_camera_object(models.sensor_name()))
                models.check_sensor()
                models.open_engine(slot.folder)
                models.self_test(slot.folder)
                pipeline.open_camera(unless_open=True)
                models.install_references(pipeline.obtain_references())
            except BaseException:
                models.release()
                pipeline.close_camera()
                raise
            models.reset_failed_starts()
            self.control.refresh_policy()
            models.end_maintenance()
        self._send_hello()
        self.notifier.ready(f"running {self.model_id} on {self.engine.name}")
        return {"selftest": {"daemon_agreement": self.selftest_agreement, "engine": self.engine.name}}

    def activate_slot(self, slot: Any, why: str) -> dict:
        """Load ``slot`` (just installed or rolled back to) and swap it in between two frames;
        returns the daemon's self-test. Called from the flashing job thread; raises on failure.
        In maintenance mode the slot is started from scratch (camera, engine, references)."""
        if self.models.maintenance is not None:
            return self._leave_maintenance(slot)
        return self.models.activate_slot(slot, why)

    # ---- references ---------------------------------------------------------------------------
    def request_reload(self) -> None:
        """Ask for a reference reload between two frames (safe to call from a signal handler)."""
        self.pipeline.request_reload()

    def reload_references(self) -> bool:
        """Reload the references from the store now and swap them in; on failure keep the old ones,
        send an ``error`` and return False. Call between frames (the worker does, after
        ``request_reload``)."""
        return self.pipeline.reload_references()

    # ---- the frame loop -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask ``run`` to return after the current frame, or ``start`` after its current step
        (thread- and signal-safe). The request holds until ``run`` returns."""
        self.pipeline.request_stop()

    def run(self, max_frames: int | None = None) -> DaemonStats:
        """Start if needed, then process frames until ``stop()``, the camera's end, or ``max_frames``
        frames taken off the queue; flushes the sink and returns the statistics. A stop during
        start-up returns the statistics with ``stopped_during`` set (nothing served)."""
        try:
            return self._run(max_frames)
        finally:
            self.pipeline.clear_stop_request()

    def _run(self, max_frames: int | None) -> DaemonStats:
        try:
            self.start()
        except StartupInterrupted as exc:
            self.stats.stopped_during = str(exc)
            self.pipeline.update_link_stats()
            return self.stats
        if self.pipeline.stop_requested:
            self.stats.stopped_during = "stopped as start-up ended (done: all)"
        return self.pipeline.serve(max_frames)

    # ---- shutdown ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Release camera, engine, calibrator and the unpacked bundle (idempotent)."""
        self.pipeline.halt()
        self.control.close()
        self.models.close_swaps()
        self.pipeline.join_capture()
        self.pipeline.close_camera()
        self.models.close()
        self.started = False

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
