"""ONNX export with folded calibration: contract, agreement with NumPy + PyTorch, variants, dynamic shapes, errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx_fixtures import HEIGHT, MODELS, WIDTH, agreement, camera, checkpoints, fp32_graphs, make_camera, run

from calibration.errors import UnknownNameError
from calibration.normalise import L1_EPS, l1_normalise
from calibration.reflectance import MAX_REFLECTANCE, reflectance_from_raw
from export.errors import ExportError
from export.onnx_export import (
    CLASSES_OUTPUT,
    CONFIDENCE_OUTPUT,
    METADATA_KEYS,
    PRE_NODES,
    export_onnx,
    graph_metadata,
    preprocess_reference,
)
from xeno.checkpoint import load_model

__all__ = ["camera", "checkpoints", "fp32_graphs"]  # fixtures


def torch_reference(model, spectra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(classes (1, H, W) uint8, confidence (1, H, W) float32) of the PyTorch model on (H, W, C) L1 spectra."""
    x = torch.from_numpy(np.ascontiguousarray(spectra.transpose(2, 0, 1)[None]))
    with torch.no_grad():
        probabilities = model(x).softmax(1)
    confidence, classes = probabilities.max(1)
    return classes.numpy().astype(np.uint8), confidence.numpy()


def test_raw_graph_contract(fp32_graphs):
    model = onnx.load(str(fp32_graphs["unet-small"]))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17

    def io(values):
        return {
            v.name: (v.type.tensor_type.elem_type, [d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values
        }

    c = 100
    assert io(model.graph.input) == {
        "raw": (onnx.TensorProto.UINT16, [1, HEIGHT, WIDTH, c]),
        "dark": (onnx.TensorProto.FLOAT, [HEIGHT, WIDTH, c]),
        "gain": (onnx.TensorProto.FLOAT, [HEIGHT, WIDTH, c]),
    }
    assert io(model.graph.output) == {
        CLASSES_OUTPUT: (onnx.TensorProto.UINT8, [1, HEIGHT, WIDTH]),
        CONFIDENCE_OUTPUT: (onnx.TensorProto.FLOAT, [1, HEIGHT, WIDTH]),
    }
    names = [n.name for n in model.graph.node]
    assert names[: len(PRE_NODES)] == list(PRE_NODES.values())  # survives onnxslim, in graph order
    ops = [n.op_type for n in model.graph.node[: len(PRE_NODES)]]
    assert ops == ["Cast", "Sub", "Mul", "Clip", "Abs", "ReduceSum", "Add", "Div", "Transpose"]

    meta = graph_metadata(fp32_graphs["unet-small"])
    assert set(METADATA_KEYS) <= set(meta)
    assert meta["variant"] == "raw" and meta["n_bands"] == c and meta["model_name"] == "unet-small"
    assert meta["l1_eps"] == L1_EPS and meta["max_reflectance"] == MAX_REFLECTANCE
    assert len(meta["wavelengths_nm"]) == c and meta["labels"][0]["name"] == "background"


def test_preprocess_reference_is_the_calibration_path(camera):
    frame = camera.frame(seed=11)
    ours = preprocess_reference(frame["raw"][0], frame["dark"], frame["gain"])
    calibrated = l1_normalise(reflectance_from_raw(frame["raw"][0], camera.dark, camera.white))
    assert ours.dtype == np.float32 and ours.shape == (HEIGHT, WIDTH, 100)
    np.testing.assert_allclose(ours, calibrated, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ours.sum(-1), 1.0, atol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_raw_graph_matches_numpy_and_pytorch(name, checkpoints, fp32_graphs, camera):
    model, _ = load_model(checkpoints[name])
    agreements, errors = [], []
    for seed in (21, 22):
        frame = camera.frame(seed)
        out = run(fp32_graphs[name], frame)
        classes, confidence = torch_reference(model, preprocess_reference(frame["raw"][0], camera.dark, camera.gain))
        assert out[CLASSES_OUTPUT].dtype == np.uint8 and out[CONFIDENCE_OUTPUT].dtype == np.float32
        agreements.append(agreement(out[CLASSES_OUTPUT], classes))
        errors.append(float(np.abs(out[CONFIDENCE_OUTPUT] - confidence).max()))
    print(f"{name}: raw graph vs numpy+pytorch agreement {agreements}, max |confidence error| {errors}")
    assert min(agreements) >= 0.999
    assert max(errors) < 1e-4
    assert len(np.unique(out[CLASSES_OUTPUT])) > 1  # a trained model, not a constant


def test_references_are_inputs_not_constants(checkpoints, fp32_graphs, camera):
    """A recalibrated device binds new dark/gain without re-export: the graph follows them."""
    model, _ = load_model(checkpoints["pixel-mlp"])
    frame = camera.frame(seed=31)
    recalibrated = dict(frame, dark=frame["dark"] + np.float32(3.0), gain=frame["gain"] * np.float32(0.8))
    out = run(fp32_graphs["pixel-mlp"], recalibrated)
    spectra = preprocess_reference(frame["raw"][0], recalibrated["dark"], recalibrated["gain"])
    _, confidence = torch_reference(model, spectra)
    np.testing.assert_allclose(out[CONFIDENCE_OUTPUT], confidence, atol=1e-4)
    assert not np.allclose(out[CONFIDENCE_OUTPUT], run(fp32_graphs["pixel-mlp"], frame)[CONFIDENCE_OUTPUT])


def test_reflectance_variant_agrees_with_raw(checkpoints, fp32_graphs, camera, tmp_path):
    model, _ = load_model(checkpoints["unet-small"])
    path = export_onnx(model, height=HEIGHT, width=WIDTH, n_bands=100, path=tmp_path / "r.onnx", variant="reflectance")
    graph = onnx.load(str(path))
    assert [i.name for i in graph.graph.input] == ["reflectance"]
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    frame = camera.frame(seed=41)
    reflectance = reflectance_from_raw(frame["raw"][0], camera.dark, camera.white)[None]
    from_reflectance = run(path, {"reflectance": reflectance})
    from_raw = run(fp32_graphs["unet-small"], frame)
    assert agreement(from_reflectance[CLASSES_OUTPUT], from_raw[CLASSES_OUTPUT]) >= 0.999
    np.testing.assert_allclose(from_reflectance[CONFIDENCE_OUTPUT], from_raw[CONFIDENCE_OUTPUT], atol=1e-4)
    assert graph_metadata(path)["variant"] == "reflectance"


def test_dynamic_height_and_width(checkpoints, tmp_path):
    model, _ = load_model(checkpoints["unet-small"])
    path = export_onnx(model, height=HEIGHT, width=WIDTH, n_bands=100, path=tmp_path / "d.onnx", dynamic=True)
    dims = [d.dim_param or d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, "height", "width", 100]
    for height, width in ((32, 40), (48, 64)):
        cam = make_camera(height, width)
        frame = cam.frame(seed=51)
        out = run(path, frame)
        classes, _ = torch_reference(model, preprocess_reference(frame["raw"][0], cam.dark, cam.gain))
        assert out[CLASSES_OUTPUT].shape == (1, height, width)
        assert agreement(out[CLASSES_OUTPUT], classes) >= 0.999


def test_without_confidence_and_without_simplification(checkpoints, camera, tmp_path):
    model, _ = load_model(checkpoints["pixel-mlp"])
    path = export_onnx(
        model, height=HEIGHT, width=WIDTH, n_bands=100, path=tmp_path / "c.onnx", confidence=False, simplify=False
    )
    graph = onnx.load(str(path))
    assert [o.name for o in graph.graph.output] == [CLASSES_OUTPUT]
    onnx.checker.check_model(graph, full_check=True)
    frame = camera.frame(seed=61)
    classes, _ = torch_reference(model, preprocess_reference(frame["raw"][0], camera.dark, camera.gain))
    assert agreement(run(path, frame)[CLASSES_OUTPUT], classes) >= 0.999


def test_errors(checkpoints, tmp_path):
    unet, _ = load_model(checkpoints["unet-small"])
    with pytest.raises(ExportError, match="multiple of 8"):
        export_onnx(unet, height=30, width=40, n_bands=100, path=tmp_path / "x.onnx")
    with pytest.raises(ExportError, match="takes 100 bands"):
        export_onnx(unet, height=32, width=40, n_bands=25, path=tmp_path / "x.onnx")
    with pytest.raises(UnknownNameError, match="raw, reflectance"):
        export_onnx(unet, height=32, width=40, n_bands=100, path=tmp_path / "x.onnx", variant="counts")
    with pytest.raises(ExportError, match="wavelengths_nm has 3 entries"):
        export_onnx(
            unet, height=32, width=40, n_bands=100, path=tmp_path / "x.onnx", metadata={"wavelengths_nm": [1, 2, 3]}
        )
    assert not (tmp_path / "x.onnx").exists()
