"""The one camera interface every driver implements.

A camera is opened, read frame by frame, and closed; it works as a context manager.
Drivers that can capture references (a shutter to close, a built-in white tile, or a
simulator) also implement ``read_reference("dark" | "white")``.

Timestamps come from an injected clock (``time.monotonic_ns`` by default) so tests
never sleep to synchronise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from xenoedge.errors import CameraError
from xenoedge.sensors import SensorProfile

FrameKind = Literal["raw", "mosaic_raw", "reflectance"]
ReferenceKind = Literal["dark", "white"]


@dataclass
class Frame:
    """One frame as a camera delivers it.

    ``data`` is (H, W, C) uint16 raw counts (``kind="raw"``), (H, W) uint16 mosaic raw
    counts (``kind="mosaic_raw"``) or (H, W, C) float32 reflectance
    (``kind="reflectance"``, e.g. a replayed Tivita cube). ``wavelengths_nm`` is (C,).
    ``labels`` is the (H, W) uint8 ground truth when the source knows it (simulator,
    replay with label PNGs), else None.
    """

    data: np.ndarray
    kind: FrameKind
    index: int
    timestamp_us: int
    exposure_ms: float
    camera_id: str
    sensor: str
    wavelengths_nm: np.ndarray
    labels: np.ndarray | None = None
    source: str = ""
    meta: dict = field(default_factory=dict)


class Camera:
    """Base for drivers: open/close bookkeeping, context manager, frame counter, clock.

    Subclasses implement ``_open``, ``_close`` and ``_read`` (returning ``data`` and the
    optional labels/meta); the base stamps index, time, exposure and camera id. A driver
    whose device time-stamps its frames returns ``timestamp_us`` (µs, host monotonic clock)
    in the extras; otherwise the frame gets the injected clock's time when it was read.
    """

    camera_id: str
    sensor: SensorProfile
    exposure_ms: float

    def __init__(
        self,
        camera_id: str,
        sensor: SensorProfile,
        exposure_ms: float,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ):
        self.camera_id = camera_id
        self.sensor = sensor
        self.exposure_ms = exposure_ms
        self._clock_ns = clock_ns
        self._is_open = False
        self._next_index = 0

    # -- lifecycle --------------------------------------------------------
    def open(self) -> None:
        if not self._is_open:
            self._open()
            self._is_open = True

    def close(self) -> None:
        if self._is_open:
            self._is_open = False
            self._close()

    @property
    def is_open(self) -> bool:
        return self._is_open

    @property
    def on_demand(self) -> bool:
        """True for a source that makes each frame when asked (a simulator or a replay without a
        frame rate of its own): nothing is lost by asking later, so a consumer may wait for room
        instead of reading frames it would drop. False (default) for a sensor that runs in real time."""
        return False

    def __enter__(self) -> Camera:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- frames -----------------------------------------------------------
    def read(self) -> Frame:
        """The next scene frame. Raises ``CameraError`` (``CameraExhaustedError`` at the end)."""
        self._require_open()
        data, kind, extras = self._read()
        frame = self._stamp(data, kind, extras)
        self._next_index += 1
        return frame

    def read_reference(self, kind: ReferenceKind) -> Frame:
        """One dark or white reference frame, where the driver can capture it itself."""
        self._require_open()
        if kind not in ("dark", "white"):
            raise CameraError(f"camera {self.camera_id}: reference kind must be 'dark' or 'white', not {kind!r}")
        data, frame_kind, extras = self._read_reference(kind)
        frame = self._stamp(data, frame_kind, extras)
        frame.meta["reference"] = kind
        return frame

    # -- for subclasses ---------------------------------------------------
    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def _read(self) -> tuple[np.ndarray, FrameKind, dict]:
        raise NotImplementedError

    def _read_reference(self, kind: ReferenceKind) -> tuple[np.ndarray, FrameKind, dict]:
        raise CameraError(
            f"camera {self.camera_id} cannot capture a {kind} reference itself; "
            + ("cap the lens" if kind == "dark" else "point it at a white tile")
            + " and use read() instead"
        )

    def _require_open(self) -> None:
        if not self._is_open:
            raise CameraError(f"camera {self.camera_id} is not open; call open() or use it in a with-block")

    def _timestamp_us(self, device_us: int | None) -> int:
        """The driver's capture time when it reports one (extras ``timestamp_us``), else the clock's."""
        return int(device_us) if device_us is not None else self._clock_ns() // 1000

    def _stamp(self, data: np.ndarray, kind: FrameKind, extras: dict) -> Frame:
        return Frame(
            data=data,
            kind=kind,
            index=self._next_index,
            timestamp_us=self._timestamp_us(extras.pop("timestamp_us", None)),
            exposure_ms=extras.pop("exposure_ms", self.exposure_ms),
            camera_id=self.camera_id,
            sensor=self.sensor.name,
            wavelengths_nm=extras.pop("wavelengths_nm", self.sensor.wavelengths()),
            labels=extras.pop("labels", None),
            source=extras.pop("source", ""),
            meta=extras,
        )


class FramePacer:
    """Paces reads to ``fps`` frames per second with an injected clock and sleep (``fps=None``: no pacing).

    ``wait()`` before each frame sleeps until the frame is due; a late frame is not made up for.
    """

    def __init__(
        self,
        fps: float | None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if fps is not None and fps <= 0:
            raise CameraError(f"fps must be positive, got {fps}")
        self.fps, self._clock_ns, self._sleep = fps, clock_ns, sleep
        self._next_due_ns: int | None = None

    def reset(self) -> None:
        self._next_due_ns = None

    def wait(self) -> None:
        if self.fps is None:
            return
        now = self._clock_ns()
        if self._next_due_ns is not None and now < self._next_due_ns:
            self._sleep((self._next_due_ns - now) / 1e9)
            now = self._next_due_ns
        self._next_due_ns = now + int(1e9 / self.fps)
