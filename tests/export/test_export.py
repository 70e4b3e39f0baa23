"""`xenoedge export` end to end: shipped model -> gated artifacts -> signed bundle -> verify and self-test."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from export_fixtures import absent_classes, write_crop_data, write_surgical_data
from xenoedge.export.accuracy import AccuracyGateError
from xenoedge.export.bundle import (
    extract_bundle,
    generate_keypair,
    load_selftest,
    save_private_key,
    tile_to,
    verify_bundle,
)
from xenoedge.export.errors import ExportError
from xenoedge.export.export import export_checkpoint
from xenoedge.export.runners import OpenVinoRunner, OrtRunner
from xenoedge.xeno.default_models import default_model_dir


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    write_surgical_data(root / "surgical")
    write_crop_data(root / "crop")
    return root


def test_export_fails_a_class_without_validation_support_naming_it(data, tmp_path):
    absent = absent_classes(data / "surgical", default_model_dir("surgical"))
    assert absent  # 6 small images cannot show all 11 organs
    with pytest.raises(AccuracyGateError, match="have no validation support") as info:
        export_checkpoint(
            default_model_dir("surgical"),
            target="cpu",
            precision="fp32",
            out=tmp_path / "s.xeb",
            calib=None,
            val=data / "surgical",
            shape=(48, 64),
            max_drop=0.05,
            log=lambda _m: None,
        )
    for name in absent:
        assert f"{name}: no validation support" in str(info.value)
    assert not (tmp_path / "s.xeb").exists()


def test_signed_cpu_int8_bundle_verifies_and_passes_its_selftest_on_both_runtimes(data, tmp_path):
    private, public = generate_keypair()
    key = save_private_key(tmp_path / "key.pem", private)
    absent = absent_classes(data / "surgical", default_model_dir("surgical"))
    report = export_checkpoint(
        default_model_dir("surgical"),
        target="cpu",
        precision="int8",
        out=tmp_path / "s.xeb",
        calib=data / "surgical",
        val=data / "surgical",
        shape=(192, 256),
        keep_float=("first",),
        # This test is about signing and the self-test, not accuracy (tests/export/test_accuracy.py and
        # test_default_bundles.py hold the 1-point gate on 12 full-size validation images): 6 small
        # validation images here, calibration = validation.
        max_drop=0.10,
        sign_key=key,
        unsupported_ok=absent,
        log=lambda _m: None,
    )
    assert set(report.artifacts) == {"cpu-onnxruntime-int8", "cpu-openvino-int8"}
    manifest = verify_bundle(tmp_path / "s.xeb", public_key=public, require_signature=True)
    for target in report.artifacts:  # gated with the daemon's settings, and the manifest says at what precision
        assert manifest["targets"][target]["effective_precision"] == manifest["accuracy"][target]["effective_precision"]
        assert manifest["accuracy"][target]["unsupported_ok"] == list(absent)
    ort_target = manifest["targets"]["cpu-onnxruntime-int8"]
    assert ort_target["model"] == "models/cpu-onnxruntime-int8/model.int8.onnx"
    assert ort_target["model_classes_only"] == "models/cpu-onnxruntime-int8/model.int8.classes.onnx"
    assert manifest["input"] == {**manifest["input"], "dtype": "uint16", "variant": "raw", "shape": [1, 192, 256, 100]}
    assert manifest["preprocessing"]["pool"] == 4
    assert manifest["accuracy"]["cpu-onnxruntime-int8"]["pixel_agreement"] > 0.9
    folder = extract_bundle(tmp_path / "s.xeb", tmp_path / "x", public_key=public, require_signature=True)
    selftest = load_selftest(folder, manifest)
    shapes = {"raw": (1, 192, 256, 100), "dark": (48, 64, 100), "gain": (48, 64, 100)}  # references pooled 4x
    inputs = {name: tile_to(array, shapes[name]) for name, array in selftest.inputs.items()}
    ort = OrtRunner(folder / "models" / "cpu-onnxruntime-int8" / "model.int8.onnx")
    ov = OpenVinoRunner(folder / "models" / "cpu-openvino-int8" / "model.int8.xml", precision_hint="f32")
    for runner in (ort, ov):
        assert np.mean(runner.predict(inputs) == selftest.expected[0]) >= selftest.min_agreement
    # the classes of what the daemon runs come from the block arg-max (docs/export_onnx.md); the
    # full ONNX Runtime graph (run when a consumer asks for confidence) stays dense
    lean = {n.op_type for n in onnx.load(str(folder / ort_target["model_classes_only"])).graph.node}
    full = {n.op_type for n in onnx.load(str(folder / ort_target["model"])).graph.node}
    assert "NonZero" in lean and "Softmax" not in lean
    assert {"Softmax", "Resize"} <= full and "NonZero" not in full
    assert 'type="NonZero"' in (folder / "models" / "cpu-openvino-int8" / "model.int8.xml").read_text()


def test_jetson_export_uses_the_reflectance_variant_with_symmetric_qdq(data, tmp_path):
    export_checkpoint(
        default_model_dir("crop"),
        target="jetson-orin",
        precision="int8",
        out=tmp_path / "j.xeb",
        calib=data / "crop",
        val=data / "crop",
        shape=(48, 64),
        max_drop=0.2,
        unsupported_ok=absent_classes(data / "crop", default_model_dir("crop")),
        log=lambda _m: None,
    )
    manifest = verify_bundle(tmp_path / "j.xeb")
    assert manifest["input"]["variant"] == "reflectance" and manifest["input"]["dtype"] == "float32"
    (target,) = manifest["targets"].values()
    assert target["runtime"] == "tensorrt" and "trtexec" in target["build_command"]
    folder = extract_bundle(tmp_path / "j.xeb", tmp_path / "j")
    graph = onnx.load(str(folder / target["model"])).graph
    assert "NonZero" not in {n.op_type for n in graph.node}  # TensorRT keeps the dense arg-max


def test_refusals(data, tmp_path):
    from xenoedge.errors import UnknownNameError

    common = {"out": tmp_path / "x.xeb", "shape": (48, 64), "log": lambda _m: None}
    with pytest.raises(UnknownNameError, match="cpu"):
        export_checkpoint(
            default_model_dir("surgical"), target="tpu", precision="int8", calib=None, val=data / "surgical", **common
        )
    with pytest.raises(ExportError, match="calibration data"):
        export_checkpoint(
            default_model_dir("surgical"), target="cpu", precision="int8", calib=None, val=data / "surgical", **common
        )
    with pytest.raises(ExportError, match="precisions fp16, int8"):
        export_checkpoint(
            default_model_dir("surgical"),
            target="intel-npu",
            precision="fp32",
            calib=None,
            val=data / "surgical",
            **common,
        )
    from xenoedge.errors import XenoedgeError

    with pytest.raises(XenoedgeError, match=r"(?s)crop.*tivita.*outside"):
        export_checkpoint(
            default_model_dir("surgical"), target="cpu", precision="fp32", calib=None, val=data / "crop", **common
        )
    assert not (tmp_path / "x.xeb").exists()


def test_cli_refuses_a_corrupt_checkpoint(tmp_path, data):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(default_model_dir("surgical"), broken)
    (broken / "model.pt").write_bytes(b"\0" * 64)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "xenoedge.cli.main",
            "export",
            str(broken),
            "--precision",
            "fp32",
            "--val",
            str(data / "surgical"),
            "--shape",
            "48x64",
            "--out",
            str(tmp_path / "b.xeb"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "model.pt" in result.stderr and "Traceback" not in result.stderr
