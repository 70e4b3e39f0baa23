"""White and dark references: the data, their metadata, and their file.

A reference array is float32 counts whose shape broadcasts to the camera's cube
(h, w, C): per pixel (h, w, C), per line and band (h, 1, C) as Tivita's DarkPattern
stores it, or per column and band (1, w, C) as a push-broom ENVI DARKREF/WHITEREF
averaged over its lines gives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ReferenceMeta:
    """Where one reference (dark or white) came from."""

    captured_at: str  # ISO 8601, UTC, e.g. "2026-11-25T19:30:00Z"
    exposure_ms: float
    frames: int  # frames averaged (1 for an imported file of unknown history)
    source: str  # "camera", "import:tivita-darkpattern", "import:specim", ...
    stats: dict = field(default_factory=dict)  # validation figures (levels, noise, failing bands)


@dataclass
class References:
    """A camera's dark and white references; either may be missing while capture is under way."""

    camera_id: str
    sensor: str  # sensor profile name
    sensor_signature: str
    dark: np.ndarray | None = None  # float32, broadcastable to (h, w, C)
    white: np.ndarray | None = None  # float32, broadcastable to (h, w, C)
    dark_meta: ReferenceMeta | None = None
    white_meta: ReferenceMeta | None = None

    @property
    def complete(self) -> bool:
        return self.dark is not None and self.white is not None


def require_broadcast(shape: tuple[int, ...], other: tuple[int, ...], message: str) -> tuple[int, ...]:
    """The shape ``shape`` and ``other`` broadcast to; ``CalibrationError(message)`` when they do not
    (a reference that does not fit the frames it would calibrate)."""
    from xenoedge.errors import CalibrationError

    try:
        return np.broadcast_shapes(tuple(shape), tuple(other))
    except ValueError:
        raise CalibrationError(message) from None
