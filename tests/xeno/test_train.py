"""Training, checkpoints and evaluation with real simulated data on disk."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from xenoedge.xeno.checkpoint import CheckpointError, load_model
from xenoedge.xeno.evaluate import Evaluation, dice, predict
from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset
from xenoedge.xeno.train import TrainConfig, train, training_history


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train") / "data"
    spec = DatasetSpec(
        species=("human", "pig"),
        states=("physiological",),
        subjects_per_species=3,
        images_per_subject=2,
        height=32,
        width=40,
        seed=3,
    )
    write_dataset(root, spec)
    return root


def config(data, **changes):
    base = {
        "data": str(data),
        "model": "pixel-mlp",
        "steps": 8,
        "batch_size": 2,
        "crop": 16,
        "checkpoint_every": 4,
        "threads": 1,
        "val_fraction": 0.34,
    }
    return TrainConfig(**{**base, **changes})


def weights(folder):
    model, _ = load_model(folder)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_writes_a_checkpoint_that_loads_without_pickle(data, tmp_path):
    out = train(config(data), tmp_path / "ckpt")
    for name in ("config.json", "model.pt", "optimizer.pt", "state.json", "rng.pt"):
        assert (out / name).is_file()
    history = training_history(out)
    assert len(history) == 8 and all(np.isfinite(history))
    model, cfg = load_model(out)
    assert not model.training
    assert cfg["model"]["name"] == "pixel-mlp" and len(cfg["wavelengths_nm"]) == 100
    train_ids, val_ids = set(cfg["split"]["train"]), set(cfg["split"]["val"])
    assert train_ids and val_ids and not train_ids & val_ids
    subjects = lambda ids: {i.rsplit("_", 1)[0] for i in ids}  # noqa: E731  image id = species_subject_n
    assert not subjects(train_ids) & subjects(val_ids)
    assert {i.split("_")[0] for i in train_ids} == {"human"}  # default species


def test_resumed_training_reproduces_an_uninterrupted_run(data, tmp_path):
    straight = train(config(data), tmp_path / "straight")

    class Interrupted(Exception):
        pass

    def stop_after_six(step, _total, _loss):
        if step == 6:
            raise Interrupted  # killed mid-run: the last checkpoint is the one from step 4

    with pytest.raises(Interrupted):
        train(config(data), tmp_path / "resumed", progress=stop_after_six)
    assert json.loads((tmp_path / "resumed" / "state.json").read_text())["step"] == 4
    train(config(data), tmp_path / "resumed")
    a, b = weights(straight), weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert training_history(straight) == training_history(tmp_path / "resumed")


def test_same_seed_same_weights_other_seed_other_weights(data, tmp_path):
    a = weights(train(config(data, steps=3), tmp_path / "a"))
    b = weights(train(config(data, steps=3), tmp_path / "b"))
    c = weights(train(config(data, steps=3, seed=1), tmp_path / "c"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_refusals(data, tmp_path):
    from xenoedge.errors import XenoedgeError

    out = train(config(data, steps=2), tmp_path / "ckpt")
    with pytest.raises(XenoedgeError, match="another training config"):
        train(config(data, steps=2, lr=0.5), out)
    with pytest.raises(XenoedgeError, match="no images for species"):
        train(config(data, species=("rat",)), tmp_path / "rat")
    (out / "model.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=r"model\.pt: corrupt"):
        load_model(out)
    (out / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match="corrupt JSON"):
        load_model(out)
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_model(tmp_path / "nowhere")


def test_dice_and_evaluation_tables():
    truth = np.array([[0, 1, 1], [0, 2, 2]], np.uint8)
    pred = np.array([[0, 1, 2], [0, 2, 2]], np.uint8)
    assert dice(pred, truth, 1) == pytest.approx(2 * 1 / 3)
    assert dice(pred, truth, 2) == pytest.approx(2 * 2 / 5)
    states = np.array([[255, 0, 0], [255, 1, 1]], np.uint8)
    ev = Evaluation(["background", "kidney", "liver"], ["physiological", "icg"])
    ev.add_image("a", "human", pred, truth, states)
    assert ev.table("state")["icg"]["mean"] == pytest.approx(0.8)
    assert ev.mean_dsc() == pytest.approx((2 / 3 + 0.8) / 2)
    assert ev.mean_dsc(state="physiological") == pytest.approx(2 / 3)
    assert ev.confusion.sum() == truth.size and ev.confusion[1, 2] == 1


def test_predict_pads_to_the_model_multiple():
    from xenoedge.xeno.models import build_model

    model = build_model("unet-small", 100, 12).eval()
    cube = np.random.default_rng(0).uniform(0, 0.02, (30, 21, 100)).astype(np.float32)
    assert predict(model, cube).shape == (30, 21)


def test_evaluation_predicts_in_batches_as_it_would_image_by_image(data):
    """``evaluate_model`` groups consecutive images of one shape into a forward pass: the same
    masks as one image at a time; cubes of several shapes in one call are refused."""
    from xenoedge.xeno.dataset import SpectralDataset
    from xenoedge.xeno.evaluate import evaluate_model, predict_batch
    from xenoedge.xeno.models import build_model

    torch.manual_seed(0)
    model = build_model("unet-edge", 100, 12, pool=2).eval()
    dataset = SpectralDataset.open(data)
    cubes = [dataset.load(i).cube for i in range(len(dataset))]
    batched = predict_batch(model, cubes)
    for cube, mask in zip(cubes, batched, strict=True):
        assert mask.shape == cube.shape[:2] and mask.dtype == np.uint8
        assert np.mean(mask == predict(model, cube)) >= 0.999
    evaluation = evaluate_model(model, dataset, list(range(len(dataset))))
    assert {r["image_id"] for r in evaluation.rows} == {r.image_id for r in dataset.records}
    with pytest.raises(ValueError, match="one shape"):
        predict_batch(model, [cubes[0], cubes[0][:-2]])


def test_cli_train_then_evaluate(data, tmp_path):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "xenoedge.cli.main", *args], capture_output=True, text=True, timeout=300
        )

    result = run(
        "train",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "ckpt"),
        "--model",
        "pixel-mlp",
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--crop",
        "16",
        "--species",
        "human",
    )
    assert result.returncode == 0, result.stderr
    result = run("evaluate", str(tmp_path / "ckpt"), "--data", str(data), "--out", str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert 0.0 <= report["mean_dsc"] <= 1.0
    assert set(report["per_species"]) == {"pig"}  # human images trained the model: left out
    assert (tmp_path / "eval" / "confusion.png").stat().st_size > 1000
    assert list((tmp_path / "eval" / "pictures").glob("*_truth_vs_pred.png"))
