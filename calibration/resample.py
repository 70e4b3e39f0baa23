"""Band resampling between sensor profiles.

Each target band is the source spectrum integrated over the target band's Gaussian response
(``xenoedge.calibration.bands.band_response_matrix``), so a model trained for one sensor can run on
another's data, and training data can be made for any sensor. Target bands that lie outside
the source range are refused (the error lists them).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from xenoedge.calibration.bands import band_response_matrix

from xenoedge.errors import InvalidCubeError
from xenoedge.sensors import SensorProfile


@lru_cache(maxsize=32)
def _matrix(source_nm: tuple[float, ...], centres_nm: tuple[float, ...], fwhm_nm: tuple[float, ...]) -> np.ndarray:
    return band_response_matrix(np.asarray(source_nm), np.asarray(centres_nm), np.asarray(fwhm_nm))


def resampling_matrix(source_nm: np.ndarray, target: SensorProfile) -> np.ndarray:
    """(C_src, C_tgt) float32 weights from bands at ``source_nm`` to ``target``'s bands."""
    return _matrix(tuple(float(v) for v in np.asarray(source_nm).ravel()), target.wavelengths_nm, target.fwhm_nm)


def resample_cube(cube: np.ndarray, source_nm: np.ndarray, target: SensorProfile) -> np.ndarray:
    """(H, W, C_tgt) float32 cube at ``target``'s bands from an (H, W, C_src) cube at ``source_nm``."""
    source_nm = np.asarray(source_nm)
    if cube.ndim != 3 or cube.shape[2] != source_nm.size:
        raise InvalidCubeError(f"cube of shape {cube.shape} does not match {source_nm.size} source wavelengths")
    matrix = resampling_matrix(source_nm, target)
    h, w, c = cube.shape
    return (cube.reshape(h * w, c).astype(np.float32, copy=False) @ matrix).reshape(h, w, -1)
