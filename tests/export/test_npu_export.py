"""Intel NPU export: dynamic shapes refused before any work and at every artifact; NNCF's target_device."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from export_fixtures import write_crop_data
from xenoedge.export.errors import ExportError
from xenoedge.export.export import export_checkpoint
from xenoedge.export.targets import check_artifact_for_target, get_target

MESSAGE = r"target intel-npu needs static input shapes, but --dynamic would leave H and W of input 'raw'"


def test_export_refuses_dynamic_for_the_npu_before_any_work(tmp_path):
    # the checkpoint does not even exist: the refusal comes before it is read
    with pytest.raises(ExportError, match=MESSAGE):
        export_checkpoint(
            tmp_path / "no-checkpoint",
            target="intel-npu",
            precision="fp16",
            out=tmp_path / "npu.xeb",
            calib=None,
            val=tmp_path / "no-data",
            dynamic=True,
            log=lambda _m: None,
        )
    assert not (tmp_path / "npu.xeb").exists()
    with pytest.raises(ExportError, match=r"target jetson-orin needs static .* input 'reflectance'"):
        export_checkpoint(
            tmp_path / "no-checkpoint",
            target="jetson-orin",
            precision="fp16",
            out=tmp_path / "j.xeb",
            calib=None,
            val=tmp_path / "no-data",
            dynamic=True,
            log=lambda _m: None,
        )


def test_cli_refuses_dynamic_for_the_npu_with_the_message(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "xenoedge.cli.main",
            "export",
            "crop",
            "--target",
            "intel-npu",
            "--precision",
            "fp16",
            "--dynamic",
            "--val",
            str(tmp_path),
            "--out",
            str(tmp_path / "npu.xeb"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "400", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    text = " ".join((result.stdout + result.stderr).split())
    assert "target intel-npu needs static input shapes" in text and "input 'raw'" in text
    assert not (tmp_path / "npu.xeb").exists()


@pytest.fixture(scope="module")
def dynamic_graphs(tmp_path_factory):
    """A dynamic-shape raw ONNX graph and its OpenVINO IR (pixel-mlp, 10 bands)."""
    pytest.importorskip("torch")
    from xenoedge.export.onnx_export import export_onnx
    from xenoedge.export.openvino_export import convert_to_ir
    from xenoedge.xeno.models import build_model

    root = tmp_path_factory.mktemp("npu")
    model = build_model("pixel-mlp", 10, 3).eval()
    onnx_path = export_onnx(model, height=4, width=6, n_bands=10, path=root / "d.onnx", dynamic=True)
    xml = convert_to_ir(onnx_path, root / "model.fp16.xml", precision="fp16")
    static = export_onnx(model, height=4, width=6, n_bands=10, path=root / "s.onnx")
    return onnx_path, xml, convert_to_ir(static, root / "static.fp16.xml", precision="fp16")


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_every_artifact_kind_is_checked_for_static_shapes(dynamic_graphs):
    onnx_path, xml, static_xml = dynamic_graphs
    with pytest.raises(ExportError, match=r"(?s)cannot target intel-npu.*needs static input shapes; dynamic: raw \("):
        check_artifact_for_target(onnx_path, "intel-npu", "fp16")
    with pytest.raises(
        ExportError, match=r"(?s)model\.fp16\.xml: cannot target intel-npu.*dynamic: raw \(1, \?, \?, 10\)"
    ):
        check_artifact_for_target(xml, "intel-npu", "fp16")
    check_artifact_for_target(xml, "cpu", "fp16")  # the CPU plugin takes dynamic shapes
    check_artifact_for_target(static_xml, "intel-npu", "fp16")
    with pytest.raises(ExportError, match="precision 'fp32' is not allowed on intel-npu"):
        check_artifact_for_target(static_xml, "intel-npu", "fp32")


def test_target_rows_name_the_nncf_device_and_runtime_device():
    assert get_target("intel-npu").nncf_target_device == "NPU" and get_target("intel-npu").openvino_device == "NPU"
    assert get_target("cpu").nncf_target_device == "ANY" and get_target("cpu").openvino_device == "CPU"


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_npu_int8_export_quantises_for_the_npu(tmp_path, monkeypatch):
    """export passes the row's target_device to NNCF, and the IR records it."""
    import xenoedge.export.openvino_export as ov_export
    from xenoedge.export.openvino_export import ir_metadata
    from xenoedge.xeno.default_models import default_model_dir

    data = write_crop_data(tmp_path / "crop", images_per_subject=1, seed=3)
    seen = []
    original = ov_export.quantize_ir_int8

    def spy(*args, **kwargs):
        seen.append(kwargs.get("target_device"))
        return original(*args, **kwargs)

    monkeypatch.setattr(ov_export, "quantize_ir_int8", spy)
    report = export_checkpoint(
        default_model_dir("crop"),
        target="intel-npu",
        precision="int8",
        out=tmp_path / "npu.xeb",
        calib=data,
        val=data,
        shape=(48, 64),
        max_drop=None,
        log=lambda _m: None,
    )
    assert seen == ["NPU"]
    from xenoedge.export.bundle import extract_bundle, read_manifest

    folder = extract_bundle(report.bundle, tmp_path / "b")
    manifest = read_manifest(folder)
    entry = manifest["targets"]["intel-npu-openvino-int8"]
    assert entry["device"] == "NPU"
    meta = ir_metadata(folder / entry["model"])
    assert meta["int8_target_device"] == "NPU"
    assert np.all([s > 0 for s in report.sizes.values()])
