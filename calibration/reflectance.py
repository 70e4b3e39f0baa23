"""Reflectance from raw counts: (raw − dark) / (white − dark).

Clipping policy: the white − dark denominator is floored at ``MIN_SIGNAL_COUNTS`` so a
dead band never divides by zero; reflectance is clipped to [0, ``MAX_REFLECTANCE``]
(negative values are noise below the dark level; values above 1 come from specular
highlights and are kept up to 2 so the saturation mask, not the clip, decides).
"""

from __future__ import annotations

import numpy as np

from xenoedge.errors import InvalidCubeError

MIN_SIGNAL_COUNTS = 1.0
MAX_REFLECTANCE = 2.0


def signal_range(dark: np.ndarray, white: np.ndarray) -> np.ndarray:
    """float32 white − dark in counts, floored at ``MIN_SIGNAL_COUNTS``: compute once per reference pair.

    One new array of the broadcast shape (the floor is applied in place: a frame-size pair of
    references costs one frame-size temporary, not two)."""
    signal = np.subtract(np.asarray(white, dtype=np.float32), dark, dtype=np.float32)
    return np.maximum(signal, MIN_SIGNAL_COUNTS, out=signal)


def reflectance_from_raw(
    raw: np.ndarray,
    dark: np.ndarray,
    white: np.ndarray,
    out: np.ndarray | None = None,
    *,
    signal: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W, C) float32 reflectance from raw counts and references broadcastable to it.

    ``raw`` (H, W, C) integer or float counts; ``dark`` and ``white`` broadcast to it
    (e.g. (H, W, C) per pixel, or (H, 1, C) per line and band). ``out`` is an optional
    preallocated float32 buffer of the raw's shape and ``signal`` the precomputed
    ``signal_range(dark, white)``; with both, the per-frame path allocates nothing.
    """
    if raw.ndim != 3:
        raise InvalidCubeError(f"raw frame must be (H, W, C), got shape {raw.shape}")
    try:
        np.broadcast_shapes(raw.shape, dark.shape, white.shape)
    except ValueError:
        raise InvalidCubeError(
            f"references do not fit the frame: raw {raw.shape}, dark {dark.shape}, white {white.shape}"
        ) from None
    if out is None:
        out = np.empty(raw.shape, dtype=np.float32)
    np.subtract(raw, dark, out=out, casting="unsafe")
    if signal is None:
        signal = signal_range(dark, white)
    np.divide(out, signal, out=out)
    np.clip(out, 0.0, MAX_REFLECTANCE, out=out)
    return out


# Real reflectance cubes hold small negative values where dark noise exceeds a weak signal;
# anything further below zero means a broken calibration, not noise.
NEGATIVE_TOLERANCE = 0.05


def check_reflectance(cube: np.ndarray, what: str) -> None:
    """Raise ``InvalidCubeError`` naming ``what`` when a reflectance cube holds NaN/inf or
    values below −``NEGATIVE_TOLERANCE``."""
    n_bad = int(cube.size - np.count_nonzero(np.isfinite(cube)))
    if n_bad:
        raise InvalidCubeError(f"{what}: {n_bad} NaN/inf reflectance values")
    low = float(cube.min()) if cube.size else 0.0
    if low < -NEGATIVE_TOLERANCE:
        n_neg = int(np.count_nonzero(cube < -NEGATIVE_TOLERANCE))
        raise InvalidCubeError(
            f"{what}: {n_neg} reflectance values below -{NEGATIVE_TOLERANCE} (min {low:.3g}); "
            "the cube was calibrated with wrong references"
        )
