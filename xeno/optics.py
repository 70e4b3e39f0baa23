"""Tissue optics: chromophore absorption, reduced scattering, diffuse reflectance.

All spectra live on the chromophore table's grid, 450-1000 nm in 1 nm steps
(``GRID_NM``); the camera model integrates them to a sensor's bands afterwards.

Model (DESIGN.md section 2):

    mu_a(λ)  = B·(S·a_HbO2 + (1−S)·a_Hb) + W·a_water + F·a_fat + M·a_melanin
               + bilirubin·shape_bili(λ) + icg·shape_icg(λ)            [cm^-1]
    mu_s'(λ) = a·(λ / 500 nm)^(−b)                                      [cm^-1]
    R        = diffuse reflectance of a semi-infinite turbid medium for
               albedo a' = mu_s' / (mu_a + mu_s') (diffusion theory, Farrell
               et al. 1992 / Kim & Wilson), refractive index 1.4.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache
from importlib import resources

import numpy as np

# SIMPA's fat table looks like mm^-1 (see xeno/data/CHROMOPHORES.md); this brings it to cm^-1.
FAT_TABLE_SCALE = 10.0

# Internal-reflection parameter A = (1 + r_id) / (1 − r_id) for a tissue/air boundary with
# n = 1.4; r_id from Groenhuis' empirical fit (−1.440 n^-2 + 0.710 n^-1 + 0.668 + 0.0636 n).
_N_TISSUE = 1.4
_R_ID = -1.440 / _N_TISSUE**2 + 0.710 / _N_TISSUE + 0.668 + 0.0636 * _N_TISSUE
BOUNDARY_A = (1.0 + _R_ID) / (1.0 - _R_ID)

# ICG bound to plasma proteins: main band at ~805 nm with an aggregate shoulder near
# 740 nm and little absorption below 650 or above 900 nm. Approximated by two Gaussians,
# normalised to 1 at the peak (published in-plasma spectra: e.g. Landsman et al. 1976).
ICG_BANDS_NM = ((805.0, 28.0, 1.0), (740.0, 32.0, 0.35))
# Bilirubin: one broad band peaking at 460 nm, negligible beyond ~550 nm.
BILIRUBIN_BANDS_NM = ((460.0, 35.0, 1.0),)


@dataclass(frozen=True)
class Chromophores:
    """Absorption spectra on ``wavelengths_nm`` (L,), each (L,) float64 in cm^-1 (per unit fraction)."""

    wavelengths_nm: np.ndarray
    hbo2: np.ndarray
    hb: np.ndarray
    water: np.ndarray
    fat: np.ndarray
    melanin: np.ndarray
    bilirubin: np.ndarray  # unit peak: multiply by the peak mu_a in cm^-1
    icg: np.ndarray  # unit peak: multiply by the peak mu_a in cm^-1


def _gaussian_bands(wavelengths_nm: np.ndarray, bands: tuple[tuple[float, float, float], ...]) -> np.ndarray:
    shape = sum(w * np.exp(-0.5 * ((wavelengths_nm - c) / s) ** 2) for c, s, w in bands)
    return shape / shape.max()


@cache
def chromophores() -> Chromophores:
    """The committed chromophore table (xeno/data/chromophores.npz) plus ICG and bilirubin."""
    with resources.files("xeno").joinpath("data", "chromophores.npz").open("rb") as f:
        table = np.load(f)
        wl = table["wavelengths_nm"].astype(np.float64)
        arrays = {k: table[k].astype(np.float64) for k in ("hbo2", "hb", "water", "fat", "melanin")}
    arrays["fat"] = arrays["fat"] * FAT_TABLE_SCALE
    for a in arrays.values():
        a.setflags(write=False)
    return Chromophores(
        wavelengths_nm=wl,
        bilirubin=_gaussian_bands(wl, BILIRUBIN_BANDS_NM),
        icg=_gaussian_bands(wl, ICG_BANDS_NM),
        **arrays,
    )


GRID_NM = chromophores().wavelengths_nm


@dataclass(frozen=True)
class TissueParams:
    """Optical make-up of one tissue. Fractions are volume fractions in [0, 1]."""

    blood: float  # blood volume fraction
    sto2: float  # oxygen saturation of that blood, 0..1
    water: float
    fat: float
    scatter_a: float  # reduced scattering at 500 nm, cm^-1
    scatter_b: float  # scattering power (dimensionless)
    melanin: float = 0.0  # melanosome volume fraction (skin)
    bilirubin: float = 0.0  # bilirubin absorption at its 460 nm peak, cm^-1
    icg: float = 0.0  # ICG absorption at its 805 nm peak, cm^-1

    def replace(self, **changes: float) -> TissueParams:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return TissueParams(**values)


PARAM_NAMES = tuple(f.name for f in fields(TissueParams))


def stack_params(params: list[TissueParams]) -> dict[str, np.ndarray]:
    """Column arrays (K,) per parameter name, for vectorised spectra."""
    return {name: np.array([getattr(p, name) for p in params], dtype=np.float64) for name in PARAM_NAMES}


def absorption(columns: dict[str, np.ndarray]) -> np.ndarray:
    """(K, L) mu_a in cm^-1 on ``GRID_NM`` for K parameter sets given as (K,) columns."""
    c = chromophores()
    col = {k: np.asarray(v, dtype=np.float64)[:, None] for k, v in columns.items()}
    sto2 = np.clip(col["sto2"], 0.0, 1.0)
    return (
        col["blood"] * (sto2 * c.hbo2 + (1.0 - sto2) * c.hb)
        + col["water"] * c.water
        + col["fat"] * c.fat
        + col["melanin"] * c.melanin
        + col["bilirubin"] * c.bilirubin
        + col["icg"] * c.icg
    )


def reduced_scattering(columns: dict[str, np.ndarray]) -> np.ndarray:
    """(K, L) mu_s' in cm^-1 on ``GRID_NM``: a·(λ/500 nm)^(−b)."""
    a = np.asarray(columns["scatter_a"], dtype=np.float64)[:, None]
    b = np.asarray(columns["scatter_b"], dtype=np.float64)[:, None]
    return a * (GRID_NM / 500.0) ** (-b)


def diffuse_reflectance(mu_a: np.ndarray, mu_s_prime: np.ndarray) -> np.ndarray:
    """Total diffuse reflectance of a semi-infinite medium, same shape as the inputs, in (0, 1).

    R = (a'/2)·(1 + exp(−(4/3)·A·√(3(1−a'))))·exp(−√(3(1−a'))), a' = mu_s'/(mu_a + mu_s').
    """
    albedo = mu_s_prime / (mu_a + mu_s_prime)
    root = np.sqrt(3.0 * (1.0 - albedo))
    return 0.5 * albedo * (1.0 + np.exp(-(4.0 / 3.0) * BOUNDARY_A * root)) * np.exp(-root)


def tissue_reflectance(params: list[TissueParams]) -> np.ndarray:
    """(K, L) float64 diffuse reflectance on ``GRID_NM`` for K tissues."""
    columns = stack_params(params)
    return diffuse_reflectance(absorption(columns), reduced_scattering(columns))
