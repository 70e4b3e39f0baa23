"""Library telemetry is off, and ``xenoedge scan`` exits when its work is done with nothing left behind.

OpenVINO and NNCF send usage events through ``openvino_telemetry`` from a forked child that, with no
network, hangs in the name look-up, ignores SIGTERM and keeps the session's lock; ``multiprocessing``'s
exit hook then waits for it forever (issue 17). The scan test puts a stand-in ``openvino_telemetry``
in front of the real one that does exactly that, and asserts that the scan never imports it, exits
with its summary, leaves no process in its group and releases the session's lock.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Imported instead of the real package if anything tries: a child that never ends and ignores SIGTERM.
STAND_IN = """
import multiprocessing, os, pathlib, signal, time

pathlib.Path(os.environ["TELEMETRY_MARKER"]).write_text(str(os.getpid()))

def _hang():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)

_child = multiprocessing.get_context("fork").Process(target=_hang, daemon=True)
_child.start()
raise ImportError("stand-in openvino_telemetry: pretend the package is absent once the child runs")
"""


def _group_members(pgid: int) -> list[str]:
    """Live processes of process group ``pgid`` (from /proc): 'pid command' strings."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(f"{entry.name} {stat[stat.index('(') : stat.rindex(')') + 1]}")
    return members


def _installed_or_skip(*distributions: str) -> None:
    """Skip unless these distributions are installed (looked up without importing them)."""
    from importlib.metadata import PackageNotFoundError, version

    for name in distributions:
        try:
            version(name)
        except PackageNotFoundError:
            pytest.skip(f"{name} is not installed")


def test_importing_the_product_blocks_library_telemetry():
    code = (
        "import sys, xenoedge.edge, openvino, nncf\n"
        "from xenoedge.telemetry import telemetry_disabled\n"
        "import openvino.tools.ovc as ovc\n"
        "assert sys.modules['openvino_telemetry'] is None, 'openvino_telemetry was imported'\n"
        "assert telemetry_disabled()\n"
        "assert 'telemetry_stub' in type(ovc.telemetry).__module__, type(ovc.telemetry)\n"
        "print('ok')\n"
    )
    _installed_or_skip("openvino", "nncf")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_already_imported_telemetry_sends_nothing():
    _installed_or_skip("openvino-telemetry")  # not importorskip: this process has it blocked already
    code = (
        "import openvino_telemetry.backend.backend_ga4 as ga4\n"
        "from xenoedge.telemetry import disable_telemetry, telemetry_disabled\n"
        "disable_telemetry()\n"
        "assert telemetry_disabled()\n"
        "assert ga4.GA4Backend.send(None, {'x': 1}) is None\n"
        "import multiprocessing\n"
        "assert not multiprocessing.active_children()\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_scan_in_enter_mode_exits_with_its_summary_and_leaves_no_process(tmp_path):
    stand_in = tmp_path / "stand-in"
    (stand_in / "openvino_telemetry").mkdir(parents=True)
    (stand_in / "openvino_telemetry" / "__init__.py").write_text(textwrap.dedent(STAND_IN))
    marker = tmp_path / "telemetry-imported"
    session = tmp_path / "scans" / "n12"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(stand_in), str(ROOT)]),
        "OPENBLAS_NUM_THREADS": "1",
        "TELEMETRY_MARKER": str(marker),
        "COLUMNS": "120",
    }
    env.pop("CI", None)  # openvino_telemetry stays quiet under CI=true: test the user's case
    command = [sys.executable, "-m", "xenoedge.cli.main", "scan", "--session", str(session), "--field", "F"]
    command += ["--plot", "P1", "--camera", "sim:crop", "--frames", "3", "--reference-frames", "2"]
    command += ["--threads", "1"]
    scan = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: every child it starts stays in it
    )
    try:
        # two Enters for the white-tile step (dark, white), three for the frames, spares for slow starts
        output, _ = scan.communicate("\n" * 8, timeout=240)
        leftover = []
        deadline = time.monotonic() + 5  # a child that is merely being reaped goes within moments
        while time.monotonic() < deadline:
            leftover = _group_members(scan.pid)
            if not leftover:
                break
            time.sleep(0.1)
    finally:
        if scan.poll() is None:
            os.killpg(scan.pid, signal.SIGKILL)
            scan.wait()
        for line in _group_members(scan.pid):
            os.kill(int(line.split()[0]), signal.SIGKILL)
    assert scan.returncode == 0, output
    words = " ".join(output.split())  # the summary table's title may wrap
    assert "run 1, 3 frames (3 frames taken)" in words and "P1 #3: leaf" in words, output
    assert not marker.exists(), "openvino_telemetry was imported"
    assert leftover == [], f"processes left behind by scan: {leftover}"
    fd = os.open(session / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if anything still holds the session
    finally:
        os.close(fd)
