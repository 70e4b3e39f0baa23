"""Default bundles: the packaged ones match the recipe the code would produce; precision choice;
what ships is what the daemon opens; the manifest's accuracy is reproduced by the daemon's engine."""

from __future__ import annotations

import doctest
import json
import shutil

import numpy as np
import pytest
import xenoedge.export.default_bundles as default_bundles
from xenoedge.bench.targets import measure_targets
from xenoedge.edge.engines import open_engine
from xenoedge.export.accuracy import compare_to_reference
from xenoedge.export.bundle import extract_bundle, read_manifest, verify_bundle
from xenoedge.export.default_bundles import BUNDLE_RECIPES, OUT_DIR, choose_targets, finalize, recipe_record
from xenoedge.export.export import export_checkpoint, frames_from_data, reference_predictions, sensor_for
from xenoedge.xeno.default_models import default_model_dir
from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset


def absent_classes(folder, model_dir) -> tuple[str, ...]:
    from xenoedge.xeno.dataset import SpectralDataset

    names = [label["name"] for label in json.loads((model_dir / "config.json").read_text())["labels"]]
    dataset = SpectralDataset.open(folder)
    present = set().union(*(np.unique(dataset.load(i).labels).tolist() for i in range(len(dataset.records))))
    return tuple(name for i, name in enumerate(names) if i and i not in present)


def packaged_mismatch(bundle, name, model_dir=None) -> str | None:
    """Why a packaged bundle does not match the recipe the code would produce (None: it does)."""
    provenance = verify_bundle(bundle)["provenance"]
    recorded = provenance.get("recipe")
    if not isinstance(recorded, dict) or "fingerprint" not in recorded:
        return f"{bundle}: no provenance.recipe (built before recipes were recorded); run `make default-bundles`"
    expected = recipe_record(name, model_dir)
    if recorded["fingerprint"] == expected["fingerprint"]:
        return None
    what = [k for k in ("settings", "model_sha256") if recorded.get(k) != expected[k]]
    return f"{bundle}: built from another {' and '.join(what) or 'recipe'} than the code's; run `make default-bundles`"


@pytest.mark.parametrize("name", sorted(BUNDLE_RECIPES))
def test_packaged_default_bundles_match_the_recipe_the_code_would_produce(name):
    problem = packaged_mismatch(OUT_DIR / f"{name}.xeb", name)
    assert problem is None, problem


def test_choose_targets_rule():
    assert doctest.testmod(default_bundles).failed == 0
    measured = {
        "cpu-onnxruntime-fp32": {"runtime": "onnxruntime", "precision": "fp32", "median_ms": 100.0},
        "cpu-onnxruntime-int8": {"runtime": "onnxruntime", "precision": "int8", "median_ms": 97.0},  # 3%: no
        "cpu-openvino-fp32": {"runtime": "openvino", "precision": "fp32", "median_ms": 80.0},
        "cpu-openvino-fp16": {"runtime": "openvino", "precision": "fp16", "median_ms": 81.0},
        "cpu-openvino-int8": {"runtime": "openvino", "precision": "int8", "median_ms": 60.0},
    }
    ranks, reasons = choose_targets(measured)
    assert ranks == {"cpu-openvino-int8": 0, "cpu-onnxruntime-fp32": 1}
    assert reasons["onnxruntime"].startswith("fp32 (fp32 100.0 ms, int8 97.0 ms")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A real small multi-precision crop bundle with its recipe record, plus its validation folder."""
    root = tmp_path_factory.mktemp("default-bundles")
    spec = dict(domain="crop", species=("maize", "tomato"), sensor="mosaic-5x5-nir", height=48, width=64)
    write_dataset(root / "calib", DatasetSpec(**spec, subjects_per_species=1, images_per_subject=1, seed=5))
    write_dataset(root / "val", DatasetSpec(**spec, subjects_per_species=2, images_per_subject=2, seed=6))
    model_dir = root / "model"
    shutil.copytree(default_model_dir("crop"), model_dir)
    export_checkpoint(
        model_dir,
        target="cpu",
        precision=("fp32", "int8"),
        out=root / "candidate.xeb",
        calib=root / "calib",
        val=root / "val",
        shape=(48, 64),
        keep_float=("first",),
        max_drop=0.05,
        name="crop",
        provenance={"recipe": recipe_record("crop", model_dir)},
        unsupported_ok=absent_classes(root / "val", model_dir),
        drop_failing=True,
        log=lambda _m: None,
    )
    return root, model_dir


def test_a_changed_model_or_recipe_is_detected_as_a_mismatched_packaged_bundle(small, monkeypatch):
    root, model_dir = small
    bundle = root / "candidate.xeb"
    assert packaged_mismatch(bundle, "crop", model_dir) is None
    monkeypatch.setattr(default_bundles, "RECIPE_VERSION", default_bundles.RECIPE_VERSION + 1)
    assert "built from another settings than the code's" in packaged_mismatch(bundle, "crop", model_dir)
    monkeypatch.undo()
    retrained = root / "retrained"
    shutil.copytree(model_dir, retrained)
    with open(retrained / "model.pt", "ab") as f:
        f.write(b"\0")  # new weights, same recipe
    assert "built from another model_sha256 than the code's" in packaged_mismatch(bundle, "crop", retrained)


def test_measured_precision_ships_and_is_what_the_daemon_opens(small, tmp_path):
    root, _ = small
    measured = measure_targets(root / "candidate.xeb", rounds=2, runs=2, warmup=1, threads=1)
    assert set(measured) == set(read_manifest(extract_bundle(root / "candidate.xeb", tmp_path / "c"))["targets"])
    assert all(m["median_ms"] > 0 and m["effective_precision"] for m in measured.values())
    decision = finalize(root / "candidate.xeb", tmp_path / "crop.xeb", measured, "test")
    manifest = verify_bundle(tmp_path / "crop.xeb")
    assert set(manifest["targets"]) == set(decision["shipped"])
    assert len({t["runtime"] for t in manifest["targets"].values()}) == len(manifest["targets"])  # one per runtime
    assert manifest["provenance"]["precision_decision"]["measured"] == measured
    assert manifest["provenance"]["recipe"]["fingerprint"]
    folder = extract_bundle(tmp_path / "crop.xeb", tmp_path / "x")
    engine = open_engine(folder, read_manifest(folder))
    assert engine.target == decision["shipped"][0]  # rank 0 opens first, whatever DEFAULT_PRECISION_ORDER says


def test_manifest_accuracy_is_reproduced_by_the_daemons_engine_with_its_defaults(small, tmp_path):
    """Gate fidelity: per target and class, within 0.5 DSC points of what the manifest records."""
    from xenoedge.xeno.checkpoint import load_model

    root, model_dir = small
    folder = extract_bundle(root / "candidate.xeb", tmp_path / "b")
    manifest = read_manifest(folder)
    model, config = load_model(model_dir)
    frames = frames_from_data(
        root / "val", sensor_for(config), 48, 64, variant="raw", limit=100, exclude=set(), pool=model_pool(model)
    )
    assert frames.ids == manifest["provenance"]["export"]["validation_images"]
    reference = reference_predictions(model, frames)
    names = [label["name"] for label in manifest["labels"]]
    for target, recorded in manifest["accuracy"].items():
        engine = open_engine(folder, manifest, prefer=[target])  # the daemon's defaults
        assert engine.target == target
        predicted = []
        for inputs in frames.inputs:
            engine.bind_references(inputs["dark"][:1, :1], inputs["gain"][:1, :1])  # per band, any pool
            predicted.append(engine.infer(inputs["raw"]).classes.copy())
        record = compare_to_reference(reference, predicted, frames.truth, names).to_manifest()
        for mine, theirs in zip(record["classes"], recorded["classes"], strict=True):
            assert theirs["images"] > 0 or theirs["id"] == 0 or theirs["name"] in recorded["unsupported_ok"]
            if theirs["dsc_artifact"] is not None:
                assert abs(mine["dsc_artifact"] - theirs["dsc_artifact"]) <= 0.005, (target, mine["name"])
        assert engine.effective_precision == recorded["effective_precision"]


def model_pool(model) -> int:
    from xenoedge.export.onnx_export import model_pool as pool

    return pool(model)


def test_recipes_validate_on_other_frames_than_they_calibrate_on():
    for recipe in BUNDLE_RECIPES.values():
        assert recipe.calibration.seed != recipe.validation.seed
        assert recipe.max_drop == 0.01 and "int8" in recipe.precisions and recipe.int8_weight_bits == 7
    record = recipe_record("crop")
    assert record["settings"]["bundle"]["precisions"] == ["fp32", "fp16", "int8"]
    assert np.all([len(h) == 64 for h in record["model_sha256"].values()])
