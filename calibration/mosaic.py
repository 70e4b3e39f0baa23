"""Snapshot-mosaic frames to cubes, following the sensor profile's pattern and band order.

Each p×p block of the raw frame becomes one cube pixel with C = p² bands (super-pixel
demosaicing: no spatial interpolation, so the cube is p times smaller than the frame and
every band of a cube pixel comes from one block). Band crosstalk, where a filter also passes
light of its neighbours' bands, is undone by an optional correction matrix (``load_crosstalk``
reads one from a file; ``xenoedge.calibration.calibrator.FrameCalibrator`` applies it).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from xenoedge.errors import FileFormatError, InvalidCubeError
from xenoedge.sensors import SensorProfile


def cube_from_mosaic(frame: np.ndarray, sensor: SensorProfile, out: np.ndarray | None = None) -> np.ndarray:
    """(h, w, C) cube, same dtype, from an (H, W) mosaic frame of ``sensor``.

    h = H // p and w = W // p (only whole super-pixels count); band ``pattern[r][c]`` of cube
    pixel (i, j) is the frame pixel (i·p + r, j·p + c). ``out`` is an optional preallocated
    (h, w, C) buffer of the frame's dtype.
    """
    if not sensor.mosaic:
        raise InvalidCubeError(f"sensor {sensor.name!r} has no mosaic pattern")
    if frame.shape != (sensor.height, sensor.width):
        raise InvalidCubeError(
            f"mosaic frame must be {sensor.height}x{sensor.width} for {sensor.name}, got shape {frame.shape}"
        )
    h, w, c = sensor.cube_shape
    if out is None:
        out = np.empty((h, w, c), dtype=frame.dtype)
    p = sensor.pattern_size
    for r, row in enumerate(sensor.mosaic):
        for col, band in enumerate(row):
            out[:, :, band] = frame[r : h * p : p, col : w * p : p]
    return out


def correct_crosstalk(cube: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(h, w, C) float32 ``matrix @ spectrum`` per pixel: undo band crosstalk of a mosaic sensor.

    ``matrix`` (C, C) is the inverse of the measured mixing (measured = mixing @ true); apply
    it to dark-subtracted signals, never to raw counts with the dark level still in them.
    """
    c = cube.shape[-1]
    if matrix.shape != (c, c):
        raise InvalidCubeError(f"crosstalk matrix must be ({c}, {c}), got {matrix.shape}")
    return (cube.reshape(-1, c).astype(np.float32, copy=False) @ matrix.T.astype(np.float32)).reshape(cube.shape)


def load_crosstalk(path: str | os.PathLike, sensor: SensorProfile) -> np.ndarray:
    """(C, C) float32 crosstalk-correction matrix from a ``.npy`` file (or ``.npz`` with ``matrix``).

    The matrix is the inverse of the sensor's measured band mixing (see ``correct_crosstalk``);
    it must be square in the sensor's band count, finite and invertible. Raises
    ``FileFormatError`` naming the file otherwise.
    """
    path = Path(path)
    c = sensor.n_bands
    if not path.is_file():
        raise FileFormatError(path, "no such crosstalk matrix file")
    try:
        loaded = np.load(path, allow_pickle=False)
        matrix = loaded["matrix"] if isinstance(loaded, np.lib.npyio.NpzFile) else loaded
    except (OSError, ValueError, KeyError) as exc:
        raise FileFormatError(path, f"not a .npy matrix or .npz with 'matrix': {exc}") from None
    matrix = np.asarray(matrix)
    if matrix.shape != (c, c) or matrix.dtype.kind not in "fiu":
        raise FileFormatError(
            path, f"crosstalk matrix must be ({c}, {c}) numbers for {sensor.name}, got {matrix.dtype} {matrix.shape}"
        )
    if not np.all(np.isfinite(matrix)):
        raise FileFormatError(path, "crosstalk matrix holds NaN or inf")
    if np.linalg.cond(matrix.astype(np.float64)) > 1e6:
        raise FileFormatError(path, "crosstalk matrix is singular or nearly so (condition number > 1e6)")
    return matrix.astype(np.float32)
