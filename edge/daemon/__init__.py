"""The device daemon: camera frames in, calibration, inference, masks out to a sink.

Pipeline (docs/daemon.md)::

    capture thread --(bounded queue, drop-oldest)--> worker: check frame -> calibrate/bind
        -> engine.infer -> sink.send("mask", ...) ; every status_interval_s sink.send("status", ...)

Start-up, in order, before anything is reported ready: verify and unpack the bundle (hashes,
and the signature when a public key is configured), refuse a bundle for another sensor
signature, open the engine, warm it up on the bundle's golden input and run the self-test,
open the camera, load (or, for a simulated camera, capture) the references, bind them. Then
``ready_callback`` / systemd ``READY=1``. ``WATCHDOG=1`` goes out from the frame loop itself.

Public entry points: ``Daemon(config, sink)`` (``start``, ``run(max_frames)``, ``stop``,
``request_reload``, ``reload_references``, ``close``) and ``run_daemon(config, sink=None)``,
which installs the signal handlers (SIGTERM/SIGINT: finish the frame, flush, return;
SIGHUP: reload the references) and talks to systemd.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calibration.errors import CameraError, CameraExhaustedError, XenoedgeError
from calibration.references import References
from calibration.reflectance import signal_range
from calibration.sensors import SensorProfile, get_sensor
from edge.config import DaemonConfig, signature_fields
from edge.engines import DEFAULT_ORT_PROVIDERS, ENGINES, Engine, EngineError, EngineOptions, open_engine
from edge.sdnotify import SdNotifier

__all__ = [
    "Daemon",
    "DaemonError",
    "DaemonStats",
    "DropOldestQueue",
    "StartupInterrupted",
    "StopSignals",
    "daemon_main",
    "run_daemon",
    "summary_line",
]

log = logging.getLogger("xenoedge.daemon")

#: Camera retry back-off: first wait, factor, longest wait (seconds); reopen after this many failures.
RETRY_INITIAL_S, RETRY_FACTOR, RETRY_MAX_S, REOPEN_AFTER = 0.05, 2.0, 5.0, 2
#: How long the worker waits for a frame before it looks at status, errors and the watchdog.
IDLE_POLL_S = 0.05
#: Most error events kept while the worker is busy (oldest dropped beyond).
MAX_PENDING_EVENTS = 256


#: The HELLO (device, bundle, labels) is repeated with every this many status packets.
HELLO_EVERY_STATUSES = 10
#: Longest wait, seconds, for the frame loop to take a hot-swapped engine.
SWAP_TIMEOUT_S = 30.0


@dataclass
class _Loaded:
    """One loaded model: engine, its manifest, the NumPy calibrator (reflectance bundles), the
    slot it came from (None without a state folder) and its self-test agreement."""

    engine: Engine
    manifest: dict
    calibrator: Any = None
    slot: Any = None
    agreement: float | None = None

    def close(self) -> None:
        if self.calibrator is not None:
            self.calibrator.close()
        self.engine.close()


class DaemonError(XenoedgeError):
    """The daemon cannot start (no bundle, no references, failed self-test) or was used wrongly."""


class StartupInterrupted(DaemonError):
    """``stop()`` (SIGTERM, Ctrl-C) arrived during start-up; the message names the steps done."""


class _StopAware:
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


@dataclass
class DaemonStats:
    """What a run did. ``frames``: frames taken off the queue; ``masks``: masks made (sent to the
    sink); ``delivered``: masks the sink took (a link: written to it); ``lost``: masks the sink
    did not take (a link down or full); ``dropped``: frames the capture queue dropped.
    ``link``: the link's spec (None for a PNG/null sink), ``link_state`` (``up``, ``down``,
    ``waiting``), ``link_down_s``: seconds the link was down or waiting; ``stopped_during``: the
    start-up step a stop arrived in (None when start-up completed)."""

    frames: int = 0
    masks: int = 0
    delivered: int = 0
    lost: int = 0
    skipped: int = 0
    dropped: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    link: str | None = None
    link_state: str | None = None
    link_down_s: float = 0.0
    stopped_during: str | None = None
    dsc: list[float] = field(default_factory=list)
    started_s: float = 0.0
    elapsed_s: float = 0.0
    #: Per-stage durations in ns (``perf_counter_ns``), recorded only when set to a dict (``{}``)
    #: before ``run``: ``capture`` (camera read, capture thread), ``calibrate`` (check + demosaic /
    #: calibrate into the input buffer), ``infer`` (the engine, in-graph post-processing included),
    #: ``send`` (ground-truth scoring when on, and the sink's ``send`` of the mask: encoding, the link).
    #: None: nothing recorded.
    stage_ns: dict[str, list[int]] | None = None

    def record_stage(self, stage: str, ns: int) -> None:
        """Append one duration (ns) to ``stage_ns[stage]`` when stage timing is on."""
        if self.stage_ns is not None:
            self.stage_ns.setdefault(stage, []).append(ns)

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    @property
    def fps(self) -> float:
        return self.masks / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mean_dsc(self) -> float | None:
        return float(np.mean(self.dsc)) if self.dsc else None

    def as_dict(self) -> dict[str, Any]:
        """The counters as JSON-ready values (``xenoedge run --json``)."""
        return {
            "frames": self.frames,
            "masks": self.masks,
            "delivered": self.delivered,
            "lost": self.lost,
            "skipped": self.skipped,
            "dropped": self.dropped,
            "errors": dict(self.errors),
            "fps": round(self.fps, 3),
            "elapsed_s": round(self.elapsed_s, 3),
            "mean_dsc": self.mean_dsc,
            "link": self.link,
            "link_state": self.link_state,
            "link_down_s": round(self.link_down_s, 3),
            "stopped_during": self.stopped_during,
        }


def mean_dsc(predicted: np.ndarray, truth: np.ndarray, n_classes: int) -> float | None:
    """Mean DSC over the foreground classes present in ``truth`` ((H, W) ids each); None when
    the truth has only background. The project's one definition (``xeno.evaluate``: per image,
    classes present in the truth, background id 0 left out), computed here without ``xeno``.

    >>> mean_dsc(np.array([[0, 1, 1]]), np.array([[0, 1, 2]]), 3)
    0.3333333333333333
    """
    k = max(n_classes, int(predicted.max()) + 1, int(truth.max()) + 1)
    cm = np.bincount(truth.astype(np.int64).ravel() * k + predicted.ravel(), minlength=k * k).reshape(k, k)
    in_truth, in_pred = cm.sum(axis=1), cm.sum(axis=0)
    present = np.flatnonzero(in_truth[1:]) + 1
    if not present.size:
        return None
    return float(np.mean(2.0 * np.diag(cm)[present] / (in_truth[present] + in_pred[present])))


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
        self.camera = camera
        self._clock = clock
        self._ready_callback = ready_callback
        self.notifier = notifier or SdNotifier(None)
        self._workdir = workdir
        self._queue = DropOldestQueue(config.queue_size)
        self._events: collections.deque = collections.deque(maxlen=MAX_PENDING_EVENTS)
        self._stop = threading.Event()
        self._stop_requested = threading.Event()  # stop(): kept until run() returns, start-up included
        self._startup_steps: list[str] = []
        self._link_state: str | None = None
        self._reload = threading.Event()
        self._capture_done = threading.Event()
        self._capture_beat = 0.0
        self._capture_thread: threading.Thread | None = None
        self.stats = DaemonStats()
        self._statuses_sent = 0
        self.started = False
        self.engine: Engine | None = None
        self.manifest: dict | None = None
        self.sensor: SensorProfile | None = None
        self.references: References | None = None
        self.selftest_agreement: float | None = None
        self._calibrator = None
        self._tmp: Path | None = None
        # flashing (docs/upload.md): slot store, control thread, hot swap, probation
        self.store = None
        self.slot = None
        self.flash = None
        self._protocol = None
        self._control_thread: threading.Thread | None = None
        self._reply_thread: threading.Thread | None = None
        self._replies: queue.Queue = queue.Queue()  # flashing answers, written by the reply thread
        self._reply_stop = threading.Event()
        self._control_stop = threading.Event()
        self._pending_swap: tuple[_Loaded, str, threading.Event] | None = None
        self._held: _Loaded | None = None  # the previous model, kept during probation
        self._good_countdown = 0  # masks still to serve before the active slot is marked good
        self._looping = False
        self.control_stats = None  # DecoderStats of the inbound control channel, once it runs
        self._swap_lock = threading.RLock()  # pending swap and held model: frame loop vs flashing job
        #: Why the daemon runs in maintenance mode (no model, no camera; flashing only), None when serving.
        self.maintenance: str | None = None
        self._served = threading.Event()  # set when maintenance ends with a model loaded

    # ---- start-up ---------------------------------------------------------------------------
    def start(self) -> None:
        """Load and check everything, self-test, then report ready. Idempotent."""
        if self.started:
            return
        self._startup_steps = []
        try:
            self._step(None)
            folder = self._load_bundle()
            self._step("bundle")
            if folder is None:  # maintenance mode: the slot store cannot serve a model
                self._start_maintenance()
                return
            self._open_camera_object()
            self._check_sensor()
            self._open_engine(folder)
            self._step("engine")
            self._self_test(folder)
            self._step("self-test")
            self.camera.open()
            self._step("camera")
            self._install_references(self._obtain_references())
            self._step("references")
        except BaseException:
            self.close()
            raise
        self.started = True
        self.stats.started_s = self._clock()
        self._good_countdown = self.config.probation_frames if self.store is not None else 0
        self._start_control()
        self._send("hello", **self._hello())
        if self._ready_callback is not None:
            self._ready_callback()
        self.notifier.ready(f"running {self.model_id} on {self.engine.name}")

    def _stopped_reason(self) -> str | None:
        """Why start-up stops now (a stop was requested), or None to go on."""
        if not self._stop_requested.is_set():
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

    # ---- maintenance mode (docs/flashing.md): no model, no camera, flashing only -------------
    def _control_protocol(self) -> Any:
        """The wire-protocol sink the daemon writes to (None for a PNG/null sink)."""
        from edge.protocol.sink import ProtocolSink

        sink = self.sink
        protocol = sink if isinstance(sink, ProtocolSink) else getattr(sink, "protocol", None)
        return protocol if isinstance(protocol, ProtocolSink) else None

    def _can_flash_over_link(self) -> bool:
        """The sink's link can carry flashing packets both ways (a host can flash this device)."""
        from edge.links.file_link import FileLink, NullLink

        protocol = self._control_protocol()
        if protocol is None or isinstance(protocol.link, (FileLink, NullLink)):  # no inbound channel
            return False
        return callable(getattr(protocol.link, "read", None))

    def _maintenance_sensor(self) -> SensorProfile | None:
        """The camera's sensor profile without opening the camera: the given camera's, the
        config's ``sensor``, or the one the active slot's bundle was made for (None if unknown)."""
        if self.camera is not None:
            return self.camera.sensor
        name = self.config.sensor
        active = self.store.active() if self.store is not None else None
        if name is None and active is not None:
            from export.bundle import read_manifest

            try:
                name = read_manifest(active.folder)["sensor"]["name"]
            except Exception:  # a damaged slot: the INFO says the sensor is unknown
                name = None
        return get_sensor(name) if name else None

    def _start_maintenance(self) -> None:
        """Report ready without a model: the flashing service answers on the link, HELLO and
        ERROR say why; an install or rollback that loads ends it (``_leave_maintenance``)."""
        self.sensor = self._maintenance_sensor()
        self.started = True
        self.stats.started_s = self._clock()
        self._start_control()
        self._send("hello", **self._hello())
        self._report_maintenance()
        if self._ready_callback is not None:
            self._ready_callback()
        self.notifier.ready(f"maintenance mode: {self.maintenance}")

    def _report_maintenance(self) -> None:
        self._send("error", code="bundle", message=f"maintenance mode, no model served: {self.maintenance}")

    def _maintenance_loop(self) -> bool:
        """Idle without camera or model: status packets, watchdog, events. True when a flashed
        (or rolled-back-to) model ended maintenance mode, False when stopped."""
        next_status = self._clock() + self.config.status_interval_s
        while not self._stop.is_set():
            self._drain_events()
            if self.maintenance is None:
                return True
            self.notifier.watchdog()
            now = self._clock()
            if now >= next_status:
                self._send_status(0.0)
                if self._statuses_sent % HELLO_EVERY_STATUSES == 0:
                    self._report_maintenance()
                next_status = now + self.config.status_interval_s
            self._stop.wait(IDLE_POLL_S)
        return False

    def _leave_maintenance(self, slot: Any) -> dict:
        """Start serving ``slot`` (installed or rolled back to while in maintenance mode): the
        start-up sequence from the camera on; on success the start counters are reset and the
        frame loop begins. On failure everything opened is released and maintenance goes on."""
        from export.bundle import read_manifest

        with self._swap_lock:
            self.manifest, self.slot = read_manifest(slot.folder), slot
            try:
                self._open_camera_object()
                self._check_sensor()
                self._open_engine(slot.folder)
                self._self_test(slot.folder)
                if not self.camera.is_open:
                    self.camera.open()
                self._install_references(self._obtain_references())
            except BaseException:
                self._release_model()
                raise
            self.store.reset_failed_starts()
            if self.flash is not None:
                self.flash.policy = self._install_policy(self.sensor.signature)
            self._good_countdown = self.config.probation_frames
            self.maintenance = None
        self._send("hello", **self._hello())
        self.notifier.ready(f"running {self.model_id} on {self.engine.name}")
        return {"selftest": {"daemon_agreement": self.selftest_agreement, "engine": self.engine.name}}

    def _release_model(self) -> None:
        """Close engine, calibrator and camera after a failed start from maintenance mode."""
        if self._calibrator is not None:
            self._calibrator.close()
            self._calibrator = None
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        if self.camera is not None:
            try:
                self.camera.close()
            except Exception:
                pass
        self.manifest = self.slot = self.references = None
        self.selftest_agreement = None

    @property
    def model_id(self) -> str:
        return f"{self.manifest['name']}@{self.manifest['version']}" if self.manifest else ""

    def _load_bundle(self) -> Path | None:
        from export.bundle import extract_bundle, load_public_key, read_manifest

        if self.config.state_dir is not None:
            return self._load_active_slot()
        path = self.config.bundle
        if path is None:
            raise DaemonError("no bundle configured ([bundle] path in the config, or --bundle)")
        if not Path(path).is_file():
            raise DaemonError(f"{path}: no such bundle file")
        key = load_public_key(self.config.public_key) if self.config.public_key is not None else None
        self._tmp = Path(tempfile.mkdtemp(prefix="xenoedge-bundle-", dir=self._workdir))
        folder = extract_bundle(path, self._tmp / "bundle", public_key=key, require_signature=key is not None)
        self.manifest = read_manifest(folder)
        return folder

    def _install_policy(self, sensor_signature: str | None) -> Any:
        """The install checks for this device (needs the slot store: its trusted key is the policy's)."""
        from edge.flashing.install import InstallPolicy

        return InstallPolicy(
            trusted_public_key=self.store.public_key,
            allow_unsigned=self.config.allow_unsigned,
            sensor_signature=sensor_signature,
            max_bundle_bytes=self.config.max_bundle_bytes,
            prefer=tuple(self.config.prefer),
        )

    def _load_active_slot(self) -> Path | None:
        """``[flashing] state_dir``: recover the slot store, install ``[bundle] path`` as the first
        model when no slot is active, and return the active slot's folder. None: maintenance mode
        (the restart-loop cap, or no model to serve and none to install) on a link that can carry
        flashing packets; without such a link those errors are raised (exit 78 / 1)."""
        from edge.flashing.errors import FlashError, RestartLoopError
        from edge.flashing.install import install_bundle
        from edge.flashing.slots import SlotStore
        from export.bundle import BundleError, load_public_key, read_manifest

        key = load_public_key(self.config.public_key) if self.config.public_key is not None else None
        self.store = SlotStore(self.config.state_dir, public_key=key)
        try:
            notes = self.store.recover()
        except RestartLoopError as exc:
            if not self._can_flash_over_link():
                raise
            self.maintenance = str(exc)
            return None
        for note in notes:
            self._events.append(("bundle", f"slot store: {note}", None))
        active = self.store.active()
        if active is None:
            problem = None
            if self.config.bundle is None:
                problem = (
                    f"{self.config.state_dir}: no model installed and no [bundle] path to install as the first one"
                )
            else:
                sensor = get_sensor(self.config.sensor).signature if self.config.sensor else None
                try:
                    install_bundle(self.store, self.config.bundle, self._install_policy(sensor))
                except (FlashError, BundleError) as exc:
                    if not self._can_flash_over_link():
                        raise
                    problem = f"no model installed, and installing {self.config.bundle} failed: {exc}"
                active = self.store.active()
            if active is None:
                if problem is None or not self._can_flash_over_link():
                    raise DaemonError(problem or f"{self.config.state_dir}: no model installed")
                self.maintenance = problem
                return None
        self.slot = active
        self.manifest = read_manifest(active.folder)
        return active.folder

    def _open_camera_object(self) -> None:
        name = self.config.sensor or self.manifest["sensor"]["name"]
        if self.camera is None:
            from devices.open_camera import camera_from_spec

            self.camera = camera_from_spec(
                self.config.camera, get_sensor(name), seed=self.config.seed, exposure_ms=self.config.exposure_ms
            )
        self.sensor = self.camera.sensor

    def _check_sensor(self) -> None:
        from export.bundle import compatible_targets

        compatible_targets(self.manifest, sensor_signature=self.sensor.signature)

    def _open_engine(self, folder: Path) -> None:
        self.engine = self._open_engine_for(folder, self.manifest)

    def _open_engine_for(self, folder: Path, manifest: dict) -> Engine:
        options = EngineOptions(
            ort_providers=self.config.ort_providers or DEFAULT_ORT_PROVIDERS,
            openvino_device=self.config.openvino_device,
            threads=self.config.threads,
            confidence=self.config.confidence,
            cache_dir=self.config.model_cache_dir(),
        )
        h, w, c = self.sensor.cube_shape
        shape = manifest["input"]["shape"]
        if shape[3] != c:
            raise DaemonError(
                f"bundle {manifest['name']}@{manifest['version']} takes {shape[3]} bands, "
                f"the {self.sensor.name} camera has {c}"
            )
        return open_engine(folder, manifest, prefer=self.config.prefer, options=options, frame_hw=(h, w))

    def _self_test(self, folder: Path) -> None:
        self.selftest_agreement = self._selftest_engine(self.engine, folder, self.manifest)

    def _selftest_engine(self, engine: Engine, folder: Path, manifest: dict) -> float:
        """Warm up on the bundle's golden input through the bound path, then check its agreement."""
        from edge.flashing.selftest import run_engine_selftest

        return run_engine_selftest(engine, folder, manifest, warmup_runs=max(1, self.config.warmup_runs))

    # ---- references -------------------------------------------------------------------------
    def _may_capture(self) -> bool:
        mode = self.config.capture_references
        if mode != "auto":
            return mode == "always"
        from devices.simulated import SimulatedCamera

        return isinstance(self.camera, SimulatedCamera)

    def _obtain_references(self) -> References:
        from calibration.store import load_references, save_references

        path = self.config.references
        if path is not None and Path(path).exists():
            return load_references(
                path,
                camera_id=self.camera.camera_id,
                sensor=self.sensor,
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
        from calibration.capture import capture_reference

        n = self.config.capture_frames
        camera = _StopAware(self.camera, self._stopped_reason)  # a stop ends the capture within a frame
        dark = capture_reference(camera, "dark", n)
        white = capture_reference(camera, "white", n)
        return References(
            self.camera.camera_id,
            self.sensor.name,
            self.sensor.signature,
            dark=dark.mean,
            white=white.mean,
            dark_meta=dark.to_meta("camera"),
            white_meta=white.to_meta("camera"),
        )

    def _install_references(self, refs: References) -> None:
        """Bind ``refs`` to the engine (raw bundles) or build the NumPy calibrator (reflectance bundles)."""
        calibrator = self._bind(self.engine, refs)
        if calibrator is not None:
            old, self._calibrator = self._calibrator, calibrator
            if old is not None:
                old.close()
        self.references = refs

    def _bind(self, engine: Engine, refs: References) -> Any:
        """Bind ``refs`` to a raw-input engine (None) or return a new calibrator for a reflectance one."""
        crosstalk = getattr(self.camera, "crosstalk", None)  # (C, C) from the camera string's crosstalk=
        if engine.variant == "raw":
            if crosstalk is not None:
                raise DaemonError(
                    f"camera {self.camera.camera_id} has a band-crosstalk matrix, but the bundle's model calibrates "
                    "raw counts itself (raw input variant) and cannot apply it: export the reflectance variant"
                )
            dark = np.asarray(refs.dark, dtype=np.float32)
            gain = (np.float32(1.0) / signal_range(dark, refs.white)).astype(np.float32)
            engine.bind_references(dark, gain)
            return None
        from calibration.calibrator import FrameCalibrator

        return FrameCalibrator(refs, self.sensor, crosstalk=crosstalk)

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
            self._install_references(self._obtain_references())
        except XenoedgeError as exc:
            self._error("references", f"reload failed, keeping the previous references: {exc}")
            self.notifier.ready()
            return False
        self.notifier.ready("references reloaded")
        return True

    # ---- the frame loop -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask ``run`` to return after the current frame, or ``start`` after its current step
        (thread- and signal-safe). The request holds until ``run`` returns."""
        self._stop_requested.set()
        self._stop.set()

    def run(self, max_frames: int | None = None) -> DaemonStats:
        """Start if needed, then process frames until ``stop()``, the camera's end, or ``max_frames``
        frames taken off the queue; flushes the sink and returns the statistics. A stop during
        start-up returns the statistics with ``stopped_during`` set (nothing served)."""
        try:
            return self._run(max_frames)
        finally:
            self._stop_requested.clear()

    def _run(self, max_frames: int | None) -> DaemonStats:
        try:
            self.start()
        except StartupInterrupted as exc:
            self.stats.stopped_during = str(exc)
            self._update_link_stats()
            return self.stats
        if self._stop_requested.is_set():
            self.stats.stopped_during = "stopped as start-up ended (done: all)"
        self._stop.clear()
        self._watch_link()
        if self.maintenance is not None and not self._maintenance_loop():
            self._drain_events()
            self.stats.elapsed_s = self._clock() - self.stats.started_s
            self._send_status(0.0)
            return self.stats
        self._capture_done.clear()
        self._queue.clear()
        self._capture_beat = self._clock()
        self._capture_thread = threading.Thread(target=self._capture_loop, name="xenoedge-capture", daemon=True)
        self._capture_thread.start()
        run_started = self._clock()
        window_start, window_masks = run_started, 0
        next_status = run_started + self.config.status_interval_s
        taken, masks_before = 0, self.stats.masks

        def masks_in_run(total: int) -> int:
            return total - masks_before

        self._looping = True
        try:
            while (
                not self._stop.is_set()
                and not self._stop_requested.is_set()
                and (max_frames is None or taken < max_frames)
            ):
                if self._pending_swap is not None:
                    self._apply_swap()
                if self._reload.is_set():
                    self.reload_references()
                self._drain_events()
                frame = self._queue.get(IDLE_POLL_S)
                if frame is not None:
                    taken += 1
                    if self._process(frame):
                        window_masks += 1
                    self.notifier.watchdog()
                else:
                    if self._capture_done.is_set() and not len(self._queue):
                        break
                    if self._clock() - self._capture_beat < self.notifier.watchdog_period_s * 2:
                        self.notifier.watchdog()  # capture is alive (maybe retrying): not a stall
                self._watch_link()
                now = self._clock()
                if now >= next_status:
                    self._send_status(window_masks / max(now - window_start, 1e-9))
                    window_start, window_masks, next_status = now, 0, now + self.config.status_interval_s
        finally:
            self._looping = False
            if self._pending_swap is not None:
                self._apply_swap()
            self._stop.set()
            if self._capture_thread is not None:
                self._capture_thread.join(timeout=5.0)
            self._drain_events()
            now = self._clock()
            self.stats.elapsed_s = now - self.stats.started_s
            self._send_status(masks_in_run(self.stats.masks) / max(now - run_started, 1e-9))
            flush = getattr(self.sink, "flush", None)
            if flush is not None:
                try:
                    flush()
                except Exception:
                    self._count("sink")
            self._update_link_stats()
        return self.stats

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
            if on_demand and not self._queue.wait_for_room(IDLE_POLL_S):
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
                self._events.append(("camera", f"camera finished: {exc}", None))
                break
            except Exception as exc:  # CameraError, or a driver bug: retry, then reopen
                failures += 1
                wait = min(RETRY_INITIAL_S * RETRY_FACTOR ** (failures - 1), RETRY_MAX_S)
                reopen = failures >= REOPEN_AFTER
                kind = "" if isinstance(exc, CameraError) else f"{type(exc).__name__}: "
                self._events.append(
                    (
                        "camera",
                        f"camera read failed ({kind}{exc}); {'reopening' if reopen else 'retrying'} in {wait:.2f} s "
                        f"(failure {failures})",
                        None,
                    )
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
            self._queue.put(frame)
        self._capture_done.set()

    def _process(self, frame: Any) -> bool:
        """One frame: check, feed, infer, send. False (and an ``error`` event) when skipped."""
        self.stats.frames += 1
        started = time.perf_counter()
        t0 = time.perf_counter_ns()
        try:
            self._feed(frame)
            t1 = time.perf_counter_ns()
            result = self.engine.infer()
            t2 = time.perf_counter_ns()
        except XenoedgeError as exc:
            self.stats.skipped += 1
            self._error("engine" if isinstance(exc, EngineError) else "frame", str(exc), frame.index)
            if isinstance(exc, EngineError):
                self._probation_failed(f"frame {frame.index}: {exc}")
            return False
        except Exception as exc:  # a frame NumPy cannot handle: name it, skip it, keep going
            self.stats.skipped += 1
            self._error("frame", f"frame {frame.index}: {type(exc).__name__}: {exc}", frame.index)
            return False
        dsc = None
        if self.config.score_ground_truth and getattr(frame, "labels", None) is not None:
            if frame.labels.shape == result.classes.shape:
                dsc = mean_dsc(result.classes, frame.labels, len(self.manifest["labels"]))
                if dsc is not None:
                    self.stats.dsc.append(dsc)
        delivered = self._send(
            "mask",
            frame_index=frame.index,
            timestamp_us=frame.timestamp_us,
            classes=result.classes,
            confidence=result.confidence,
            n_classes=len(self.manifest["labels"]),
            model_id=self.model_id,
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
        if self._good_countdown > 0:
            self._good_countdown -= 1
            if self._good_countdown == 0:
                self._probation_passed()
        return True

    def _feed(self, frame: Any) -> None:
        """Put the frame into the engine's input buffer (raw counts or reflectance); raises
        ``DaemonError`` naming the frame when it has the wrong kind, shape, dtype or values."""
        data, what = frame.data, f"frame {frame.index}"
        engine, sensor = self.engine, self.sensor
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
                    f"{what}: the camera delivered reflectance, but bundle {self.model_id} takes raw counts"
                )
            np.copyto(engine.input_buffer[0], data, casting="same_kind")
            return
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
                from calibration.mosaic import cube_from_mosaic

                cube_from_mosaic(data, sensor, out=engine.input_buffer[0])
            else:
                np.copyto(engine.input_buffer[0], data)
        else:
            if is_cube:
                raise DaemonError(f"{what}: a demosaiced raw cube; the reflectance path calibrates mosaic frames only")
            calibrated = self._calibrator.process(data, what)
            np.copyto(engine.input_buffer[0], calibrated.reflectance, casting="same_kind")

    # ---- events ---------------------------------------------------------------------------------
    def _send(self, kind: str, **fields: Any) -> bool:
        """Hand one event to the sink; False when it raised or said it did not deliver (a link down)."""
        try:
            return self.sink.send(kind, **fields) is not False
        except Exception as exc:  # a failing link must not stop the device
            if kind == "error":
                self._count("sink")  # the report itself was lost
            else:  # counted once, when the worker reports it
                self._events.append(("sink", f"sink failed on {kind!r}: {type(exc).__name__}: {exc}", None))
            return False

    # ---- link health (docs/daemon.md, "Link states") ------------------------------------------
    def _link(self) -> Any:
        """The link under the sink (None for a PNG/null/collecting sink)."""
        protocol = self._control_protocol()
        link = protocol.link if protocol is not None else getattr(self.sink, "link", None)
        return link if isinstance(getattr(link, "state", None), str) else None

    def _update_link_stats(self) -> None:
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
        self._update_link_stats()
        if state == "down":
            self._count("link")
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
            f"{self._queue.dropped} frames dropped"
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

    def _count(self, code: str) -> None:
        self.stats.errors[code] = self.stats.errors.get(code, 0) + 1

    def _error(self, code: str, message: str, frame_index: int | None = None) -> None:
        self._count(code)
        self._send("error", code=code, message=message, frame_index=frame_index)

    def _drain_events(self) -> None:
        while self._events:
            code, message, index = self._events.popleft()
            if code == "camera" and message.startswith("camera finished"):
                self._send("error", code="camera", message=message, frame_index=index)  # an end, not a fault
            else:
                self._error(code, message, index)

    def _send_status(self, fps: float) -> None:
        self.stats.dropped = self._queue.dropped
        self._update_link_stats()
        self._statuses_sent += 1
        if self._statuses_sent % HELLO_EVERY_STATUSES == 0:
            self._send("hello", **self._hello())  # a receiver that attaches late learns labels and model
        now = self._clock()
        self._send(
            "status",
            fps=float(fps),
            frames=self.stats.masks,
            dropped=self._queue.dropped,
            uptime_s=now - self.stats.started_s,
            errors=self.stats.error_total,
            error_counts=dict(self.stats.errors),
            model_id=self.model_id,
            queue_depth=len(self._queue),
            mean_dsc=self.stats.mean_dsc,
            masks_delivered=self.stats.delivered,
            masks_lost=self.stats.lost,
            link_state=self.stats.link_state,
            link_down_s=self.stats.link_down_s,
        )
        self.notifier.status(self._status_text(fps))

    def _hello(self) -> dict:
        if self.maintenance is not None:
            sensor = self.sensor
            return {
                "model_id": "",
                "model_name": None,
                "model_version": None,
                "sensor": sensor.name if sensor else None,
                "sensor_signature": sensor.signature if sensor else None,
                "camera_id": None,
                "engine": None,
                "maintenance": {"reason": self.maintenance},
                **signature_fields(self.config),
            }
        h, w, _ = self.sensor.cube_shape
        slot = {"model_sha256": self.slot.sha256, "slot": self.slot.slot} if self.slot is not None else {}
        return {
            **slot,
            "model_id": self.model_id,
            "model_name": self.manifest["name"],
            "model_version": self.manifest["version"],
            "sensor": self.sensor.name,
            "sensor_signature": self.sensor.signature,
            "camera_id": self.camera.camera_id,
            "engine": self.engine.name,
            "width": w,
            "height": h,
            "n_classes": len(self.manifest["labels"]),
            "labels": list(self.manifest["labels"]),
            **signature_fields(self.config),
        }

    # ---- flashing: control channel, hot swap, probation (docs/upload.md) ----------------------
    def _start_control(self) -> None:
        """With a state folder and a wire-protocol sink whose link reads: answer flashing packets."""
        protocol = self._control_protocol()
        if protocol is None:
            return
        self._protocol = protocol
        if self.store is None or not callable(getattr(protocol.link, "read", None)):
            return
        from edge.flashing.service import FlashService
        from edge.flashing.upload import UploadLimits

        self.flash = FlashService(
            self.store,
            self._install_policy(self.sensor.signature if self.sensor is not None else None),
            send=lambda ptype, payload: self._replies.put((ptype, payload)),
            activate=self.activate_slot,
            device_info=self._device_info,
            limits=UploadLimits(max_bundle_bytes=self.config.max_bundle_bytes, timeout_s=self.config.upload_timeout_s),
            log=lambda line: self._events.append(("bundle", line, None)),
        )
        self._control_stop.clear()
        self._reply_stop.clear()
        self._control_thread = threading.Thread(target=self._control_loop, name="xenoedge-control", daemon=True)
        self._reply_thread = threading.Thread(target=self._reply_loop, name="xenoedge-replies", daemon=True)
        self._control_thread.start()
        self._reply_thread.start()

    def _reply_loop(self) -> None:
        """Write the flashing answers. Apart from the reading thread, so that the device keeps
        reading what the host sends while a write waits for the line (behind a mask frame, or a
        host that is itself busy writing): a device that stops reading can deadlock the link."""
        while not self._reply_stop.is_set() or not self._replies.empty():
            try:
                ptype, payload = self._replies.get(timeout=0.1)
            except queue.Empty:
                continue
            self._protocol.send_packet(ptype, payload)

    def _control_loop(self) -> None:
        from edge.protocol.decoder import StreamDecoder

        link = self._protocol.link
        decoder = StreamDecoder(max_payload=self.flash.limits.max_chunk + 1024)
        self.control_stats = decoder.stats  # inbound: packets, CRC and framing errors (DecoderStats)
        while not self._control_stop.is_set():
            try:
                data = link.read(65536, timeout_s=0.1)
            except XenoedgeError:  # the link was closed under us: shutting down
                return
            except Exception:  # a link bug must not end the control channel
                self._control_stop.wait(0.1)
                continue
            if not data:
                continue
            for packet in decoder.feed(data):
                try:
                    self.flash.handle(packet)
                except Exception as exc:  # keep answering; the frame loop reports it
                    self._events.append(("bundle", f"flashing request failed: {type(exc).__name__}: {exc}", None))

    def _device_info(self) -> dict:
        """The daemon's part of INFO: engines installed here, the camera's sensor, the model serving."""
        sensor = self.sensor
        maintenance = self.maintenance
        return {
            "engines": {name: list(kind.installed()) for name, kind in ENGINES.items()},
            "sensor": {"name": sensor.name, "signature": sensor.signature} if sensor is not None else None,
            "serving": {
                "model": None if maintenance else self.model_id,
                "engine": self.engine.name if self.engine and not maintenance else None,
            },
            "maintenance": {"reason": maintenance} if maintenance else None,
        }

    def _prepare(self, slot: Any) -> _Loaded:
        """Open ``slot``'s engine beside the running one, self-test it and bind the references."""
        from export.bundle import compatible_targets, read_manifest

        with self._swap_lock:
            held, wanted = self._held, (slot.slot, slot.sha256)
            if held is not None and held.slot is not None and (held.slot.slot, held.slot.sha256) == wanted:
                self._held = None  # claimed: the frame loop must not close it now
                return held
        manifest = read_manifest(slot.folder)
        compatible_targets(manifest, sensor_signature=self.sensor.signature)
        engine = self._open_engine_for(slot.folder, manifest)
        try:
            agreement = self._selftest_engine(engine, slot.folder, manifest)
            calibrator = self._bind(engine, self.references)
        except BaseException:
            engine.close()
            raise
        return _Loaded(engine, manifest, calibrator, slot, agreement)

    def activate_slot(self, slot: Any, why: str) -> dict:
        """Load ``slot`` (just installed or rolled back to) and swap it in between two frames;
        returns the daemon's self-test. Called from the flashing job thread; raises on failure.
        In maintenance mode the slot is started from scratch (camera, engine, references)."""
        if self.maintenance is not None:
            return self._leave_maintenance(slot)
        loaded = self._prepare(slot)
        done = threading.Event()
        self._pending_swap = (loaded, why, done)
        if not self._looping:
            self._apply_swap()
        if not done.wait(SWAP_TIMEOUT_S):
            raise DaemonError(f"the frame loop did not take the new engine within {SWAP_TIMEOUT_S:g} s")
        return {"selftest": {"daemon_agreement": loaded.agreement, "engine": loaded.engine.name}}

    def _current(self) -> _Loaded:
        return _Loaded(self.engine, self.manifest, self._calibrator, self.slot, self.selftest_agreement)

    def _apply_swap(self) -> None:
        """Swap the pending model in (frame loop, between frames). After an install the previous
        model is held for the probation; after a rollback it is released."""
        with self._swap_lock:
            pending, self._pending_swap = self._pending_swap, None
            if pending is None:
                return
            loaded, why, done = pending
            old = self._current()
            self.engine, self.manifest, self._calibrator = loaded.engine, loaded.manifest, loaded.calibrator
            self.slot, self.selftest_agreement = loaded.slot, loaded.agreement
            if why == "install":
                if self._held is not None:
                    self._held.close()
                self._held = old
            else:
                old.close()
            self._good_countdown = self.config.probation_frames
        self._send("hello", **self._hello())
        done.set()

    def _probation_passed(self) -> None:
        """Mark the slot this model came from good. ``mark_good(slot)`` checks atomically that it
        is still the active one: between an install's switch and the hot swap, the old model's
        masks are no verdict on the new slot (``SlotStateError``, nothing marked)."""
        from edge.flashing.errors import SlotStateError

        if self.store is None or self.slot is None:
            return
        try:
            self.store.mark_good(self.slot.slot)
        except SlotStateError:
            return
        except XenoedgeError as exc:
            self._error("bundle", f"could not mark {self.model_id} good: {exc}")
            return
        with self._swap_lock:
            if self._held is not None:
                self._held.close()
                self._held = None

    def _probation_failed(self, reason: str) -> None:
        """An engine failure before the active slot served ``probation_frames`` masks: roll back."""
        if self.store is None or self.slot is None or self._good_countdown <= 0:
            return
        self._good_countdown = 0
        failed = self.model_id
        try:  # from_slot: when an install switched meanwhile, the old engine's failure rolls nothing back
            target = self.store.rollback(f"engine failed in its first frames: {reason}", from_slot=self.slot.slot)
            loaded = self._prepare(target)
        except Exception as exc:
            self._error("bundle", f"{failed} failed in its first frames ({reason}); rollback failed: {exc}")
            return
        self._pending_swap = (loaded, "rollback", threading.Event())
        self._apply_swap()
        message = f"{failed} failed in its first frames ({reason}); rolled back to {target.describe()}"
        self._error("bundle", message)
        if self._protocol is not None:
            from edge.flashing.service import slot_dict
            from edge.protocol.flash import FlashCode, result_payload
            from edge.protocol.packets import PacketType

            payload = result_payload(
                FlashCode.ROLLED_BACK, {"message": message, "active": slot_dict(target), "reason": reason}
            )
            self._protocol.send_packet(PacketType.ROLLBACK_RESULT, payload)

    # ---- shutdown ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Release camera, engine, calibrator and the unpacked bundle (idempotent)."""
        self._stop.set()
        self._control_stop.set()
        if self._control_thread is not None:
            self._control_thread.join(timeout=5.0)
            self._control_thread = None
        if self.flash is not None:
            self.flash.close()
            self.flash = None
        self._reply_stop.set()  # after the flashing job: its last answer still goes out
        if self._reply_thread is not None:
            self._reply_thread.join(timeout=5.0)
            self._reply_thread = None
        if self._pending_swap is not None:
            self._pending_swap[0].close()
            self._pending_swap = None
        if self._held is not None:
            self._held.close()
            self._held = None
        if self._capture_thread is not None and self._capture_thread.is_alive():
            self._capture_thread.join(timeout=5.0)
        if self.camera is not None:
            try:
                self.camera.close()
            except Exception:
                pass
        if self._calibrator is not None:
            self._calibrator.close()
            self._calibrator = None
        if self.engine is not None:
            self.engine.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self.started = False

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StopSignals:
    """SIGTERM/SIGINT ask for a stop, SIGHUP for a reference reload; installed as early as possible
    (``daemon_main`` does it before loading anything) so that a Ctrl-C during start-up is never lost.

    The first SIGINT or SIGTERM sets ``requested`` and calls the stop callbacks (the daemon stops
    after its current step or frame). SIGINT then gets its default action back, so a second Ctrl-C
    ends the process at once, even while the main thread is inside a long native call.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.signal_name: str | None = None
        self._on_stop: list[Callable[[], None]] = []
        self._on_reload: list[Callable[[], None]] = []
        self._previous: dict[int, Any] = {}

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on a stop signal (now, if one already came)."""
        self._on_stop.append(callback)
        if self.requested.is_set():
            callback()

    def on_reload(self, callback: Callable[[], None]) -> None:
        self._on_reload.append(callback)

    def install(self) -> bool:
        """Install the handlers (main thread only; False elsewhere, nothing installed)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for sig, handler in (
            (signal.SIGTERM, self._stop),
            (signal.SIGINT, self._stop),
            (signal.SIGHUP, self._reload),
        ):
            self._previous[sig] = signal.signal(sig, handler)
        return True

    def restore(self) -> None:
        """Put the previous handlers back (idempotent)."""
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous.clear()

    def _stop(self, signum: int, _frame: Any) -> None:
        first = not self.requested.is_set()
        self.requested.set()
        if first:
            self.signal_name = signal.Signals(signum).name
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C ends the process at once
            if first:
                os.write(2, b"xenoedge: stopping after the current step (Ctrl-C again ends at once)\n")
        for callback in self._on_stop:
            callback()

    def _reload(self, _signum: int, _frame: Any) -> None:
        for callback in self._on_reload:
            callback()


def run_daemon(
    config: DaemonConfig,
    sink: Any | None = None,
    *,
    max_frames: int | None = None,
    notifier: SdNotifier | None = None,
    camera: Any | None = None,
    signals: StopSignals | None = None,
) -> DaemonStats:
    """The ``xenoedge run`` entry: build the sink from ``config.sink`` unless given, install
    SIGTERM/SIGINT (stop after the current step or frame) and SIGHUP (reload references) handlers,
    talk to systemd through ``NOTIFY_SOCKET``, run until stopped, flush, and return the statistics.
    ``signals``: handlers the caller installed earlier (``daemon_main``); None installs them here
    (main thread only) and restores the previous ones on return.

    Start-up failures raise ``XenoedgeError`` subclasses with a clear message (the CLI prints it
    and exits 1); a clean stop returns normally (exit 0), a stop during start-up too, with
    ``stats.stopped_during`` set.
    """
    from edge.sinks import sink_from_spec

    own_signals = signals is None
    if signals is None:
        signals = StopSignals()
        signals.install()
    owned = sink is None
    try:
        sink = sink_from_spec(config.sink, wait_for_port=config.wait_for_port) if owned else sink
    except BaseException:
        if own_signals:
            signals.restore()
        raise
    notifier = notifier or SdNotifier.from_environ()
    daemon = Daemon(config, sink, notifier=notifier, camera=camera)
    signals.on_stop(daemon.stop)
    signals.on_reload(daemon.request_reload)
    try:
        with daemon:
            stats = daemon.run(max_frames=max_frames)
            notifier.stopping()
            return stats
    finally:
        if own_signals:
            signals.restore()
        notifier.close()
        if owned and hasattr(sink, "close"):
            sink.close()


def summary_line(stats: DaemonStats) -> str:
    """The end-of-run line: masks made, delivered and lost, the link's state and down time, errors.
    Never says ``errors: none`` while masks were lost."""
    errors = dict(stats.errors)
    if stats.lost:
        errors["masks lost"] = stats.lost
    error_text = ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none"
    link = ""
    if stats.link is not None:
        link = f" (link {stats.link} {str(stats.link_state).upper()}, down {stats.link_down_s:.1f} s)"
    stopped = f"{stats.stopped_during}; " if stats.stopped_during else ""
    return (
        f"xenoedge run: {stopped}{stats.masks} masks, {stats.delivered} delivered, {stats.lost} lost{link}, "
        f"{stats.fps:.1f} fps, {stats.dropped} frames dropped, errors: {error_text}"
    )


def _may_come_later(config: DaemonConfig, stats: DaemonStats) -> bool:
    """A link whose receiver may appear later (TCP, a serial port waited for): no delivery warns
    instead of failing the run."""
    kind = str(config.sink).partition(":")[0]
    return kind == "tcp" or (kind == "serial" and config.wait_for_port) or stats.link_state == "waiting"


def daemon_main(
    config_path: str | Path | None = None,
    *,
    sink_object: Any | None = None,
    max_frames: int | None = None,
    log: Callable[[str], None] | None = None,
    stats_out: Callable[[DaemonStats], None] | None = None,
    banner: str | None = None,
    **overrides: Any,
) -> int:
    """What ``xenoedge run`` does: load the config (``overrides`` are CLI options, None keeps the
    file's value; ``sink="png:DIR"`` is the config's sink spec), run until stopped, return the exit
    code: 0 after a clean stop (SIGTERM, Ctrl-C, ``max_frames``, start-up interrupted included);
    1 with the reason passed to ``log`` (default: stderr) when the daemon cannot start or fails,
    or when masks were made but none reached the link (a TCP receiver or a waited-for port may
    come later: a warning then, exit 0). ``sink_object``: a ready sink (e.g. a link) used instead
    of the spec. ``stats_out``: called with the final statistics (``run --json``); ``banner``:
    logged once the signal handlers are in place (from then on a Ctrl-C is never lost)."""
    import sys

    log = log or (lambda line: print(line, file=sys.stderr))
    signals = StopSignals()
    signals.install()  # first: a Ctrl-C while the config and the bundle load is not lost
    if banner:
        log(banner)
    try:
        from edge.config import load_config, signature_line
        from edge.flashing.errors import EXIT_RESTART_LOOP, RestartLoopError

        try:
            config = load_config(config_path, **overrides)
            log(f"xenoedge run: {signature_line(config)}")
            stats = run_daemon(config, sink_object, max_frames=max_frames, signals=signals)
        except RestartLoopError as exc:
            log(f"xenoedge run: {exc}")
            return EXIT_RESTART_LOOP
        except XenoedgeError as exc:
            log(f"xenoedge run: {exc}")
            return 1
    finally:
        signals.restore()
    log(summary_line(stats))
    if stats_out is not None:
        stats_out(stats)
    if stats.masks and not stats.delivered:
        where = stats.link or f"the sink {config.sink}"
        if _may_come_later(config, stats):
            log(f"xenoedge run: warning: no mask reached {where} (its receiver never connected)")
            return 0
        log(f"xenoedge run: no mask reached {where}; {stats.masks} masks were lost")
        return 1
    return 0
