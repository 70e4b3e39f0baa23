"""Models: shapes, sizes, config round trip, bad input, and ONNX export matching PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from xenoedge.xeno.models import (  # noqa: E402
    MODELS,
    ModelConfigError,
    ModelInputError,
    build_model,
    count_parameters,
    model_config,
    model_from_config,
    pad_to_multiple,
)

from xenoedge.errors import UnknownNameError, XenoedgeError  # noqa: E402

EDGE = [name for name, spec in MODELS.items() if spec.edge]
BANDS, CLASSES = 100, 10


@pytest.fixture(scope="module")
def effb5() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("unet-effb5", BANDS, CLASSES).eval()


def test_registry_rows():
    assert set(MODELS) == {"pixel-mlp", "unet-small", "unet-edge", "unet-effb5"}
    assert set(EDGE) == {"pixel-mlp", "unet-small", "unet-edge"}
    for name, spec in MODELS.items():
        assert spec.name == name and spec.description
        assert spec.builder.registry_name == name


@pytest.mark.parametrize("name", EDGE)
def test_edge_model_forward_shape_and_size(name):
    model = build_model(name, BANDS, CLASSES).eval()
    with torch.no_grad():
        y = model(torch.rand(2, BANDS, 64, 64))
    assert y.shape == (2, CLASSES, 64, 64) and y.dtype == torch.float32
    assert count_parameters(model) < 1_000_000


def test_parameter_counts_are_stable():
    assert count_parameters(build_model("pixel-mlp", BANDS, CLASSES)) == 11_402
    assert count_parameters(build_model("unet-small", BANDS, CLASSES)) == 491_658
    assert count_parameters(build_model("unet-edge", BANDS, CLASSES)) == 235_002


@pytest.mark.parametrize("pool", [1, 2, 4])
@pytest.mark.parametrize("size", [(64, 64), (61, 83)])
def test_edge_first_model_takes_any_frame_size_and_pools_it(pool, size):
    """unet-edge: full-size spectra in, full-size logits out; the core runs at the working size."""
    model = build_model("unet-edge", BANDS, CLASSES, pool=pool).eval()
    x = torch.rand(1, BANDS, *size)
    x = x / x.sum(1, keepdim=True)
    with torch.no_grad():
        y = model(x)
        working = model.forward_working(torch.nn.functional.avg_pool2d(x, pool))
    assert y.shape == (1, CLASSES, *size)
    assert working.shape == (1, CLASSES, size[0] // pool, size[1] // pool)
    assert model.input_pool == pool and model_config(model)["options"]["pool"] == pool


def test_edge_first_model_options_are_checked():
    with pytest.raises(ModelConfigError, match="pool must be one of"):
        build_model("unet-edge", BANDS, CLASSES, pool=3)
    with pytest.raises(ModelConfigError, match="outer_convs"):
        build_model("unet-edge", BANDS, CLASSES, outer_convs=3)


def test_pooled_training_images_take_block_means_and_majority_labels(tmp_path):
    """Training at the working size: cubes block-averaged, labels by block majority, crops aligned."""
    from xenoedge.xeno.dataset import SpectralDataset
    from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset
    from xenoedge.xeno.torch_data import PooledImages, majority_blocks

    write_dataset(
        tmp_path / "d",
        DatasetSpec(species=("human",), subjects_per_species=1, images_per_subject=1, height=30, width=42, seed=3),
    )
    dataset = SpectralDataset.open(tmp_path / "d")
    full, pooled = dataset.load(0), PooledImages(dataset, 4).load(0)
    assert pooled.cube.shape == (7, 10, BANDS) and pooled.labels.shape == pooled.states.shape == (7, 10)
    np.testing.assert_allclose(pooled.cube[1, 2], full.cube[4:8, 8:12].mean(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(pooled.cube.sum(-1), 1.0, atol=1e-4)  # still L1 spectra
    block = full.labels[4:8, 8:12].ravel()
    assert pooled.labels[1, 2] == np.bincount(block).argmax()
    labels = np.zeros((4, 4), np.uint8)
    labels[:2, :2] = 3
    labels[0, 0] = 5
    assert majority_blocks(labels, 2).tolist() == [[3, 0], [0, 0]]
    with pytest.raises(XenoedgeError, match="does not divide"):
        majority_blocks(labels[:3], 2)


def test_effb5_forward_shape_and_size(effb5):
    with torch.no_grad():
        y = effb5(torch.rand(2, BANDS, 64, 64))
    assert y.shape == (2, CLASSES, 64, 64)
    n = count_parameters(effb5)
    assert 25_000_000 < n < 35_000_000
    assert n == 30_206_538  # + 1,052,672 unused head parameters in smp = 31.26 M, the paper's ~31 M
    assert effb5.encoder.out_channels == (BANDS, 48, 40, 64, 176, 512)
    assert len(effb5.encoder.blocks) == 39


def test_effb5_encoder_matches_efficientnet_b5_classifier_size():
    """With 3 input bands, encoder + the head and 1000-class FC smp drops = lukemelas' B5 (30,389,784)."""
    model = build_model("unet-effb5", 3, 2)
    encoder = count_parameters(model.encoder)
    assert encoder + 512 * 2048 + 2 * 2048 + 2048 * 1000 + 1000 == 30_389_784


@pytest.mark.parametrize("name", sorted(MODELS))
def test_config_round_trip_rebuilds_the_same_architecture(name, effb5):
    torch.manual_seed(1)
    options = {"unet-small": {"widths": [8, 16, 32], "bottleneck": 64}}.get(name, {})
    model = effb5 if name == "unet-effb5" else build_model(name, BANDS, 5, **options)
    config = json.loads(json.dumps(model_config(model)))
    rebuilt = model_from_config(config)
    assert type(rebuilt) is type(model)
    assert model_config(rebuilt) == config
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    rebuilt.eval()
    model.eval()
    x = torch.rand(1, BANDS, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


def test_unknown_model_lists_the_models():
    with pytest.raises(UnknownNameError) as err:
        build_model("unet-smal", BANDS, CLASSES)
    message = str(err.value)
    assert all(name in message for name in MODELS) and "Did you mean 'unet-small'" in message
    assert isinstance(err.value, XenoedgeError)


def test_unknown_option_is_named():
    with pytest.raises(UnknownNameError, match="hiden"):
        build_model("pixel-mlp", BANDS, CLASSES, hiden=[8])


@pytest.mark.parametrize(
    "config",
    [
        {"name": "pixel-mlp", "in_channels": 100, "n_classes": 3, "options": {}, "code": "import os"},
        {"name": "pixel-mlp", "in_channels": 100},
        {"name": "pixel-mlp", "in_channels": 100, "n_classes": 3, "options": {"hidden": {"__class__": "x"}}},
        {"name": "pixel-mlp", "in_channels": 100, "n_classes": 3, "options": {"hidden": [64, -1]}},
        {"name": "pixel-mlp", "in_channels": "100", "n_classes": 3},
        {"name": "unet-small", "in_channels": 100, "n_classes": 1},
        {"name": "unet-small", "in_channels": 100, "n_classes": 3, "options": {"upsample": "bicubic"}},
        ["pixel-mlp"],
    ],
)
def test_bad_configs_raise_config_errors(config):
    with pytest.raises(ModelConfigError):
        model_from_config(config)


def test_bad_input_is_refused_with_a_clear_message():
    model = build_model("unet-small", BANDS, CLASSES).eval()
    with pytest.raises(ModelInputError, match="built for 100 bands, got 25"):
        model(torch.rand(1, 25, 64, 64))
    with pytest.raises(ModelInputError, match="multiples of 8, got 60x64"):
        model(torch.rand(1, BANDS, 60, 64))


def test_pad_to_multiple_lets_any_size_through():
    model = build_model("unet-small", BANDS, CLASSES).eval()
    x = torch.rand(1, BANDS, 61, 70)
    padded = pad_to_multiple(x, model.required_multiple)
    assert padded.shape[-2:] == (64, 72)
    torch.testing.assert_close(padded[..., :61, :70], x)
    torch.testing.assert_close(padded[..., 63, :70], x[..., 60, :])  # edge replicated, still a spectrum
    with torch.no_grad():
        assert model(padded)[..., :61, :70].shape == (1, CLASSES, 61, 70)


def test_pixel_mlp_is_per_pixel():
    """Changing one pixel changes only that pixel's logits."""
    model = build_model("pixel-mlp", BANDS, CLASSES).eval()
    x = torch.rand(1, BANDS, 8, 8)
    x2 = x.clone()
    x2[..., 3, 4] = torch.rand(BANDS)
    with torch.no_grad():
        diff = (model(x) - model(x2)).abs().sum(1)[0]
    assert diff[3, 4] > 0
    diff[3, 4] = 0
    assert diff.max() == 0


def test_training_mode_runs_backward():
    model = build_model("unet-small", BANDS, 3).train()
    y = model(torch.rand(2, BANDS, 16, 16))
    y.mean().backward()
    assert model.spectral[0].weight.grad is not None


# --- export --------------------------------------------------------------------------------------

ALLOWED_OPS = {"Conv", "Relu", "Sigmoid", "Mul", "Add", "MaxPool", "Resize", "Concat", "GlobalAveragePool"}
ALLOWED_OPS |= {"Constant", "Identity"}  # bookkeeping the exporter emits; onnxslim removes them
ALLOWED_OPS |= {"AveragePool"}  # unet-edge's own pooling when traced whole (the product graph pools the raw frame)


def _export(model: torch.nn.Module, x: torch.Tensor, path) -> None:
    torch.onnx.export(
        model,
        (x,),
        str(path),
        opset_version=17,
        dynamo=False,  # the dynamo exporter needs onnxscript; the TorchScript one is enough for these graphs
        input_names=["reflectance"],
        output_names=["logits"],
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("name", [*EDGE, "unet-effb5"])
def test_onnx_export_matches_pytorch(name, tmp_path, effb5):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(2)
    model = effb5 if name == "unet-effb5" else build_model(name, BANDS, CLASSES).eval()
    x = torch.rand(1, BANDS, 64, 64)
    x = x / x.sum(1, keepdim=True)  # L1-normalised spectra, as the models see them
    path = tmp_path / f"{name}.onnx"
    _export(model, x, path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    ops = {node.op_type for node in proto.graph.node}
    assert ops <= ALLOWED_OPS, ops - ALLOWED_OPS
    for node in proto.graph.node:
        if node.op_type == "Resize":
            mode = next(a.s for a in node.attribute if a.name == "mode")
            assert mode in (b"linear", b"nearest")
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [1, BANDS, 64, 64]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"reflectance": x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("name", EDGE)
def test_openvino_runs_the_export(name, tmp_path):
    ov = pytest.importorskip("openvino")
    model = build_model(name, BANDS, CLASSES).eval()
    x = torch.rand(1, BANDS, 32, 32)
    path = tmp_path / f"{name}.onnx"
    _export(model, x, path)
    # f32 explicitly: on CPUs with AMX/AVX512-BF16 OpenVINO's CPU plugin otherwise infers in bf16
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    logits = compiled(x.numpy())[0]
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(x).numpy(), atol=1e-4, rtol=0)
