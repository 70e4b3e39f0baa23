"""Species-specific deviations in how a state acts (issue 18).

``state_deviation`` 0: the relative spectral change of a state is identical in every species
(the xeno-learning premise holds exactly); raised, species depart from each other, and a
change learnt in one species predicts another species' pathological spectra less well.
"""

import numpy as np
import pytest
from xenoedge.xeno import species as tables
from xenoedge.xeno.optics import tissue_reflectance
from xenoedge.xeno.scene import SceneConfig, simulate_scene

from xenoedge.sensors import get_sensor

PATHOLOGICAL = [s for s in tables.STATES if s != "physiological"]
ORGANS = ("kidney", "liver", "small_bowel", "spleen", "colon", "peritoneum")


def relative_change(species: str, organ: str, state: str, deviation: float, subject: int = 0) -> np.ndarray:
    """R_pathological / R_physiological on the 1 nm grid for one subject's tissue."""
    params = tables.subject_params(species, organ, 1000 + subject)
    phys = tissue_reflectance([params])[0]
    change = tables.state_change(params, organ, state, tables.typical_strength(state), species, deviation)
    return tables.apply_change(phys, change) / phys


def spread_across_species(organ: str, state: str, deviation: float) -> float:
    """Largest distance between two species' relative changes (mean |log ratio| over wavelengths)."""
    changes = [np.log(relative_change(sp, organ, state, deviation)) for sp in tables.SPECIES]
    return max(np.abs(a - b).mean() for i, a in enumerate(changes) for b in changes[i + 1 :])


@pytest.mark.parametrize("state", PATHOLOGICAL)
@pytest.mark.parametrize("organ", ORGANS)
def test_at_zero_deviation_the_relative_change_is_identical_across_species_and_subjects(organ, state):
    reference = relative_change("human", organ, state, 0.0)
    assert np.abs(reference - 1).max() > 0.02  # the state does change the spectrum
    for species in tables.SPECIES:
        for subject in range(3):
            np.testing.assert_allclose(relative_change(species, organ, state, 0.0, subject), reference, rtol=1e-12)


@pytest.mark.parametrize("state", PATHOLOGICAL)
@pytest.mark.parametrize("organ", ORGANS)
def test_raised_deviation_makes_species_differ_and_more_so_the_higher(organ, state):
    at = {d: spread_across_species(organ, state, d) for d in (0.0, 0.5, 1.0, 2.0)}
    assert at[0.0] < 1e-12
    assert 0.0 < at[0.5] < at[1.0] < at[2.0], at
    # The documented default is a real departure, not rounding (weakest: liver ICG, 0.0048 at the
    # calibrated ICG strengths, against ~1e-17 at d = 0).
    assert at[1.0] > 0.003, at


def test_pig_change_predicts_human_pathology_worse_as_deviation_rises():
    # What a projection learnt on pig does, in its simplest form: multiply human physiological
    # spectra by pig's relative change and compare with the human pathological spectra.
    def error(deviation: float) -> float:
        total = 0.0
        for organ in ORGANS:
            for state in PATHOLOGICAL:
                human = tables.subject_params("human", organ, 7)
                phys = tissue_reflectance([human])[0]
                truth = tables.apply_change(
                    phys, tables.state_change(human, organ, state, tables.typical_strength(state), "human", deviation)
                )
                predicted = phys * relative_change("pig", organ, state, deviation)
                total += np.abs(predicted / predicted.sum() - truth / truth.sum()).sum()
        return total

    errors = [error(d) for d in (0.0, 1.0, 2.0)]
    assert errors[0] < 1e-12 and errors[0] < errors[1] < errors[2], errors


def test_documented_default_is_nonzero_and_override_and_config_agree():
    assert all(tables.state_deviation(sp) == tables.STATE_DEVIATION[sp] > 0 for sp in tables.SPECIES)
    tivita = get_sensor("tivita")
    bands = (tivita.wavelengths()[::10], tivita.fwhm()[::10])
    config = SceneConfig(species="pig", height=32, width=40, pathological_probability=1.0, specular=False)
    default = simulate_scene(config, 5, *bands)
    zero = simulate_scene(SceneConfig(**{**vars(config), "state_deviation": 0.0}), 5, *bands)
    with tables.state_deviation_override(0.0):
        assert tables.state_deviation("pig") == 0.0
        overridden = simulate_scene(config, 5, *bands)
    assert tables.state_deviation("pig") == tables.STATE_DEVIATION["pig"]
    np.testing.assert_array_equal(zero.reflectance, overridden.reflectance)
    assert not np.array_equal(zero.reflectance, default.reflectance)  # pathological tissue changed
    np.testing.assert_array_equal(zero.labels, default.labels)
    assert {r["params"]["state_deviation"] for r in zero.meta["regions"] if r["kind"] == "tissue"} == {0.0}
    with pytest.raises(ValueError, match="state deviation"):
        tables.state_change(tables.species_baseline("pig", "kidney"), "kidney", "icg", {"icg_cm": 2.0}, "pig", -1.0)


def test_the_experiment_simulates_at_a_chosen_deviation_and_keeps_work_folders_apart(tmp_path):
    """``xenoedge experiment xeno --state-deviation D``: every data set of the work folder is
    simulated at D (recorded in its index and in each region), and a work folder simulated at
    another deviation is refused rather than mixed."""
    import json

    from xenoedge.xeno.experiment import get_preset, simulate_folders

    from xenoedge.errors import XenoedgeError

    preset = get_preset("tiny")
    folders = simulate_folders(tmp_path, preset, "paper", lambda _m: None, state_deviation=0.0)
    index = json.loads((folders["surgical_malperfused_venous"] / "index.json").read_text())
    assert index["spec"]["state_deviation"] == 0.0
    meta = json.loads((folders["surgical_malperfused_venous"] / index["images"][0]["meta"]).read_text())
    assert {r["params"]["state_deviation"] for r in meta["regions"] if r["kind"] == "tissue"} == {0.0}
    with pytest.raises(XenoedgeError, match=r"surgical_physiological: simulated at state deviation 0.0"):
        simulate_folders(tmp_path, preset, "paper", lambda _m: None)


def test_a_work_folder_simulated_at_other_state_strengths_is_refused(tmp_path, monkeypatch):
    """The state strengths are recorded in every data set's index; a later run whose
    ``STATE_RANGES`` differ (a recalibration) refuses the old surgical data instead of mixing it
    with the new, and says which folder."""
    import json

    from xenoedge.xeno.experiment import get_preset, simulate_folders

    from xenoedge.errors import XenoedgeError

    preset = get_preset("tiny")
    monkeypatch.setitem(
        tables.STATE_RANGES, "malperfused_arterial", {"sto2_factor": (0.5, 0.6), "blood_factor": (0.8, 0.9)}
    )
    folders = simulate_folders(tmp_path, preset, "paper", lambda _m: None)
    index = json.loads((folders["surgical_malperfused_arterial"] / "index.json").read_text())
    assert index["state_ranges"]["malperfused_arterial"]["sto2_factor"] == [0.5, 0.6]
    simulate_folders(tmp_path, preset, "paper", lambda _m: None)  # the same strengths: reused
    monkeypatch.undo()
    with pytest.raises(XenoedgeError, match=r"surgical_physiological: simulated with other state strengths"):
        simulate_folders(tmp_path, preset, "paper", lambda _m: None)


def test_a_deviation_for_some_species_only(tmp_path):
    """``--state-deviation pig=0``: pig's states at 0, human's at its default; bad values and
    unknown species are refused with the name of what is wrong."""
    import json

    from xenoedge.xeno.experiment_data import parse_state_deviation
    from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset

    from xenoedge.errors import UnknownNameError, XenoedgeError

    assert parse_state_deviation("2") == 2.0
    assert parse_state_deviation("pig=0, rat=2") == {"pig": 0.0, "rat": 2.0}
    with pytest.raises(UnknownNameError, match="cow"):
        parse_state_deviation("cow=1")
    with pytest.raises(XenoedgeError, match="of pig: '-1'"):
        parse_state_deviation("pig=-1")
    with pytest.raises(XenoedgeError, match="'x' is not a number"):
        parse_state_deviation("x")

    spec = DatasetSpec(
        species=("human", "pig"),
        states=("malperfused_venous",),
        subjects_per_species=1,
        images_per_subject=1,
        height=24,
        width=32,
        pathological_probability=1.0,
        state_deviation={"pig": 0.0},
    )
    index = write_dataset(tmp_path / "data", spec)
    deviations = {}
    for entry in index["images"]:
        meta = json.loads((tmp_path / "data" / entry["meta"]).read_text())
        deviations[entry["species"]] = {
            r["params"]["state_deviation"] for r in meta["regions"] if r["kind"] == "tissue"
        }
    assert deviations == {"human": {tables.state_deviation("human")}, "pig": {0.0}}
