"""Capture dark and white references by averaging frames from a camera.

``capture_reference(camera, "dark", 32)`` reads 32 frames with the shutter closed (or the
lens capped) and returns their per-pixel mean together with what validation needs: the
temporal noise per pixel, each frame's mean level (stability) and the worst frame's
saturated fraction. ``camera`` is anything with the camera interface of ``devices``
(``read()``, ``read_reference(kind)``, ``sensor``, ``camera_id``, ``exposure_ms``); this
module does not import ``devices``.

Cameras that cannot capture a reference themselves raise ``CameraError`` from
``read_reference``; then the capture reads ordinary frames (``read()``), trusting that the
user capped the lens or pointed the camera at the white tile, and records
``fallback=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import numpy as np
from xenoedge.calibration.mosaic import cube_from_mosaic
from xenoedge.calibration.references import ReferenceMeta

from xenoedge.errors import CalibrationError, CameraError, InvalidCubeError
from xenoedge.sensors import SensorProfile

ReferenceKind = Literal["dark", "white"]
#: ``progress(frames_done, frames_total)``, called after every frame.
ProgressCallback = Callable[[int, int], None]


def utc_now() -> datetime:
    """The default clock of captures: timezone-aware UTC now."""
    return datetime.now(timezone.utc)


def iso_utc(t: datetime) -> str:
    """``t`` as ISO 8601 UTC with a ``Z`` suffix, whole seconds ("2026-11-25T19:30:00Z").

    A naive datetime is taken to be UTC already.
    """
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso_utc(text: str) -> datetime:
    """Inverse of ``iso_utc``: an aware UTC datetime (accepts "Z" and "+00:00" forms)."""
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


@dataclass
class ReferenceCapture:
    """The result of averaging ``n_frames`` reference frames.

    ``mean`` and ``temporal_noise`` are float32 counts of shape (h, w, C) (the sensor's
    cube shape; (1, w, C) for a push-broom reference averaged over its lines).
    ``temporal_noise`` is the per-pixel standard deviation over frames (ddof=1; zeros
    when ``n_frames == 1``). ``frame_means`` is (n_frames,) float64: each frame's mean
    count over all pixels and bands. ``saturated_fraction`` is the largest, over frames,
    fraction of pixels with any band at or above the sensor's saturation count.
    """

    kind: ReferenceKind
    mean: np.ndarray
    temporal_noise: np.ndarray
    frame_means: np.ndarray
    saturated_fraction: float
    n_frames: int
    camera_id: str
    sensor: str
    exposure_ms: float
    captured_at: str
    fallback: bool = False

    def summary(self) -> dict[str, Any]:
        """Plain-number figures for metadata and reports (levels and noise in counts)."""
        return {
            "mean_level_counts": float(np.median(self.frame_means)),
            "median_temporal_noise_counts": float(np.median(self.temporal_noise)),
            "frame_mean_spread_counts": float(np.ptp(self.frame_means)),
            "saturated_fraction": float(self.saturated_fraction),
            "fallback": bool(self.fallback),
        }

    def to_meta(self, source: str = "camera", stats: dict | None = None) -> ReferenceMeta:
        """The ``ReferenceMeta`` to store with this reference; ``stats`` adds to ``summary()``."""
        return ReferenceMeta(
            captured_at=self.captured_at,
            exposure_ms=float(self.exposure_ms),
            frames=int(self.n_frames),
            source=source,
            stats={**self.summary(), **(stats or {})},
        )


class FrameAccumulator:
    """Running sums of frames of one shape: mean, temporal noise, per-frame figures.

    ``add(cube, what)`` takes an (h, w, C) array of counts; ``what`` names the frame in
    errors. The sums are of each frame's difference from the first frame (the shifted-data
    form of the variance: no cancellation between two large sums, so float32 is enough), so
    memory is the first frame in its own dtype (uint16 counts: 2 bytes a value; float32 for
    float frames) and two float32 sums (~310 MB for a Tivita cube, where two float64 sums plus
    the float32 results were ~740 MB at the peak). Frames go through a small float64 scratch
    buffer in blocks of lines, with no per-frame copy. ``result()`` turns the sums into the mean
    and noise in place: call it once.
    """

    block_values = 1 << 20  # float64 values per scratch block (8 MiB)

    def __init__(self, shape: tuple[int, ...], saturation_counts: float):
        self.shape = tuple(shape)
        self.saturation_counts = saturation_counts
        self._first: np.ndarray | None = None  # allocated by the first add, in the frame's dtype
        self._sum = np.zeros(self.shape, dtype=np.float32)  # sum over frames of (frame - first)
        self._sum_sq = np.zeros(self.shape, dtype=np.float32)  # sum over frames of (frame - first)**2
        line_values = int(np.prod(self.shape[1:], dtype=np.int64)) or 1
        self._block_lines = max(1, self.block_values // line_values)
        self._scratch = np.empty((min(self._block_lines, self.shape[0]), *self.shape[1:]), dtype=np.float64)
        self.frame_means: list[float] = []
        self.saturated_fractions: list[float] = []
        self._done = False

    @property
    def n(self) -> int:
        return len(self.frame_means)

    def _blocks(self):
        for start in range(0, self.shape[0], self._block_lines):
            yield start, min(start + self._block_lines, self.shape[0])

    def add(self, cube: np.ndarray, what: str) -> None:
        if self._done:
            raise CalibrationError(f"{what}: the capture was already summarised")
        if cube.shape != self.shape:
            raise CalibrationError(f"{what}: shape {cube.shape} differs from the expected {self.shape}")
        total = 0.0
        n_saturated = 0
        first = self.n == 0
        if first:
            self._first = _first_frame_array(self.shape, cube.dtype)
        for start, stop in self._blocks():
            block = cube[start:stop]
            scratch = self._scratch[: stop - start]
            np.copyto(scratch, block, casting="unsafe")
            total += float(scratch.sum())
            n_saturated += int(np.count_nonzero((block >= self.saturation_counts).any(axis=-1)))
            if first:
                self._first[start:stop] = block
            scratch -= self._first[start:stop]  # the difference from the first frame as stored
            self._sum[start:stop] += scratch
            np.multiply(scratch, scratch, out=scratch)
            self._sum_sq[start:stop] += scratch
        self.frame_means.append(total / cube.size)
        self.saturated_fractions.append(n_saturated / (cube.size // self.shape[-1]))

    def result(
        self,
        kind: ReferenceKind,
        *,
        camera_id: str,
        sensor: str,
        exposure_ms: float,
        captured_at: str,
        fallback: bool = False,
    ) -> ReferenceCapture:
        """The ``ReferenceCapture`` of all frames added (its arrays are this accumulator's own)."""
        n = self.n
        if n < 1:
            raise CalibrationError(f"{kind} capture: no frames")
        if self._done:
            raise CalibrationError(f"{kind} capture: already summarised")
        self._done = True
        mean, noise = self._sum, self._sum_sq  # filled in place, block by block (float64 in the scratch)
        for start, stop in self._blocks():
            shift = self._scratch[: stop - start]
            np.divide(self._sum[start:stop], n, out=shift)  # mean difference from the first frame
            if n > 1:
                var = self._sum_sq[start:stop] / n - shift * shift
                np.maximum(var, 0.0, out=var)  # rounding can make a constant pixel's variance slightly < 0
                var *= n / (n - 1)
                noise[start:stop] = np.sqrt(var)
            else:
                noise[start:stop] = 0.0
            shift += self._first[start:stop]
            mean[start:stop] = shift
        self._first = None
        return ReferenceCapture(
            kind=kind,
            mean=mean,
            temporal_noise=noise,
            frame_means=np.asarray(self.frame_means, dtype=np.float64),
            saturated_fraction=max(self.saturated_fractions),
            n_frames=n,
            camera_id=camera_id,
            sensor=sensor,
            exposure_ms=float(exposure_ms),
            captured_at=captured_at,
            fallback=fallback,
        )


def _first_frame_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Where the first frame is kept: integer counts of up to 16 bits as they are, else float32."""
    dtype = np.dtype(dtype)
    keep = dtype if dtype.kind in "ui" and dtype.itemsize <= 2 else np.dtype(np.float32)
    return np.empty(shape, dtype=keep)


def _check_kind(kind: str) -> None:
    if kind not in ("dark", "white"):
        raise CalibrationError(f"reference kind must be 'dark' or 'white', not {kind!r}")


def _frame_cube(frame: Any, sensor: SensorProfile, what: str) -> np.ndarray:
    """(h, w, C) counts of one camera frame; CalibrationError naming ``what`` otherwise."""
    kind = getattr(frame, "kind", "raw")
    data = np.asarray(frame.data)
    if kind == "reflectance":
        raise CalibrationError(f"{what}: a reference needs raw counts, but the camera delivered reflectance")
    if kind == "mosaic_raw":
        try:
            return cube_from_mosaic(data, sensor)
        except InvalidCubeError as e:
            raise CalibrationError(f"{what}: {e}") from None
    if data.shape != sensor.cube_shape:
        raise CalibrationError(f"{what}: shape {data.shape} differs from the {sensor.name} cube {sensor.cube_shape}")
    return data


def capture_reference(
    camera: Any,
    kind: ReferenceKind,
    n_frames: int,
    *,
    progress: ProgressCallback | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> ReferenceCapture:
    """Average ``n_frames`` dark or white frames from an open ``camera``.

    Uses ``camera.read_reference(kind)``; when that raises ``CameraError`` on the first
    frame (the camera cannot capture references itself) every frame comes from
    ``camera.read()`` and the result has ``fallback=True``. Mosaic frames become cubes
    through the sensor's pattern. ``captured_at`` is ``clock()`` when the capture starts.

    Raises ``CalibrationError`` for ``n_frames < 1``, a reflectance frame, a frame whose
    shape is not the sensor's (naming the frame index), or frames at different exposures;
    other camera errors after the first frame propagate unchanged.
    """
    _check_kind(kind)
    if n_frames < 1:
        raise CalibrationError(f"{kind} capture needs at least 1 frame, got n_frames={n_frames}")
    sensor: SensorProfile = camera.sensor
    captured_at = iso_utc(clock())
    acc = FrameAccumulator(sensor.cube_shape, sensor.saturation_counts)
    fallback = False
    exposure_ms: float | None = None
    for i in range(n_frames):
        if fallback:
            frame = camera.read()
        else:
            try:
                frame = camera.read_reference(kind)
            except CameraError:
                if i > 0:
                    raise
                fallback = True
                frame = camera.read()
        what = f"{kind} reference frame {i} (camera frame {getattr(frame, 'index', i)})"
        frame_exposure = float(getattr(frame, "exposure_ms", camera.exposure_ms))
        if exposure_ms is None:
            exposure_ms = frame_exposure
        elif not np.isclose(frame_exposure, exposure_ms, rtol=1e-3):
            raise CalibrationError(
                f"{what}: exposure {frame_exposure} ms differs from the first frame's {exposure_ms} ms"
            )
        acc.add(_frame_cube(frame, sensor, what), what)
        if progress is not None:
            progress(i + 1, n_frames)
    return acc.result(
        kind,
        camera_id=str(camera.camera_id),
        sensor=sensor.name,
        exposure_ms=float(exposure_ms),  # type: ignore[arg-type]
        captured_at=captured_at,
        fallback=fallback,
    )


def capture_from_lines(
    kind: ReferenceKind,
    stack: np.ndarray,
    *,
    camera_id: str,
    sensor: str,
    exposure_ms: float,
    captured_at: str,
    saturation_counts: float,
) -> ReferenceCapture:
    """A ``ReferenceCapture`` of shape (1, W, C) from a push-broom reference stack (n, W, C).

    A push-broom camera's DARKREF/WHITEREF holds ``n`` successive readings of the same
    detector line, so its lines are frames in time: the mean and temporal noise are over
    them.
    """
    _check_kind(kind)
    stack = np.asarray(stack)
    if stack.ndim != 3 or stack.shape[0] < 1:
        raise CalibrationError(f"{kind} reference must be (lines, W, C) with lines >= 1, got {stack.shape}")
    acc = FrameAccumulator((1, *stack.shape[1:]), saturation_counts)
    for i in range(stack.shape[0]):
        acc.add(stack[i : i + 1], f"{kind} reference line {i}")
    return acc.result(kind, camera_id=camera_id, sensor=sensor, exposure_ms=exposure_ms, captured_at=captured_at)


def dark_line_band(dark: np.ndarray) -> np.ndarray:
    """(h, 1, C) float32 per-line-per-band dark: the median over columns of an (h, w, C) dark.

    This is the form Tivita's DarkPattern stores; the median ignores hot pixels.

    >>> dark_line_band(np.full((4, 5, 3), 60.0)).shape
    (4, 1, 3)
    """
    dark = np.asarray(dark)
    if dark.ndim != 3:
        raise CalibrationError(f"dark must be (h, w, C), got shape {dark.shape}")
    return np.median(dark, axis=1, keepdims=True).astype(np.float32)
