"""The scan camera: any camera, read only when the trigger says so, with the frame's scan stamp.

``TriggeredCamera`` wraps an unopened camera and is what the daemon's capture thread reads.
``read()`` first waits for a free slot (at most ``frames_in_flight`` frames between capture
and their record on disk, so the daemon's drop-oldest queue never drops a scan frame), then
for a capture command from the trigger (plot switches are applied on the way), then reads the
inner camera and stamps the frame (plot, UTC time, GPS position) through ``stamp()``. The
trigger ending (``q``, end of input, ``frames`` reached, ``stop()``) ends the camera with
``CameraExhaustedError``, which ends the daemon's run after the frames in flight are done.
A failed inner read keeps the capture pending: the daemon's retry reads again without a new
trigger. The session calls ``take(index)`` for a processed frame and ``release()`` after it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from xenoedge.devices.camera import Camera, Frame, ReferenceKind
from xenoedge.edge.scan.triggers import POLL_S, Command

from xenoedge.errors import CameraExhaustedError

SCAN_ENDED = "scan ended"


class TriggeredCamera(Camera):
    """See the module docstring. ``switch_plot(name)`` and ``stamp()`` come from the session."""

    def __init__(
        self,
        inner: Camera,
        trigger: Any,
        *,
        stamp: Callable[[], dict],
        switch_plot: Callable[[str], None],
        max_frames: int | None = None,
        frames_in_flight: int = 1,
    ):
        super().__init__(inner.camera_id, inner.sensor, inner.exposure_ms)
        self.inner = inner
        self.trigger = trigger
        self._stamp = stamp
        self._switch_plot = switch_plot
        self.max_frames = max_frames
        self._slots = threading.Semaphore(max(1, frames_in_flight))
        self._stop = threading.Event()
        self._pending = False
        self._frames: dict[int, tuple[Frame, dict]] = {}
        self._lock = threading.Lock()
        self.captured = 0
        self.end_reason = ""
        self.read_ms: list[float] = []  # per frame read: the inner camera's read() (decode included)

    # ---- lifecycle: the inner camera's ----------------------------------------------------
    def _open(self) -> None:
        self.inner.open()

    def _close(self) -> None:
        self.inner.close()

    def read_reference(self, kind: ReferenceKind) -> Frame:
        return self.inner.read_reference(kind)

    def stop(self, reason: str) -> None:
        """End the scan: the waiting ``read()`` raises ``CameraExhaustedError`` (thread-safe)."""
        if not self.end_reason:
            self.end_reason = reason
        self._stop.set()

    # ---- frames -----------------------------------------------------------------------------
    def _end(self, reason: str) -> CameraExhaustedError:
        if not self.end_reason:
            self.end_reason = reason
        return CameraExhaustedError(f"{SCAN_ENDED}: {self.end_reason}")

    def read(self) -> Frame:
        while not self._slots.acquire(timeout=POLL_S):
            if self._stop.is_set():
                raise self._end("stopped")
        try:
            while not self._pending:
                if self._stop.is_set():
                    raise self._end("stopped")
                if self.max_frames is not None and self.captured >= self.max_frames:
                    raise self._end(f"{self.captured} frames taken")
                command: Command = self.trigger.wait(self._stop)
                if command.kind == "end":
                    raise self._end(command.reason)
                if command.kind == "plot":
                    self._switch_plot(command.plot)  # type: ignore[arg-type]
                    continue
                self._pending = True
            started = time.perf_counter()
            frame = self.inner.read()
            self.read_ms.append((time.perf_counter() - started) * 1e3)
        except BaseException:
            self._slots.release()
            raise
        self._pending = False
        self.captured += 1
        with self._lock:
            self._frames[frame.index] = (frame, self._stamp())
        return frame

    def take(self, index: int) -> tuple[Frame, dict] | None:
        """The frame read with ``index`` and its stamp (None if unknown); forgets it."""
        with self._lock:
            return self._frames.pop(index, None)

    def release(self) -> None:
        """A frame is done (recorded or skipped): the next one may be captured."""
        self._slots.release()
