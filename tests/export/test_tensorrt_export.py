"""Jetson (TensorRT) export as NVIDIA's explicit-quantisation guidance describes, asserted on a real export.

One module-scoped export of the shipped crop model for ``jetson-orin`` at fp32, fp16 and int8
(48 x 64 frames) is read back: Q/DQ placement, weight bits, FP16 typing with FP32 calibration,
the strongly typed build command, the providers, the gate on ONNX Runtime's CPU provider, and
the per-layer quantisation report. Building an engine needs TensorRT and an NVIDIA GPU: that
test is skipped elsewhere, with that reason.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from export_fixtures import absent_classes, write_crop_data  # noqa: E402
from xenoedge.export.bundle import extract_bundle, verify_bundle  # noqa: E402
from xenoedge.export.export import export_checkpoint, frames_from_data, sensor_for  # noqa: E402
from xenoedge.export.onnx_export import POST_NODES, PRE_NODES  # noqa: E402
from xenoedge.export.quantize import TENSORRT_QUANTIZED_OP_TYPES  # noqa: E402
from xenoedge.export.runners import OrtRunner  # noqa: E402
from xenoedge.xeno.default_models import default_model_dir  # noqa: E402

MAX_DROP = 0.2  # the tiny validation set: the gate's mechanics, not the model's accuracy
WEIGHTED = set(TENSORRT_QUANTIZED_OP_TYPES)


@pytest.fixture(scope="module")
def jetson(tmp_path_factory):
    root = tmp_path_factory.mktemp("jetson")
    data = write_crop_data(root / "crop")
    model_dir = default_model_dir("crop")
    messages: list[str] = []
    report = export_checkpoint(
        model_dir,
        target="jetson-orin",
        precision=("fp32", "fp16", "int8"),
        out=root / "jetson.xeb",
        calib=data,
        val=data,
        shape=(48, 64),
        max_drop=MAX_DROP,
        unsupported_ok=absent_classes(data, model_dir),
        quant_report=True,
        log=messages.append,
    )
    manifest = verify_bundle(root / "jetson.xeb")
    folder = extract_bundle(root / "jetson.xeb", root / "bundle")
    return {"root": root, "data": data, "report": report, "manifest": manifest, "folder": folder, "log": messages}


def _model(jetson, precision: str):
    entry = jetson["manifest"]["targets"][f"jetson-orin-tensorrt-{precision}"]
    return jetson["folder"] / entry["model"]


def _constants(model) -> dict:
    return {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}


def test_int8_graph_has_qdq_only_at_the_inputs_of_weighted_layers(jetson):
    model = onnx.load(str(_model(jetson, "int8")))
    producers = {name: node for node in model.graph.node for name in node.output}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    dqs = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    qs = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert dqs and qs
    for dq in dqs:  # every DQ feeds weighted layers, and nothing else
        assert {c.op_type for c in consumers[dq.output[0]]} <= WEIGHTED, dq.name
    for q in qs:  # every Q feeds its DQ; none quantises a weighted layer's output or the calibration/arg-max
        assert [c.op_type for c in consumers[q.output[0]]] == ["DequantizeLinear"], q.name
        source = producers.get(q.input[0])
        assert source is None or source.op_type not in WEIGHTED, (q.name, source.op_type)
        assert source is None or source.name not in set(POST_NODES.values()), q.name
    weighted = [n for n in model.graph.node if n.op_type in WEIGHTED]
    for node in weighted:  # data and weights both come through Q/DQ; biases stay float
        assert producers[node.input[0]].op_type == "DequantizeLinear", node.name
        assert producers[node.input[1]].op_type == "DequantizeLinear", node.name
        if len(node.input) > 2 and node.input[2]:
            assert node.input[2] not in producers and _constants(model)[node.input[2]].dtype == np.float32
    fixed = set(PRE_NODES.values()) | set(POST_NODES.values())
    for node in model.graph.node:
        if node.name in fixed:
            assert not any(
                producers.get(i) is not None and producers[i].op_type == "DequantizeLinear" for i in node.input
            )
    assert "logits" not in {q.input[0] for q in qs}  # float logits by construction, no surgery


def test_int8_graph_has_8_bit_symmetric_per_channel_weights(jetson):
    model = onnx.load(str(_model(jetson, "int8")))
    constants = _constants(model)
    weights = [
        n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in constants and n.input[0]
    ]
    assert weights
    for dq in weights:
        values = constants[dq.input[0]]
        assert values.dtype == np.int8 and int(np.abs(values).max()) == 127, dq.name  # full 8 bits, not 7
        assert not constants[dq.input[2]].any()  # zero points 0
        assert constants[dq.input[1]].size == values.shape[0]  # per output channel (Conv axis 0)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["int8_weight_bits"] == "8" and props["int8_placement"] == "tensorrt"


def test_fp16_graph_is_fp16_typed_with_fp32_calibration(jetson):
    path = _model(jetson, "fp16")
    assert path.name == "model.fp16.onnx"
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    types = {v.name: v.type.tensor_type.elem_type for v in (*model.graph.value_info, *model.graph.input)}
    types.update({v.name: v.type.tensor_type.elem_type for v in model.graph.output})
    pre = [n for n in model.graph.node if n.name in set(PRE_NODES.values())]
    assert {n.name for n in pre} >= {PRE_NODES["clip"], PRE_NODES["sum"], PRE_NODES["div"]}
    for node in pre:  # the calibration arithmetic reads and writes float32 only
        for name in [*node.input, *node.output]:
            if name in types:
                assert types[name] == onnx.TensorProto.FLOAT, (node.name, name)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    constants = _constants(model)
    assert convs and all(constants[c.input[1]].dtype == np.float16 for c in convs)  # the network runs in FP16
    assert all(types[c.output[0]] == onnx.TensorProto.FLOAT16 for c in convs)
    assert types["reflectance"] == onnx.TensorProto.FLOAT and types["classes"] == onnx.TensorProto.UINT8
    assert not any(n.op_type == "Cast" and n.name in set(PRE_NODES.values()) for n in model.graph.node)


def test_manifest_build_command_is_strongly_typed_and_providers_are_the_devices(jetson):
    targets = jetson["manifest"]["targets"]
    assert set(targets) == {f"jetson-orin-tensorrt-{p}" for p in ("fp32", "fp16", "int8")}
    for name, entry in targets.items():
        command = entry["build_command"].split()
        assert command[0] == "trtexec" and "--stronglyTyped" in command, name
        assert f"--onnx={entry['model'].rsplit('/', 1)[1]}" in command
        assert any(c.startswith("--saveEngine=") for c in command)
        assert any(c.startswith("--timingCacheFile=") for c in command)
        assert not {"--int8", "--fp16", "--best", "--bf16"} & set(command), name
        assert entry["providers"] == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
        assert entry["graph_precision"] == entry["precision"]


def test_jetson_graphs_run_in_onnx_runtime_on_the_cpu_within_the_gate(jetson):
    manifest = jetson["manifest"]
    for name, record in manifest["accuracy"].items():
        assert record["passed"] and record["max_drop"] == MAX_DROP, name
        assert record["max_class_drop"] is None or record["max_class_drop"] <= MAX_DROP, name
    from xenoedge.xeno.checkpoint import load_model

    _model_obj, config = load_model(default_model_dir("crop"))
    frames = frames_from_data(
        jetson["data"], sensor_for(config), 48, 64, variant="reflectance", limit=2, exclude=set(), pool=2
    )
    fp32 = OrtRunner(_model(jetson, "fp32"))
    for precision in ("fp16", "int8"):
        runner = OrtRunner(_model(jetson, precision))  # the CPU provider, on this host
        agreement = np.mean([np.mean(runner.predict(f) == fp32.predict(f)) for f in frames.inputs])
        assert agreement >= 0.97, (precision, agreement)


def test_quant_report_has_per_layer_errors(jetson):
    paths = jetson["report"].quant_reports
    assert set(paths) == {"jetson-orin-tensorrt-int8"}
    path = paths["jetson-orin-tensorrt-int8"]
    assert path.parent == jetson["root"] and path.name == "jetson.jetson-orin-tensorrt-int8.quant-report.json"
    report = json.loads(path.read_text())
    layers = report["layers"]
    assert layers and {layer["op_type"] for layer in layers.values()} <= WEIGHTED
    for name, layer in layers.items():
        assert layer["activations"] and layer["weights"], name
        for value in layer["activations"].values():
            assert value["qdq_sqnr_db"] > 10 and value["float_sqnr_db"] is not None
        assert all(w["sqnr_db"] > 20 for w in layer["weights"].values())
    table = path.with_suffix(".md").read_text()
    assert table.startswith("| layer | op |") and len(table.splitlines()) == len(layers) + 2


@pytest.mark.skipif(shutil.which("trtexec") is None, reason="needs TensorRT (trtexec) and an NVIDIA GPU")
def test_trtexec_builds_the_stored_command(jetson, tmp_path):  # pragma: no cover - GPU hosts only
    import subprocess

    for name, entry in jetson["manifest"]["targets"].items():
        model = jetson["folder"] / entry["model"]
        command = entry["build_command"].replace("<engine cache path>", str(tmp_path / f"{name}.engine"))
        command = command.replace("<timing cache path>", str(tmp_path / "timing.cache"))
        command = command.replace(f"--onnx={model.name}", f"--onnx={model}")
        result = subprocess.run(command.split(), capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert (tmp_path / f"{name}.engine").stat().st_size > 0


def test_cpu_placement_is_unchanged(tmp_path):
    """The cpu target's ORT graph keeps its placement (Q/DQ on Relu outputs too) and 7-bit weights."""
    pytest.importorskip("torch")
    from xenoedge.export.onnx_export import export_onnx
    from xenoedge.export.quantize import quantize_int8
    from xenoedge.xeno.models import build_model

    model = build_model("unet-small", 10, 3).eval()
    fp32 = export_onnx(model, height=16, width=16, n_bands=10, path=tmp_path / "r.onnx", variant="reflectance")
    rng = np.random.default_rng(0)
    frames = [{"reflectance": rng.random((1, 16, 16, 10)).astype(np.float32)} for _ in range(2)]
    cpu = onnx.load(str(quantize_int8(fp32, tmp_path / "cpu.onnx", frames)))
    consumers = {name for node in cpu.graph.node if node.op_type == "Relu" for name in node.input}
    producers = {node.output[0]: node.op_type for node in cpu.graph.node}
    assert any(producers.get(name) == "DequantizeLinear" for name in consumers)  # Relu reads Q/DQ
    props = {p.key: p.value for p in cpu.metadata_props}
    assert props["int8_weight_bits"] == "7" and "int8_placement" not in props


def test_jetson_graphs_pass_polygraphy_lint_and_a_broken_one_is_named(jetson, tmp_path):
    pytest.importorskip("polygraphy", reason="polygraphy (dev extra) not installed")
    pytest.importorskip("onnx_graphsurgeon", reason="onnx-graphsurgeon (dev extra) not installed")
    from xenoedge.export.errors import ExportError
    from xenoedge.export.targets import lint_onnx

    linted = [m for m in jetson["log"] if m.endswith("polygraphy check lint passed")]
    assert len(linted) == 3  # the export linted every Jetson graph
    path = _model(jetson, "int8")
    broken = onnx.load(str(path))
    clip = next(n for n in broken.graph.node if n.name == PRE_NODES["clip"])
    clip.op_type = "Det"  # Det takes one input; Clip had three
    onnx.save(broken, str(tmp_path / "broken.onnx"))
    with pytest.raises(ExportError, match=r"polygraphy check lint failed \(failing nodes: pre/clip\)"):
        lint_onnx(tmp_path / "broken.onnx")
