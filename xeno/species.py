"""Species x organ parameter tables, subject variation and pathological states.

Baseline values (human) are literature-typical magnitudes, not measurements: blood volume
fractions of a few % for hollow organs up to ~20 % for liver and spleen (Jacques 2013,
"Optical properties of biological tissues: a review"; Zonios et al.), StO2 0.6-0.85 for
perfused organs, water 0.6-0.8 except fatty omentum, and Jacques' scattering power law
(mu_s'(500 nm) = a, power b). Species differ by documented factors (pig: more blood and
fat, less scattering, unpigmented skin; rat: less blood, more scattering, albino skin);
these factors are our choice and chosen so that species differ more than subjects do
(docs/simulator.md).

States apply the SAME physiological mechanism to every species, with a strength drawn
from a documented range (DESIGN.md section 2):

* ``malperfused_arterial`` (arterial clamping, ischaemia): StO2 x U(0.30, 0.45),
  blood volume x U(0.60, 0.80).
* ``malperfused_venous`` (venous stasis, congestion): StO2 x U(0.25, 0.40), blood volume
  x U(1.40, 1.80).
* ``icg``: indocyanine green at a peak tissue absorption of U(1.5, 5.0) cm^-1 (805 nm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.errors import UnknownNameError
from xeno.optics import TissueParams

SPECIES = ("human", "pig", "rat")
STATES = ("physiological", "malperfused_arterial", "malperfused_venous", "icg")

# Human baseline per organ.
ORGANS: dict[str, TissueParams] = {
    "stomach": TissueParams(blood=0.05, sto2=0.75, water=0.75, fat=0.05, scatter_a=22.0, scatter_b=1.20),
    "small_bowel": TissueParams(blood=0.06, sto2=0.72, water=0.78, fat=0.03, scatter_a=20.0, scatter_b=1.20),
    "colon": TissueParams(blood=0.045, sto2=0.70, water=0.77, fat=0.05, scatter_a=21.0, scatter_b=1.25),
    "liver": TissueParams(blood=0.20, sto2=0.60, water=0.72, fat=0.04, scatter_a=16.0, scatter_b=1.10, bilirubin=2.0),
    "pancreas": TissueParams(blood=0.025, sto2=0.75, water=0.72, fat=0.12, scatter_a=24.0, scatter_b=1.30),
    "kidney": TissueParams(blood=0.12, sto2=0.78, water=0.76, fat=0.03, scatter_a=18.0, scatter_b=1.20),
    "spleen": TissueParams(blood=0.22, sto2=0.65, water=0.78, fat=0.02, scatter_a=17.0, scatter_b=1.10),
    "omentum": TissueParams(blood=0.015, sto2=0.75, water=0.22, fat=0.70, scatter_a=28.0, scatter_b=0.90),
    "lung": TissueParams(blood=0.08, sto2=0.85, water=0.60, fat=0.03, scatter_a=30.0, scatter_b=1.00),
    "skin": TissueParams(blood=0.02, sto2=0.65, water=0.60, fat=0.10, scatter_a=46.0, scatter_b=1.42, melanin=0.004),
    "peritoneum": TissueParams(blood=0.03, sto2=0.75, water=0.75, fat=0.15, scatter_a=26.0, scatter_b=1.20),
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


SPECIES_FACTORS: dict[str, SpeciesFactors] = {
    "human": SpeciesFactors(1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
    "pig": SpeciesFactors(1.30, 0.05, 0.97, 1.5, 0.80, 1.12, 0.05, 0.6),
    "rat": SpeciesFactors(0.75, -0.05, 1.04, 0.6, 1.30, 0.85, 0.0, 1.4),
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
}

# State strength ranges: (low, high) for a uniform draw; see module docstring.
STATE_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "physiological": {},
    "malperfused_arterial": {"sto2_factor": (0.30, 0.45), "blood_factor": (0.60, 0.80)},
    "malperfused_venous": {"sto2_factor": (0.25, 0.40), "blood_factor": (1.40, 1.80)},
    "icg": {"icg_cm": (1.5, 5.0)},
}


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
    blood = p.blood * f.blood * ORGAN_BLOOD_OVERRIDES.get((species, organ), 1.0)
    return p.replace(
        blood=blood,
        sto2=float(np.clip(p.sto2 + f.sto2_shift, 0.5, 0.92)),
        water=min(p.water * f.water, 0.9),
        fat=min(p.fat * f.fat, 0.85),
        scatter_a=p.scatter_a * f.scatter_a,
        scatter_b=p.scatter_b * f.scatter_b,
        melanin=p.melanin * f.melanin,
        bilirubin=p.bilirubin * f.bilirubin,
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
    return base.replace(
        blood=base.blood * (1 + SUBJECT_SIGMA["blood"] * z["blood"]),
        sto2=float(np.clip(base.sto2 + SUBJECT_SIGMA["sto2"] * z["sto2"], 0.4, 0.95)),
        water=base.water * (1 + SUBJECT_SIGMA["water"] * z["water"]),
        fat=base.fat * (1 + SUBJECT_SIGMA["fat"] * z["fat"]),
        scatter_a=base.scatter_a * (1 + SUBJECT_SIGMA["scatter_a"] * z["scatter_a"]),
        scatter_b=base.scatter_b * (1 + SUBJECT_SIGMA["scatter_b"] * z["scatter_b"]),
    )


def draw_state_strength(state: str, rng: np.random.Generator) -> dict[str, float]:
    """One strength draw for ``state`` from its documented ranges (empty for physiological)."""
    return {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in STATE_RANGES[check_state(state)].items()}


def apply_state(params: TissueParams, state: str, strength: dict[str, float]) -> TissueParams:
    """Physiological params changed by ``state`` at ``strength`` (from ``draw_state_strength``)."""
    check_state(state)
    if state in ("malperfused_arterial", "malperfused_venous"):
        return params.replace(sto2=params.sto2 * strength["sto2_factor"], blood=params.blood * strength["blood_factor"])
    if state == "icg":
        return params.replace(icg=strength["icg_cm"])
    return params


def typical_strength(state: str) -> dict[str, float]:
    """The middle of each range: a reproducible strength for plots and tests."""
    return {k: (lo + hi) / 2 for k, (lo, hi) in STATE_RANGES[check_state(state)].items()}
