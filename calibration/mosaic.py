"""Snapshot-mosaic frames to cubes, following the sensor profile's pattern and band order.

This is the plain super-pixel rearrangement: each p×p block of the raw frame becomes one
cube pixel with C = p² bands (no interpolation, no crosstalk correction yet).
"""

from __future__ import annotations

import numpy as np

from calibration.errors import InvalidCubeError
from calibration.sensors import SensorProfile


def cube_from_mosaic(frame: np.ndarray, sensor: SensorProfile) -> np.ndarray:
    """(h, w, C) cube, same dtype, from an (H, W) mosaic frame of ``sensor``.

    h = H // p and w = W // p (only whole super-pixels count); band ``pattern[r][c]`` of cube
    pixel (i, j) is the frame pixel (i·p + r, j·p + c).
    """
    if not sensor.mosaic:
        raise InvalidCubeError(f"sensor {sensor.name!r} has no mosaic pattern")
    if frame.shape != (sensor.height, sensor.width):
        raise InvalidCubeError(
            f"mosaic frame must be {sensor.height}x{sensor.width} for {sensor.name}, got shape {frame.shape}"
        )
    p = sensor.pattern_size
    h, w, c = sensor.cube_shape
    blocks = frame[: h * p, : w * p].reshape(h, p, w, p).transpose(0, 2, 1, 3).reshape(h, w, p * p)
    cube = np.empty((h, w, c), dtype=frame.dtype)
    cube[:, :, sensor.mosaic_array().ravel()] = blocks
    return cube
