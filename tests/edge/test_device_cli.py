"""`xenoedge run` and `xenoedge demo` end to end with the packaged default bundles."""

import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xenoedge.cli.main", *args], capture_output=True, text=True, timeout=300
    )


def test_demo_sends_masks_over_a_pty_to_the_receiver(tmp_path):
    result = run_cli("demo", "--bundle", "crop", "--frames", "6", "--every", "2", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "daemon: 6 masks" in result.stderr and "masks 6" in result.stderr and "crc errors 0" in result.stderr
    assert len(list(tmp_path.glob("mask_*.png"))) == 3


def test_run_writes_pictures_and_stops_after_the_requested_frames(tmp_path):
    result = run_cli("run", "--bundle", "crop", "--frames", "4", "--sink", f"png:{tmp_path}:1")
    assert result.returncode == 0, result.stderr
    assert len(list(tmp_path.glob("mask_*.png"))) == 4


def test_run_refuses_a_missing_bundle(tmp_path):
    result = run_cli("run", "--bundle", str(tmp_path / "nope.xeb"), "--frames", "1")
    assert result.returncode == 1 and "nope.xeb" in result.stderr
