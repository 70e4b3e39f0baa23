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

Two layers (``layer_mm`` > 0): the tissue above is a slab of that thickness over an
under-layer (``under_*`` parameters: a serosa or capsule over parenchyma, a bowel wall
over its content, a membrane over fat and muscle). The slab is combined with the
under-layer's reflectance R_g by Kubelka's layer formula, written with the slab's
semi-infinite reflectance R_inf (the diffusion formula above) and the round-trip
attenuation exp(−2·mu_eff·d), mu_eff = √(3·mu_a·(mu_a + mu_s')):

    R = [((R_g − R_inf)/R_inf)·e − R_inf·(R_g − 1/R_inf)] / [(R_g − R_inf)·e − (R_g − 1/R_inf)],
    e = exp(−2·mu_eff·d),

which is R_g for d = 0 and R_inf for a thick slab.
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
ICG_PEAK_NM, ICG_WIDTH_NM, ICG_SHOULDER_OFFSET_NM, ICG_SHOULDER_WIDTH_NM, ICG_SHOULDER = 805.0, 28.0, -65.0, 32.0, 0.35
ICG_BANDS_NM = (
    (ICG_PEAK_NM, ICG_WIDTH_NM, 1.0),
    (ICG_PEAK_NM + ICG_SHOULDER_OFFSET_NM, ICG_SHOULDER_WIDTH_NM, ICG_SHOULDER),
)
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
    with resources.files("xenoedge.xeno").joinpath("data", "chromophores.npz").open("rb") as f:
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
    # How this tissue's ICG spectrum departs from the plasma shape (species-specific binding
    # and aggregation, xenoedge.xeno.species state responses): peak shift in nm, and the 740 nm
    # aggregate shoulder's height relative to the peak (0.35 = the plasma shape).
    icg_shift_nm: float = 0.0
    icg_shoulder: float = ICG_SHOULDER
    # Two-layer tissue: this tissue is a slab of ``layer_mm`` over an under-layer (0: one
    # semi-infinite layer, the under_* values are unused). The under-layer may be perfused
    # tissue (under_blood > 0: states change it too) or content without blood (chyme, stool).
    layer_mm: float = 0.0
    under_blood: float = 0.0
    under_sto2: float = 0.0
    under_water: float = 0.0
    under_fat: float = 0.0
    under_scatter_a: float = 0.0
    under_scatter_b: float = 0.0
    under_melanin: float = 0.0  # brown pigment (stool), approximated by melanin's spectrum
    under_bilirubin: float = 0.0  # bile pigment (chyme), cm^-1 at 460 nm
    under_icg: float = 0.0

    def replace(self, **changes: float) -> TissueParams:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return TissueParams(**values)


PARAM_NAMES = tuple(f.name for f in fields(TissueParams))


def stack_params(params: list[TissueParams]) -> dict[str, np.ndarray]:
    """Column arrays (K,) per parameter name, for vectorised spectra."""
    return {name: np.array([getattr(p, name) for p in params], dtype=np.float64) for name in PARAM_NAMES}


def icg_shape(shift_nm: np.ndarray, shoulder: np.ndarray) -> np.ndarray:
    """(K, L) ICG absorption shape on ``GRID_NM``, 1 at the main peak: the plasma shape for
    shift 0 and shoulder ``ICG_SHOULDER``; otherwise both bands move by ``shift_nm``."""
    shift = np.asarray(shift_nm, dtype=np.float64).reshape(-1, 1)
    shoulder = np.asarray(shoulder, dtype=np.float64).reshape(-1, 1)
    if np.all(shift == 0.0) and np.all(shoulder == ICG_SHOULDER):
        return np.broadcast_to(chromophores().icg, (shift.shape[0], GRID_NM.size))
    peak = ICG_PEAK_NM + shift
    main = np.exp(-0.5 * ((GRID_NM - peak) / ICG_WIDTH_NM) ** 2)
    side = shoulder * np.exp(-0.5 * ((GRID_NM - peak - ICG_SHOULDER_OFFSET_NM) / ICG_SHOULDER_WIDTH_NM) ** 2)
    shape = main + side
    return shape / shape.max(axis=1, keepdims=True)


def absorption(columns: dict[str, np.ndarray], prefix: str = "") -> np.ndarray:
    """(K, L) mu_a in cm^-1 on ``GRID_NM`` for K parameter sets given as (K,) columns.

    ``prefix`` "under_" reads the under-layer's columns (no bilirubin shape shift, ICG with
    the tissue's shape)."""
    c = chromophores()
    n = len(next(iter(columns.values())))

    def col(name: str, default: float = 0.0) -> np.ndarray:
        value = columns.get(prefix + name)
        if value is None:
            return np.full((n, 1), default)
        return np.asarray(value, dtype=np.float64)[:, None]

    sto2 = np.clip(col("sto2"), 0.0, 1.0)
    mu_a = (
        col("blood") * (sto2 * c.hbo2 + (1.0 - sto2) * c.hb)
        + col("water") * c.water
        + col("fat") * c.fat
        + col("melanin") * c.melanin
        + col("bilirubin") * c.bilirubin
    )
    icg = col("icg")
    if np.any(icg != 0.0):
        shift = columns.get("icg_shift_nm", np.zeros(n))
        shoulder = columns.get("icg_shoulder", np.full(n, ICG_SHOULDER))
        mu_a = mu_a + icg * icg_shape(shift, shoulder)
    return mu_a


def reduced_scattering(columns: dict[str, np.ndarray], prefix: str = "") -> np.ndarray:
    """(K, L) mu_s' in cm^-1 on ``GRID_NM``: a·(λ/500 nm)^(−b)."""
    a = np.asarray(columns[prefix + "scatter_a"], dtype=np.float64)[:, None]
    b = np.asarray(columns[prefix + "scatter_b"], dtype=np.float64)[:, None]
    return a * (GRID_NM / 500.0) ** (-b)


def diffuse_reflectance(mu_a: np.ndarray, mu_s_prime: np.ndarray) -> np.ndarray:
    """Total diffuse reflectance of a semi-infinite medium, same shape as the inputs, in (0, 1).

    R = (a'/2)·(1 + exp(−(4/3)·A·√(3(1−a'))))·exp(−√(3(1−a'))), a' = mu_s'/(mu_a + mu_s').
    """
    albedo = mu_s_prime / (mu_a + mu_s_prime)
    root = np.sqrt(3.0 * (1.0 - albedo))
    return 0.5 * albedo * (1.0 + np.exp(-(4.0 / 3.0) * BOUNDARY_A * root)) * np.exp(-root)


def layer_over(r_inf: np.ndarray, r_g: np.ndarray, attenuation: np.ndarray) -> np.ndarray:
    """Kubelka's reflectance of a slab over a background, all arrays broadcastable.

    ``r_inf``: the slab's reflectance if it were infinitely thick; ``r_g``: the background's;
    ``attenuation``: exp(−2·mu_eff·d) of the slab (1: no slab, returns r_g; 0: returns r_inf).
    """
    e = attenuation
    num = (r_g - r_inf) / r_inf * e - r_inf * (r_g - 1.0 / r_inf)
    den = (r_g - r_inf) * e - (r_g - 1.0 / r_inf)
    return num / den


def tissue_reflectance(params: list[TissueParams]) -> np.ndarray:
    """(K, L) float64 diffuse reflectance on ``GRID_NM`` for K tissues (one or two layers)."""
    columns = stack_params(params)
    mu_a, mu_s = absorption(columns), reduced_scattering(columns)
    r = diffuse_reflectance(mu_a, mu_s)
    layered = columns["layer_mm"] > 0.0
    if np.any(layered):
        sub = {k: v[layered] for k, v in columns.items()}
        r_g = diffuse_reflectance(absorption(sub, "under_"), reduced_scattering(sub, "under_"))
        mu_eff = np.sqrt(3.0 * mu_a[layered] * (mu_a[layered] + mu_s[layered]))
        attenuation = np.exp(-2.0 * mu_eff * (0.1 * sub["layer_mm"][:, None]))
        r[layered] = layer_over(r[layered], r_g, attenuation)
    return r
