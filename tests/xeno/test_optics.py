"""Physical plausibility of the tissue model, asserted on real spectra."""

import numpy as np
import pytest
from xenoedge.xeno import species as tables
from xenoedge.xeno.optics import GRID_NM, TissueParams, chromophores, tissue_reflectance

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

    def peak_560(r):  # how far 560 nm stands above the oxyhaemoglobin dips at 542 and 577 nm
        return at(r, 560) - 0.5 * (at(r, 542) + at(r, 577))

    # The states are calibrated mild (StO2 x ~0.9, docs/simulator.md "Calibration"): the
    # deoxyhaemoglobin band deepens and the oxyhaemoglobin double dip flattens, by a little.
    assert dip_depth(sick) > 0
    assert dip_depth(sick) > dip_depth(healthy) + 0.001
    assert peak_560(sick) < peak_560(healthy) - 0.0005


def test_icg_darkens_near_805_nm():
    healthy, icg = spectra_for("pig", "liver", "physiological"), spectra_for("pig", "liver", "icg")
    # Issue 18 calibrated ICG down to tissue-level absorption (typical 0.35 cm^-1 instead of
    # 3.25): the band costs ~15 % at 805 nm now (it was < 0.7x), and still only there.
    assert at(icg, 805) < 0.9 * at(healthy, 805)
    ratio = {nm: at(icg, nm) / at(healthy, nm) for nm in (700, 740, 805)}
    assert ratio[805] < ratio[740] < ratio[700]  # the main band, then the aggregate shoulder
    assert at(icg, 600) == pytest.approx(at(healthy, 600), rel=0.02)
    assert at(icg, 950) == pytest.approx(at(healthy, 950), rel=0.02)


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
    # Issue 18 changed this test: states now act through xenoedge.xeno.species.state_change with each
    # species' own response at the default state_deviation (1.0), so species depart from the
    # shared change on purpose (tests/xeno/test_state_deviation.py covers deviation 0 and
    # raised). Arterial and venous malperfusion are both mainly desaturation, and with species
    # responding differently their changes can be as alike as one state across species (e.g.
    # small bowel, whose wall is thin in rat), so the old "every state, min across species >
    # max across states" no longer holds for that pair. What must still hold: ICG's change
    # is unlike either malperfusion, in every organ, and each state's change stays alike
    # across species (cosine > 0.8).
    def change(sp, organ, state):
        params = tables.species_baseline(sp, organ)
        phys = tissue_reflectance([params])[0]
        sick = tables.apply_change(phys, tables.state_change(params, organ, state, tables.typical_strength(state), sp))
        return l1(sick) - l1(phys)

    def cos(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    pathological = [s for s in tables.STATES if s != "physiological"]
    pairs = [(a, b) for i, a in enumerate(tables.SPECIES) for b in tables.SPECIES[i + 1 :]]
    for organ in tables.ORGANS:
        for state in pathological:
            same_state = min(cos(change(a, organ, state), change(b, organ, state)) for a, b in pairs)
            assert same_state > 0.8, (organ, state, same_state)
        icg_across_species = min(cos(change(a, organ, "icg"), change(b, organ, "icg")) for a, b in pairs)
        icg_vs_malperfusion = max(
            cos(change(sp, organ, "icg"), change(sp, organ, s)) for sp in tables.SPECIES for s in pathological[:2]
        )
        assert icg_across_species > icg_vs_malperfusion + 0.5, organ


def test_subject_draw_is_reproducible_and_seed_dependent():
    assert tables.subject_params("pig", "kidney", 7) == tables.subject_params("pig", "kidney", 7)
    assert tables.subject_params("pig", "kidney", 7) != tables.subject_params("pig", "kidney", 8)


def test_unknown_names_list_what_exists():
    from xenoedge.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="available: human, pig, rat"):
        tables.species_baseline("dog", "kidney")
    with pytest.raises(UnknownNameError, match="Did you mean 'kidney'"):
        tables.species_baseline("pig", "kidny")
    with pytest.raises(UnknownNameError, match="state"):
        tables.apply_state(TissueParams(0.1, 0.7, 0.7, 0.1, 20, 1.2), "ischemic", {})
