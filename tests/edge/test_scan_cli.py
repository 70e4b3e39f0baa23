"""``xenoedge scan`` as a process: switched off mid-scan (SIGKILL), resumed from the keyboard; errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.edge.install_fixtures import CROP_BUNDLE, ort_target
from tests.edge.test_scan_session import assert_consistent, records_of
from tests.test_device_install import BLOCKER

ROOT = Path(__file__).resolve().parents[2]


def xenoedge(*args: str, **kwargs) -> subprocess.Popen:
    """``xenoedge scan ARGS`` as the device install runs it: torch, onnx, nncf and openvino cannot be
    imported (tests/test_device_install.py's blocker), so the bundle's ONNX Runtime target runs."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    code = BLOCKER + "from xenoedge.cli.main import main\nmain()\n"
    command = [sys.executable, "-c", code, "scan", *args, "--reference-frames", "2", "--threads", "1"]
    return subprocess.Popen(command, cwd=ROOT, env=env, text=True, **kwargs)


def test_killed_mid_scan_loses_at_most_the_frame_in_flight_and_resumes(tmp_path):
    session = tmp_path / "field"
    scan = xenoedge(
        "--session", str(session), "--field", "West 3", "--interval", "0", "--frames", "500",
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while len(records_of(session)) < 2:
            assert scan.poll() is None, scan.stderr.read()
            assert time.monotonic() < deadline, "no frames recorded"
            time.sleep(0.02)
        scan.send_signal(signal.SIGKILL)  # the power goes, whatever it was writing
        scan.wait(timeout=10)
    finally:
        if scan.poll() is None:
            scan.kill()
        scan.stderr.close()
    killed_at = len(records_of(session))
    # resumed by hand: the session's references, a new plot, two Enters, then q
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    resumed = xenoedge("--session", str(session), "--plot", "B", **pipes)
    output, _ = resumed.communicate("\n\nq\n", timeout=120)
    assert resumed.returncode == 0, output
    assert f"B #{killed_at + 1}: leaf" in output and f"B #{killed_at + 2}: leaf" in output
    records = assert_consistent(session)
    assert len(records) == killed_at + 2 and [r["plot"] for r in records[-2:]] == ["B", "B"]
    meta = json.loads((session / "session.json").read_text())
    assert meta["runs"][0]["stop_reason"].startswith("did not end cleanly") and meta["runs"][0]["ended_at"] is None
    assert (meta["runs"][1]["frames"], meta["runs"][1]["stop_reason"]) == (2, "operator typed 'q'")
    assert all(run["engine"].startswith(ort_target(CROP_BUNDLE)) for run in meta["runs"])  # the packaged crop's
    assert meta["runs"][1]["calibration"] == 1 and len(meta["calibrations"]) == 2
    assert meta["calibrations"][1]["source"] == "session"


def test_errors_are_one_red_line_and_exit_code_2(tmp_path):
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    scan = xenoedge("--session", str(tmp_path / "s"), "--field", "F", "--camera", "usb3:0", **pipes)
    output, _ = scan.communicate(timeout=60)
    assert scan.returncode == 2, output
    assert output.startswith("error:") and "usb3" in output and "Traceback" not in output


def test_sigterm_ends_the_scan_with_complete_tables(tmp_path):
    """With tables rewritten at most once a minute they lag the frame records while frames come
    back to back; SIGTERM ends the scan after the frame in flight and the tables then hold every
    committed frame (exit 0, the run's end recorded)."""
    session = tmp_path / "field"
    scan = xenoedge(
        "--session", str(session), "--field", "West 3", "--interval", "0", "--frames", "500",
        "--tables-every", "60", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while len(records_of(session)) < 3:
            assert scan.poll() is None, scan.stdout.read()
            assert time.monotonic() < deadline, "no frames recorded"
            time.sleep(0.02)
        lagging = (session / "frames.csv").read_text().count("\n") - 1
        scan.send_signal(signal.SIGTERM)
        output, _ = scan.communicate(timeout=60)
    finally:
        if scan.poll() is None:
            scan.kill()
            scan.wait()
    assert scan.returncode == 0, output
    assert lagging < 3  # the tables did lag (written after frame 1 only) while the scan ran
    records = assert_consistent(session)  # frames.csv, frames.geojson, plots.csv agree with every record
    assert len(records) >= 3
    meta = json.loads((session / "session.json").read_text())
    (run,) = meta["runs"]
    assert (run["stop_reason"], run["frames"]) == ("signal", len(records)) and run["ended_at"] is not None
