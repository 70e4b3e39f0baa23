"""The one L1 normalisation of spectra, used by training, export and the daemon.

Each spectrum (last axis) is divided by the sum of its absolute values, so the spectrum
sums to 1 and overall brightness (illumination, distance) drops out. ``L1_EPS`` keeps an
all-zero spectrum at zero instead of NaN; the export graph uses the same constant.

>>> l1_normalise(np.array([[1.0, 3.0]], dtype=np.float32)).round(4).tolist()
[[0.25, 0.75]]
"""

from __future__ import annotations

import numpy as np

L1_EPS = 1e-6


def l1_normalise(cube: np.ndarray, out: np.ndarray | None = None, norm: np.ndarray | None = None) -> np.ndarray:
    """``cube`` (..., C) divided by its L1 norm over C, as float32.

    ``out`` (same shape, float32; may be ``cube`` itself) and ``norm`` (shape (..., 1),
    float32) are optional preallocated buffers for the per-frame path.
    """
    if out is None:
        out = np.empty(cube.shape, dtype=np.float32)
    if norm is None:
        norm = np.empty((*cube.shape[:-1], 1), dtype=np.float32)
    np.abs(cube, out=out)
    np.sum(out, axis=-1, keepdims=True, out=norm)
    norm += np.float32(L1_EPS)
    np.divide(cube, norm, out=out)
    return out
