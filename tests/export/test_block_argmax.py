"""The block arg-max (xenoedge.export.block_argmax): the dense graph's classes, full-size work only
where classes meet; in ONNX Runtime and OpenVINO, on synthetic logits and on an exported model."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import POOL, camera, checkpoints, make_camera, run
from xenoedge.export.block_argmax import BLOCK_PREFIX, block_argmax_post
from xenoedge.export.channels_last_post import channels_last_post
from xenoedge.export.onnx_export import CLASSES_OUTPUT, CONFIDENCE_OUTPUT, POST_NODES, export_onnx
from xenoedge.xeno.checkpoint import load_model

__all__ = ["camera", "checkpoints"]  # fixtures


def dense_post(n_classes: int, h: int, w: int, pool: int, crop: tuple[int, int] | None = None) -> onnx.ModelProto:
    """The export's dense post-processing alone: logits (1, K, h, w) -> Resize x pool -> [crop] ->
    ArgMax -> uint8 classes, with the export's node names."""
    out_h, out_w = crop or (h * pool, w * pool)
    inits = [numpy_helper.from_array(np.array([1, 1, pool, pool], np.float32), "scales")]
    nodes = [
        helper.make_node(
            "Resize",
            ["logits", "", "scales"],
            ["up"],
            name=POST_NODES["upsample"],
            mode="linear",
            coordinate_transformation_mode="half_pixel",
        )
    ]
    upsampled = "up"
    if crop:
        inits += [
            numpy_helper.from_array(np.array([0, 0], np.int64), "crop_starts"),
            numpy_helper.from_array(np.array(crop, np.int64), "crop_ends"),
            numpy_helper.from_array(np.array([2, 3], np.int64), "crop_axes"),
        ]
        nodes.append(
            helper.make_node(
                "Slice", ["up", "crop_starts", "crop_ends", "crop_axes"], ["cropped"], name=POST_NODES["crop"]
            )
        )
        upsampled = "cropped"
    nodes += [
        helper.make_node("ArgMax", [upsampled], ["am"], name=POST_NODES["argmax"], axis=1, keepdims=0),
        helper.make_node("Cast", ["am"], [CLASSES_OUTPUT], name=POST_NODES["cast"], to=TensorProto.UINT8),
    ]
    graph = helper.make_graph(
        nodes,
        "post",
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, n_classes, h, w])],
        [helper.make_tensor_value_info(CLASSES_OUTPUT, TensorProto.UINT8, [1, out_h, out_w])],
        inits,
    )
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def classes_of(model: onnx.ModelProto, logits: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([CLASSES_OUTPUT], {"logits": logits})[0]


def logit_fields(n_classes: int, h: int, w: int, seed: int) -> dict[str, np.ndarray]:
    """Logits with few boundaries (smooth regions), every pixel a boundary (noise), and none."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    centres = rng.uniform(0, 1, (n_classes, 2)) * (h, w)
    smooth = -np.hypot(yy[None] - centres[:, 0, None, None], xx[None] - centres[:, 1, None, None]) / 3
    return {
        "regions": smooth[None].astype(np.float32),
        "noise": rng.normal(0, 1, (1, n_classes, h, w)).astype(np.float32),
        "uniform": np.broadcast_to(
            np.arange(n_classes, dtype=np.float32)[None, :, None, None], (1, n_classes, h, w)
        ).copy(),
    }


@pytest.mark.parametrize("pool", [2, 4, 8])
@pytest.mark.parametrize("crop", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_block_argmax_gives_the_dense_classes(pool, crop, channels_last):
    """Regions, noise (every block on a boundary) and a constant field (no boundary block): the
    rewritten graph's classes equal the dense graph's, cropped frames and channels-last included."""
    n_classes, h, w = 6, 13, 17
    crop_hw = (h * pool - pool // 2 - 1, w * pool - 1) if crop else None
    dense = dense_post(n_classes, h, w, pool, crop_hw)
    if channels_last:
        assert channels_last_post(dense)
    blocks = onnx.ModelProto()
    blocks.CopyFrom(dense)
    assert block_argmax_post(blocks)
    onnx.checker.check_model(blocks, full_check=True)
    names = {n.name for n in blocks.graph.node}
    assert POST_NODES["upsample"] not in names and POST_NODES["argmax"] not in names
    assert any(n.op_type == "NonZero" for n in blocks.graph.node)
    for kind, logits in logit_fields(n_classes, h, w, seed=pool).items():
        expected = classes_of(dense, logits)
        got = classes_of(blocks, logits)
        assert got.shape == expected.shape == (1, *(crop_hw or (h * pool, w * pool))), kind
        mismatched = int(np.count_nonzero(got != expected))
        # ties to the last bit of float rounding may go either way; none in the smooth fields
        assert mismatched <= (2 if kind == "noise" else 0), f"{kind}: {mismatched} pixels differ"
    assert not block_argmax_post(blocks)  # already rewritten: left alone


def test_block_argmax_refuses_what_it_cannot_rewrite():
    """An odd pool, more classes than a uint8 map can mark, or no upsampling: nothing changes."""
    odd = dense_post(4, 5, 6, 3)
    many = dense_post(256, 3, 4, 2)
    for model in (odd, many):
        before = model.SerializeToString()
        assert not block_argmax_post(model)
        assert model.SerializeToString() == before


def test_block_argmax_on_an_exported_model(checkpoints, camera, tmp_path):
    """The exported unet-edge graph (pooling 2, frame not a multiple of it): classes equal to the
    dense graph's in ONNX Runtime and OpenVINO; the confidence keeps its dense upsampling and its
    values; a graph that does not pool is left alone."""
    import openvino as ov

    height, width = 33, 41
    model, _ = load_model(checkpoints["unet-edge"])
    dense = export_onnx(model, height=height, width=width, n_bands=100, path=tmp_path / "dense.onnx")
    rewritten = onnx.load(str(dense))
    assert block_argmax_post(rewritten)
    onnx.checker.check_model(rewritten, full_check=True)
    nodes = {n.name: n for n in rewritten.graph.node}
    assert POST_NODES["argmax"] not in nodes and POST_NODES["upsample"] in nodes  # kept for the confidence
    assert any(name.startswith(BLOCK_PREFIX) for name in nodes)
    blocks = tmp_path / "blocks.onnx"
    onnx.save(rewritten, str(blocks))
    core = ov.Core()
    # f32: the plugin's default is bf16 on CPUs with AVX512-BF16 or AMX, which rounds differently
    compiled = core.compile_model(core.read_model(str(blocks)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    for seed in (3, 4):
        frame = make_camera(height, width).frame(seed=seed, pool=POOL["unet-edge"])
        before, after = run(dense, frame), run(blocks, frame)
        np.testing.assert_array_equal(after[CLASSES_OUTPUT], before[CLASSES_OUTPUT])
        np.testing.assert_array_equal(after[CONFIDENCE_OUTPUT], before[CONFIDENCE_OUTPUT])
        openvino_classes = compiled(frame)[compiled.output(CLASSES_OUTPUT)]
        # OpenVINO may fuse the interpolation's Mul + Add (another rounding): a last-bit tie may flip
        assert np.count_nonzero(openvino_classes != before[CLASSES_OUTPUT]) <= 2
    unpooled = export_onnx(
        load_model(checkpoints["pixel-mlp"])[0], height=height, width=width, n_bands=100, path=tmp_path / "mlp.onnx"
    )
    assert not block_argmax_post(onnx.load(str(unpooled)))
