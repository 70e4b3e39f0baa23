"""Leaf and soil optics: real PROSPECT-D runs, physical plausibility asserted on the spectra."""

from __future__ import annotations

import importlib.util
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from xenoedge.xeno.labels import CROP
from xenoedge.xeno.leaves import (
    CROP_STATES,
    CROPS,
    STATE_EFFECTS,
    STATE_TO_LABEL,
    LeafParameterError,
    LeafTraits,
    apply_state,
    leaf_reflectance,
    plant_traits,
    soil_reflectance,
)

from xenoedge.errors import InvalidCubeError, UnknownNameError, XenoedgeError

needs_prosail = pytest.mark.skipif(importlib.util.find_spec("prosail") is None, reason="needs prosail (extra sim)")

WL = np.arange(450.0, 1001.0, 1.0)  # nm


def at(refl: np.ndarray, nm: float) -> float:
    """Reflectance at the WL sample nearest ``nm``."""
    return float(refl[np.argmin(np.abs(WL - nm))])


def spectrum(crop: str, state: str = "healthy", strength: float = 1.0) -> np.ndarray:
    return leaf_reflectance(apply_state(CROPS[crop], state, strength), WL)


def l1(refl: np.ndarray) -> np.ndarray:
    return refl / np.abs(refl).sum()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- tables -----------------------------------------------------------------------------


def test_tables_are_consistent() -> None:
    assert {"wheat", "maize", "tomato"} <= set(CROPS)
    assert CROP_STATES == ("healthy", "drought", "nitrogen_deficiency", "lesion")
    assert set(STATE_EFFECTS) == set(CROP_STATES) == set(STATE_TO_LABEL)
    assert set(STATE_TO_LABEL.values()) <= set(CROP.names)
    assert len(set(CROPS.values())) == len(CROPS), "crop baselines must be distinct"


def test_leaf_traits_reject_unphysical_values() -> None:
    good = CROPS["wheat"]
    with pytest.raises(LeafParameterError, match="cab"):
        LeafTraits(**{**good.__dict__, "cab": -1.0})
    with pytest.raises(LeafParameterError, match="n="):
        LeafTraits(**{**good.__dict__, "n": 0.5})
    with pytest.raises(XenoedgeError, match="finite"):
        LeafTraits(**{**good.__dict__, "cw": float("nan")})


# --- spectra: physical plausibility -----------------------------------------------------


@needs_prosail
@pytest.mark.parametrize("crop", sorted(CROPS))
@pytest.mark.parametrize("state", CROP_STATES)
def test_reflectance_in_open_unit_interval(crop: str, state: str) -> None:
    refl = spectrum(crop, state)
    assert refl.shape == WL.shape and refl.dtype == np.float32
    assert np.all(refl > 0.0) and np.all(refl < 1.0)


@needs_prosail
@pytest.mark.parametrize("crop", sorted(CROPS))
def test_healthy_leaf_has_green_peak_red_trough_red_edge_and_nir_plateau(crop: str) -> None:
    refl = spectrum(crop)
    green = (WL >= 500) & (WL <= 600)
    red = (WL >= 640) & (WL <= 700)
    green_peak_nm = WL[green][np.argmax(refl[green])]
    red_trough_nm = WL[red][np.argmin(refl[red])]
    assert 535 <= green_peak_nm <= 570
    assert 660 <= red_trough_nm <= 685
    assert at(refl, 550) > 2.0 * at(refl, 670)  # green peak well above the chlorophyll trough
    assert at(refl, 780) > 5.0 * at(refl, 680)  # red edge
    plateau = refl[(WL >= 780) & (WL <= 900)]
    assert plateau.min() > 0.35 and plateau.max() - plateau.min() < 0.03  # high, flat NIR plateau


@needs_prosail
@pytest.mark.parametrize("crop", sorted(CROPS))
def test_nitrogen_deficiency_raises_green_and_red_edge_reflectance(crop: str) -> None:
    healthy, deficient = spectrum(crop), spectrum(crop, "nitrogen_deficiency")
    for nm in (550, 700):
        assert at(deficient, nm) > 1.3 * at(healthy, nm), nm
    # chlorophyll only: the NIR plateau (no pigment absorption) barely moves
    assert abs(at(deficient, 850) - at(healthy, 850)) < 0.005


@needs_prosail
@pytest.mark.parametrize("crop", sorted(CROPS))
def test_drought_weakens_the_970_nm_water_band(crop: str) -> None:
    def band_ratio(refl: np.ndarray) -> float:
        return at(refl, 970) / at(refl, 900)

    healthy = band_ratio(spectrum(crop))
    half = band_ratio(spectrum(crop, "drought", 0.5))
    full = band_ratio(spectrum(crop, "drought"))
    assert healthy < 0.985  # a healthy leaf shows the water dip
    assert healthy < half < full  # less water, less absorption, monotonic in strength
    assert full - healthy > 0.01


@needs_prosail
@pytest.mark.parametrize("crop", sorted(CROPS))
def test_lesion_flattens_the_red_edge(crop: str) -> None:
    healthy, lesion = spectrum(crop), spectrum(crop, "lesion")
    edge = (WL >= 680) & (WL <= 760)
    slope_healthy = np.diff(healthy[edge]).max()  # steepest rise, per nm
    slope_lesion = np.diff(lesion[edge]).max()
    assert slope_lesion < 0.6 * slope_healthy
    contrast_healthy = at(healthy, 780) / at(healthy, 680)
    contrast_lesion = at(lesion, 780) / at(lesion, 680)
    assert contrast_lesion < 2.5 and contrast_healthy > 4.0 * contrast_lesion
    assert at(lesion, 670) > 3.0 * at(healthy, 670)  # chlorophyll trough nearly gone
    assert at(lesion, 620) > at(lesion, 550)  # brown: no green peak, red above green


@needs_prosail
def test_state_change_is_more_alike_across_crops_than_across_states() -> None:
    """The xeno premise: a state's relative (L1-normalised) change transfers between crops."""
    stressed = CROP_STATES[1:]
    change = {(crop, state): l1(spectrum(crop, state)) - l1(spectrum(crop)) for crop in CROPS for state in stressed}
    same_state = [cosine(change[a, s], change[b, s]) for s in stressed for a, b in itertools.combinations(CROPS, 2)]
    other_state = [cosine(change[c, s], change[c, t]) for c in CROPS for s, t in itertools.combinations(stressed, 2)]
    assert min(same_state) > 0.9
    assert min(same_state) > max(other_state) + 0.05
    # ... but not identical: crops differ in their absolute spectra and in the change
    assert max(same_state) < 0.9999
    assert not np.allclose(spectrum("wheat"), spectrum("tomato"), atol=0.01)


# --- states and plants ------------------------------------------------------------------


def test_apply_state_strength_scales_between_healthy_and_full_effect() -> None:
    base = CROPS["maize"]
    assert apply_state(base, "healthy") == base
    assert apply_state(base, "drought", 0.0) == base
    full, half = apply_state(base, "drought", 1.0), apply_state(base, "drought", 0.5)
    assert full.cw == pytest.approx(base.cw * STATE_EFFECTS["drought"]["cw"].factor)
    assert half.cw == pytest.approx((base.cw + full.cw) / 2)
    assert apply_state(base, "nitrogen_deficiency").cab < 0.5 * base.cab
    lesion = apply_state(base, "lesion")
    assert lesion.cbrown > 1.0 and lesion.cab < 0.1 * base.cab and lesion.cw < 0.5 * base.cw


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan")])
def test_apply_state_rejects_strength_outside_unit_interval(strength: float) -> None:
    with pytest.raises(LeafParameterError, match="strength"):
        apply_state(CROPS["wheat"], "drought", strength)


def test_plant_traits_deterministic_and_small() -> None:
    a = plant_traits("tomato", np.random.default_rng(7))
    b = plant_traits("tomato", np.random.default_rng(7))
    c = plant_traits("tomato", np.random.default_rng(8))
    assert a == b
    assert a != c
    base = CROPS["tomato"]
    rng = np.random.default_rng(0)
    cab = np.array([plant_traits("tomato", rng).cab for _ in range(400)])
    rel = cab / base.cab
    assert 0.02 < rel.std() < 0.10  # a few per cent between plants
    assert abs(np.median(rel) - 1.0) < 0.02  # centred on the crop baseline


def test_unknown_crop_and_state_name_what_exists() -> None:
    with pytest.raises(UnknownNameError, match="wheat") as err:
        plant_traits("wheet", np.random.default_rng(0))
    assert "Did you mean 'wheat'" in str(err.value)
    assert isinstance(err.value, KeyError)
    with pytest.raises(UnknownNameError, match="nitrogen_deficiency"):
        apply_state(CROPS["wheat"], "frost")


# --- leaf_reflectance mechanics ---------------------------------------------------------


@needs_prosail
def test_leaf_reflectance_interpolates_linearly_and_returns_fresh_arrays() -> None:
    traits = CROPS["wheat"]
    grid = leaf_reflectance(traits, np.array([700.0, 701.0]))
    mid = leaf_reflectance(traits, np.array([700.25]))
    assert mid[0] == pytest.approx(0.75 * grid[0] + 0.25 * grid[1], rel=1e-6)
    first = leaf_reflectance(traits, WL)
    first[:] = -1.0  # must not poison the cache
    assert np.all(leaf_reflectance(traits, WL) > 0.0)


@needs_prosail
@pytest.mark.parametrize(
    "wavelengths",
    [np.array([350.0, 500.0]), np.array([500.0, 2600.0]), np.zeros((2, 2)) + 500, np.array([np.nan])],
)
def test_leaf_reflectance_rejects_bad_wavelengths(wavelengths: np.ndarray) -> None:
    with pytest.raises(InvalidCubeError):
        leaf_reflectance(CROPS["wheat"], wavelengths)


def test_importing_leaves_does_not_import_prosail() -> None:
    code = "import sys, xenoedge.xeno.leaves; sys.exit('prosail' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0


# --- soil --------------------------------------------------------------------------------


@needs_prosail
def test_soil_moisture_mixes_dry_and_wet_spectra() -> None:
    import prosail

    dry, wet = soil_reflectance(WL, 0.0), soil_reflectance(WL, 1.0)
    idx = (WL - 400).astype(int)
    np.testing.assert_allclose(dry, prosail.spectral_lib.soil.rsoil1[idx], rtol=1e-6)
    np.testing.assert_allclose(wet, prosail.spectral_lib.soil.rsoil2[idx], rtol=1e-6)
    assert np.all(wet < dry)  # wet soil is darker
    np.testing.assert_allclose(soil_reflectance(WL, 0.5), (dry + wet) / 2, rtol=1e-6)
    np.testing.assert_allclose(soil_reflectance(WL, 0.3, brightness=0.8), 0.8 * soil_reflectance(WL, 0.3), rtol=1e-6)
    for moisture in (0.0, 0.5, 1.0):
        refl = soil_reflectance(WL, moisture)
        assert refl.dtype == np.float32 and np.all((refl > 0) & (refl < 1))
        # bare soil has no red edge: a leaf's 780/680 contrast is absent
        assert at(refl, 780) / at(refl, 680) < 1.5


@needs_prosail
@pytest.mark.parametrize(("moisture", "brightness"), [(-0.1, 1.0), (1.1, 1.0), (0.5, 0.0), (0.0, 2.5)])
def test_soil_rejects_bad_parameters(moisture: float, brightness: float) -> None:
    with pytest.raises(LeafParameterError):
        soil_reflectance(WL, moisture, brightness)
