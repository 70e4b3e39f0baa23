"""Scan sessions end to end: the packaged crop bundle on the simulated mosaic camera, real files.

Frames are the full 2048x1088 mosaic (the bundle's static 217x409 cube); each session takes a
few frames and averages 2 frames per reference to stay fast.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pynmea2
import pytest
from xenoedge.calibration.mosaic import cube_from_mosaic
from xenoedge.calibration.reflectance import reflectance_from_raw
from xenoedge.calibration.store import load_references
from xenoedge.devices.formats.label_png import read_label_png
from xenoedge.devices.open_camera import camera_from_spec
from xenoedge.devices.recording import record
from xenoedge.edge.builtin_bundles import default_bundle
from xenoedge.edge.daemon import mean_dsc
from xenoedge.edge.scan import ScanCalibrationError, ScanError, ScanOptions, ScanOutputError, ScanSession, run_scan
from xenoedge.edge.scan.measure import LeafClasses, measure
from xenoedge.edge.scan.pictures import FramePictures
from xenoedge.edge.scan.store import OutputWriter, SessionStore
from xenoedge.edge.scan.triggers import LineTrigger
from xenoedge.export.bundle import IncompatibleBundleError
from xenoedge.xeno.labels import CROP
from xenoedge.xeno.previews import LEGEND_PX, pseudo_rgb

from xenoedge.errors import XenoedgeError
from xenoedge.sensors import get_sensor

T0 = datetime(2026, 6, 1, 9, 0, 0, tzinfo=timezone.utc)


def options(session: Path, **overrides) -> ScanOptions:
    values = {
        "session": session,
        "field": "North 12",
        "interval_s": 0.0,
        "frames": 2,
        "reference_frames": 2,
        "threads": 1,
    }
    return ScanOptions(**(values | overrides))


class PipeInput:
    """Operator input through a real pipe, read by ``LineTrigger`` as it reads stdin."""

    def __init__(self, lines: str = "", on_note=None):
        read_fd, self._write_fd = os.pipe()
        self.trigger = LineTrigger(os.fdopen(read_fd, "r"), on_note=on_note)
        self.send(lines)

    def send(self, lines: str) -> None:
        os.write(self._write_fd, lines.encode())

    def close(self) -> None:
        os.close(self._write_fd)


def records_of(session: Path) -> list[dict]:
    return sorted((json.loads(p.read_text()) for p in session.glob("plots/*/[0-9]*.json")), key=lambda r: r["number"])


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_consistent(session: Path) -> list[dict]:
    """Tables, pictures and masks agree with the frame records; nothing half-written is left."""
    records = records_of(session)
    assert [r["number"] for r in records] == list(range(1, len(records) + 1))
    leaf = LeafClasses.from_labels(CROP.to_json())
    for r in records:
        mask = read_label_png(session / r["files"]["mask"], n_labels=4)
        assert mask.shape == get_sensor("mosaic-5x5-nir").cube_shape[:2]
        counts = measure(mask, None, leaf)
        assert (counts.healthy, counts.stressed, counts.lesion) == (
            r["counts"]["healthy"],
            r["counts"]["stressed"],
            r["counts"]["lesion"],
        )
        picture = cv2.imread(str(session / r["files"]["picture"]))[..., ::-1]  # beside the label file
        assert picture.shape == (mask.shape[0], mask.shape[1] + LEGEND_PX, 3)
        legend = picture[:, -LEGEND_PX:].reshape(-1, 3)
        assert all((legend == color).all(axis=1).sum() >= 100 for color in CROP.colors())
        if counts.leaf:
            assert sum(r["summary"][n] for n in ("healthy", "stressed", "lesion")) == pytest.approx(1.0, abs=1e-5)
    rows = read_csv(session / "frames.csv")
    assert [int(row["number"]) for row in rows] == [r["number"] for r in records]
    for row, r in zip(rows, records, strict=True):
        assert row["plot"] == r["plot"] and float(row["healthy"]) == pytest.approx(r["summary"]["healthy"])
    features = json.loads((session / "frames.geojson").read_text())["features"]
    assert [f["properties"]["number"] for f in features] == [r["number"] for r in records]
    plots = {row["plot"]: row for row in read_csv(session / "plots.csv")}
    for plot, row in plots.items():
        mine = [r for r in records if r["plot"] == plot]
        assert int(row["frames"]) == len(mine)
        leaf_px = sum(r["counts"]["healthy"] + r["counts"]["stressed"] + r["counts"]["lesion"] for r in mine)
        assert float(row["lesion"]) == pytest.approx(sum(r["counts"]["lesion"] for r in mine) / leaf_px, abs=1e-6)
        assert cv2.imread(str(session / row["summary_picture"])) is not None
    leftovers = [p.name for p in session.rglob(".*") if ".tmp" in p.name]
    orphans = [p for p in session.glob("plots/*/[0-9]*.png") if not p.with_name(p.name[:6] + ".json").is_file()]
    assert not leftovers and not orphans, (leftovers, orphans)
    return records


def test_session_frames_plots_tables_pictures(tmp_path):
    """On the real OpenCV driver: a 16-bit PNG mosaic sequence with dark/white frames, recorded from
    the simulator (``xenoedge.devices.recording``); the white-tile step uses the recorded reference frames."""
    recording = tmp_path / "rec"
    record(camera_from_spec("sim:crop", get_sensor("mosaic-5x5-nir"), seed=3), recording, 3, references=2)
    session = tmp_path / "north-12"
    # two Enters for the white-tile step, two frames, a typo, a bad plot name, switch plot, one frame, end
    lines: list[str] = []
    operator = PipeInput("\n\n" + "\n\n" + "captur\n" + "plot a/b\n" + "plot P2\n" + "\n" + "q\n", lines.append)
    camera = f"file:{recording}/%05d.png"
    result = run_scan(
        options(session, camera=camera, interval_s=None, frames=None, note="after rain"),
        trigger=operator.trigger,
        log=lines.append,
    )
    operator.close()
    assert (result.frames, result.skipped, result.stop_reason) == (3, 0, "operator typed 'q'")
    assert [(p.plot, p.frames) for p in result.plots] == [("P1", 2), ("P2", 1)]
    records = assert_consistent(session)
    assert [r["plot"] for r in records] == ["P1", "P1", "P2"]
    assert all(r["gps"] == "off" and r["position"] is None for r in records)
    assert all(r["model_id"] == "crop@1.0.0" and r["summary"]["mean_confidence"] > 0.5 for r in records)
    for i, r in enumerate(records):  # the crop model against the simulator's ground truth
        assert r["camera_frame"] == i and r["source"]
        truth = read_label_png(recording / "labels" / f"{i:05d}.png")
        assert mean_dsc(read_label_png(session / r["files"]["mask"]), truth, 4) > 0.9
        assert 0.02 < r["summary"]["leaf_cover"] < 0.9
    features = json.loads((session / "frames.geojson").read_text())
    assert features["type"] == "FeatureCollection" and all(f["geometry"] is None for f in features["features"])
    meta = json.loads((session / "session.json").read_text())
    assert (meta["field"], meta["note"], meta["plots"]) == ("North 12", "after rain", ["P1", "P2"])
    (run,) = meta["runs"]
    assert run["frames"] == 3 and run["stop_reason"] == "operator typed 'q'" and run["ended_at"]
    (calibration,) = meta["calibrations"]
    assert calibration["source"] == "captured" and calibration["ok"] and not calibration["overridden"]
    assert [v["what"] for v in calibration["validation"]] == ["dark reference", "white reference"]
    refs = load_references(session / "references.npz", require_complete=True)
    assert refs.camera_id == run["camera"]["camera_id"] and run["camera"]["spec"] == camera
    assert any(line.startswith("White-tile step 1/2") for line in lines)
    assert any(line.startswith("P2 #3: leaf") for line in lines)
    assert any(line.startswith("ignored input 'captur'") for line in lines)
    assert any(line.startswith("plot name 'a/b'") for line in lines)


def test_frame_picture_is_the_pseudo_rgb_of_calibrated_reflectance():
    """Three bands calibrated for the picture give exactly what the full calibrated cube would."""
    sensor = get_sensor("mosaic-5x5-nir")
    rng = np.random.default_rng(0)
    from xenoedge.calibration.references import References

    h, w, c = sensor.cube_shape
    refs = References("cam", sensor.name, sensor.signature, dark=np.full((h, w, c), 40.0, np.float32))
    refs.white = (700.0 + rng.normal(0, 5, (h, w, c))).astype(np.float32)
    raw = rng.integers(40, 900, (sensor.height, sensor.width), dtype=np.uint16)
    pictures = FramePictures(sensor, refs, CROP.colors())
    full = reflectance_from_raw(cube_from_mosaic(raw, sensor), refs.dark, refs.white)
    np.testing.assert_array_equal(pictures.rgb(raw), pseudo_rgb(full, sensor.wavelengths()))


def test_resume_refuses_old_references_then_records_the_override(tmp_path):
    session = tmp_path / "s"
    run_scan(options(session, frames=3, frames_in_flight=2), clock=lambda: T0)  # capture overlaps recording
    later = T0 + timedelta(hours=2)
    with pytest.raises(ScanCalibrationError, match=r"white reference is 2\.0 h old") as refused:
        run_scan(options(session, field=None, plot="P2", frames=1), clock=lambda: later)
    assert "--override-references" in str(refused.value) and "--recalibrate" in str(refused.value)
    meta = json.loads((session / "session.json").read_text())
    assert meta["runs"][-1]["stop_reason"] == "references refused"
    assert not meta["calibrations"][-1]["ok"] and meta["calibrations"][-1]["source"] == "session"
    assert len(records_of(session)) == 3

    result = run_scan(options(session, field=None, plot="P2", frames=1, override_references=True), clock=lambda: later)
    assert (result.run, result.frames) == (3, 1)
    meta = json.loads((session / "session.json").read_text())
    last = meta["calibrations"][-1]
    assert last["overridden"] and any("2.0 h old" in p for p in last["problems"])
    assert meta["runs"][-1]["calibration"] == len(meta["calibrations"]) - 1
    records = assert_consistent(session)
    assert [(r["number"], r["plot"], r["run"]) for r in records] == [
        (1, "P1", 1),
        (2, "P1", 1),
        (3, "P1", 1),
        (4, "P2", 3),
    ]
    assert [r["camera_frame"] for r in records[:3]] == [0, 1, 2]
    with pytest.raises(
        ScanCalibrationError, match=r"references are for camera sim-mosaic-5x5-nir-0, not .*-7.*--recalibrate"
    ):
        ScanSession(options(session, field=None, seed=7)).open()  # another (simulated) camera
    with pytest.raises(ScanError, match="scans field 'North 12', not 'South'"):
        ScanSession(options(session, field="South")).open()


def test_references_failing_validation_refuse_the_scan(tmp_path):
    session = tmp_path / "dim"
    # 0.5 ms exposure: the white tile gives ~25 counts above dark, below the 50 the validation asks
    with pytest.raises(ScanCalibrationError, match="white reference failed: signal") as refused:
        run_scan(options(session, exposure_ms=0.5))
    assert refused.value.problems and not (session / "references.npz").exists()
    meta = json.loads((session / "session.json").read_text())
    assert meta["calibrations"][0]["ok"] is False and meta["runs"][0]["stop_reason"] == "references refused"
    assert not records_of(session)


def _gga(lat: str, lon: str) -> bytes:
    fields = ("101500.00", lat, "N", lon, "E", "2", "11", "0.7", "312.0", "M", "47.0", "M", "", "")
    return (str(pynmea2.GGA("GN", "GGA", fields)) + "\r\n").encode()


def _wait(predicate, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_gps_garbage_leaves_positions_missing_and_counted_a_real_fix_places_frames(tmp_path):
    session = tmp_path / "gps"
    master, slave = os.openpty()
    operator = PipeInput("\n\n")  # the white-tile step
    lines: list[str] = []
    scan = ScanSession(
        options(session, interval_s=None, frames=None, gps=f"{os.ttyname(slave)}@4800"),
        trigger=operator.trigger,
        log=lines.append,
    )
    outcome: dict = {}
    try:
        scan.open()
        runner = threading.Thread(target=lambda: outcome.update(result=scan.run()))
        runner.start()
        good = _gga("4807.038", "01131.000")
        garbled = _gga("48x7.038", "01131.000")  # right checksum, latitude not a number
        garbage = [good[:-4] + b"00\r\n", b"\x00\xff\xfe\x80junk\xc3\r\n", b"GPGGA no dollar\r\n", garbled]
        os.write(master, b"".join(garbage))
        _wait(lambda: scan.gps.counts().lines == 4, "the GPS garbage")
        operator.send("\n\n")
        _wait(lambda: len(records_of(session)) == 2, "two frames")
        os.write(master, good)
        _wait(lambda: scan.gps.counts().fixes == 1, "a fix")
        operator.send("\nq\n")
        runner.join(timeout=60)
        assert not runner.is_alive()
    finally:
        scan.close()
        operator.close()
        os.close(master)
        os.close(slave)
    result = outcome["result"]
    assert result.frames == 3 and result.skipped == 0
    assert result.gps["rejected"] == {"bad_checksum": 1, "not_nmea": 2, "unparsable": 1}
    records = assert_consistent(session)
    assert [r["gps"] for r in records] == ["missing", "missing", "fix"]
    assert records[0]["position"] is None
    position = records[2]["position"]
    assert position["latitude"] == pytest.approx(48.1173) and (position["quality"], position["satellites"]) == (2, 11)
    features = json.loads((session / "frames.geojson").read_text())["features"]
    assert [f["geometry"] for f in features[:2]] == [None, None]
    assert features[2]["geometry"] == {
        "type": "Point",
        "coordinates": [pytest.approx(11.516667), pytest.approx(48.1173), 312.0],
    }
    (plot,) = json.loads((session / "plots.geojson").read_text())["features"]
    assert plot["properties"]["frames_with_position"] == 1 and plot["geometry"]["coordinates"][1] == pytest.approx(
        48.1173
    )
    warning = [line for line in lines if "position missing" in line]
    assert len(warning) == 2 and "GPS sent 4 bad lines so far" in warning[0]
    meta = json.loads((session / "session.json").read_text())
    assert meta["runs"][0]["gps_counts"]["rejected_total"] == 4


class FullDisk:
    """A disk that fills up while ``fills_at`` is written: half of it goes out, then ENOSPC, and every
    later write fails the same way. Injected where ``atomic_write`` puts bytes into its temp file (a
    small filesystem cannot be mounted here); the temp file, its cleanup and the rename are real."""

    def __init__(self, fills_at: str):
        self.fills_at, self.full, self.refused = fills_at, False, []

    def __call__(self, f, data: bytes, path: Path) -> None:
        if path.name == self.fills_at:
            self.full = True
            f.write(data[: len(data) // 2])
        if self.full:
            self.refused.append(path.name)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        f.write(data)


def test_full_disk_stops_with_a_clear_error_and_the_session_resumes(tmp_path):
    session = tmp_path / "full"
    disk = FullDisk("000003.png")  # frame 3's picture, after its mask
    with pytest.raises(
        ScanOutputError, match=r"000003\.png: cannot write it \(No space left on device\); the disk is full"
    ) as full:
        run_scan(options(session, frames=5, tables_every_s=0.0), writer=OutputWriter(disk))
    assert full.value.errno == errno.ENOSPC
    assert "session.json" in disk.refused  # the end-of-run record could not be written either
    assert (session / "plots/P1/000003_mask.png").is_file()  # the frame in flight left its mask
    assert not list(session.rglob(".*.tmp"))  # atomic_write removed its temp files
    assert len(read_csv(session / "frames.csv")) == 2
    assert [r["number"] for r in records_of(session)] == [1, 2]

    lines: list[str] = []
    result = run_scan(options(session, field=None, frames=2), log=lines.append)
    assert result.recovered == {"temp_files": 0, "orphan_files": 1}
    assert any("removed what an interrupted frame left (1 frame files" in line for line in lines)
    records = assert_consistent(session)
    assert [r["number"] for r in records] == [1, 2, 3, 4]
    meta = json.loads((session / "session.json").read_text())
    assert meta["runs"][0]["stop_reason"].startswith("did not end cleanly")
    assert meta["runs"][1]["stop_reason"] == "2 frames taken"


def test_bad_bundles_and_camera_strings_fail_before_anything_is_scanned(tmp_path):
    with pytest.raises(ScanError, match=r"nope\.xeb: no such bundle file"):
        ScanSession(options(tmp_path / "a", bundle=tmp_path / "nope.xeb")).open()
    with pytest.raises(ScanError, match=r"bundle surgical@.* is not a crop model: .* lack healthy_leaf"):
        ScanSession(options(tmp_path / "b", bundle=default_bundle("surgical"))).open()
    with pytest.raises(IncompatibleBundleError):
        ScanSession(options(tmp_path / "c", sensor="mosaic-4x4-vis")).open()
    with pytest.raises(XenoedgeError, match="usb3") as bad_camera:  # the error lists the accepted forms
        ScanSession(options(tmp_path / "d", camera="usb3:cam0")).open()
    assert "sim" in str(bad_camera.value) and "replay" in str(bad_camera.value)
    with pytest.raises(XenoedgeError, match="none-such"):  # a camera string that parses but cannot open
        ScanSession(options(tmp_path / "g", camera=f"replay:{tmp_path / 'none-such'}")).open()
    with pytest.raises(ScanError, match="a new session needs --field"):
        ScanSession(options(tmp_path / "e", field=None)).open()
    with pytest.raises(ScanError, match="plot name 'a/b'"):
        ScanSession(options(tmp_path / "f", plot="a/b")).open()
    (tmp_path / "file").write_text("")
    with pytest.raises(ScanError, match="file: not a folder"):
        ScanSession(options(tmp_path / "file")).open()
    (tmp_path / "i").mkdir()
    (tmp_path / "i" / "thesis.txt").write_text("not a session")
    with pytest.raises(ScanError, match=r"not a scan session but not empty either \(thesis\.txt\)"):
        ScanSession(options(tmp_path / "i")).open()
    held = SessionStore(tmp_path / "h")
    held.lock()  # another scan on the same session
    try:
        with pytest.raises(ScanError, match="another scan is running on this session"):
            ScanSession(options(tmp_path / "h")).open()
    finally:
        held.unlock()
    for name in "abcdefgh":
        assert not (tmp_path / name / "session.json").exists()
