"""The shipped default models load from the package and segment simulated frames of their sensor."""

import numpy as np
import pytest
from xenoedge.calibration.normalise import l1_normalise
from xenoedge.xeno.checkpoint import load_model
from xenoedge.xeno.default_models import RECIPES, default_model_dir
from xenoedge.xeno.evaluate import dice, predict
from xenoedge.xeno.scene import SceneConfig, simulate_scene

from xenoedge.sensors import get_sensor


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_default_model_loads_and_segments_its_domain(name):
    recipe = RECIPES[name]
    model, config = load_model(default_model_dir(name))
    sensor = get_sensor(recipe.sensor)
    np.testing.assert_allclose(config["wavelengths_nm"], sensor.wavelengths(), atol=1e-3)
    species = recipe.train_species[0]
    scene = simulate_scene(
        # at the size the model was trained for: the edge-first models pool the frame (4x for the Tivita)
        SceneConfig(domain=recipe.domain, species=species, subject=99, height=recipe.height, width=recipe.width),
        12345,
        sensor.wavelengths(),
        sensor.fwhm(),
    )
    pred = predict(model, l1_normalise(scene.reflectance))
    present = [int(v) for v in np.unique(scene.labels) if v > 0]
    mean = np.mean([dice(pred, scene.labels, label) for label in present])
    print(f"{name}: mean DSC {mean:.2f} on a fresh simulated scene")
    assert mean > 0.5, f"{name}: mean DSC {mean:.2f} on a fresh simulated scene"
    assert (default_model_dir(name) / "evaluation.json").is_file()
