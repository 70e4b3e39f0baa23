"""A handheld crop-scan session: the daemon's pipeline, triggered frames, numbers per plot on disk.

``ScanSession(options).open()`` then ``run()`` (or ``run_scan(options)``, which also installs
the signal handlers), in this order:

1. lock the session folder; check the bundle (hashes; crop labels; the sensor's signature),
   build the camera from its spec and open the GPS port, before anything is asked of the
   operator; open the camera;
2. create the session (``--field`` needed) or resume it: remove what an interrupted frame
   left (``SessionStore.recover``), reload the committed frames, rewrite tables and summaries;
3. the white-tile step or the reuse of the session's references, with its checks
   (``xenoedge.edge.scan.field_references``); a refusal is recorded in session.json, then raised;
4. the device daemon (``xenoedge.edge.daemon.Daemon``) on the bundle, with this session's references
   and a ``TriggeredCamera`` around the camera: bundle extraction, engine, warm-up, self-test,
   references bound, exactly as ``xenoedge run`` does; the session is the daemon's sink;
5. frames: each ``mask`` event is measured (``xenoedge.edge.scan.measure``), pictured and committed
   (``SessionStore.commit_frame``); the tables and the summaries of the plots that changed are
   rewritten at most every ``tables_every_s`` seconds and at the end of the run.

A write that fails (disk full) stops the scan: ``ScanOutputError`` after the daemon has
stopped, the frame being written is lost, the rest is intact and the session resumes.

Why one file (~700 lines): it is the operator's session in the order listed above, one step
after another on one ``ScanSession``; the step order and its recovery rules are the contract and
read best in one place (the parts with their own idea live beside it: store, references, GPS).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from xenoedge.calibration.capture import iso_utc, utc_now
from xenoedge.calibration.store import ReferenceWarning
from xenoedge.devices.formats.label_png import png_bytes
from xenoedge.edge.scan.camera import SCAN_ENDED, TriggeredCamera
from xenoedge.edge.scan.errors import ScanCalibrationError, ScanError, ScanOutputError
from xenoedge.edge.scan.field_references import FieldReferences, obtain_field_references, references_need_operator
from xenoedge.edge.scan.gps import GpsReader, rejected_text
from xenoedge.edge.scan.measure import SHARE_NAMES, Counts, LeafClasses, measure, percent_text
from xenoedge.edge.scan.pictures import SUMMARY_FRAMES, FramePictures, plot_summary, thumbnail
from xenoedge.edge.scan.store import (
    FRAMES_CSV,
    FRAMES_GEOJSON,
    LOCK_FILE,
    PLOTS_CSV,
    PLOTS_GEOJSON,
    SESSION_FORMAT,
    SESSION_FORMAT_VERSION,
    SUMMARY_PICTURE,
    OutputWriter,
    SessionStore,
    check_plot_name,
)
from xenoedge.edge.scan.tables import (
    FRAME_COLUMNS,
    PLOT_COLUMNS,
    PlotSummary,
    csv_bytes,
    frame_row,
    geojson_bytes,
    point_feature,
    summarise_plots,
)
from xenoedge.edge.scan.triggers import IntervalTrigger, LineTrigger

from xenoedge.errors import XenoedgeError
from xenoedge.sensors import get_sensor

DEFAULT_PLOT = "P1"


@dataclass
class ScanOptions:
    """What ``xenoedge scan`` was asked (docs/scan.md); times in seconds, exposure in ms."""

    session: Path
    field: str | None = None
    plot: str | None = None
    note: str | None = None
    camera: str = "sim:crop"
    bundle: Path | None = None  # None: the packaged crop bundle
    sensor: str | None = None  # None: the bundle's sensor
    seed: int = 0
    exposure_ms: float = 10.0
    interval_s: float | None = None  # None: a frame per input line (Enter)
    frames: int | None = None  # stop after this many frames in this run
    gps: str | None = None  # PORT[@BAUD]
    gps_max_age_s: float = 5.0
    references: Path | None = None
    recalibrate: bool = False
    reference_frames: int = 8
    max_reference_age_s: float | None = 3600.0
    override_references: bool = False
    threads: int | None = None
    prefer: tuple[str, ...] = ()  # bundle targets or runtimes tried first (daemon's [engine] prefer)
    tables_every_s: float = 1.0  # tables and plot summaries at most this often (always at the end); 0: every frame
    frames_in_flight: int = 1


@dataclass
class ScanResult:
    """What one run of a session did."""

    session: Path
    run: int
    frames: int
    skipped: int
    stop_reason: str
    plots: list[PlotSummary]
    engine: str
    references: FieldReferences
    recovered: dict[str, int]
    gps: dict | None
    elapsed_s: float
    scan_s: float = 0.0  # from the first trigger wait to the last record (the scan loop)
    latencies_ms: list[float] = field(default_factory=list)  # per frame: feed + inference (the daemon's)
    record_ms: list[float] = field(default_factory=list)  # per frame: measure, pictures, atomic writes, tables
    camera_ms: list[float] = field(default_factory=list)  # per frame: the camera driver's read()

    @property
    def fps(self) -> float:
        return self.frames / self.scan_s if self.scan_s > 0 else 0.0


def utc_ms(t: datetime) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``."""
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


class ScanSession:
    """One run of a scan session (see the module docstring).

    ``trigger``: an object with ``wait(stop)``/``confirm(prompt, stop)`` (default: interval when
    ``options.interval_s`` is set, else lines from stdin); ``writer``: how files are written
    (tests inject a full disk); ``camera``: an unopened camera instead of ``options.camera``;
    ``clock``: UTC now (captures, frame times, reference age); ``gps_clock``: monotonic seconds
    for the age of GPS fixes; ``log``: one line per event for the operator; ``operator_input``:
    where the operator confirms the white-tile steps when frames come at an interval (default
    stdin; read only for a camera whose references need the operator).
    """

    def __init__(
        self,
        options: ScanOptions,
        *,
        trigger: Any | None = None,
        writer: OutputWriter | None = None,
        camera: Any | None = None,
        clock: Callable[[], datetime] = utc_now,
        gps_clock: Callable[[], float] = time.monotonic,
        log: Callable[[str], None] = _stderr,
        operator_input: TextIO | None = None,
    ):
        if options.frames is not None and options.frames < 1:
            raise ScanError(f"--frames must be >= 1, got {options.frames}")
        if options.reference_frames < 1:
            raise ScanError(f"--reference-frames must be >= 1, got {options.reference_frames}")
        if options.interval_s is not None and options.interval_s < 0:
            raise ScanError(f"--interval must be >= 0 s, got {options.interval_s}")
        self.options = options
        self.log = log
        self._clock = clock
        self._gps_clock = gps_clock
        self.store = SessionStore(options.session, writer)
        self.trigger = trigger or (
            IntervalTrigger(options.interval_s) if options.interval_s is not None else LineTrigger(on_note=log)
        )
        self._camera = camera
        self._operator_input = operator_input
        self._operator: LineTrigger | None = None
        self._settle_stop = threading.Event()
        self.meta: dict = {}
        self.records: list[dict] = []
        self.daemon: Any = None
        self.scan_camera: TriggeredCamera | None = None
        self.gps: GpsReader | None = None
        self.decision: FieldReferences | None = None
        self.recovered: dict[str, int] = {}
        self.failure: ScanOutputError | None = None
        self.plot = DEFAULT_PLOT
        self._meta_lock = threading.Lock()
        self._thumbs: dict[str, deque] = {}
        self._skipped = 0
        self._frames_this_run = 0
        self._latencies: list[float] = []
        self._record_ms: list[float] = []
        self._last_record_s: float | None = None
        self._stale_plots: set[str] = set()
        self._tables_written_s = float("-inf")
        self._gps_rejected_seen = 0
        self._gps_port_errors_seen = 0
        self._opened = False

    # ---- open ------------------------------------------------------------------------------
    def open(self) -> ScanSession:
        """Everything up to ready (steps 1-5 of the module docstring). Idempotent."""
        if self._opened:
            return self
        self.store.lock()
        try:
            self._open()
        except BaseException as exc:
            runs = self.meta.get("runs") or []
            if runs and runs[-1].get("ended_at") is None and not isinstance(exc, ScanOutputError):
                runs[-1].update(ended_at=iso_utc(self._clock()), stop_reason=f"start failed: {exc}")
                try:
                    self._write_meta()
                except ScanOutputError:
                    pass
            self.close()
            raise
        self._opened = True
        return self

    def _bundle_path(self) -> Path:
        if self.options.bundle is not None:
            return Path(self.options.bundle)
        from xenoedge.edge.builtin_bundles import default_bundle

        return default_bundle("crop")

    def _check_bundle(self) -> tuple[Path, dict]:
        from xenoedge.export.bundle import compatible_targets, file_sha256, verify_bundle

        path = self._bundle_path()
        if not path.is_file():
            raise ScanError(f"{path}: no such bundle file (give --bundle crop or a .xeb file)")
        manifest = verify_bundle(path)
        self.model_id = f"{manifest['name']}@{manifest['version']}"
        self.leaf = LeafClasses.from_labels(manifest["labels"], f"bundle {self.model_id}")
        self.sensor = get_sensor(self.options.sensor or manifest["sensor"]["name"])
        compatible_targets(manifest, sensor_signature=self.sensor.signature)
        labels = sorted(manifest["labels"], key=lambda label: int(label["id"]))
        self.colors = np.zeros((self.leaf.n_classes, 3), dtype=np.uint8)
        self.class_names = [f"class {i}" for i in range(self.leaf.n_classes)]
        for label in labels:
            self.colors[int(label["id"])] = label["color"]
            self.class_names[int(label["id"])] = str(label["name"])
        return path, {"bundle": str(path), "model_id": self.model_id, "sha256": file_sha256(path), "labels": labels}

    def _open(self) -> None:
        from xenoedge.devices.open_camera import camera_from_spec

        options = self.options
        bundle, model = self._check_bundle()
        if self._camera is None:
            self._camera = camera_from_spec(
                options.camera, self.sensor, seed=options.seed, exposure_ms=options.exposure_ms
            )
        camera = self._camera
        if options.gps:  # before anything is asked of the operator: a GPS that cannot be opened stops here
            self.gps = GpsReader(options.gps, max_fix_age_s=options.gps_max_age_s, clock=self._gps_clock).start()
        camera.open()
        self._start_session(model)
        self._settle_references()
        self.scan_camera = TriggeredCamera(
            camera,
            self.trigger,
            stamp=self._stamp,
            switch_plot=self.switch_plot,
            max_frames=options.frames,
            frames_in_flight=options.frames_in_flight,
        )
        self._start_daemon(bundle)
        self.pictures = FramePictures(self.sensor, self.decision.references, self.colors, self.class_names)  # type: ignore[union-attr]
        run = self._run_record()
        run.update(engine=self.daemon.engine.name, gps=options.gps, camera_id=camera.camera_id)
        self._write_meta()

    def _start_session(self, model: dict) -> None:
        options, store = self.options, self.store
        now = iso_utc(self._clock())
        camera = {
            "spec": options.camera,
            "camera_id": self._camera.camera_id,
            "sensor": self.sensor.name,
            "sensor_signature": self.sensor.signature,
            "exposure_ms": float(self._camera.exposure_ms),
        }
        if store.exists():
            meta = store.read_meta()
            if options.field is not None and options.field != meta["field"]:
                raise ScanError(f"{store.root}: this session scans field {meta['field']!r}, not {options.field!r}")
            if meta["model"]["model_id"] != model["model_id"]:
                raise ScanError(
                    f"{store.root}: the session was scanned with {meta['model']['model_id']}; "
                    f"bundle {model['model_id']} would mix models in one session (start a new session)"
                )
            self.recovered = store.recover()
            self.records = store.load_records()
            for run in meta["runs"]:
                if run.get("ended_at") is None:
                    run.update(stop_reason="did not end cleanly (power cut, killed, or a failed write); resumed")
            last_plot = self.records[-1]["plot"] if self.records else meta["plots"][-1]
            self.plot = check_plot_name(options.plot or last_plot)
            if self.recovered["temp_files"] or self.recovered["orphan_files"]:
                self.log(
                    f"resumed {store.root}: removed what an interrupted frame left "
                    f"({self.recovered['orphan_files']} frame files, {self.recovered['temp_files']} temp files)"
                )
        else:
            if not options.field:
                raise ScanError(f"{store.root}: a new session needs --field (the field's name)")
            others = sorted(p.name for p in store.root.iterdir() if p.name != LOCK_FILE)
            if others:
                raise ScanError(
                    f"{store.root}: not a scan session but not empty either ({', '.join(others[:3])}"
                    f"{' ...' if len(others) > 3 else ''}); give a new folder for a new session"
                )
            self.plot = check_plot_name(options.plot or DEFAULT_PLOT)
            meta = {
                "format": SESSION_FORMAT,
                "format_version": SESSION_FORMAT_VERSION,
                "field": options.field,
                "note": options.note or "",
                "created_at": now,
                "model": model,
                "plots": [],
                "runs": [],
                "calibrations": [],
            }
        if self.plot not in meta["plots"]:
            meta["plots"].append(self.plot)
        trigger = "input lines" if options.interval_s is None else f"every {options.interval_s:g} s"
        meta["runs"].append(
            {
                "run": len(meta["runs"]) + 1,
                "started_at": now,
                "ended_at": None,
                "plot": self.plot,
                "camera": camera,
                "trigger": trigger,
                "note": options.note if store.exists() else None,
            }
        )
        self.meta = meta
        self._write_meta()
        self._rewrite_outputs()

    def _settle_references(self) -> None:
        options = self.options
        stop = self._settle_stop  # set by stop(): a signal during the white-tile step abandons it

        interactive = getattr(self.trigger, "interactive", False)
        needs_operator = references_need_operator(self._camera)

        def confirm(prompt: str) -> bool:
            if interactive:
                self.log(prompt)
                return self.trigger.confirm(prompt, stop)
            if needs_operator:  # --interval on a camera without references of its own: wait for Enter
                self.log(prompt)
                if self._operator is None:
                    self._operator = LineTrigger(self._operator_input, on_note=self.log)
                return self._operator.confirm(prompt, stop)
            return self.trigger.confirm(prompt, stop)

        if options.references is None and (options.recalibrate or not self.store.references_file.exists()):
            if not interactive and needs_operator:
                self.log(
                    f"white-tile step: camera {self._camera.camera_id} has no references of its own; "
                    "press Enter at each step (frames at the interval start after it; "
                    "or give --references FILE)"
                )
            elif not interactive:
                self.log("white-tile step: capturing the dark and white references from the camera")

        try:
            self.decision = obtain_field_references(
                self._camera,
                self.store,
                references_file=options.references,
                recalibrate=options.recalibrate,
                n_frames=options.reference_frames,
                max_age_s=options.max_reference_age_s,
                override=options.override_references,
                confirm=confirm,
                clock=self._clock,
            )
        except ScanCalibrationError as exc:
            refused = getattr(exc, "decision", None)
            if refused is not None:
                self.meta["calibrations"].append(refused.record(iso_utc(self._clock())))
            self._run_record().update(ended_at=iso_utc(self._clock()), stop_reason="references refused")
            self._write_meta()
            raise
        self.meta["calibrations"].append(self.decision.record(iso_utc(self._clock())))
        self._run_record()["calibration"] = len(self.meta["calibrations"]) - 1
        if self.decision.overridden:
            self.log("WARNING: scanning on references that failed their checks (--override-references, recorded):")
            for problem in self.decision.problems:
                self.log(f"  - {problem}")

    def _start_daemon(self, bundle: Path) -> None:
        from xenoedge.edge.config import DaemonConfig
        from xenoedge.edge.daemon import Daemon

        options = self.options
        config = DaemonConfig(
            bundle=bundle,
            camera=options.camera,
            sensor=self.sensor.name,
            seed=options.seed,
            exposure_ms=options.exposure_ms,
            threads=options.threads,
            prefer=tuple(options.prefer),
            warmup_runs=1,
            references=self.store.references_file,
            capture_references="never",
            queue_size=max(2, options.frames_in_flight),
            status_interval_s=60.0,
            confidence=True,  # the scan reports each frame's mean confidence
        )
        self.daemon = Daemon(config, self, camera=self.scan_camera)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ReferenceWarning)  # age/exposure were judged (and recorded) above
            self.daemon.start()

    # ---- session metadata --------------------------------------------------------------------
    def _run_record(self) -> dict:
        return self.meta["runs"][-1]

    def _write_meta(self) -> None:
        with self._meta_lock:
            self.store.write_meta(self.meta)

    def switch_plot(self, name: str) -> None:
        """Frames taken from now on belong to plot ``name`` (a bad name is logged and ignored)."""
        try:
            check_plot_name(name)
        except ScanError as exc:
            self.log(str(exc))
            return
        self.plot = name
        if name not in self.meta["plots"]:
            with self._meta_lock:
                self.meta["plots"].append(name)
            try:
                self._write_meta()
            except ScanOutputError as exc:
                self._fail(exc)
                return
        self.log(f"plot {name}")

    # ---- per frame -------------------------------------------------------------------------------
    def _stamp(self) -> dict:
        """Plot, time and position of a frame being taken (called from the capture thread)."""
        stamp: dict[str, Any] = {"plot": self.plot, "time_utc": utc_ms(self._clock()), "gps": "off", "position": None}
        if self.gps is not None:
            fix, status = self.gps.position()
            stamp["gps"] = status
            stamp["position"] = fix.as_dict() if fix is not None else None
        return stamp

    def send(self, kind: str, **fields: Any) -> None:
        """The daemon's sink: masks are recorded, skipped frames released and reported."""
        if kind == "mask":
            self._on_mask(**fields)
        elif kind == "error":
            self._on_error(**fields)

    def _on_error(self, code: str, message: str, frame_index: int | None = None, **_: Any) -> None:
        if frame_index is not None and self.scan_camera is not None and code in ("frame", "engine"):
            if self.scan_camera.take(frame_index) is not None:
                self._skipped += 1
                self.scan_camera.release()
        if code == "camera" and SCAN_ENDED in message:
            return
        self.log(f"{code}: {message}")

    def _on_mask(self, *, frame_index: int, classes: np.ndarray, confidence: np.ndarray | None, **fields: Any) -> None:
        camera = self.scan_camera
        taken = camera.take(frame_index) if camera is not None else None
        if taken is None:
            return
        try:
            if self.failure is None:
                started = time.perf_counter()
                self._record(taken[0], taken[1], classes, confidence, fields.get("latency_ms"))
                self._record_ms.append((time.perf_counter() - started) * 1e3)
        except ScanOutputError as exc:
            self._fail(exc)
        except XenoedgeError as exc:  # a frame that cannot be pictured: skip it, keep scanning
            self._skipped += 1
            self.log(f"frame {frame_index} skipped: {exc}")
        finally:
            camera.release()

    def _record(self, frame: Any, stamp: dict, classes: np.ndarray, confidence: np.ndarray | None, latency_ms) -> None:
        number = self.records[-1]["number"] + 1 if self.records else 1
        plot = stamp["plot"]
        counts = measure(classes, confidence, self.leaf)
        picture = self.pictures.overlay(frame.data, classes)
        files = self.store.frame_files(plot, number)
        record = {
            "number": number,
            "plot": plot,
            "run": self._run_record()["run"],
            "time_utc": stamp["time_utc"],
            "camera_frame": int(frame.index),
            "camera_timestamp_us": int(frame.timestamp_us),
            "camera_id": frame.camera_id,
            "source": frame.source,
            "model_id": self.model_id,
            "counts": counts.as_dict(),
            "summary": counts.summary(),
            "gps": stamp["gps"],
            "position": stamp["position"],
            "latency_ms": None if latency_ms is None else round(float(latency_ms), 3),
            "files": {"picture": self.store.relative(files["picture"]), "mask": self.store.relative(files["mask"])},
        }
        self.store.commit_frame(
            record, png_bytes(picture, str(files["picture"])), png_bytes(classes, str(files["mask"]))
        )
        self.records.append(record)
        self._frames_this_run += 1
        self._last_record_s = time.perf_counter()
        if latency_ms is not None:
            self._latencies.append(float(latency_ms))
        self._thumbs.setdefault(plot, deque(maxlen=SUMMARY_FRAMES)).append((number, thumbnail(picture)))
        self._stale_plots.add(plot)
        if time.monotonic() - self._tables_written_s >= self.options.tables_every_s:
            self._flush_outputs()
        self.log(self._frame_line(record))

    def _flush_outputs(self) -> None:
        """Rewrite the tables and the summaries of the plots that got frames since the last time."""
        if self._stale_plots:
            self._write_tables()
            for plot in sorted(self._stale_plots):
                self._write_summary(plot)
            self._stale_plots.clear()
        self._tables_written_s = time.monotonic()

    def _frame_line(self, record: dict) -> str:
        s = record["summary"]
        shares = "  ".join(f"{n} {percent_text(s[n])}" for n in SHARE_NAMES)
        leaf = percent_text(s["leaf_cover"])
        conf = "-" if s["mean_confidence"] is None else f"{s['mean_confidence']:.2f}"
        line = f"{record['plot']} #{record['number']}: leaf {leaf}  {shares}  confidence {conf}"
        position = record["position"]
        if position is not None:
            line += f"  at {position['latitude']:.6f}, {position['longitude']:.6f}"
        elif record["gps"] == "missing":
            line += "  position missing"
            counts = self.gps.counts() if self.gps is not None else None
            if counts is not None and counts.rejected_total > self._gps_rejected_seen:
                self._gps_rejected_seen = counts.rejected_total
                kinds = rejected_text(counts.rejected)
                line += f" (warning: GPS sent {counts.rejected_total} bad lines so far: {kinds})"
            if counts is not None and counts.port_errors > self._gps_port_errors_seen:
                self._gps_port_errors_seen = counts.port_errors
                line += (
                    f" (warning: GPS port failed {counts.port_errors} times so far: "
                    f"{self.gps.last_port_error}; reopening it every second)"  # type: ignore[union-attr]
                )
        return line

    def _fail(self, exc: ScanOutputError) -> None:
        if self.failure is None:
            self.failure = exc
            self.log(f"error: {exc}")
        self.stop("output failed")

    # ---- tables and summaries ------------------------------------------------------------------
    def _write_tables(self) -> None:
        store, records = self.store, self.records
        plots = summarise_plots(records)
        pictures = {p.plot: store.relative(store.plot_dir(p.plot) / SUMMARY_PICTURE) for p in plots}
        frame_rows = [frame_row(r) for r in records]
        plot_rows = [p.row(pictures[p.plot]) for p in plots]
        store.writer.write(store.root / FRAMES_CSV, csv_bytes(FRAME_COLUMNS, frame_rows))
        store.writer.write(store.root / FRAMES_GEOJSON, geojson_bytes([point_feature(r) for r in frame_rows]))
        store.writer.write(store.root / PLOTS_CSV, csv_bytes(PLOT_COLUMNS, plot_rows))
        store.writer.write(store.root / PLOTS_GEOJSON, geojson_bytes([point_feature(r) for r in plot_rows]))
        self.plot_summaries = plots

    def _write_summary(self, plot: str) -> None:
        import cv2

        store = self.store
        summary = next(p for p in self.plot_summaries if p.plot == plot)
        thumbs = self._thumbs.get(plot)
        if thumbs is None:  # a resumed plot: its latest frame pictures from disk
            thumbs = self._thumbs[plot] = deque(maxlen=SUMMARY_FRAMES)
            for record in [r for r in self.records if r["plot"] == plot][-SUMMARY_FRAMES:]:
                image = cv2.imread(str(store.root / record["files"]["picture"]), cv2.IMREAD_COLOR)
                if image is not None:
                    thumbs.append((record["number"], thumbnail(image[..., ::-1])))
        h, w, _ = self.sensor.cube_shape
        picture = plot_summary(
            f"{self.meta['field']} / plot {plot}",
            summary.counts,
            summary.frames,
            summary.frames_with_position,
            list(thumbs),
            self.leaf,
            self.colors,
            (h // 2, w // 2),
        )
        store.writer.write(store.plot_dir(plot) / SUMMARY_PICTURE, png_bytes(picture, f"plot {plot} summary"))

    def _rewrite_outputs(self) -> None:
        """Tables and every plot summary from the committed records (after a resume)."""
        if not self.records:
            return
        self._write_tables()
        for summary in self.plot_summaries:
            self._write_summary(summary.plot)

    # ---- run ---------------------------------------------------------------------------------------
    def stop(self, reason: str = "stopped") -> None:
        """End the scan after the frame in flight (thread- and signal-safe)."""
        self._settle_stop.set()
        if self.scan_camera is not None:
            self.scan_camera.stop(reason)
        if self.daemon is not None:
            self.daemon.stop()

    def run(self) -> ScanResult:
        """Scan until the trigger ends, ``frames`` are taken, ``stop()``, or a write fails."""
        self.open()
        if isinstance(self.trigger, LineTrigger):
            self.log(f"plot {self.plot}: Enter takes a frame, 'plot NAME' switches plot, 'q' ends")
        started = time.perf_counter()
        try:
            self.daemon.run()
        finally:  # however the loop ended, the tables and summaries hold every committed frame
            if self.failure is None:
                try:
                    self._flush_outputs()
                except ScanOutputError as exc:
                    self._fail(exc)
        ended = time.perf_counter()
        reason = self.scan_camera.end_reason or "camera finished"  # type: ignore[union-attr]
        if self.failure is not None:
            reason = f"error: {self.failure}"
        run = self._run_record()
        run.update(
            ended_at=iso_utc(self._clock()),
            frames=self._frames_this_run,
            skipped=self._skipped,
            stop_reason=reason,
            gps_counts=self.gps.counts().as_dict() if self.gps is not None else None,
        )
        try:
            self._write_meta()
        except ScanOutputError:
            if self.failure is None:
                raise
        if self.failure is not None:
            raise self.failure
        last = self._last_record_s or ended
        return ScanResult(
            session=self.store.root,
            run=run["run"],
            frames=self._frames_this_run,
            skipped=self._skipped,
            stop_reason=reason,
            plots=summarise_plots(self.records),
            engine=self.daemon.engine.name,
            references=self.decision,  # type: ignore[arg-type]
            recovered=self.recovered,
            gps=run["gps_counts"],
            elapsed_s=ended - started,
            scan_s=last - started,
            latencies_ms=list(self._latencies),
            record_ms=list(self._record_ms),
            camera_ms=list(self.scan_camera.read_ms),  # type: ignore[union-attr]
        )

    def close(self) -> None:
        """Stop the GPS, the daemon (camera, engine) and release the session lock (idempotent)."""
        if self.gps is not None:
            self.gps.close()
            self.gps = None
        if self.daemon is not None:
            self.daemon.close()
            self.daemon = None
        elif self._camera is not None:
            try:
                self._camera.close()
            except Exception:
                pass
        self.store.unlock()
        self._opened = False

    def __enter__(self) -> ScanSession:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_scan(options: ScanOptions, **kwargs: Any) -> ScanResult:
    """Open, run and close a session; SIGINT/SIGTERM end it after the frame in flight (main thread)."""
    session = ScanSession(options, **kwargs)
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda *_: session.stop("signal"))
    try:
        with session:
            return session.run()
    finally:
        for sig, old in handlers.items():
            signal.signal(sig, old)


__all__ = ["Counts", "ScanOptions", "ScanResult", "ScanSession", "run_scan"]
