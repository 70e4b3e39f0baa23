"""ONNX export with folded calibration: contract, agreement with NumPy + PyTorch, variants, dynamic shapes, errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx_fixtures import HEIGHT, MODELS, POOL, WIDTH, agreement, camera, checkpoints, fp32_graphs, make_camera, run
from xenoedge.calibration.normalise import L1_EPS, l1_normalise
from xenoedge.calibration.reflectance import MAX_REFLECTANCE, reflectance_from_raw
from xenoedge.export.errors import ExportError
from xenoedge.export.onnx_export import (
    CLASSES_OUTPUT,
    CONFIDENCE_OUTPUT,
    METADATA_KEYS,
    POST_NODES,
    PRE_NODES,
    export_onnx,
    graph_metadata,
    preprocess_reference,
)
from xenoedge.xeno.checkpoint import load_model

from xenoedge.errors import UnknownNameError

__all__ = ["camera", "checkpoints", "fp32_graphs"]  # fixtures


def torch_reference(model, spectra: np.ndarray, frame_hw=None) -> tuple[np.ndarray, np.ndarray]:
    """(classes (1, H, W) uint8, confidence (1, H, W) float32) of the PyTorch model on (H, W, C) L1 spectra.

    For a model that pools (``unet-edge``) ``spectra`` are at its working size and ``frame_hw``
    is the frame's (H, W): the core's logits are upsampled and cropped as the graph does."""
    x = torch.from_numpy(np.ascontiguousarray(spectra.transpose(2, 0, 1)[None]))
    with torch.no_grad():
        if getattr(model, "input_pool", 1) > 1:
            logits = torch.nn.functional.interpolate(
                model.forward_working(x), scale_factor=float(model.input_pool), mode="bilinear", align_corners=False
            )
            probabilities = logits[..., : frame_hw[0], : frame_hw[1]].softmax(1)
        else:
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
    expected = [n for n in PRE_NODES.values() if "pool" not in n]  # this model does not pool
    assert names[: len(expected)] == expected  # survives onnxslim, in graph order
    ops = [n.op_type for n in model.graph.node[: len(expected)]]
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
    pool = POOL.get(name, 1)
    for seed in (21, 22):
        frame = camera.frame(seed, pool)
        out = run(fp32_graphs[name], frame)
        spectra = preprocess_reference(frame["raw"][0], frame["dark"], frame["gain"], pool=pool)
        classes, confidence = torch_reference(model, spectra, (HEIGHT, WIDTH))
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


def test_pooled_graph_contract(fp32_graphs):
    """unet-edge: the raw frame is pooled before calibration, references bound at the working size,
    logits upsampled to the frame before the arg-max."""
    model = onnx.load(str(fp32_graphs["unet-edge"]))
    onnx.checker.check_model(model, full_check=True)
    pool = POOL["unet-edge"]
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.input}
    assert shapes == {
        "raw": [1, HEIGHT, WIDTH, 100],
        "dark": [HEIGHT // pool, WIDTH // pool, 100],
        "gain": [HEIGHT // pool, WIDTH // pool, 100],
    }
    nodes = {n.name: n for n in model.graph.node}
    order = [n.name for n in model.graph.node]
    # pooling (two ReduceSum over reshaped views) comes before the dark subtraction
    assert (
        order.index(PRE_NODES["pool_rows"]) < order.index(PRE_NODES["pool_cols"]) < order.index(PRE_NODES["sub_dark"])
    )
    upsample = nodes[POST_NODES["upsample"]]
    assert upsample.op_type == "Resize" and order.index(upsample.name) < order.index(POST_NODES["argmax"])
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in upsample.attribute}
    assert attributes["mode"] == b"linear" and attributes["coordinate_transformation_mode"] == b"half_pixel"
    assert graph_metadata(fp32_graphs["unet-edge"])["pool"] == pool


@pytest.mark.parametrize("height, width", [(30, 38), (33, 41)])
def test_pooled_graph_pads_and_crops_frames_that_do_not_divide(height, width, checkpoints, tmp_path):
    model, _ = load_model(checkpoints["unet-edge"])
    path = export_onnx(model, height=height, width=width, n_bands=100, path=tmp_path / "odd.onnx")
    cam = make_camera(height, width)
    pool = POOL["unet-edge"]
    frame = cam.frame(seed=71, pool=pool)
    assert frame["dark"].shape == (-(-height // pool), -(-width // pool), 100)
    out = run(path, frame)
    classes, confidence = torch_reference(
        model, preprocess_reference(frame["raw"][0], frame["dark"], frame["gain"], pool=pool), (height, width)
    )
    assert out[CLASSES_OUTPUT].shape == (1, height, width)
    assert agreement(out[CLASSES_OUTPUT], classes) >= 0.999
    np.testing.assert_allclose(out[CONFIDENCE_OUTPUT], confidence, atol=1e-4)


def test_pooled_graph_refuses_dynamic_shapes(checkpoints, tmp_path):
    model, _ = load_model(checkpoints["unet-edge"])
    with pytest.raises(ExportError, match="fixed frame size"):
        export_onnx(model, height=HEIGHT, width=WIDTH, n_bands=100, path=tmp_path / "d.onnx", dynamic=True)
    assert not (tmp_path / "d.onnx").exists()


def test_calibrating_after_pooling_matches_pooling_the_calibrated_frame(camera):
    """With references constant over each pooled block the two orders agree to float rounding (before
    clipping): the graph's order is exact for flat-field references, docs/models.md measures the rest."""
    from xenoedge.calibration.pooling import pool_blocks, pooled_references

    frame = camera.frame(seed=81)
    pool = 2
    flat_dark = np.broadcast_to(camera.dark.mean(axis=(0, 1)), camera.dark.shape)
    flat_gain = np.broadcast_to(camera.gain.mean(axis=(0, 1)), camera.gain.shape)
    dark, gain = pooled_references(flat_dark, flat_gain, pool)
    after = (pool_blocks(frame["raw"][0], pool) - dark) * gain
    before = pool_blocks((frame["raw"][0].astype(np.float32) - flat_dark) * flat_gain, pool)
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("height, width", [(32, 40), (33, 41)])
def test_channels_last_post_keeps_classes_and_confidence(height, width, checkpoints, tmp_path):
    """ONNX Runtime CPU targets get the post-processing channels-last (upsample and arg-max over a
    contiguous class axis, crop included): the same classes, the same confidence to float rounding."""
    from xenoedge.export.channels_last_post import channels_last_post
    from xenoedge.export.export import channels_last_post_file

    model, _ = load_model(checkpoints["unet-edge"])
    path = export_onnx(model, height=height, width=width, n_bands=100, path=tmp_path / "nchw.onnx")
    rewritten = tmp_path / "nhwc.onnx"
    rewritten.write_bytes(path.read_bytes())
    assert channels_last_post_file(rewritten)
    graph = onnx.load(str(rewritten)).graph
    nodes = {n.name: n for n in graph.node}
    assert nodes[POST_NODES["to_nhwc"]].op_type == "Transpose"
    assert nodes[POST_NODES["upsample"]].input[0] == nodes[POST_NODES["to_nhwc"]].output[0]
    assert [a.i for a in nodes[POST_NODES["argmax"]].attribute if a.name == "axis"] == [3]
    frame = make_camera(height, width).frame(seed=5, pool=POOL["unet-edge"])
    before, after = run(path, frame), run(rewritten, frame)
    np.testing.assert_array_equal(after[CLASSES_OUTPUT], before[CLASSES_OUTPUT])
    np.testing.assert_allclose(after[CONFIDENCE_OUTPUT], before[CONFIDENCE_OUTPUT], atol=1e-6)
    again = onnx.load(str(rewritten))
    assert not channels_last_post(again)  # already channels-last: left alone
    unpooled = export_onnx(
        load_model(checkpoints["pixel-mlp"])[0], height=height, width=width, n_bands=100, path=tmp_path / "mlp.onnx"
    )
    assert not channels_last_post_file(unpooled)  # no upsampling: nothing to rewrite
