"""FP16 conversion: I/O types kept, Resize and calibration in float32, agreement with FP32, errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx_fixtures import MODELS, agreement, camera, checkpoints, fp32_graphs, run
from xenoedge.export.errors import ExportError
from xenoedge.export.fp16 import convert_fp16
from xenoedge.export.onnx_export import CLASSES_OUTPUT, CONFIDENCE_OUTPUT, POST_NODES, PRE_NODES, graph_metadata

__all__ = ["camera", "checkpoints", "fp32_graphs"]  # fixtures


@pytest.fixture(scope="module")
def fp16_graphs(fp32_graphs, tmp_path_factory):
    root = tmp_path_factory.mktemp("fp16")
    return {name: convert_fp16(fp32_graphs[name], root / f"{name}.onnx") for name in MODELS}


def io_types(model) -> dict[str, int]:
    return {v.name: v.type.tensor_type.elem_type for v in (*model.graph.input, *model.graph.output)}


def test_io_types_kept_and_calibration_in_float32(fp32_graphs, fp16_graphs):
    for name in MODELS:
        fp32, fp16 = onnx.load(str(fp32_graphs[name])), onnx.load(str(fp16_graphs[name]))
        onnx.checker.check_model(fp16, full_check=True)
        assert io_types(fp16) == io_types(fp32)
        assert io_types(fp16)["raw"] == onnx.TensorProto.UINT16
        assert io_types(fp16)[CONFIDENCE_OUTPUT] == onnx.TensorProto.FLOAT
        before = {n.name: n for n in fp32.graph.node}
        after = {n.name: n for n in fp16.graph.node}
        for node_name in [n for n in (*PRE_NODES.values(), *POST_NODES.values()) if n in before]:
            assert after[node_name] == before[node_name], node_name  # untouched, same inputs
        weights = [t for t in fp16.graph.initializer if t.name.endswith("weight") or "Conv" in t.name]
        assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights if t.dims)
        assert graph_metadata(fp16_graphs[name])["precision"] == "fp16"


def test_resize_stays_float32(fp16_graphs):
    model = onnx.shape_inference.infer_shapes(onnx.load(str(fp16_graphs["unet-small"])))
    values = {t.name: t for t in model.graph.initializer}
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    resizes = [n for n in model.graph.node if n.op_type == "Resize"]
    assert len(resizes) == 3
    for node in resizes:
        scales = values[node.input[2]]
        assert scales.data_type == onnx.TensorProto.FLOAT
        np.testing.assert_array_equal(numpy_helper.to_array(scales), [1, 1, 2, 2])
        assert types[node.input[0]] == onnx.TensorProto.FLOAT and types[node.output[0]] == onnx.TensorProto.FLOAT


@pytest.mark.parametrize("name", MODELS)
def test_fp16_agrees_with_fp32(name, fp32_graphs, fp16_graphs, camera):
    scores, errors = [], []
    for seed in (401, 402):
        frame = camera.frame_for(name, seed)
        fp32, fp16 = run(fp32_graphs[name], frame), run(fp16_graphs[name], frame)
        scores.append(agreement(fp16[CLASSES_OUTPUT], fp32[CLASSES_OUTPUT]))
        errors.append(float(np.abs(fp16[CONFIDENCE_OUTPUT] - fp32[CONFIDENCE_OUTPUT]).max()))
    print(f"{name}: FP16 vs FP32 pixel agreement {scores}, max |confidence error| {errors}")
    assert min(scores) >= 0.99
    assert max(errors) < 0.02


def test_errors(fp32_graphs, fp16_graphs, tmp_path):
    with pytest.raises(ExportError, match="not in the graph"):
        convert_fp16(fp32_graphs["pixel-mlp"], tmp_path / "x.onnx", keep_float=("/no/such/Conv",))
    with pytest.raises(ExportError, match="already converted to float16"):
        convert_fp16(fp16_graphs["pixel-mlp"], tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_keep_float_node(fp32_graphs, tmp_path):
    path = convert_fp16(fp32_graphs["pixel-mlp"], tmp_path / "k.onnx", keep_float=("/head/Conv",))
    model = onnx.load(str(path))
    head = next(n for n in model.graph.node if n.name == "/head/Conv")
    values = {t.name: t for t in model.graph.initializer}
    assert values[head.input[1]].data_type == onnx.TensorProto.FLOAT
