"""The white-tile step with ``--interval``: a camera without references of its own waits for the
operator (cap the lens, Enter; white tile, Enter) on a real pipe; cameras with their own
references (the simulator, a ``file:`` recording with dark/white frames) never ask."""

from __future__ import annotations

import json
import os
import threading

import pytest
from xenoedge.devices.open_camera import camera_from_spec
from xenoedge.devices.recording import record
from xenoedge.edge.scan import ScanCalibrationError, ScanSession
from xenoedge.edge.scan.field_references import DARK_PROMPT, WHITE_PROMPT, references_need_operator

from tests.edge.test_scan_session import _wait, assert_consistent, options, records_of
from xenoedge.sensors import get_sensor

SENSOR = get_sensor("mosaic-5x5-nir")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """The same simulated scene recorded as 16-bit PNG mosaics: without reference frames, and with."""
    root = tmp_path_factory.mktemp("recordings")
    record(camera_from_spec("sim:crop", SENSOR, seed=5), root / "plain", 4, references=0)
    record(camera_from_spec("sim:crop", SENSOR, seed=5), root / "refs", 1, references=1)
    return root


def test_which_cameras_need_the_operator(recordings):
    assert not references_need_operator(camera_from_spec("sim:crop", SENSOR))
    assert not references_need_operator(camera_from_spec(f"file:{recordings / 'refs'}/%05d.png", SENSOR))
    assert references_need_operator(camera_from_spec(f"file:{recordings / 'plain'}/%05d.png", SENSOR))
    assert references_need_operator(camera_from_spec("v4l2:/dev/video0?profile=mosaic-5x5-nir", SENSOR))


def _open_in_background(scan: ScanSession) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def target() -> None:
        try:
            scan.open()
        except BaseException as exc:  # handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def test_interval_scan_waits_for_both_enters_before_taking_references(tmp_path, recordings):
    """Frames 0 and 1 of the recording become the dark and white references only after each Enter;
    the interval frames are 2 and 3 (references of scene frames fail validation: overridden here)."""
    read_fd, write_fd = os.pipe()
    lines: list[str] = []
    session = tmp_path / "s"
    scan = ScanSession(
        options(
            session,
            camera=f"file:{recordings / 'plain'}/%05d.png",
            reference_frames=1,
            override_references=True,
            frames=2,
        ),
        log=lines.append,
        operator_input=os.fdopen(read_fd, "r"),
    )
    opener, outcome = _open_in_background(scan)
    try:
        _wait(lambda: DARK_PROMPT in lines, "the dark prompt")
        opener.join(timeout=0.5)
        assert opener.is_alive() and WHITE_PROMPT not in lines  # nothing captured without the operator
        assert not (session / "references.npz").exists()
        os.write(write_fd, b"\n")
        _wait(lambda: WHITE_PROMPT in lines, "the white prompt")
        opener.join(timeout=0.5)
        assert opener.is_alive() and not (session / "references.npz").exists()
        os.write(write_fd, b"\n")
        opener.join(timeout=60)
        assert not opener.is_alive() and "error" not in outcome, outcome
        result = scan.run()
    finally:
        os.close(write_fd)
        scan.close()
    assert result.frames == 2
    records = assert_consistent(session)
    assert [r["camera_frame"] for r in records] == [2, 3]
    (calibration,) = json.loads((session / "session.json").read_text())["calibrations"]
    assert calibration["source"] == "captured" and calibration["overridden"] and not calibration["ok"]
    assert any("has no references of its own" in line for line in lines)


def test_interval_white_tile_step_abandoned_when_the_operator_input_ends(tmp_path, recordings):
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"\n")  # the lens is capped; then the input ends before the white tile
    os.close(write_fd)
    session = tmp_path / "s"
    scan = ScanSession(
        options(session, camera=f"file:{recordings / 'plain'}/%05d.png", reference_frames=1),
        log=lambda _line: None,
        operator_input=os.fdopen(read_fd, "r"),
    )
    with pytest.raises(ScanCalibrationError, match="white-tile step abandoned"):
        scan.open()
    assert not records_of(session) and not (session / "references.npz").exists()
    (run,) = json.loads((session / "session.json").read_text())["runs"]
    assert run["stop_reason"] == "references refused"


def test_interval_on_a_recording_with_references_never_asks(tmp_path, recordings):
    """The operator input is a pipe nobody writes to: a prompt would hang until the input closes."""
    read_fd, write_fd = os.pipe()
    lines: list[str] = []
    session = tmp_path / "s"
    scan = ScanSession(
        options(session, camera=f"file:{recordings / 'refs'}/%05d.png", reference_frames=1, frames=1),
        log=lines.append,
        operator_input=os.fdopen(read_fd, "r"),
    )
    opener, outcome = _open_in_background(scan)
    try:
        opener.join(timeout=60)
        alive = opener.is_alive()
    finally:
        os.close(write_fd)  # releases a (wrongly) waiting prompt
        opener.join(timeout=60)
        scan.close()
    assert not alive and "error" not in outcome, outcome
    assert DARK_PROMPT not in lines and WHITE_PROMPT not in lines
    (calibration,) = json.loads((session / "session.json").read_text())["calibrations"]
    assert calibration["source"] == "captured" and calibration["ok"]


def test_a_stop_during_the_white_tile_step_abandons_it(tmp_path, recordings):
    """SIGTERM / Ctrl-C call ``stop()``: a scan waiting for the operator's Enter ends at once."""
    read_fd, write_fd = os.pipe()
    lines: list[str] = []
    scan = ScanSession(
        options(tmp_path / "s", camera=f"file:{recordings / 'plain'}/%05d.png", reference_frames=1),
        log=lines.append,
        operator_input=os.fdopen(read_fd, "r"),
    )
    opener, outcome = _open_in_background(scan)
    try:
        _wait(lambda: DARK_PROMPT in lines, "the dark prompt")
        scan.stop("signal")
        opener.join(timeout=10)
        assert not opener.is_alive()
    finally:
        os.close(write_fd)
        opener.join(timeout=10)
    assert isinstance(outcome.get("error"), ScanCalibrationError) and "abandoned" in str(outcome["error"])
