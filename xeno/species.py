"""Species x organ parameter tables, subject variation and pathological states.

Baseline values (human) are literature-typical magnitudes, not measurements: blood volume
fractions of a few % for hollow organs up to ~20 % for liver and spleen (Jacques 2013,
"Optical properties of biological tissues: a review"; Zonios et al.), StO2 0.6-0.85 for
perfused organs, water 0.6-0.8 except fatty omentum, and Jacques' scattering power law
(mu_s'(500 nm) = a, power b). Species differ by documented factors (pig: more blood and
fat, less scattering, unpigmented skin; rat: less blood, more scattering, albino skin);
these factors are our choice and chosen so that species differ more than subjects do
(docs/simulator.md).

Organs get identity beyond blood and StO2 from scattering, water and fat, two-layer
structure (a wall over its content, a capsule over pulp, a membrane over fat and muscle)
and texture at organ-specific scales (``ORGAN_TEXTURE``); see docs/simulator.md, "Organ
identity".

A state acts through ``state_change``: a relative spectral change, log(R_state / R_phys),
that is ``(1 - d)`` times the change the shared mechanism causes in the organ's reference
tissue (the same in every species) plus ``d`` times the change the species' own response
(``STATE_RESPONSES``) causes in its own tissue; d = ``STATE_DEVIATION[species]`` (default
1.0). Shared mechanism, strengths drawn per region (calibrated, docs/simulator.md):

* ``malperfused_arterial`` (arterial inflow reduced, ischaemia): StO2 x U(0.85, 0.89),
  blood volume x U(0.91, 0.96).
* ``malperfused_venous`` (venous outflow reduced, congestion): StO2 x U(0.84, 0.88), blood
  volume x U(1.07, 1.15).
* ``icg``: indocyanine green at a peak tissue absorption of U(0.08, 0.45) cm^-1 (805 nm).

The malperfusion strengths are milder than full clamping: calibrated so that a
physiological-only network keeps the paper's share of malperfused human kidney
(docs/simulator.md, "Calibration").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import numpy as np
from xenoedge.xeno.optics import GRID_NM, TissueParams, tissue_reflectance

from xenoedge.errors import UnknownNameError

SPECIES = ("human", "pig", "rat")
STATES = ("physiological", "malperfused_arterial", "malperfused_venous", "icg")

# Human baseline per organ. Organs with ``layer_mm`` > 0 are two layers (xenoedge.xeno.optics): the
# values above describe the slab on top, ``under_*`` the layer below it. Choices and their
# rationale are in docs/simulator.md ("Organ identity").
_T = TissueParams
ORGANS: dict[str, TissueParams] = {
    # Thick muscular wall under the serosa: strongly scattering, moderately perfused; the
    # gastric content lies too deep (4 mm) to show.
    "stomach": _T(blood=0.08, sto2=0.70, water=0.76, fat=0.05, scatter_a=24.0, scatter_b=1.35),
    # Thin (1 mm), well-perfused, weakly scattering wall over watery, bile-stained chyme.
    "small_bowel": _T(
        blood=0.07, sto2=0.74, water=0.80, fat=0.02, scatter_a=16.0, scatter_b=1.10,
        layer_mm=1.0, under_water=0.92, under_bilirubin=4.0, under_scatter_a=6.0, under_scatter_b=0.6,
    ),
    # 1.5 mm wall with fat tags over brown stool (stercobilin: melanin-like brown absorber).
    "colon": _T(
        blood=0.045, sto2=0.70, water=0.76, fat=0.08, scatter_a=21.0, scatter_b=1.25,
        layer_mm=1.5, under_water=0.75, under_melanin=0.004, under_scatter_a=25.0, under_scatter_b=1.0,
    ),
    # Blood-rich parenchyma with partly desaturated portal blood, large hepatocytes (flat
    # scattering power), bile pigment; Glisson's capsule too thin to matter.
    "liver": _T(blood=0.17, sto2=0.65, water=0.72, fat=0.05, scatter_a=14.0, scatter_b=0.85, bilirubin=2.0),
    # Lobular gland with interlobular fat: pale, strongly scattering at short wavelengths.
    "pancreas": _T(blood=0.035, sto2=0.80, water=0.62, fat=0.28, scatter_a=24.0, scatter_b=1.65),
    "kidney": _T(blood=0.13, sto2=0.80, water=0.78, fat=0.02, scatter_a=20.0, scatter_b=1.60),
    # Fibrous capsule (0.3 mm, little blood, strong scattering) over red pulp: sinusoids full
    # of blood at venous-like saturation.
    "spleen": _T(
        blood=0.03, sto2=0.75, water=0.72, fat=0.02, scatter_a=30.0, scatter_b=1.30,
        layer_mm=0.1, under_blood=0.32, under_sto2=0.55, under_water=0.78, under_fat=0.01,
        under_scatter_a=12.0, under_scatter_b=1.20,
    ),
    "omentum": _T(blood=0.015, sto2=0.75, water=0.22, fat=0.70, scatter_a=28.0, scatter_b=0.90),
    # Inflated lung: air-filled alveoli (little water per volume, strong scattering), blood
    # close to arterial saturation.
    "lung": _T(blood=0.09, sto2=0.90, water=0.35, fat=0.02, scatter_a=36.0, scatter_b=0.85),
    "skin": _T(blood=0.03, sto2=0.62, water=0.65, fat=0.04, scatter_a=46.0, scatter_b=1.42, melanin=0.004),
    # Parietal peritoneum: mesothelium and pre-peritoneal fat (0.6 mm) over abdominal-wall
    # muscle (perfused, weakly scattering).
    "peritoneum": _T(
        blood=0.01, sto2=0.75, water=0.40, fat=0.50, scatter_a=22.0, scatter_b=1.05,
        layer_mm=1.0, under_blood=0.05, under_sto2=0.65, under_water=0.75, under_fat=0.03,
        under_scatter_a=10.0, under_scatter_b=1.00,
    ),
}  # fmt: skip


# Texture: the scale (fraction of the shorter image side) and relative amplitude at which an
# organ's parameters vary in space (StO2, blood, scattering and layer thickness along one
# latent). Fine lobules (liver, pancreas, lung), folds (stomach rugae, bowel loops, colon
# haustra), fat lobules (omentum), smooth capsules (kidney, spleen).
ORGAN_TEXTURE: dict[str, tuple[float, float]] = {
    "stomach": (0.06, 1.0),
    "small_bowel": (0.05, 1.2),
    "colon": (0.09, 1.2),
    "liver": (0.025, 0.8),
    "pancreas": (0.02, 1.2),
    "kidney": (0.25, 0.6),
    "spleen": (0.20, 0.6),
    "omentum": (0.04, 1.3),
    "lung": (0.02, 1.0),
    "skin": (0.12, 0.6),
    "peritoneum": (0.15, 0.8),
}


@dataclass(frozen=True)
class SpeciesFactors:
    """How a species' baseline differs from human: multipliers, except ``sto2_shift`` (added)."""

    blood: float
    sto2_shift: float
    water: float
    fat: float
    scatter_a: float
    scatter_b: float
    melanin: float
    bilirubin: float
    layer: float = 1.0  # thickness of walls, capsules and membranes (two-layer organs)


SPECIES_FACTORS: dict[str, SpeciesFactors] = {
    "human": SpeciesFactors(1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
    "pig": SpeciesFactors(1.30, 0.05, 0.97, 1.5, 0.80, 1.12, 0.05, 0.6, layer=1.0),
    # A rat's bowel wall, splenic capsule and peritoneum are a fraction of a human's.
    "rat": SpeciesFactors(0.75, -0.05, 1.04, 0.6, 1.30, 0.85, 0.0, 1.4, layer=0.4),
}

# Organs where a species departs further from the shared factors (multiplier on blood).
ORGAN_BLOOD_OVERRIDES: dict[tuple[str, str], float] = {
    ("pig", "liver"): 0.85,  # pig liver: lobulated, more connective tissue
    ("rat", "kidney"): 1.25,  # small, very well perfused rat kidney
    ("rat", "lung"): 1.3,
}

# Between-subject variation (relative sigma, except sto2: absolute sigma).
SUBJECT_SIGMA = {
    "blood": 0.08,
    "sto2": 0.025,
    "water": 0.02,
    "fat": 0.10,
    "scatter_a": 0.05,
    "scatter_b": 0.03,
    "layer_mm": 0.10,
}

# State strength ranges: (low, high) for a uniform draw; see module docstring.
STATE_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "physiological": {},
    "malperfused_arterial": {"sto2_factor": (0.85, 0.89), "blood_factor": (0.91, 0.96)},
    "malperfused_venous": {"sto2_factor": (0.84, 0.88), "blood_factor": (1.07, 1.15)},
    "icg": {"icg_cm": (0.08, 0.45)},
}


# How each species departs from the shared state mechanism (``apply_state(..., species=)``),
# our choice of plausible directions (docs/simulator.md, "State deviation"): multipliers on how
# far a strength factor departs from 1 (``sto2_change`` 1.2: a 10 % desaturation becomes 12 %),
# added water (oedema), ICG peak shift and aggregate shoulder, ICG uptake.
STATE_RESPONSES: dict[tuple[str, str], dict[str, float]] = {
    # Pig: end-arteries and few collaterals -> deeper ischaemia; more congestion and oedema
    # under venous stasis; ICG band slightly red-shifted with more aggregate shoulder.
    ("pig", "malperfused_arterial"): {"sto2_change": 1.15, "blood_change": 1.30},
    ("pig", "malperfused_venous"): {"blood_change": 1.40, "water_add": 0.01},
    ("pig", "icg"): {"icg_shift_nm": 5.0, "icg_shoulder_add": 0.10},
    # Rat: rich collaterals and high metabolic rate -> milder desaturation, less pooling;
    # faster hepatic ICG clearance (less ICG) and a blue-shifted, less aggregated band.
    ("rat", "malperfused_arterial"): {"sto2_change": 0.80, "blood_change": 0.75},
    ("rat", "malperfused_venous"): {"sto2_change": 0.90, "blood_change": 0.75},
    ("rat", "icg"): {"icg_shift_nm": -4.0, "icg_shoulder_add": -0.10, "icg_factor": 0.85},
}

# How far a species' states depart from the shared relative change (``state_change``):
# 0 = identical relative change in every species, 1 = each species' own physics and response.
STATE_DEVIATION: dict[str, float] = {"human": 1.0, "pig": 1.0, "rat": 1.0}
_DEVIATION_OVERRIDE: list[float] = []


def check_species(species: str) -> str:
    if species not in SPECIES:
        raise UnknownNameError("species", species, SPECIES)
    return species


def check_state(state: str) -> str:
    if state not in STATES:
        raise UnknownNameError("state", state, STATES)
    return state


def species_baseline(species: str, organ: str) -> TissueParams:
    """Physiological parameters of ``organ`` in ``species`` before subject variation."""
    f = SPECIES_FACTORS[check_species(species)]
    if organ not in ORGANS:
        raise UnknownNameError("organ", organ, sorted(ORGANS))
    p = ORGANS[organ]
    blood_factor = f.blood * ORGAN_BLOOD_OVERRIDES.get((species, organ), 1.0)
    return p.replace(
        blood=p.blood * blood_factor,
        sto2=float(np.clip(p.sto2 + f.sto2_shift, 0.5, 0.92)),
        water=min(p.water * f.water, 0.9),
        fat=min(p.fat * f.fat, 0.85),
        scatter_a=p.scatter_a * f.scatter_a,
        scatter_b=p.scatter_b * f.scatter_b,
        melanin=p.melanin * f.melanin,
        bilirubin=p.bilirubin * f.bilirubin,
        layer_mm=p.layer_mm * f.layer,
        under_blood=p.under_blood * blood_factor,
        under_sto2=float(np.clip(p.under_sto2 + f.sto2_shift, 0.4, 0.92)) if p.under_blood > 0 else p.under_sto2,
        under_water=min(p.under_water * f.water, 0.95),
        under_fat=min(p.under_fat * f.fat, 0.85),
        under_scatter_a=p.under_scatter_a * f.scatter_a,
        under_scatter_b=p.under_scatter_b * f.scatter_b,
    )


def subject_params(species: str, organ: str, subject_seed: int) -> TissueParams:
    """Baseline plus this subject's own offsets; the same seed always gives the same subject.

    The draw depends on (subject_seed, organ) only, so adding organs to a scene never
    changes another organ of the same subject.
    """
    base = species_baseline(species, organ)
    organ_index = sorted(ORGANS).index(organ)
    rng = np.random.default_rng([subject_seed, organ_index, SPECIES.index(species)])
    z = {k: rng.standard_normal() for k in SUBJECT_SIGMA}
    m = {k: 1 + SUBJECT_SIGMA[k] * z[k] for k in SUBJECT_SIGMA if k != "sto2"}
    sto2_shift = SUBJECT_SIGMA["sto2"] * z["sto2"]
    # The under-layer shares the subject's offsets (one circulation, one build).
    return base.replace(
        blood=base.blood * m["blood"],
        sto2=float(np.clip(base.sto2 + sto2_shift, 0.4, 0.95)),
        water=base.water * m["water"],
        fat=base.fat * m["fat"],
        scatter_a=base.scatter_a * m["scatter_a"],
        scatter_b=base.scatter_b * m["scatter_b"],
        layer_mm=base.layer_mm * m["layer_mm"],
        under_blood=base.under_blood * m["blood"],
        under_sto2=float(np.clip(base.under_sto2 + sto2_shift, 0.3, 0.95)) if base.under_blood > 0 else base.under_sto2,
        under_water=base.under_water * m["water"],
        under_fat=base.under_fat * m["fat"],
        under_scatter_a=base.under_scatter_a * m["scatter_a"],
        under_scatter_b=base.under_scatter_b * m["scatter_b"],
    )


def draw_state_strength(state: str, rng: np.random.Generator) -> dict[str, float]:
    """One strength draw for ``state`` from its documented ranges (empty for physiological)."""
    return {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in STATE_RANGES[check_state(state)].items()}


def apply_state(
    params: TissueParams, state: str, strength: dict[str, float], species: str | None = None
) -> TissueParams:
    """Physiological params changed by ``state`` at ``strength`` (from ``draw_state_strength``).

    Without ``species``: the shared mechanism (blood and StO2 of every perfused layer scaled;
    ICG added). With ``species``: that species' own response (``STATE_RESPONSES``) on top.
    """
    check_state(state)
    if state == "physiological":
        return params
    response = STATE_RESPONSES.get((species, state), {}) if species is not None else {}
    if state in ("malperfused_arterial", "malperfused_venous"):
        sto2_f = 1.0 - (1.0 - strength["sto2_factor"]) * response.get("sto2_change", 1.0)
        blood_f = 1.0 + (strength["blood_factor"] - 1.0) * response.get("blood_change", 1.0)
        water = response.get("water_add", 0.0)
        return params.replace(
            sto2=params.sto2 * sto2_f,
            blood=params.blood * blood_f,
            water=min(params.water + water, 0.95),
            under_sto2=params.under_sto2 * sto2_f,
            under_blood=params.under_blood * blood_f,
            under_water=min(params.under_water + water, 0.95) if params.under_blood > 0 else params.under_water,
        )
    # ICG is carried by the blood: a blood-rich under-layer holds more of it (at most 4x).
    icg = strength["icg_cm"] * response.get("icg_factor", 1.0)
    ratio = min(params.under_blood / params.blood, 4.0) if params.under_blood > 0 and params.blood > 0 else 0.0
    return params.replace(
        icg=icg,
        under_icg=icg * ratio,
        icg_shift_nm=params.icg_shift_nm + response.get("icg_shift_nm", 0.0),
        icg_shoulder=max(0.0, params.icg_shoulder + response.get("icg_shoulder_add", 0.0)),
    )


def state_deviation(species: str) -> float:
    """The state deviation in force for ``species``: an active ``state_deviation_override``,
    else ``STATE_DEVIATION[species]``."""
    if _DEVIATION_OVERRIDE:
        return _DEVIATION_OVERRIDE[-1]
    return STATE_DEVIATION[check_species(species)]


@contextmanager
def state_deviation_override(value: float) -> Iterator[None]:
    """Within the ``with`` block every species simulates states at deviation ``value``
    (for code that builds scenes through ``xenoedge.xeno.simulate_dataset`` and cannot pass it)."""
    if not value >= 0.0:
        raise ValueError(f"state deviation must be >= 0, got {value!r}")
    _DEVIATION_OVERRIDE.append(float(value))
    try:
        yield
    finally:
        _DEVIATION_OVERRIDE.pop()


@cache
def reference_params(organ: str) -> TissueParams:
    """The organ's reference tissue for the shared state mechanism: each parameter averaged
    over the species' baselines (no species, no subject)."""
    baselines = [species_baseline(sp, organ) for sp in SPECIES]
    names = [f.name for f in dataclasses.fields(TissueParams)]
    return TissueParams(**{n: float(np.mean([getattr(b, n) for b in baselines])) for n in names})


def state_change(
    params: TissueParams,
    organ: str,
    state: str,
    strength: dict[str, float],
    species: str,
    deviation: float | None = None,
) -> np.ndarray:
    """(L,) relative spectral change of ``state`` on ``GRID_NM``, as log(R_state / R_physiological).

    ``(1 − d)·shared + d·own``, d = ``deviation`` (None: ``state_deviation(species)``):

    * shared: the change the shared mechanism causes in the organ's reference tissue
      (``reference_params``) -- the same for every species and subject;
    * own: the change the species' own response causes in this tissue (``params``).

    At d = 0 the relative change is identical across species (the xeno-learning premise holds
    exactly); d = 1 is each species' own physics; d > 1 exaggerates the departure.
    """
    check_state(state)
    if state == "physiological":
        return np.zeros(GRID_NM.size)
    d = state_deviation(species) if deviation is None else float(deviation)
    if not d >= 0.0:
        raise ValueError(f"state deviation must be >= 0, got {deviation!r}")
    change = np.zeros(GRID_NM.size)
    if d < 1.0:
        ref = reference_params(organ)
        r = tissue_reflectance([ref, apply_state(ref, state, strength)])
        change += (1.0 - d) * (np.log(r[1]) - np.log(r[0]))
    if d > 0.0:
        r = tissue_reflectance([params, apply_state(params, state, strength, species)])
        change += d * (np.log(r[1]) - np.log(r[0]))
    return change


def apply_change(reflectance: np.ndarray, change: np.ndarray) -> np.ndarray:
    """Physiological reflectance (..., L) times exp(``change``), kept inside (0, 0.99]."""
    return np.clip(reflectance * np.exp(change), 1e-6, 0.99)


def typical_strength(state: str) -> dict[str, float]:
    """The middle of each range: a reproducible strength for plots and tests."""
    return {k: (lo + hi) / 2 for k, (lo, hi) in STATE_RANGES[check_state(state)].items()}
