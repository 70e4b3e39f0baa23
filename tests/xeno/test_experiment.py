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


def test_reanalyse_names_a_folder_that_holds_no_finished_run(tmp_path):
    """A mistyped or unfinished work folder: an error naming the folder and what a finished run
    writes, not a bare FileNotFoundError; a truncated rows file likewise."""
    import gzip
    import re

    from xenoedge.xeno.experiment import reanalyse

    from xenoedge.errors import XenoedgeError

    with pytest.raises(XenoedgeError, match=r"nowhere: not a finished .*results.json"):
        reanalyse(tmp_path / "nowhere")
    (tmp_path / "results.json").write_text("{}")
    (tmp_path / "rows.json.gz").write_bytes(b"\x1f\x8b truncated")
    with pytest.raises(XenoedgeError, match=re.escape(str(tmp_path))):
        reanalyse(tmp_path)
    with gzip.open(tmp_path / "rows.json.gz", "wt") as f:
        f.write("[]")
    with pytest.raises(XenoedgeError, match="KeyError: 'preset'"):  # results.json without its preset
        reanalyse(tmp_path)


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


def test_an_experiment_too_large_for_the_disk_is_refused_before_anything_is_written(tmp_path):
    """The quick preset writes ~3 GB of data sets side by side; a run whose data sets do not fit
    the work folder's file system stops before the first is simulated, naming the folder and sizes."""
    import dataclasses
    import shutil

    from xenoedge.errors import XenoedgeError

    free_gb = shutil.disk_usage(tmp_path).free / 1e9
    huge = dataclasses.replace(get_preset("tiny"), subjects=10**9)  # far more than any disk
    work = tmp_path / "work"
    with pytest.raises(XenoedgeError, match=r"work: simulating the experiment's \d+ data sets needs about") as err:
        run(huge, work)
    free_said = float(str(err.value).split("only ")[1].split(" GB")[0])
    assert free_said == pytest.approx(free_gb, abs=1.0)  # the real free space, as the disk reports it
    assert not (work / "data").exists() or not any((work / "data").iterdir())


def test_write_dataset_refuses_a_data_set_larger_than_the_free_space(tmp_path):
    from xenoedge.xeno.simulate_dataset import IMAGE_EXTRA_BYTES, DatasetSpec, dataset_bytes, write_dataset

    from xenoedge.errors import XenoedgeError

    spec = DatasetSpec(species=("human",), subjects_per_species=10**9, images_per_subject=1, height=8, width=8)
    assert dataset_bytes(spec) > 10**13  # tens of TB
    with pytest.raises(XenoedgeError, match="simulating out needs about"):
        write_dataset(tmp_path / "out", spec)
    assert not (tmp_path / "out").exists()
    small = DatasetSpec(species=("human",), subjects_per_species=1, images_per_subject=1, height=8, width=8)
    write_dataset(tmp_path / "small", small)  # what fits is written
    written = sum(f.stat().st_size for f in (tmp_path / "small" / "cubes").iterdir())
    assert 0.5 * dataset_bytes(small) < written + IMAGE_EXTRA_BYTES <= 2 * dataset_bytes(small)
