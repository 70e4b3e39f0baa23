"""Non-tissue materials seen in surgical scenes: drapes, steel instruments, gauze.

Analytic reflectance spectra (not measurements) with the features a person would
recognise: a green-blue dyed drape that turns bright in the NIR (textile dyes are
transparent there), near-flat grey steel, white cotton gauze.
"""

from __future__ import annotations

import numpy as np


def _gauss(wl: np.ndarray, centre: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((wl - centre) / sigma) ** 2)


def material_reflectance(material: str, wavelengths_nm: np.ndarray) -> np.ndarray:
    """(L,) float64 reflectance of ``material`` ("drape", "metal", "gauze") at ``wavelengths_nm``."""
    wl = np.asarray(wavelengths_nm, dtype=np.float64)
    if material == "drape":
        return 0.04 + 0.14 * _gauss(wl, 525.0, 40.0) + 0.5 / (1.0 + np.exp(-(wl - 710.0) / 22.0))
    if material == "metal":
        return 0.42 + 0.12 * (wl - 450.0) / 550.0
    if material == "gauze":
        return 0.72 + 0.06 * np.clip((wl - 450.0) / 150.0, 0.0, 1.0)
    raise ValueError(f"unknown material {material!r}")


MATERIALS = ("drape", "metal", "gauze")
