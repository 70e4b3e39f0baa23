"""Pictures a person can check: pseudo-RGB, label overlays, median spectra plots."""

from __future__ import annotations

import numpy as np

# Bands shown as R, G, B when the sensor covers the visible range (nm).
TRUE_COLOUR_NM = (610.0, 545.0, 505.0)


def rgb_band_indices(wavelengths_nm: np.ndarray) -> tuple[int, int, int]:
    """Band indices shown as R, G, B: near-true colour when the sensor reaches down to
    ~510 nm, else a false-colour composite from three bands spread over its range."""
    wl = np.asarray(wavelengths_nm, dtype=np.float64)
    if wl.min() <= 515.0 and wl.max() >= 600.0:
        targets = TRUE_COLOUR_NM
    else:
        targets = tuple(np.quantile(wl, [0.85, 0.45, 0.05]))
    return tuple(int(np.argmin(np.abs(wl - t))) for t in targets)  # type: ignore[return-value]


def pseudo_rgb(cube: np.ndarray, wavelengths_nm: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an (H, W, C) reflectance cube, stretched to its 99th percentile."""
    rgb = cube[..., list(rgb_band_indices(wavelengths_nm))].astype(np.float32)
    scale = max(float(np.percentile(rgb, 99)), 1e-6)
    return (np.clip(rgb / scale, 0.0, 1.0) ** (1 / 1.6) * 255).astype(np.uint8)


def label_overlay(rgb: np.ndarray, labels: np.ndarray, colors: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """(H, W, 3) uint8: ``rgb`` blended with label colours (id 0 left unpainted) and outlined."""
    import cv2

    painted = colors[labels].astype(np.float32)
    mask = (labels > 0)[..., None]
    out = np.where(mask, (1 - alpha) * rgb + alpha * painted, rgb).astype(np.uint8)
    edges = cv2.Laplacian(labels.astype(np.float32), cv2.CV_32F) != 0
    out[edges] = 255
    return out
