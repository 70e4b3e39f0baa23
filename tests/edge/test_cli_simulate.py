"""`xenoedge simulate` end to end: real files on disk, read back with the project's readers."""

import json
import subprocess
import sys

import numpy as np
from xenoedge.devices.formats import read_cube, read_label_png
from xenoedge.xeno.labels import SURGICAL


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xenoedge.cli.main", *args], capture_output=True, text=True, timeout=300
    )


def test_simulate_writes_a_complete_reproducible_data_set(tmp_path):
    args = [
        "simulate",
        "--species",
        "human,pig",
        "--subjects",
        "2",
        "--images",
        "1",
        "--size",
        "48x64",
        "--seed",
        "9",
    ]
    result = run_cli(*args, "--out", str(tmp_path / "a"))
    assert result.returncode == 0, result.stderr
    run_cli(*args, "--out", str(tmp_path / "b"))
    index = json.loads((tmp_path / "a" / "index.json").read_text())
    assert len(index["images"]) == 4
    assert {(e["species"], e["subject"]) for e in index["images"]} == {
        ("human", 0),
        ("human", 1),
        ("pig", 0),
        ("pig", 1),
    }
    assert [lb["name"] for lb in index["label_set"]] == SURGICAL.names
    for entry in index["images"]:
        cube, wl = read_cube(tmp_path / "a" / entry["cube"])
        assert cube.shape == (48, 64, 100) and cube.dtype == np.float32
        assert np.all(np.isfinite(cube)) and cube.min() >= 0
        np.testing.assert_allclose(wl, index["wavelengths_nm"], rtol=1e-6)
        labels = read_label_png(tmp_path / "a" / entry["labels"], n_labels=len(SURGICAL.labels))
        meta = json.loads((tmp_path / "a" / entry["meta"]).read_text())
        assert set(np.unique(labels)) == {SURGICAL.id_of(r["label"]) for r in meta["regions"] if r["pixels"]}
        assert (tmp_path / "a" / "preview" / f"{entry['image_id']}.png").stat().st_size > 1000
        again, _ = read_cube(tmp_path / "b" / entry["cube"])
        np.testing.assert_array_equal(cube, again)
    assert (tmp_path / "a" / "median_spectra.png").stat().st_size > 10_000


def test_simulate_refuses_unknown_species_with_one_clear_line(tmp_path):
    result = run_cli("simulate", "--out", str(tmp_path), "--species", "human,dog")
    assert result.returncode == 2
    assert "unknown surgical species 'dog'; available: human, pig, rat" in result.stderr
    assert "Traceback" not in result.stderr


def test_simulate_refuses_a_bad_size(tmp_path):
    result = run_cli("simulate", "--out", str(tmp_path), "--size", "big")
    assert result.returncode != 0 and "120x160" in result.stderr
