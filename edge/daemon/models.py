"""The model manager: which model the daemon serves, and how it changes.

Owns the bundle (unpacked into a private folder, or the active slot of the A/B ``SlotStore``
under ``[flashing] state_dir``), the engine opened for it, its self-test, the references bound
to it (in the graph for a raw bundle, a NumPy ``FrameCalibrator`` for a reflectance one), the
camera's sensor, maintenance mode (no model served: its reason), the hot swap of a newly
installed or rolled-back-to slot between two frames, and the probation of a new model (mark
good after ``probation_frames`` masks, roll back on an engine failure before that).

It talks to: the slot store and the install checks (``xenoedge.edge.flashing``); the engines
(``xenoedge.edge.engines.open_engine``); the camera it is given (``attach_camera``: sensor, camera id,
crosstalk); the daemon's ``Events`` (errors to the sink); and callbacks the coordinator wires:
``announce`` (send a HELLO after a swap), ``can_flash`` (the sink can carry flashing packets),
``rolled_back`` (tell the host about an automatic rollback). The frame pipeline calls it
through ``xenoedge.edge.daemon.pipeline.ModelSource``; the control channel through ``activate_slot``,
``install_policy`` and the read-only state (``engine``, ``sensor``, ``manifest``, ``slot``,
``maintenance``, ``model_id``).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from xenoedge.calibration.references import References
from xenoedge.calibration.reflectance import signal_range
from xenoedge.edge.config import DaemonConfig
from xenoedge.edge.daemon.events import DaemonError, Events
from xenoedge.edge.engines import DEFAULT_ORT_PROVIDERS, Engine, EngineOptions, open_engine

from xenoedge.errors import XenoedgeError
from xenoedge.sensors import SensorProfile, get_sensor

__all__ = ["SWAP_TIMEOUT_S", "LoadedModel", "ModelManager"]

#: Longest wait, seconds, for the frame loop to take a hot-swapped engine.
SWAP_TIMEOUT_S = 30.0
#: References at least this large are memory-mapped from a file once bound (``_spilled``).
SPILL_BYTES = 16 * 2**20


@dataclass
class LoadedModel:
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


class ModelManager:
    """The model being served, the slot store, maintenance mode, hot swap and probation.

    ``announce``: sends a HELLO; ``can_flash``: the sink's link can carry flashing packets;
    ``rolled_back(message, target_slot, reason)``: an automatic rollback happened (the control
    channel tells the host); ``workdir``: where the bundle is unpacked (default: the temp folder).
    """

    def __init__(
        self,
        config: DaemonConfig,
        events: Events,
        *,
        announce: Callable[[], None],
        can_flash: Callable[[], bool],
        rolled_back: Callable[[str, Any, str], None],
        workdir: str | Path | None = None,
    ):
        self.config = config
        self.events = events
        self._announce = announce
        self._can_flash = can_flash
        self._rolled_back = rolled_back
        self._workdir = workdir
        self._camera: Any = None
        self.engine: Engine | None = None
        self.manifest: dict | None = None
        self.sensor: SensorProfile | None = None
        self.references: References | None = None
        self.selftest_agreement: float | None = None
        self.calibrator: Any = None
        self._tmp: Path | None = None
        self._refs_dir: Path | None = None  # bound references, memory-mapped (_spilled)
        self._refs_generation = 0
        # flashing (docs/upload.md): slot store, hot swap, probation
        self.store = None
        self.slot = None
        self._pending_swap: tuple[LoadedModel, str, threading.Event] | None = None
        self._held: LoadedModel | None = None  # the previous model, kept during probation
        self._good_countdown = 0  # masks still to serve before the active slot is marked good
        self._looping = False
        #: Pending swap and held model: frame loop vs flashing job (and the coordinator leaving maintenance).
        self.swap_lock = threading.RLock()
        #: Why the daemon runs in maintenance mode (no model, no camera; flashing only), None when serving.
        self.maintenance: str | None = None

    @property
    def model_id(self) -> str:
        return f"{self.manifest['name']}@{self.manifest['version']}" if self.manifest else ""

    @property
    def n_classes(self) -> int:
        return len(self.manifest["labels"])

    @property
    def camera_id(self) -> str:
        return self._camera.camera_id

    # ---- the bundle and the slot store -----------------------------------------------------------
    def load_bundle(self) -> Path | None:
        """The unpacked bundle folder to serve (the active slot with a state folder); None:
        maintenance mode (``maintenance`` says why)."""
        from xenoedge.export.bundle import extract_bundle, load_public_key, read_manifest

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

    def install_policy(self, sensor_signature: str | None) -> Any:
        """The install checks for this device (needs the slot store: its trusted key is the policy's)."""
        from xenoedge.edge.flashing.install import InstallPolicy

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
        from xenoedge.edge.flashing.errors import FlashError, RestartLoopError
        from xenoedge.edge.flashing.install import install_bundle
        from xenoedge.edge.flashing.slots import SlotStore
        from xenoedge.export.bundle import BundleError, load_public_key, read_manifest

        key = load_public_key(self.config.public_key) if self.config.public_key is not None else None
        self.store = SlotStore(self.config.state_dir, public_key=key)
        try:
            notes = self.store.recover()
        except RestartLoopError as exc:
            if not self._can_flash():
                raise
            self.maintenance = str(exc)
            return None
        for note in notes:
            self.events.later("bundle", f"slot store: {note}", None)
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
                    install_bundle(self.store, self.config.bundle, self.install_policy(sensor))
                except (FlashError, BundleError) as exc:
                    if not self._can_flash():
                        raise
                    problem = f"no model installed, and installing {self.config.bundle} failed: {exc}"
                active = self.store.active()
            if active is None:
                if problem is None or not self._can_flash():
                    raise DaemonError(problem or f"{self.config.state_dir}: no model installed")
                self.maintenance = problem
                return None
        self.slot = active
        self.manifest = read_manifest(active.folder)
        return active.folder

    def sensor_name(self) -> str:
        """The camera's sensor: the config's, else the bundle's."""
        return self.config.sensor or self.manifest["sensor"]["name"]

    def attach_camera(self, camera: Any) -> None:
        """The camera whose frames the model serves: its sensor, id and crosstalk matrix."""
        self._camera = camera
        self.sensor = camera.sensor

    # ---- engine and self-test -------------------------------------------------------------------
    def check_sensor(self) -> None:
        from xenoedge.export.bundle import compatible_targets

        compatible_targets(self.manifest, sensor_signature=self.sensor.signature)

    def open_engine(self, folder: Path) -> None:
        self.engine = self._open_engine_for(folder, self.manifest)

    def _open_engine_for(self, folder: Path, manifest: dict) -> Engine:
        options = EngineOptions(
            ort_providers=self.config.ort_providers or DEFAULT_ORT_PROVIDERS,
            openvino_device=self.config.openvino_device,
            threads=self.config.threads,
            confidence=self.config.confidence,
            cache_dir=self.config.model_cache_dir(),
            target_order=self.config.target_order,
        )
        h, w, c = self.sensor.cube_shape
        shape = manifest["input"]["shape"]
        if shape[3] != c:
            raise DaemonError(
                f"bundle {manifest['name']}@{manifest['version']} takes {shape[3]} bands, "
                f"the {self.sensor.name} camera has {c}"
            )
        return open_engine(folder, manifest, prefer=self.config.prefer, options=options, frame_hw=(h, w))

    def self_test(self, folder: Path) -> None:
        self.selftest_agreement = self._selftest_engine(self.engine, folder, self.manifest)

    def _selftest_engine(self, engine: Engine, folder: Path, manifest: dict) -> float:
        """Warm up on the bundle's golden input through the bound path, then check its agreement."""
        from xenoedge.edge.flashing.selftest import run_engine_selftest

        return run_engine_selftest(engine, folder, manifest, warmup_runs=max(1, self.config.warmup_runs))

    # ---- references -------------------------------------------------------------------------
    def install_references(self, refs: References) -> None:
        """Bind ``refs`` to the engine (raw bundles) or build the NumPy calibrator (reflectance bundles)."""
        calibrator = self._bind(self.engine, refs)
        if calibrator is not None:
            old, self.calibrator = self.calibrator, calibrator
            if old is not None:
                old.close()
        self.references = self._spilled(refs)

    def _spilled(self, refs: References) -> References:
        """``refs`` with its frame-size arrays moved to read-only memory maps of files in a private
        folder. Once bound, the engine (pooled references) or the calibrator holds what it needs;
        the full arrays are read again only to bind a flashed bundle, so they need not stay in
        memory (~250 MB for a Tivita's dark and white). Kept in memory when the folder cannot be
        written."""
        self._refs_generation += 1
        mapped = {
            key: self.memory_mapped(f"{key}-{self._refs_generation}", getattr(refs, key)) for key in ("dark", "white")
        }
        if self._refs_dir is not None:
            keep = {Path(a.filename).name for a in mapped.values() if isinstance(a, np.memmap)}
            for old in self._refs_dir.glob("*.npy"):  # earlier references (a reload): no longer read
                if old.name not in keep:
                    old.unlink(missing_ok=True)
        return dataclasses.replace(refs, **mapped)

    def memory_mapped(self, name: str, array: np.ndarray | None) -> np.ndarray | None:
        """``array`` as a read-only memory map of ``<private folder>/<name>.npy``, written now;
        ``array`` itself when it is None, smaller than ``SPILL_BYTES``, or the folder cannot be
        written (an ``error`` event says so), or already a map of a file there (the dark kept
        during the white's capture is not written twice)."""
        if array is None or array.nbytes < SPILL_BYTES:
            return array
        if (
            isinstance(array, np.memmap)
            and self._refs_dir is not None
            and Path(array.filename).parent == self._refs_dir
        ):
            return array
        try:
            if self._refs_dir is None:
                self._refs_dir = Path(tempfile.mkdtemp(prefix="xenoedge-references-", dir=self._workdir))
            path = self._refs_dir / f"{name}.npy"
            np.save(path, np.ascontiguousarray(array))
            return np.load(path, mmap_mode="r")
        except OSError as exc:
            self.events.error("references", f"keeping the {name} reference in memory: {exc}")
            return array

    def _bind(self, engine: Engine, refs: References) -> Any:
        """Bind ``refs`` to a raw-input engine (None) or return a new calibrator for a reflectance one."""
        crosstalk = getattr(self._camera, "crosstalk", None)  # (C, C) from the camera string's crosstalk=
        if engine.variant == "raw":
            if crosstalk is not None:
                raise DaemonError(
                    f"camera {self._camera.camera_id} has a band-crosstalk matrix, but the bundle's model calibrates "
                    "raw counts itself (raw input variant) and cannot apply it: export the reflectance variant"
                )
            dark = np.asarray(refs.dark, dtype=np.float32)
            gain = signal_range(dark, refs.white)
            np.reciprocal(gain, out=gain)  # in place: 1/counts, no second frame-size array
            engine.bind_references(dark, gain)
            return None
        from xenoedge.calibration.calibrator import FrameCalibrator

        return FrameCalibrator(refs, self.sensor, crosstalk=crosstalk)

    # ---- maintenance mode (docs/flashing.md): no model, no camera, flashing only -------------
    def enter_maintenance(self, camera: Any) -> None:
        """Maintenance mode from the start: the sensor as far as it is known without a camera."""
        self.sensor = self._maintenance_sensor(camera)

    def _maintenance_sensor(self, camera: Any) -> SensorProfile | None:
        """The camera's sensor profile without opening the camera: the given camera's, the
        config's ``sensor``, or the one the active slot's bundle was made for (None if unknown)."""
        if camera is not None:
            return camera.sensor
        name = self.config.sensor
        active = self.store.active() if self.store is not None else None
        if name is None and active is not None:
            from xenoedge.export.bundle import read_manifest

            try:
                name = read_manifest(active.folder)["sensor"]["name"]
            except Exception:  # a damaged slot: the INFO says the sensor is unknown
                name = None
        return get_sensor(name) if name else None

    def report_maintenance(self) -> None:
        self.events.send("error", code="bundle", message=f"maintenance mode, no model served: {self.maintenance}")

    def adopt_slot(self, slot: Any) -> None:
        """Leaving maintenance mode: ``slot`` is the model to start (engine not opened yet)."""
        from xenoedge.export.bundle import read_manifest

        self.manifest, self.slot = read_manifest(slot.folder), slot

    def reset_failed_starts(self) -> None:
        """The adopted slot started: the slot store's count of failed starts begins again."""
        self.store.reset_failed_starts()

    def end_maintenance(self) -> None:
        """The adopted slot serves: begin its probation, leave maintenance mode."""
        self._good_countdown = self.config.probation_frames
        self.maintenance = None

    def release(self) -> None:
        """Close engine and calibrator after a failed start from maintenance mode."""
        if self.calibrator is not None:
            self.calibrator.close()
            self.calibrator = None
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        self.manifest = self.slot = self.references = None
        self.selftest_agreement = None

    # ---- hot swap and probation (docs/upload.md) ----------------------------------------------
    def begin_serving(self) -> None:
        """Start-up done: with a slot store, the model serves its probation first."""
        self._good_countdown = self.config.probation_frames if self.store is not None else 0

    def _prepare(self, slot: Any) -> LoadedModel:
        """Open ``slot``'s engine beside the running one, self-test it and bind the references."""
        from xenoedge.export.bundle import compatible_targets, read_manifest

        with self.swap_lock:
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
        return LoadedModel(engine, manifest, calibrator, slot, agreement)

    def activate_slot(self, slot: Any, why: str) -> dict:
        """Load ``slot`` (just installed or rolled back to) and swap it in between two frames;
        returns the daemon's self-test. Called from the flashing job thread; raises on failure.
        Not in maintenance mode (the coordinator starts the slot from scratch then)."""
        loaded = self._prepare(slot)
        done = threading.Event()
        self._pending_swap = (loaded, why, done)
        if not self._looping:
            self._apply_swap()
        if not done.wait(SWAP_TIMEOUT_S):
            raise DaemonError(f"the frame loop did not take the new engine within {SWAP_TIMEOUT_S:g} s")
        return {"selftest": {"daemon_agreement": loaded.agreement, "engine": loaded.engine.name}}

    def _current(self) -> LoadedModel:
        return LoadedModel(self.engine, self.manifest, self.calibrator, self.slot, self.selftest_agreement)

    def loop_started(self) -> None:
        """The frame loop runs: a swap waits for it (between two frames)."""
        self._looping = True

    def between_frames(self) -> None:
        """Frame loop, between two frames: take a pending swap."""
        if self._pending_swap is not None:
            self._apply_swap()

    def loop_ended(self) -> None:
        """The frame loop ended: a pending swap is applied now."""
        self._looping = False
        if self._pending_swap is not None:
            self._apply_swap()

    def _apply_swap(self) -> None:
        """Swap the pending model in (frame loop, between frames). After an install the previous
        model is held for the probation; after a rollback it is released."""
        with self.swap_lock:
            pending, self._pending_swap = self._pending_swap, None
            if pending is None:
                return
            loaded, why, done = pending
            old = self._current()
            self.engine, self.manifest, self.calibrator = loaded.engine, loaded.manifest, loaded.calibrator
            self.slot, self.selftest_agreement = loaded.slot, loaded.agreement
            if why == "install":
                if self._held is not None:
                    self._held.close()
                self._held = old
            else:
                old.close()
            self._good_countdown = self.config.probation_frames
        self._announce()
        done.set()

    def mask_served(self) -> None:
        """One more mask made: after ``probation_frames`` of them the slot is marked good."""
        if self._good_countdown > 0:
            self._good_countdown -= 1
            if self._good_countdown == 0:
                self._probation_passed()

    def _probation_passed(self) -> None:
        """Mark the slot this model came from good. ``mark_good(slot)`` checks atomically that it
        is still the active one: between an install's switch and the hot swap, the old model's
        masks are no verdict on the new slot (``SlotStateError``, nothing marked)."""
        from xenoedge.edge.flashing.errors import SlotStateError

        if self.store is None or self.slot is None:
            return
        try:
            self.store.mark_good(self.slot.slot)
        except SlotStateError:
            return
        except XenoedgeError as exc:
            self.events.error("bundle", f"could not mark {self.model_id} good: {exc}")
            return
        with self.swap_lock:
            if self._held is not None:
                self._held.close()
                self._held = None

    def engine_failed(self, reason: str) -> None:
        """An engine failure before the active slot served ``probation_frames`` masks: roll back."""
        if self.store is None or self.slot is None or self._good_countdown <= 0:
            return
        self._good_countdown = 0
        failed = self.model_id
        try:  # from_slot: when an install switched meanwhile, the old engine's failure rolls nothing back
            target = self.store.rollback(f"engine failed in its first frames: {reason}", from_slot=self.slot.slot)
            loaded = self._prepare(target)
        except Exception as exc:
            self.events.error("bundle", f"{failed} failed in its first frames ({reason}); rollback failed: {exc}")
            return
        self._pending_swap = (loaded, "rollback", threading.Event())
        self._apply_swap()
        message = f"{failed} failed in its first frames ({reason}); rolled back to {target.describe()}"
        self.events.error("bundle", message)
        self._rolled_back(message, target, reason)

    # ---- shutdown ----------------------------------------------------------------------------------
    def close_swaps(self) -> None:
        """Close a model waiting to be swapped in and the one held for probation."""
        if self._pending_swap is not None:
            self._pending_swap[0].close()
            self._pending_swap = None
        if self._held is not None:
            self._held.close()
            self._held = None

    def close(self) -> None:
        """Close calibrator and engine, remove the unpacked bundle (idempotent)."""
        if self.calibrator is not None:
            self.calibrator.close()
            self.calibrator = None
        if self.engine is not None:
            self.engine.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        if self._refs_dir is not None:
            self.references = None
            shutil.rmtree(self._refs_dir, ignore_errors=True)
            self._refs_dir = None
