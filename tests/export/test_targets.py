"""Target profiles: the TARGETS table, constraint checks on ONNX graphs, artifacts, the Jetson build, the doc."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from xenoedge.export.errors import ExportError
from xenoedge.export.targets import (
    PRECISIONS,
    TARGETS,
    TENSORRT_OPS,
    artifacts_for,
    check_model_for_target,
    get_target,
    targets_markdown,
    trt_engine_cache_path,
    trt_timing_cache_path,
    trtexec_command,
)

from xenoedge.errors import UnknownNameError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

DOC = Path(__file__).parents[2] / "docs" / "targets.md"


def _save(tmp_path: Path, name: str, nodes, inputs, outputs, initializers=()) -> Path:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(initializers))
    path = tmp_path / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def conv_graph(tmp_path: Path, *, dims=(1, 4, 8, 8), extra_op: str | None = None, in_type=TensorProto.FLOAT) -> Path:
    """x (dims) -> [Cast] -> Conv 1x1 (4 -> 3) -> [extra_op] -> ArgMax -> Cast uint8 ``classes``."""
    weight = numpy_helper.from_array(np.ones((3, 4, 1, 1), np.float32), "w")
    nodes, source = [], "x"
    if in_type != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["x"], ["xf"], name="cast", to=TensorProto.FLOAT))
        source = "xf"
    nodes.append(helper.make_node("Conv", [source, "w"], ["y"], name="conv"))
    last = "y"
    if extra_op:
        nodes.append(helper.make_node(extra_op, ["y"], ["z"], name="extra"))
        last = "z"
    nodes += [
        helper.make_node("ArgMax", [last], ["am"], name="argmax", axis=1, keepdims=0),
        helper.make_node("Cast", ["am"], ["classes"], name="to_u8", to=TensorProto.UINT8),
    ]
    return _save(
        tmp_path,
        f"conv_{extra_op or 'plain'}_{'x'.join(map(str, dims))}_{in_type}",
        nodes,
        [helper.make_tensor_value_info("x", in_type, list(dims))],
        [helper.make_tensor_value_info("classes", TensorProto.UINT8, None)],
        [weight],
    )


def qdq_graph(tmp_path: Path, *, zero_point: int = 0, zp_type=TensorProto.INT8, name: str = "qdq") -> Path:
    """x -> QuantizeLinear -> DequantizeLinear -> Conv, with the given activation zero point."""
    inits = [
        numpy_helper.from_array(np.ones((3, 4, 1, 1), np.float32), "w"),
        numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
        helper.make_tensor("zp", zp_type, [], [zero_point]),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "scale", "zp"], ["xd"], name="dq"),
        helper.make_node("Conv", ["xd", "w"], ["y"], name="conv"),
    ]
    return _save(
        tmp_path,
        name,
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
        inits,
    )


# --- table -----------------------------------------------------------------------------------


def test_table_rows_are_consistent():
    assert set(TARGETS) == {"cpu", "jetson-orin", "intel-npu"}
    for name, row in TARGETS.items():
        assert row.name == name
        assert set(row.precisions) <= set(PRECISIONS)
        assert row.default_precision in row.precisions
        covered = {p for rule in row.artifacts for p in rule.precisions}
        assert covered == set(row.precisions), name  # every allowed precision produces an artifact
    assert get_target("intel-npu").precisions == ("fp16", "int8")
    assert get_target("jetson-orin").requires_static_shapes and get_target("jetson-orin").symmetric_int8


def test_unknown_target_lists_targets():
    with pytest.raises(UnknownNameError, match=r"unknown target 'jetson'.*cpu, jetson-orin, intel-npu") as info:
        get_target("jetson")
    assert "Did you mean 'jetson-orin'?" in str(info.value)


# --- checks ----------------------------------------------------------------------------------


def test_static_plain_graph_passes_everywhere(tmp_path):
    path = conv_graph(tmp_path)
    for target in ("cpu", "jetson-orin", "intel-npu"):
        check_model_for_target(path, target, "fp16")


@pytest.mark.parametrize("target", ["intel-npu", "jetson-orin"])
def test_dynamic_shapes_refused_with_reason(tmp_path, target):
    path = conv_graph(tmp_path, dims=(1, 4, "height", "width"))
    with pytest.raises(
        ExportError, match=rf"(?s)cannot target {target}.*needs static input shapes; dynamic: x \(1, 4, "
    ):
        check_model_for_target(path, target, "fp16")
    check_model_for_target(path, "cpu", "fp16")  # the CPU runtimes take dynamic shapes


def test_op_outside_tensorrt_list_is_named(tmp_path):
    assert "Det" not in TENSORRT_OPS
    path = conv_graph(tmp_path, dims=(1, 4, 3, 3), extra_op="Det")
    with pytest.raises(ExportError, match="ops not supported on jetson-orin: Det"):
        check_model_for_target(path, "jetson-orin", "fp32")
    check_model_for_target(path, "cpu", "fp32")


def test_precision_not_allowed(tmp_path):
    path = conv_graph(tmp_path)
    with pytest.raises(ExportError, match=r"precision 'fp32' is not allowed on intel-npu \(allowed: fp16, int8\)"):
        check_model_for_target(path, "intel-npu", "fp32")
    with pytest.raises(ExportError, match="precisions are fp32, fp16, int8"):
        check_model_for_target(path, "cpu", "int4")


def test_uint16_input_refused_on_tensorrt(tmp_path):
    path = conv_graph(tmp_path, in_type=TensorProto.UINT16)
    with pytest.raises(ExportError, match="tensor types not supported on jetson-orin: input 'x' is UINT16"):
        check_model_for_target(path, "jetson-orin", "fp16")
    check_model_for_target(path, "intel-npu", "fp16")


def test_tensorrt_int8_needs_symmetric_qdq(tmp_path):
    check_model_for_target(qdq_graph(tmp_path), "jetson-orin", "int8")
    with pytest.raises(ExportError, match=r"symmetric signed INT8 QDQ; asymmetric: q \(zero point \[3\] != 0\)"):
        check_model_for_target(qdq_graph(tmp_path, zero_point=3, name="asym"), "jetson-orin", "int8")
    with pytest.raises(ExportError, match="zero point type UINT8, not INT8"):
        check_model_for_target(qdq_graph(tmp_path, zp_type=TensorProto.UINT8, name="u8"), "jetson-orin", "int8")
    with pytest.raises(ExportError, match="needs a QDQ graph"):
        check_model_for_target(conv_graph(tmp_path), "jetson-orin", "int8")
    check_model_for_target(qdq_graph(tmp_path, zero_point=3, name="asym2"), "cpu", "int8")  # ORT runs asymmetric


def test_every_violation_is_listed(tmp_path):
    path = conv_graph(tmp_path, dims=(1, 4, "h", "w"), extra_op="Det", in_type=TensorProto.UINT16)
    with pytest.raises(ExportError) as info:
        check_model_for_target(path, "jetson-orin", "int8")
    message = str(info.value)
    for part in ("dynamic: x", "ops not supported on jetson-orin: Det", "UINT16", "needs a QDQ graph"):
        assert part in message


def test_bad_files(tmp_path):
    with pytest.raises(ExportError, match="no such ONNX file"):
        check_model_for_target(tmp_path / "missing.onnx", "cpu", "fp32")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\xffnot onnx")
    with pytest.raises(ExportError, match="not a readable ONNX model"):
        check_model_for_target(garbage, "cpu", "fp32")


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_real_export_graph_fits_the_tensorrt_op_list(tmp_path):
    """The reflectance-variant export of the default model uses only ops in the Jetson list."""
    pytest.importorskip("torch")
    from xenoedge.export.onnx_export import export_onnx
    from xenoedge.xeno.models import build_model

    model = build_model("pixel-mlp", 10, 3).eval()
    static = export_onnx(model, height=4, width=6, n_bands=10, path=tmp_path / "r.onnx", variant="reflectance")
    check_model_for_target(static, "jetson-orin", "fp16")
    check_model_for_target(static, "intel-npu", "fp16")
    dynamic = export_onnx(
        model, height=4, width=6, n_bands=10, path=tmp_path / "d.onnx", variant="reflectance", dynamic=True
    )
    with pytest.raises(ExportError, match="needs static input shapes; dynamic: reflectance"):
        check_model_for_target(dynamic, "intel-npu", "int8")
    raw = export_onnx(model, height=4, width=6, n_bands=10, path=tmp_path / "raw.onnx")
    with pytest.raises(ExportError, match="input 'raw' is UINT16"):
        check_model_for_target(raw, "jetson-orin", "fp16")


# --- artifacts, Jetson build -----------------------------------------------------------------


def test_artifacts_for():
    cpu = {(a.kind, a.runtime): a.files for a in artifacts_for("cpu", "int8")}
    assert cpu == {
        ("onnx", "onnxruntime"): ("model.int8.onnx",),
        ("openvino", "openvino"): ("model.int8.xml", "model.int8.bin"),
    }
    assert [a.kind for a in artifacts_for("cpu", "fp16")] == ["openvino"]
    (jetson,) = artifacts_for("jetson-orin", "fp16")
    assert (jetson.files, jetson.graph_precision, jetson.runtime) == (("model.fp16.onnx",), "fp16", "tensorrt")
    assert jetson.build_command.endswith("--stronglyTyped") and "--fp16" not in jetson.build_command
    (npu,) = artifacts_for("intel-npu", "int8")
    assert npu.files == ("model.int8.xml", "model.int8.bin") and npu.build_command is None
    with pytest.raises(ExportError, match="not allowed on intel-npu"):
        artifacts_for("intel-npu", "fp32")
    with pytest.raises(UnknownNameError):
        artifacts_for("tpu", "int8")


def test_trtexec_command_and_cache_key():
    assert (
        trtexec_command("model.fp32.onnx", "e.engine", "fp32", timing_cache="t.cache")
        == "trtexec --onnx=model.fp32.onnx --saveEngine=e.engine --timingCacheFile=t.cache --stronglyTyped"
    )
    for precision in ("fp32", "fp16", "int8"):  # strongly typed: the graph's types decide, no precision flags
        command = trtexec_command("m.onnx", "e", precision).split()
        assert "--stronglyTyped" in command and not {"--int8", "--fp16", "--best"} & set(command)
    assert trt_timing_cache_path("10.3.0", "Orin (nvgpu)") == "cache/10.3.0-Orin__nvgpu_/timing.cache"
    digest = "0123456789abcdef" * 4
    a = trt_engine_cache_path("10.3.0", "Orin", digest, "int8")
    assert a == "cache/10.3.0-Orin/0123456789abcdef.int8.engine"
    assert a != trt_engine_cache_path("10.4.0", "Orin", digest, "int8")  # TensorRT upgrade: rebuild
    assert a != trt_engine_cache_path("10.3.0", "Orin", digest, "fp16")
    assert "/../" not in trt_engine_cache_path("../../x", "a/b", digest, "fp16")
    with pytest.raises(ExportError, match="64 hex digits"):
        trt_engine_cache_path("10", "Orin", "abc", "fp16")
    with pytest.raises(ExportError, match="builds no engine"):
        trtexec_command("m.onnx", "e", "fp32", target="cpu")


# --- docs ------------------------------------------------------------------------------------


def test_doc_holds_the_generated_table():
    text = DOC.read_text()
    assert targets_markdown() in text, (
        "docs/targets.md is stale: paste xenoedge.export.targets.targets_markdown() into it"
    )
    assert trtexec_command("model.int8.onnx", "<cache path>", "int8") in text
    assert "INFERENCE_PRECISION_HINT" in text


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_real_qdq_graph_symmetry(tmp_path):
    """xenoedge.export.quantize's default QDQ passes the TensorRT check; asymmetric activations are refused."""
    pytest.importorskip("torch")
    from xenoedge.export.onnx_export import export_onnx
    from xenoedge.export.quantize import quantize_int8
    from xenoedge.xeno.models import build_model

    model = build_model("pixel-mlp", 10, 3).eval()
    fp32 = export_onnx(model, height=4, width=6, n_bands=10, path=tmp_path / "r.onnx", variant="reflectance")
    rng = np.random.default_rng(0)
    frames = [{"reflectance": rng.random((1, 4, 6, 10)).astype(np.float32)} for _ in range(4)]
    check_model_for_target(quantize_int8(fp32, tmp_path / "s.onnx", frames), "jetson-orin", "int8")
    asymmetric = quantize_int8(fp32, tmp_path / "a.onnx", frames, symmetric_activations=False)
    with pytest.raises(ExportError, match="needs symmetric signed INT8 QDQ; asymmetric: "):
        check_model_for_target(asymmetric, "jetson-orin", "int8")
