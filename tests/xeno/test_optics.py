"""Physical plausibility of the tissue model, asserted on real spectra."""

import numpy as np
import pytest

from xeno import species as tables
from xeno.optics import GRID_NM, TissueParams, chromophores, tissue_reflectance

PERFUSED = ("kidney", "liver", "stomach", "small_bowel", "colon", "spleen")


def at(spectrum: np.ndarray, nm: float) -> float:
    return float(spectrum[int(np.argmin(np.abs(GRID_NM - nm)))])


def spectra_for(species: str, organ: str, state: str) -> np.ndarray:
    p = tables.apply_state(tables.species_baseline(species, organ), state, tables.typical_strength(state))
    return tissue_reflectance([p])[0]


def test_chromophore_table_has_published_landmarks():
    c = chromophores()
    assert GRID_NM[0] == 450 and GRID_NM[-1] == 1000 and np.all(np.diff(GRID_NM) == 1)
    # HbO2 Q bands at 542 and 577 nm are local maxima; Hb has one at ~555 nm and a band at ~760 nm.
    assert at(c.hbo2, 542) > at(c.hbo2, 560) < at(c.hbo2, 577)
    assert at(c.hb, 757) > at(c.hb, 740) and at(c.hb, 757) > at(c.hb, 780)
    # Water absorbs at 970 nm; ICG approximation peaks near 805 nm.
    assert at(c.water, 970) > 5 * at(c.water, 900)
    assert abs(GRID_NM[np.argmax(c.icg)] - 805) <= 2


@pytest.mark.parametrize("species", tables.SPECIES)
@pytest.mark.parametrize("state", tables.STATES)
def test_reflectance_is_in_open_unit_interval(species, state):
    r = tissue_reflectance(
        [
            tables.apply_state(tables.species_baseline(species, organ), state, tables.typical_strength(state))
            for organ in tables.ORGANS
        ]
    )
    assert np.all(r > 0) and np.all(r < 1)


@pytest.mark.parametrize("organ", PERFUSED)
def test_perfused_tissue_shows_oxyhaemoglobin_dips(organ):
    r = spectra_for("human", organ, "physiological")
    # Dips (absorption maxima) at 542 and 577 nm with a relative peak between them at ~560 nm.
    assert at(r, 542) < at(r, 560) > at(r, 577)


@pytest.mark.parametrize("organ", PERFUSED)
@pytest.mark.parametrize("state", ["malperfused_arterial", "malperfused_venous"])
def test_malperfused_tissue_shows_deoxyhaemoglobin_band_near_760(organ, state):
    healthy, sick = spectra_for("human", organ, "physiological"), spectra_for("human", organ, state)

    def dip_depth(r):  # how far 760 nm lies below the line between 730 and 800 nm
        return 0.5 * (at(r, 730) + at(r, 800)) - at(r, 760)

    assert dip_depth(sick) > 0
    assert dip_depth(sick) > dip_depth(healthy) + 0.005
    # And the 542/577 double dip merges into one broad Hb band: 560 nm no longer a peak.
    assert at(sick, 560) < 0.5 * (at(sick, 542) + at(sick, 577)) + 0.002


def test_icg_darkens_near_805_nm():
    healthy, icg = spectra_for("pig", "liver", "physiological"), spectra_for("pig", "liver", "icg")
    assert at(icg, 805) < 0.7 * at(healthy, 805)
    assert at(icg, 600) == pytest.approx(at(healthy, 600), rel=0.02)


def l1(r: np.ndarray) -> np.ndarray:
    return r / np.abs(r).sum(axis=-1, keepdims=True)


def test_species_differ_more_than_subjects():
    for organ in ("kidney", "liver", "stomach", "colon"):
        subjects = {
            sp: tissue_reflectance([tables.subject_params(sp, organ, s) for s in range(8)]) for sp in tables.SPECIES
        }
        within = np.mean([np.abs(l1(v) - l1(v).mean(0)).sum(1).mean() for v in subjects.values()])
        means = np.stack([l1(v).mean(0) for v in subjects.values()])
        between = np.mean([np.abs(a - b).sum() for i, a in enumerate(means) for b in means[i + 1 :]])
        assert between > 2 * within, organ


def test_pathological_change_is_more_similar_across_species_than_across_states():
    def change(sp, organ, state):
        return l1(spectra_for(sp, organ, state)) - l1(spectra_for(sp, organ, "physiological"))

    def cos(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    pathological = [s for s in tables.STATES if s != "physiological"]
    for organ in ("kidney", "liver", "small_bowel"):
        same_state = [
            cos(change(a, organ, st), change(b, organ, st))
            for st in pathological
            for i, a in enumerate(tables.SPECIES)
            for b in tables.SPECIES[i + 1 :]
        ]
        across_states = [
            cos(change(sp, organ, s1), change(sp, organ, s2))
            for sp in tables.SPECIES
            for i, s1 in enumerate(pathological)
            for s2 in pathological[i + 1 :]
        ]
        assert min(same_state) > max(across_states), organ


def test_subject_draw_is_reproducible_and_seed_dependent():
    assert tables.subject_params("pig", "kidney", 7) == tables.subject_params("pig", "kidney", 7)
    assert tables.subject_params("pig", "kidney", 7) != tables.subject_params("pig", "kidney", 8)


def test_unknown_names_list_what_exists():
    from calibration.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="available: human, pig, rat"):
        tables.species_baseline("dog", "kidney")
    with pytest.raises(UnknownNameError, match="Did you mean 'kidney'"):
        tables.species_baseline("pig", "kidny")
    with pytest.raises(UnknownNameError, match="state"):
        tables.apply_state(TissueParams(0.1, 0.7, 0.7, 0.1, 20, 1.2), "ischemic", {})
