"""The xeno experiment end to end on the tiny preset (one shared run), and its report."""

import pytest
from xenoedge.xeno.experiment import get_preset, run, write_report

from xenoedge.errors import UnknownNameError


def test_tiny_experiment_runs_every_part_and_writes_a_report(tiny_results, tmp_path):
    results, work = tiny_results
    assert set(results["part1_transfer"]) == {"human", "pig", "rat"}
    assert set(results["part2_human"]) == {"human", "human+pig", "human+pig+rat"}  # tiny skips human+rat
    assert set(results["part2_human"]["human+pig"]) == {"physiological", "malperfused_arterial", "malperfused_venous"}
    assert set(results["part2_icg"]) == {"pig", "rat"}
    assert set(results["part3_crops"]["target"]) == {"maize", "maize+wheat"}
    assert results["preset"]["name"] == "tiny" and results["protocol"] == "paper"
    report = write_report(results, tmp_path / "docs" / "xeno.md", "xenoedge experiment xeno --preset tiny")
    text = report.read_text()
    assert "xenoedge experiment xeno --preset tiny" in text and "| human+pig+rat |" in text
    assert " n=" in text  # every cell prints its n
    assert (tmp_path / "docs" / "xeno.png").stat().st_size > 10_000
    # Test subjects never train: per fold, the training pool holds no subject of the fold's test side.
    from xenoedge.xeno.checkpoint import read_config
    from xenoedge.xeno.dataset import SpectralDataset, fold_split

    data = SpectralDataset.open(work / "data" / "surgical_physiological")
    preset = get_preset("tiny")
    for fold in range(preset.folds):
        config = read_config(work / "runs" / f"human+pig-fold{fold}-seed0")
        trained = set(config["train"]["image_ids"])
        split = fold_split(data.records, preset.folds, fold, seed=0)
        assert trained and all(i.startswith("human_") for i in trained)
        assert not trained & {r.image_id for r in split.test}
        assert config["train"]["augment_labels"] == ["kidney"] and config["train"]["organ_transplantation"] == 0.8
        assert config["train"]["label_balanced"] is True


def test_unknown_preset_and_protocol(tmp_path):
    with pytest.raises(UnknownNameError, match="quick"):
        get_preset("huge")
    with pytest.raises(UnknownNameError, match="paper"):
        run(get_preset("tiny"), tmp_path, protocol="other")


def test_two_worker_processes_give_the_results_of_one(tiny_results, tmp_path, monkeypatch):
    """Simulation, projections and trainings spread over spawned workers: every score, step count
    and stopping decision as in the one-process run, and the workers' CPU time is counted."""
    import gzip
    import json

    one, one_work = tiny_results
    monkeypatch.setenv("XENO_WORKERS", "2")
    logged: list[str] = []
    two = run(get_preset("tiny"), tmp_path / "work", log=logged.append)
    assert two["workers"] == 2 and one["workers"] == 1
    assert two["summary"]["workers"] == 2  # the summary says how the time was spent, as reanalyse keeps it

    def rows(work):
        with gzip.open(work / "rows.json.gz", "rt") as f:
            return json.load(f)

    assert rows(tmp_path / "work") == rows(one_work)
    timing = {"seconds", "cpu_seconds"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in two["runs"]] == [
        {k: v for k, v in r.items() if k not in timing} for r in one["runs"]
    ]
    assert two["cpu_seconds"] >= sum(r["cpu_seconds"] for r in two["runs"])  # the children's CPU is in
    assert any(line.startswith(f"done {len(two['runs'])}/{len(two['runs'])}:") for line in logged)
