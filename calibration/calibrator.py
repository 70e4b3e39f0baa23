"""Per-frame calibration: raw counts -> reflectance plus a validity mask.

``FrameCalibrator`` is built once from a camera's references and then turns every frame
into reflectance without allocating: all buffers are made at start-up and the work runs
over row blocks of about 1 MiB, which keeps the intermediate values in cache (measured:
docs/calibration.md). With ``threads=2`` the blocks are split between two threads
(NumPy releases the GIL inside its loops).

Policy per frame:
  1. mosaic sensors: demosaic to the cube (``xenoedge.calibration.mosaic``);
  2. saturation: a pixel with any band >= the sensor's saturation count is saturated;
  3. reflectance = (raw − dark) · 1/(white − dark), with the optional band-crosstalk matrix
     applied to the dark-subtracted signal (and to the white signal once at start-up);
  4. clip to [0, ``MAX_REFLECTANCE``] (see ``xenoedge.calibration.reflectance``);
  5. valid = not saturated and not a dead/hot pixel of the references.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from xenoedge.calibration.mosaic import cube_from_mosaic
from xenoedge.calibration.references import References, require_broadcast
from xenoedge.calibration.reflectance import MAX_REFLECTANCE, signal_range

from xenoedge.errors import CalibrationError
from xenoedge.sensors import SensorProfile

BLOCK_BYTES = 1 << 20


@dataclass
class CalibratedFrame:
    """The result of one frame. Arrays are the calibrator's buffers: the next frame overwrites them."""

    reflectance: np.ndarray  # (h, w, C) float32
    valid: np.ndarray  # (h, w) bool: not saturated, not a defective pixel
    saturated: np.ndarray  # (h, w) bool
    saturated_fraction: float


class FrameCalibrator:
    """Turns raw frames of one camera into reflectance with its references.

    ``crosstalk`` is an optional (C, C) matrix M with corrected = M @ measured (per pixel,
    dark-subtracted), e.g. the inverse of a mosaic sensor's measured band mixing.
    ``defects`` is an (h, w) bool map of dead/hot pixels; by default it is derived from
    the references (``xenoedge.calibration.validation.defect_map``). ``saturation_mask=False``
    skips the saturation test (about a third of the per-frame time); ``valid`` then only
    excludes defective pixels and ``saturated`` stays all False.
    """

    def __init__(
        self,
        references: References,
        sensor: SensorProfile,
        *,
        crosstalk: np.ndarray | None = None,
        defects: np.ndarray | None = None,
        threads: int = 1,
        saturation_mask: bool = True,
    ):
        if not references.complete:
            missing = "dark" if references.dark is None else "white"
            raise CalibrationError(f"references for camera {references.camera_id} have no {missing} reference")
        if references.sensor_signature != sensor.signature:
            raise CalibrationError(
                f"references were taken with sensor {references.sensor_signature}, the camera is {sensor.signature}"
            )
        self.sensor = sensor
        self.shape = sensor.cube_shape
        h, w, c = self.shape
        dark = np.asarray(references.dark, dtype=np.float32)
        white = np.asarray(references.white, dtype=np.float32)
        for name, ref in (("dark", dark), ("white", white)):
            message = f"{name} reference of shape {ref.shape} does not fit {sensor.name} frames {self.shape}"
            require_broadcast(ref.shape, self.shape, message)
        signal = signal_range(dark, white)
        if crosstalk is not None:
            crosstalk = np.asarray(crosstalk, dtype=np.float32)
            if crosstalk.shape != (c, c):
                raise CalibrationError(f"crosstalk matrix must be ({c}, {c}) for {sensor.name}, got {crosstalk.shape}")
            signal = np.maximum(np.broadcast_to(signal, self.shape) @ crosstalk.T, 1.0)
        # Kept in their natural shapes: a per-line dark (h, 1, C) stays small and cache-friendly.
        self._dark = np.ascontiguousarray(dark.reshape((1,) * (3 - dark.ndim) + dark.shape))
        self._inv_signal = np.ascontiguousarray(1.0 / signal, dtype=np.float32)
        self._inv_signal = self._inv_signal.reshape((1,) * (3 - self._inv_signal.ndim) + self._inv_signal.shape)
        self._crosstalk_t = None if crosstalk is None else np.ascontiguousarray(crosstalk.T)
        if defects is None:
            from xenoedge.calibration.validation import defect_map

            defects = defect_map(dark, white, self.shape)
        self.defects = np.asarray(defects, dtype=bool)
        if self.defects.shape != (h, w):
            raise CalibrationError(f"defect map must be ({h}, {w}), got {self.defects.shape}")

        self._reflectance = np.empty(self.shape, dtype=np.float32)
        self._saturated = np.empty((h, w), dtype=bool)
        self._valid = np.empty((h, w), dtype=bool)
        self._cube = np.empty(self.shape, dtype=np.uint16) if sensor.mosaic else None
        rows = max(1, BLOCK_BYTES // (w * c * 4))
        self._blocks = [(r, min(r + rows, h)) for r in range(0, h, rows)]
        self._block_bool = [np.empty((rows, w, c), dtype=bool) for _ in range(max(1, threads))]
        self._block_mix = [np.empty((rows * w, c), dtype=np.float32) for _ in range(max(1, threads))]
        self._check_saturation = saturation_mask
        self._saturated[...] = False
        self._pool = ThreadPoolExecutor(threads) if threads > 1 else None
        self._threads = max(1, threads)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> FrameCalibrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, raw: np.ndarray, frame: str) -> np.ndarray:
        expected = self.sensor.raw_shape
        if raw.shape != expected:
            raise CalibrationError(f"{frame}: raw shape {raw.shape} does not match {self.sensor.name} {expected}")
        if not np.issubdtype(raw.dtype, np.integer):
            raise CalibrationError(f"{frame}: expected integer raw counts, got {raw.dtype} (already reflectance?)")
        if raw.dtype.kind == "i" and raw.min() < 0:
            raise CalibrationError(f"{frame}: negative raw counts (min {raw.min()})")
        if self._cube is not None:
            cube_from_mosaic(raw, self.sensor, out=self._cube)
            return self._cube
        return raw

    def _run_blocks(self, raw: np.ndarray, worker: int, blocks: list[tuple[int, int]]) -> None:
        bool_buf, mix_buf = self._block_bool[worker], self._block_mix[worker]
        threshold = self.sensor.saturation_counts
        for r0, r1 in blocks:
            n = r1 - r0
            block_raw, out = raw[r0:r1], self._reflectance[r0:r1]
            if self._check_saturation:
                np.greater_equal(block_raw, threshold, out=bool_buf[:n])
                np.any(bool_buf[:n], axis=2, out=self._saturated[r0:r1])
            np.copyto(out, block_raw, casting="unsafe")
            out -= self._dark[r0:r1] if self._dark.shape[0] > 1 else self._dark
            if self._crosstalk_t is not None:
                flat = out.reshape(-1, out.shape[2])
                mixed = mix_buf[: flat.shape[0]]
                np.matmul(flat, self._crosstalk_t, out=mixed)
                flat[...] = mixed
            out *= self._inv_signal[r0:r1] if self._inv_signal.shape[0] > 1 else self._inv_signal
            np.clip(out, 0.0, MAX_REFLECTANCE, out=out)

    def process(self, raw: np.ndarray, frame: str = "frame") -> CalibratedFrame:
        """Calibrate one raw frame ((h, w, C) or the (H, W) mosaic); ``frame`` names it in errors."""
        cube = self._check(raw, frame)
        if self._pool is None:
            self._run_blocks(cube, 0, self._blocks)
        else:
            shares = [self._blocks[i :: self._threads] for i in range(self._threads)]
            list(self._pool.map(lambda i: self._run_blocks(cube, i, shares[i]), range(self._threads)))
        np.logical_or(self._saturated, self.defects, out=self._valid)
        np.logical_not(self._valid, out=self._valid)
        return CalibratedFrame(
            reflectance=self._reflectance,
            valid=self._valid,
            saturated=self._saturated,
            saturated_fraction=float(np.count_nonzero(self._saturated)) / self._saturated.size,
        )
