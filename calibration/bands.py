"""Band response: integrate finely sampled spectra over a sensor's bands.

One implementation serves the simulator (1 nm physics grid -> sensor bands) and band
resampling between sensors. Each target band is a Gaussian with the profile's FWHM,
sampled on the source grid and normalised to sum 1, so a flat spectrum stays flat.
"""

from __future__ import annotations

import numpy as np

from xenoedge.errors import InvalidCubeError

# A band whose Gaussian response falls mostly outside the source grid cannot be formed.
MIN_COVERED_FRACTION = 0.4


def band_response_matrix(source_nm: np.ndarray, centres_nm: np.ndarray, fwhm_nm: np.ndarray) -> np.ndarray:
    """(L, C) float32 weights so that ``spectra (..., L) @ M`` gives (..., C) band values.

    ``source_nm`` (L,) must be increasing. A band is refused when less than
    ``MIN_COVERED_FRACTION`` of its response lies inside the source grid; a band that
    runs off the grid's end is renormalised over the part inside (documented bias at the
    edges, e.g. the 1000 nm Tivita band on a grid that stops at 1000 nm).
    """
    source = np.asarray(source_nm, dtype=np.float64)
    centres = np.asarray(centres_nm, dtype=np.float64)
    fwhm = np.broadcast_to(np.asarray(fwhm_nm, dtype=np.float64), centres.shape)
    if source.ndim != 1 or source.size < 2 or np.any(np.diff(source) <= 0):
        raise InvalidCubeError("source wavelengths must be a strictly increasing 1-D array")
    if np.any(fwhm <= 0):
        raise InvalidCubeError("band FWHM must be positive")
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    step = np.gradient(source)[:, None]
    weights = np.exp(-0.5 * ((source[:, None] - centres[None, :]) / sigma[None, :]) ** 2) * step
    covered = weights.sum(axis=0) / (sigma * np.sqrt(2.0 * np.pi))
    bad = np.flatnonzero(covered < MIN_COVERED_FRACTION)
    if bad.size:
        listed = ", ".join(f"{centres[i]:.1f} nm" for i in bad[:5])
        raise InvalidCubeError(
            f"{bad.size} band(s) lie outside the source range {source[0]:.0f}-{source[-1]:.0f} nm: {listed}"
        )
    return (weights / weights.sum(axis=0, keepdims=True)).astype(np.float32)
