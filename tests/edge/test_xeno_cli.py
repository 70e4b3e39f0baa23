"""``xenoedge xeno learn`` / ``show`` through typer's test runner, on a simulated folder."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner
from xenoedge.cli.xeno import app
from xenoedge.xeno.projections import ProjectionError, load_projections
from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    spec = DatasetSpec(
        species=("pig",),
        states=("physiological", "malperfused_venous"),
        subjects_per_species=2,
        images_per_subject=3,
        height=32,
        width=40,
        pathological_probability=0.6,
        seed=5,
    )
    write_dataset(root, spec)
    return root


def test_learn_writes_projections_and_picture(folder, tmp_path):
    out = tmp_path / "maps" / "pig_venous.npz"
    args = ["learn", "--data", str(folder), "--species", "pig", "--state", "malperfused_venous"]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--steps", "100", "--seed", "1"])
    assert result.exit_code == 0, result.output
    ps = load_projections(out)
    assert len(ps) > 0 and set(ps.states) == {"malperfused_venous"} and ps.source_species == "pig"
    assert ps.settings["steps"] == 100 and ps.settings["seed"] == 1
    assert np.all(ps.losses < ps.initial_losses)
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    shown = CliRunner().invoke(app, ["show", str(out)])
    assert shown.exit_code == 0 and "100 bands 500-1000 nm" in " ".join(shown.output.split())


def test_too_few_steps_warn(folder, tmp_path):
    args = ["learn", "--data", str(folder), "--species", "pig", "--state", "malperfused_venous", "--steps", "10"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "few.npz")])
    assert result.exit_code == 0 and "worse than the identity" in " ".join(result.output.split())


def test_learn_restricted_to_organs(folder, tmp_path):
    full = load_projections(_learn(folder, tmp_path / "all.npz"))
    organ = full.organs[0]
    out = _learn(folder, tmp_path / "one.npz", "--organs", organ)
    assert set(load_projections(out).organs) == {organ}


def test_learn_without_pairs_is_a_clear_error(folder, tmp_path):
    result = CliRunner().invoke(
        app,
        ["learn", "--data", str(folder), "--species", "pig", "--state", "icg", "--out", str(tmp_path / "x.npz")],
    )
    assert result.exit_code != 0 and isinstance(result.exception, ProjectionError)
    assert "icg" in str(result.exception)


def _learn(folder, out, *extra: str):
    args = ["learn", "--data", str(folder), "--species", "pig", "--state", "malperfused_venous", "--steps", "5"]
    result = CliRunner().invoke(app, [*args, "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return out
