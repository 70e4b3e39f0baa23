"""OpenVINO IR (FP32/FP16/INT8 via NNCF) and the inference runners, on a tiny trained checkpoint.

Every artifact is compared with the FP32 ONNX graph run by ONNX Runtime, pixel by pixel.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")
pytest.importorskip("nncf")
pytest.importorskip("onnxruntime")

from xenoedge.export.accuracy import pixel_agreement
from xenoedge.export.errors import ExportError
from xenoedge.export.openvino_export import convert_to_ir, ir_metadata, quantize_ir_int8
from xenoedge.export.runners import OpenVinoRunner, OrtRunner, classes_from_outputs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")

HEIGHT, WIDTH = 32, 40


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A pixel-mlp trained 40 steps on 4 simulated images, its raw-variant FP32 ONNX and raw frames."""
    from xenoedge.export.onnx_export import export_onnx, reference_gain
    from xenoedge.xeno.checkpoint import load_model
    from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset
    from xenoedge.xeno.train import TrainConfig, train

    root = tmp_path_factory.mktemp("openvino")
    spec = DatasetSpec(
        species=("human",),
        states=("physiological",),
        subjects_per_species=2,
        images_per_subject=2,
        height=HEIGHT,
        width=WIDTH,
        seed=1,
    )
    write_dataset(root / "data", spec)
    config = TrainConfig(
        data=str(root / "data"),
        model="pixel-mlp",
        steps=40,
        lr=1e-2,
        batch_size=2,
        crop=16,
        threads=1,
        checkpoint_every=40,
        val_fraction=0.0,
    )
    model, _ = load_model(train(config, root / "ckpt"))
    onnx_path = export_onnx(model, height=HEIGHT, width=WIDTH, n_bands=model.in_channels, path=root / "model.onnx")
    cubes = [np.load(path)["cube"] for path in sorted((root / "data" / "cubes").glob("*.npz"))]
    rng = np.random.default_rng(0)
    shape = cubes[0].shape
    dark = (40 + 5 * rng.random(shape)).astype(np.float32)
    white = (dark + 800 + 50 * rng.random(shape)).astype(np.float32)
    gain = reference_gain(dark, white)
    frames = []
    for cube in cubes:
        raw = np.clip(np.round(cube * (white - dark) + dark + rng.normal(0, 2, shape)), 0, 1023).astype(np.uint16)
        frames.append({"raw": raw[None], "dark": dark, "gain": gain})
    reference = [OrtRunner(onnx_path).predict(frame) for frame in frames]
    return {"root": root, "onnx": onnx_path, "frames": frames, "reference": reference, "model": model}


def _agreement(runner, setup) -> float:
    pred = [runner.predict(frame) for frame in setup["frames"]]
    return float(np.mean([pixel_agreement(p, r) for p, r in zip(pred, setup["reference"], strict=True)]))


def test_ir_fp32_agrees_with_onnx(setup):
    xml = convert_to_ir(setup["onnx"], setup["root"] / "fp32" / "model.xml", precision="fp32")
    assert xml.is_file() and xml.with_suffix(".bin").is_file()
    runner = OpenVinoRunner(xml)  # f32 hint by default
    assert set(runner.input_names) == {"raw", "dark", "gain"}
    assert _agreement(runner, setup) >= 0.999
    frame = setup["frames"][0]
    ort_out, ov_out = OrtRunner(setup["onnx"]).run(frame), runner.run(frame)
    np.testing.assert_allclose(ov_out["confidence"], ort_out["confidence"], atol=1e-4)
    assert ir_metadata(xml)["precision"] == "fp32"
    assert not list(xml.parent.glob(".*tmp*")), "temporary files left behind"


def test_ir_fp16_keeps_io_types_and_agrees(setup):
    import openvino as ov

    fp32 = convert_to_ir(setup["onnx"], setup["root"] / "a" / "model.xml", precision="fp32")
    fp16 = convert_to_ir(setup["onnx"], setup["root"] / "b" / "model.xml", precision="fp16", metadata={"k": 1})
    model = ov.Core().read_model(str(fp16))
    assert {p.get_any_name(): p.get_element_type().to_dtype() for p in model.inputs} == {
        "raw": np.dtype("uint16"),
        "dark": np.dtype("float32"),
        "gain": np.dtype("float32"),
    }
    assert {p.get_any_name(): p.get_element_type().to_dtype() for p in model.outputs} == {
        "classes": np.dtype("uint8"),
        "confidence": np.dtype("float32"),
    }
    assert fp16.with_suffix(".bin").stat().st_size < 0.75 * fp32.with_suffix(".bin").stat().st_size
    assert ir_metadata(fp16) == {"precision": "fp16", "source": "model.onnx", "k": "1"}
    assert _agreement(OpenVinoRunner(fp16, precision_hint="f16"), setup) >= 0.99
    assert _agreement(OpenVinoRunner(fp16), setup) >= 0.99


def test_int8_nncf_agrees_and_keeps_pre_post_in_float(setup):
    import openvino as ov

    xml = quantize_ir_int8(setup["onnx"], setup["root"] / "int8" / "model.xml", setup["frames"], subset_size=4)
    ops = ov.Core().read_model(str(xml)).get_ops()
    fq = [op.get_friendly_name() for op in ops if op.get_type_name() == "FakeQuantize"]
    assert fq, "no FakeQuantize: nothing was quantised"
    assert not [name for name in fq if name.startswith("post/") or name.startswith("pre/cast")]
    assert _agreement(OpenVinoRunner(xml), setup) >= 0.95
    assert ir_metadata(xml)["precision"] == "int8"


def test_int8_ignored_head_stays_float(setup):
    import openvino as ov

    xml = quantize_ir_int8(setup["onnx"], setup["root"] / "head" / "model.xml", setup["frames"], ignored_names="head")
    names = [op.get_friendly_name() for op in ov.Core().read_model(str(xml)).get_ops()]
    assert any(name.startswith("/body") and "fq_weights" in name for name in names)
    assert not any(name.startswith("/head") and "fq_weights" in name for name in names)


def test_int8_with_accuracy_control(setup):
    validation = list(zip(setup["frames"], setup["reference"], strict=True))
    xml = quantize_ir_int8(
        setup["onnx"], setup["root"] / "ac" / "model.xml", setup["frames"], validation=validation, max_drop=0.01
    )
    info = ir_metadata(xml)
    assert info["int8_validation_metric"] == "dsc"
    assert float(info["int8_validation_fp32"]) == pytest.approx(1.0)
    assert float(info["int8_validation_int8"]) >= 0.95
    assert _agreement(OpenVinoRunner(xml), setup) >= 0.95


def test_int8_bad_requests(setup):
    out = setup["root"] / "bad" / "model.xml"
    with pytest.raises(ExportError, match="calibration inputs"):
        quantize_ir_int8(setup["onnx"], out, [])
    frame = setup["frames"][0]
    with pytest.raises(ExportError, match="do not match the graph's inputs"):
        quantize_ir_int8(setup["onnx"], out, [{"raw": frame["raw"]}])
    with pytest.raises(ExportError, match="'raw' is float32, the graph takes uint16"):
        quantize_ir_int8(setup["onnx"], out, [{**frame, "raw": frame["raw"].astype(np.float32)}])
    with pytest.raises(ExportError, match=r"ignored_names not in the model: nope.*convolutions: /body"):
        quantize_ir_int8(setup["onnx"], out, [frame], ignored_names=["nope"])
    with pytest.raises(ExportError, match="needs validation items"):
        quantize_ir_int8(setup["onnx"], out, [frame], max_drop=0.01)
    assert not out.exists()


def test_convert_errors(tmp_path, setup):
    with pytest.raises(ExportError, match="precision must be one of fp32, fp16"):
        convert_to_ir(setup["onnx"], tmp_path / "m.xml", precision="int8")
    with pytest.raises(ExportError, match="no such file"):
        convert_to_ir(tmp_path / "missing.onnx", tmp_path / "m.xml")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ExportError, match=r"garbage\.onnx: OpenVINO cannot read or convert it"):
        convert_to_ir(garbage, tmp_path / "m.xml")
    with pytest.raises(ExportError, match=r"must end in \.xml"):
        convert_to_ir(setup["onnx"], tmp_path / "m.ir")


# --- runners ---------------------------------------------------------------------------------


def test_runners_predict_and_check_inputs(setup):
    frame = setup["frames"][0]
    ort_runner = OrtRunner(setup["onnx"], threads=1)
    ov_runner = OpenVinoRunner(setup["onnx"], threads=1)  # OpenVINO reads ONNX directly too
    for runner in (ort_runner, ov_runner):
        classes = runner.predict(frame)
        assert classes.shape == (HEIGHT, WIDTH) and classes.dtype == np.uint8
        with pytest.raises(ExportError, match="missing gain"):
            runner.run({"raw": frame["raw"], "dark": frame["dark"]})
    assert pixel_agreement(ort_runner.predict(frame), ov_runner.predict(frame)) >= 0.999
    with pytest.raises(ExportError, match="threads"):
        OrtRunner(setup["onnx"], threads=0)
    with pytest.raises(ExportError, match="precision_hint"):
        OpenVinoRunner(setup["onnx"], precision_hint="fp32")
    with pytest.raises(ExportError, match="no such"):
        OrtRunner(Path("/nonexistent.onnx"))


def test_classes_from_logits_graph(tmp_path):
    """A bare model graph (logits out) works with predict: arg-max over the class axis."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["logits"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 2, 2])],
    )
    path = tmp_path / "logits.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    x = np.zeros((1, 3, 2, 2), np.float32)
    x[0, 2, 0, 1] = 1
    assert OrtRunner(path).predict({"x": x}).tolist() == [[0, 2], [0, 0]]
    with pytest.raises(ExportError, match="no 'classes' output"):
        classes_from_outputs({"a": np.zeros((1, 2)), "b": np.zeros((1, 2))})


def test_runners_do_not_import_torch():
    code = "import sys, xenoedge.export.runners; assert 'torch' not in sys.modules and 'onnx' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
