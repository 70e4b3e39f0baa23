"""Ctrl-C during the start-up of ``xenoedge run`` (a real subprocess): it stops after the current
step and prints its summary; a second Ctrl-C ends it at once. Waits are for printed lines only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 120.0  # generous: only a process that ignores Ctrl-C reaches it


class Run:
    """``python -m xenoedge.cli.main ARGS`` with stdout and stderr merged, read line by line in a thread."""

    def __init__(self, *args: str, cwd: Path):
        env = {**os.environ, "COLUMNS": "300", "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xenoedge.cli.main", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
            env=env,
        )
        self.lines: list[str] = []
        self._seen = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._seen:
                self.lines.append(line.rstrip("\n"))
                self._seen.notify_all()

    def wait_line(self, text: str) -> str:
        with self._seen:
            ok = self._seen.wait_for(lambda: any(text in line for line in self.lines), WAIT_S)
        assert ok, f"no line with {text!r} in {self.lines}"
        return next(line for line in self.lines if text in line)

    def output(self) -> str:
        return "\n".join(self.lines)


def test_sigint_during_startup_stops_after_the_current_step_and_prints_the_summary(tmp_path):
    run = Run("run", "--bundle", "crop", "--camera", "sim:crop", "--sink", f"png:{tmp_path / 'out'}",
              "--frames", "100000", cwd=tmp_path)  # fmt: skip
    run.wait_line("starting:")  # printed once the handlers are in place: start-up has begun
    run.proc.send_signal(signal.SIGINT)
    assert run.proc.wait(WAIT_S) == 0, run.output()
    summary = [line for line in run.lines if " masks, " in line][-1]
    assert "stopped" in summary and "delivered" in summary, run.output()
    assert "stopping after the current step" in run.output() and "Traceback" not in run.output()
    masks = int(summary.split(" masks, ")[0].rsplit(" ", 1)[-1])
    assert masks < 100000 and len(list((tmp_path / "out").glob("mask_*.png"))) == masks


def test_a_second_sigint_ends_at_once(tmp_path):
    run = Run("run", "--bundle", "crop", "--camera", "sim:crop", "--sink", f"png:{tmp_path / 'out'}", cwd=tmp_path)
    run.wait_line("starting:")
    run.proc.send_signal(signal.SIGINT)
    run.wait_line("stopping after the current step")  # the first one was taken: SIGINT is back to its default
    run.proc.send_signal(signal.SIGINT)
    assert run.proc.wait(WAIT_S) in (-signal.SIGINT, 0), run.output()
