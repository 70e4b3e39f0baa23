"""Block pooling of frames and references: the edge-first models' working size, in NumPy.

An edge-first bundle (``preprocessing.pool`` = p in its manifest) pools the raw frame p x p
inside its graph *before* calibration, so its ``dark`` and ``gain`` inputs are bound at the
working size (H/p, W/p, C) rather than the frame's. These functions give those references
from full-size ones, and mirror the graph's pooling for the accuracy gate:

- ``pool_blocks``: replicate-pad H and W to multiples of p, then the mean of each p x p block;
- ``pooled_references``: dark pooled by the mean; gain = 1 / signal range pooled by the mean of
  the signal range (white − dark), i.e. the harmonic mean of the gain, so that
  (mean raw − mean dark) · pooled gain is the reflectance of the block's summed signal.

Calibrating after pooling equals pooling the calibrated reflectance wherever white − dark is
constant over a block; docs/models.md measures the difference on simulated frames.
"""

from __future__ import annotations

import numpy as np

from xenoedge.errors import XenoedgeError

__all__ = ["pool_blocks", "pooled_references", "working_shape"]


def working_shape(height: int, width: int, pool: int) -> tuple[int, int]:
    """(H/p, W/p) rounded up: the size a p x p pooled frame has.

    >>> working_shape(480, 640, 4), working_shape(217, 409, 2)
    ((120, 160), (109, 205))
    """
    if pool < 1:
        raise XenoedgeError(f"pooling factor must be >= 1, got {pool}")
    return -(-height // pool), -(-width // pool)


def pool_blocks(array: np.ndarray, pool: int, *, invert: bool = False) -> np.ndarray:
    """(H, W, ...) -> (ceil(H/p), ceil(W/p), ...) float32 block means; edges replicate-padded.

    Sums in float64 so integer counts pool exactly, one row of blocks at a time, so no temporary
    of the frame's size is made (a broadcast view, e.g. per-band references, is read as it is).
    ``invert=True`` averages 1 / ``array`` instead (for the gain).

    >>> pool_blocks(np.array([[0, 2], [4, 6], [8, 9]], np.uint16), 2).tolist()  # last row padded by itself
    [[3.0], [8.5]]
    """
    array = np.asarray(array)
    if pool == 1:
        return (np.float32(1.0) / array if invert else array).astype(np.float32, copy=False)
    h, w = array.shape[:2]
    ph, pw = working_shape(h, w, pool)
    out = np.empty((ph, pw, *array.shape[2:]), np.float32)
    rows = [min(r, h - 1) for r in range(ph * pool)]  # replicate the last row
    cols = [min(c, w - 1) for c in range(pw * pool)]
    for i in range(ph):
        band = array[rows[i * pool : (i + 1) * pool]]  # (p, W, ...), a small copy
        if pw * pool != w:
            band = band[:, cols]
        band = band.astype(np.float64)
        if invert:
            np.divide(1.0, band, out=band)
        out[i] = band.reshape(pool, pw, pool, *band.shape[2:]).sum(axis=(0, 2)) / (pool * pool)
    return out


def pooled_references(dark: np.ndarray, gain: np.ndarray, pool: int) -> tuple[np.ndarray, np.ndarray]:
    """(dark, gain) at the working size from full-size (H, W, C) ``dark`` (counts) and ``gain`` (1/counts).

    >>> d, g = pooled_references(np.zeros((2, 2, 1)), np.array([[[1.0], [0.5]], [[1.0], [0.5]]]), 2)
    >>> float(d[0, 0, 0]), round(float(g[0, 0, 0]), 4)
    (0.0, 0.6667)
    """
    dark = np.asarray(dark, dtype=np.float32)
    gain = np.asarray(gain, dtype=np.float32)
    if dark.shape != gain.shape:
        raise XenoedgeError(f"dark {dark.shape} and gain {gain.shape} references differ in shape")
    if pool == 1:
        return dark, gain
    if not np.all(gain > 0):
        raise XenoedgeError("gain reference holds zero or negative values; it must be 1 / max(white - dark, 1)")
    signal = pool_blocks(gain, pool, invert=True)
    return pool_blocks(dark, pool), (np.float32(1.0) / signal).astype(np.float32)
