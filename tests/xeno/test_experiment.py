"""The xeno experiment end to end on the tiny preset (seconds), and its report."""

import json

import pytest

from calibration.errors import UnknownNameError
from xeno.experiment import get_preset, run, write_report


def test_tiny_experiment_runs_every_part_and_writes_a_report(tmp_path):
    results = run(get_preset("tiny"), tmp_path / "work", log=lambda _m: None)
    assert set(results["part1_transfer"]) == {"human", "pig", "rat"}
    assert set(results["part2_human_pathology"]) == {"baseline", "+pig", "+rat", "+pig+rat"}
    assert set(results["part2_human_pathology"]["+pig"]) >= {"physiological", "malperfused_venous", "icg"}
    assert set(results["part3_crops"]) == {"baseline", "+wheat"}
    saved = json.loads((tmp_path / "work" / "results.json").read_text())
    assert saved["preset"]["name"] == "tiny"
    report = write_report(results, tmp_path / "docs" / "xeno.md", "xenoedge experiment xeno --preset tiny")
    text = report.read_text()
    assert "xenoedge experiment xeno --preset tiny" in text and "| +pig+rat |" in text
    assert (tmp_path / "docs" / "xeno.png").stat().st_size > 10_000
    # Test subjects never train: the training pools of part 2 hold no held-out human subject.
    from xeno.checkpoint import read_config

    config = read_config(tmp_path / "work" / "runs" / "p2-baseline-seed0")
    trained = set(config["train"]["image_ids"])
    assert trained and all(i.startswith("human_") for i in trained)


def test_unknown_preset():
    with pytest.raises(UnknownNameError, match="quick"):
        get_preset("huge")
