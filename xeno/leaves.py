"""Leaf and soil optics for the crop simulator: PROSPECT-D leaves, PROSAIL soil spectra.

Crops play the part that species play in surgery (DESIGN.md section 1): each crop has
its own baseline PROSPECT-D parameters, so absolute leaf spectra differ between crops,
while a stress state applies the *same* physiological change (the same relative factors
on the same parameters) to every crop, so the relative change a state causes is similar
but not identical across crops.

Parameter values, literature ranges and the reasons for the effect sizes are in
``docs/leaves.md``. The PROSPECT model itself comes from the ``prosail`` package (an
optional dependency, extra ``sim``); it is imported only when a spectrum is computed, so
``import xenoedge.xeno.leaves`` works without it.

Units follow PROSPECT-D: pigments in µg/cm² of leaf area, water as equivalent water
thickness in cm (= g/cm²), dry matter in g/cm², brown pigments in arbitrary units, the
structure parameter N dimensionless (number of compact layers).
"""

from __future__ import annotations

import functools
from dataclasses import astuple, dataclass, fields, replace

import numpy as np

from xenoedge.errors import InvalidCubeError, UnknownNameError, XenoedgeError

__all__ = [
    "CROPS",
    "CROP_STATES",
    "PROSPECT_WAVELENGTHS_NM",
    "STATE_EFFECTS",
    "STATE_TO_LABEL",
    "LeafParameterError",
    "LeafTraits",
    "StateEffect",
    "apply_state",
    "leaf_reflectance",
    "plant_traits",
    "soil_reflectance",
]

#: The 1 nm grid PROSPECT-D and the PROSAIL soil spectra are tabulated on, 400..2500 nm.
PROSPECT_WAVELENGTHS_NM: np.ndarray = np.arange(400, 2501, dtype=np.float64)
PROSPECT_WAVELENGTHS_NM.flags.writeable = False


class LeafParameterError(XenoedgeError, ValueError):
    """A leaf/soil parameter outside its physical range (negative pigment, N < 1, strength > 1 ...)."""


@dataclass(frozen=True)
class LeafTraits:
    """The seven PROSPECT-D leaf parameters (one leaf, or one leaf region)."""

    n: float  # leaf structure parameter N, number of compact layers (dimensionless, 1.0..3.0)
    cab: float  # chlorophyll a+b content, µg/cm²
    car: float  # carotenoid content, µg/cm²
    cbrown: float  # brown pigment content, arbitrary units (0 = green leaf, ~1 = necrotic)
    cw: float  # equivalent water thickness, cm (same number as g/cm² of water)
    cm: float  # dry matter content (leaf mass per area), g/cm²
    ant: float  # anthocyanin content, µg/cm²

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not np.isfinite(value):
                raise LeafParameterError(f"leaf trait {f.name}={value!r} is not a finite number")
            low = 1.0 if f.name == "n" else 0.0
            if value < low:
                raise LeafParameterError(f"leaf trait {f.name}={value!r} is below its physical minimum {low}")

    def as_tuple(self) -> tuple[float, float, float, float, float, float, float]:
        """(n, cab, car, cbrown, cw, cm, ant), the PROSPECT-D argument order."""
        return astuple(self)


# Baselines per crop: healthy, fully expanded, sunlit leaves. All values lie inside the
# ranges of the ANGERS / LOPEX calibration data of PROSPECT-D (Feret et al. 2017, RSE 193:
# 204-215; Jacquemoud et al. 2009, RSE 113: S56-S66); the per-crop choice inside those
# ranges is ours, guided by the crop literature cited in docs/leaves.md.
CROPS: dict[str, LeafTraits] = {
    # Monocot (C3), thin compact blade: low N, moderate chlorophyll, thin leaf, low LMA.
    "wheat": LeafTraits(n=1.5, cab=45.0, car=10.0, cbrown=0.0, cw=0.0120, cm=0.0045, ant=0.5),
    # Monocot (C4), thicker blade with Kranz anatomy: highest chlorophyll and carotenoids.
    "maize": LeafTraits(n=1.4, cab=55.0, car=12.5, cbrown=0.0, cw=0.0150, cm=0.0055, ant=0.3),
    # Dicot, dorsiventral with spongy mesophyll: higher N, lower chlorophyll, more water,
    # some anthocyanin (tomato accumulates it readily).
    "tomato": LeafTraits(n=1.8, cab=38.0, car=8.5, cbrown=0.0, cw=0.0200, cm=0.0040, ant=1.5),
}

CROP_STATES: tuple[str, ...] = ("healthy", "drought", "nitrogen_deficiency", "lesion")

STATE_TO_LABEL: dict[str, str] = {
    "healthy": "healthy_leaf",
    "drought": "stressed_leaf",
    "nitrogen_deficiency": "stressed_leaf",
    "lesion": "lesion",
}


@dataclass(frozen=True)
class StateEffect:
    """The full (strength 1) change of one parameter: ``value * factor + add``.

    At strength ``s`` the change is ``value * (1 + s * (factor - 1)) + s * add``, so
    strength 0 leaves the leaf healthy and strength 1 gives the documented effect.
    """

    factor: float = 1.0
    add: float = 0.0  # in the parameter's own unit


# One table drives the states: parameter name -> effect. The same relative change for
# every crop. Effect sizes and their sources are in docs/leaves.md.
STATE_EFFECTS: dict[str, dict[str, StateEffect]] = {
    "healthy": {},
    "drought": {
        "cw": StateEffect(factor=0.35),  # severe leaf water loss (wilting; RWC ~ 40 %)
        "cab": StateEffect(factor=0.85),  # a little chlorophyll loss
        "car": StateEffect(factor=0.95),  # carotenoids kept: Car/Cab rises
        "cbrown": StateEffect(add=0.3),  # scorched tips and margins, leaf average, a.u.
        "ant": StateEffect(add=2.0),  # stress anthocyanins, µg/cm²
    },
    "nitrogen_deficiency": {
        "cab": StateEffect(factor=0.35),  # chlorosis: chlorophyll strongly down
        "car": StateEffect(factor=0.60),  # carotenoids down less than chlorophyll
    },
    "lesion": {
        "cbrown": StateEffect(add=1.2),  # necrotic tissue: brown pigments, a.u.
        "cab": StateEffect(factor=0.02),  # chlorophyll essentially gone (~1 µg/cm²)
        "car": StateEffect(factor=0.30),
        "cw": StateEffect(factor=0.30),  # dead tissue dries out
        "ant": StateEffect(factor=0.50),
        "n": StateEffect(add=0.3),  # collapsed cells, more internal interfaces
    },
}

# Between-plant (subject) variation: log-normal relative spread, sigma per parameter.
# "A few per cent": plants of one field are genetically alike and share the weather.
_PLANT_SIGMA: dict[str, float] = {
    "n": 0.03,
    "cab": 0.06,
    "car": 0.06,
    "cbrown": 0.0,
    "cw": 0.05,
    "cm": 0.05,
    "ant": 0.10,
}

# Rounding of the PROSPECT cache key, per parameter, in the parameter's own unit. It moves
# reflectance by < 3e-4 (measured: at most 2e-4 over 200 random leaves), far below camera
# noise and any state effect, and lets nearly equal leaves share one PROSPECT run.
_CACHE_DECIMALS: tuple[int, ...] = (3, 2, 2, 3, 5, 5, 2)  # n, cab, car, cbrown, cw, cm, ant


def _crop(crop: str) -> LeafTraits:
    try:
        return CROPS[crop]
    except KeyError:
        raise UnknownNameError("crop", crop, sorted(CROPS)) from None


def plant_traits(crop: str, rng: np.random.Generator) -> LeafTraits:
    """Traits of one healthy plant: the crop baseline with small between-plant variation.

    Each parameter is multiplied by ``exp(sigma * z)``, z ~ N(0, 1), sigma 3-10 %
    (``_PLANT_SIGMA``); N is kept >= 1. Deterministic for a given generator state.
    """
    base = _crop(crop)
    z = rng.standard_normal(len(_PLANT_SIGMA))
    values = {
        name: getattr(base, name) * float(np.exp(sigma * zi))
        for (name, sigma), zi in zip(_PLANT_SIGMA.items(), z, strict=True)
    }
    values["n"] = max(values["n"], 1.0)
    return LeafTraits(**values)


def apply_state(traits: LeafTraits, state: str, strength: float = 1.0) -> LeafTraits:
    """The leaf ``traits`` changed by ``state`` at ``strength`` in [0, 1] (0 = healthy).

    The change is the same for every crop (``STATE_EFFECTS``): relative factors, plus
    absolute additions for pigments a healthy leaf barely has (brown, anthocyanin).
    """
    if state not in STATE_EFFECTS:
        raise UnknownNameError("crop state", state, CROP_STATES)
    strength = float(strength)
    if not 0.0 <= strength <= 1.0:
        raise LeafParameterError(f"state strength must be in [0, 1], got {strength!r}")
    changes = {
        name: getattr(traits, name) * (1.0 + strength * (effect.factor - 1.0)) + strength * effect.add
        for name, effect in STATE_EFFECTS[state].items()
    }
    return replace(traits, **changes)


@functools.lru_cache(maxsize=1024)  # 1024 x 2101 float64 = 17 MB at most
def _prospect_reflectance(key: tuple[float, ...]) -> np.ndarray:
    """PROSPECT-D directional-hemispherical leaf reflectance, (2101,) float64 on 400..2500 nm."""
    import prosail  # optional dependency (extra "sim"); imported only when needed

    n, cab, car, cbrown, cw, cm, ant = key
    _, refl, _ = prosail.run_prospect(n, cab, car, cbrown, cw, cm, ant=ant, prospect_version="D")
    refl = np.asarray(refl, dtype=np.float64)
    refl.flags.writeable = False  # shared by every caller through the cache
    return refl


def _check_wavelengths(wavelengths_nm: np.ndarray) -> np.ndarray:
    wl = np.asarray(wavelengths_nm, dtype=np.float64)
    if wl.ndim != 1 or wl.size == 0:
        raise InvalidCubeError(f"wavelengths must be a non-empty 1-D array in nm, got shape {wl.shape}")
    if not np.all(np.isfinite(wl)):
        raise InvalidCubeError("wavelengths contain NaN or infinite values")
    lo, hi = PROSPECT_WAVELENGTHS_NM[0], PROSPECT_WAVELENGTHS_NM[-1]
    if wl.min() < lo or wl.max() > hi:
        raise InvalidCubeError(
            f"wavelengths {wl.min():g}..{wl.max():g} nm fall outside the PROSPECT range {lo:g}..{hi:g} nm"
        )
    return wl


def leaf_reflectance(traits: LeafTraits, wavelengths_nm: np.ndarray) -> np.ndarray:
    """Leaf reflectance (C,) float32 in (0, 1) at ``wavelengths_nm`` (C,), 400..2500 nm.

    Linear interpolation from the 1 nm PROSPECT-D grid. PROSPECT runs are cached on the
    rounded parameter tuple, so repeated calls with the same leaf cost one ``np.interp``.
    """
    wl = _check_wavelengths(wavelengths_nm)
    key = tuple(round(v, d) for v, d in zip(traits.as_tuple(), _CACHE_DECIMALS, strict=True))
    refl = _prospect_reflectance(key)
    return np.interp(wl, PROSPECT_WAVELENGTHS_NM, refl).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _soil_spectra() -> tuple[np.ndarray, np.ndarray]:
    """PROSAIL's dry (rsoil1) and wet (rsoil2) soil reflectance, each (2101,) on 400..2500 nm."""
    import prosail  # optional dependency (extra "sim"); imported only when needed

    dry = np.asarray(prosail.spectral_lib.soil.rsoil1, dtype=np.float64)
    wet = np.asarray(prosail.spectral_lib.soil.rsoil2, dtype=np.float64)
    dry.flags.writeable = False
    wet.flags.writeable = False
    return dry, wet


def soil_reflectance(wavelengths_nm: np.ndarray, moisture: float, brightness: float = 1.0) -> np.ndarray:
    """Soil reflectance (C,) float32 at ``wavelengths_nm`` (C,), 400..2500 nm.

    ``moisture`` in [0, 1] mixes PROSAIL's dry (0, ``rsoil1``) and wet (1, ``rsoil2``)
    soil spectra linearly; it is ``1 - psoil`` of PROSAIL. ``brightness`` (> 0, default 1)
    scales the result, as PROSAIL's ``rsoil``. Reflectance must stay below 1 at the
    requested wavelengths, so dry soil allows brightness up to ~2.1 over 500-1000 nm.
    """
    moisture = float(moisture)
    brightness = float(brightness)
    if not 0.0 <= moisture <= 1.0:
        raise LeafParameterError(f"soil moisture must be in [0, 1], got {moisture!r}")
    if not (np.isfinite(brightness) and brightness > 0.0):
        raise LeafParameterError(f"soil brightness must be a positive number, got {brightness!r}")
    wl = _check_wavelengths(wavelengths_nm)
    dry, wet = _soil_spectra()
    refl = brightness * (
        (1.0 - moisture) * np.interp(wl, PROSPECT_WAVELENGTHS_NM, dry)
        + moisture * np.interp(wl, PROSPECT_WAVELENGTHS_NM, wet)
    )
    if refl.max() >= 1.0:
        raise LeafParameterError(
            f"soil brightness {brightness:g} with moisture {moisture:g} gives reflectance "
            f"{refl.max():.3f} >= 1; lower the brightness"
        )
    return refl.astype(np.float32)
