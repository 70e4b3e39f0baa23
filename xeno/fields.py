"""Smooth random fields: the raw material for region shapes, texture and shading."""

from __future__ import annotations

import cv2
import numpy as np


def smooth_field(height: int, width: int, cell_px: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32 field, roughly N(0, 1), smooth over about ``cell_px`` pixels.

    Made by bicubic upsampling of a coarse grid of Gaussian noise: cheap at any size
    and reproducible from ``rng``.
    """
    gh = max(2, int(np.ceil(height / cell_px)) + 1)
    gw = max(2, int(np.ceil(width / cell_px)) + 1)
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    std = float(field.std())
    return (field - float(field.mean())) / (std if std > 1e-6 else 1.0)


def radial_falloff(height: int, width: int, centre_yx: tuple[float, float], strength: float) -> np.ndarray:
    """(H, W) float32 in (0, 1]: 1 − strength·r², r the distance to ``centre_yx`` over the half-diagonal."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    half_diag = 0.5 * np.hypot(height, width)
    r2 = ((yy - centre_yx[0]) ** 2 + (xx - centre_yx[1]) ** 2) / half_diag**2
    return np.clip(1.0 - strength * r2, 0.05, 1.0).astype(np.float32)
