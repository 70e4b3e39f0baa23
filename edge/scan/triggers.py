"""When a scan takes a frame: on a line of input (Enter), or at a fixed interval.

``LineTrigger`` reads text lines from a stream (stdin by default; a FIFO, or a serial button
box that sends lines, works the same) in a background thread:

==================  ====================================================
line                meaning
==================  ====================================================
empty, ``c``        capture a frame
``plot NAME``       the following frames belong to plot NAME
``q``, end of input end the scan
anything else       ignored, with a note (``on_note``)
==================  ====================================================

``IntervalTrigger`` captures every ``interval_s`` seconds (0: back to back) and never asks.

Both implement ``wait(stop) -> Command`` (blocks until a command, or returns ``END`` once
``stop`` is set) and ``confirm(prompt, stop) -> bool`` (the white-tile step asks the operator
to cap the lens / hold up the tile; False when the input ended).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

#: How often a waiting trigger looks at the stop flag (s).
POLL_S = 0.05


@dataclass(frozen=True)
class Command:
    """``kind`` is ``capture``, ``plot`` (``plot`` names it) or ``end`` (``reason`` says why)."""

    kind: str
    plot: str | None = None
    reason: str = ""


END_OF_INPUT = Command("end", reason="end of input")


def parse_line(line: str) -> Command | str:
    """The command of one input line, or a note (str) saying why it was ignored.

    >>> parse_line("plot B7")
    Command(kind='plot', plot='B7', reason='')
    >>> parse_line("")
    Command(kind='capture', plot=None, reason='')
    """
    text = line.strip()
    if text in ("", "c"):
        return Command("capture")
    if text in ("q", "quit", "end"):
        return Command("end", reason=f"operator typed {text!r}")
    word, _, rest = text.partition(" ")
    if word in ("plot", "p") and rest.strip():
        return Command("plot", plot=rest.strip())
    return f"ignored input {text[:40]!r}: Enter captures, 'plot NAME' switches plot, 'q' ends"


class LineTrigger:
    """Commands from lines of ``stream`` (see the module docstring)."""

    interactive = True

    def __init__(self, stream: TextIO | None = None, *, on_note: Callable[[str], None] | None = None):
        self._stream = stream if stream is not None else sys.stdin
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._on_note = on_note or (lambda _note: None)
        self._reader = threading.Thread(target=self._read, name="xenoedge-scan-input", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for line in self._stream:
                self._lines.put(line)
        except (OSError, ValueError):  # the stream was closed under us
            pass
        self._lines.put(None)

    def _next_line(self, stop: threading.Event) -> str | None:
        while not stop.is_set():
            try:
                line = self._lines.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if line is None:
                self._lines.put(None)  # stays at the end for every later wait
            return line
        return None

    def wait(self, stop: threading.Event) -> Command:
        while True:
            line = self._next_line(stop)
            if line is None:
                return END_OF_INPUT if not stop.is_set() else Command("end", reason="stopped")
            command = parse_line(line)
            if isinstance(command, Command):
                return command
            self._on_note(command)

    def confirm(self, prompt: str, stop: threading.Event) -> bool:
        line = self._next_line(stop)
        if line is None:
            return False
        command = parse_line(line)
        return not (isinstance(command, Command) and command.kind == "end")


class IntervalTrigger:
    """A capture every ``interval_s`` seconds (the first at once); ``sleep`` waits on the stop flag."""

    interactive = False

    def __init__(self, interval_s: float, *, clock: Callable[[], float] = time.monotonic):
        if interval_s < 0:
            raise ValueError(f"interval must be >= 0 s, got {interval_s}")
        self.interval_s = interval_s
        self._clock = clock
        self._due: float | None = None

    def wait(self, stop: threading.Event) -> Command:
        now = self._clock()
        if self._due is not None and self._due > now and stop.wait(self._due - now):
            return Command("end", reason="stopped")
        if stop.is_set():
            return Command("end", reason="stopped")
        self._due = max(self._clock(), self._due or 0.0) + self.interval_s
        return Command("capture")

    def confirm(self, prompt: str, stop: threading.Event) -> bool:
        return not stop.is_set()
