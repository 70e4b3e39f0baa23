"""PyTorch → ONNX with the calibration folded into the graph (opset 17, ONNX Runtime / TensorRT / OpenVINO).

The exported graph takes frames as the camera gives them and returns class ids, so the device
runs one session per frame and nothing else. The graph contract (``docs/export_onnx.md``):

``raw`` variant (default)::

    raw   (1, H, W, C) uint16  raw counts, channels last (as the camera / demosaicer gives them)
    dark  (H, W, C)    float32 dark reference, counts
    gain  (H, W, C)    float32 1 / max(white − dark, MIN_SIGNAL_COUNTS), 1/counts

    Cast(float32) → Sub(dark) → Mul(gain) → Clip[0, MAX_REFLECTANCE] → L1 over C
    (x / (ReduceSum(|x|) + L1_EPS)) → Transpose(NCHW) → model (scales by C itself) → logits

``reflectance`` variant: input ``reflectance`` (1, H, W, C) float32, then Clip, L1, Transpose,
model. Both variants output::

    classes     (1, H, W) uint8    ArgMax over classes
    confidence  (1, H, W) float32  max softmax probability (``confidence=True``, the default)

``dark`` and ``gain`` are graph inputs, not constants: a recalibrated device binds new ones
without re-export (compute them once per reference load with :func:`reference_gain`).

The pre/post-processing nodes carry fixed names (``PRE_NODES`` / ``POST_NODES``) so that
quantisation and FP16 conversion can leave them in float32 by name.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from xenoedge.calibration.normalise import L1_EPS, l1_normalise
from xenoedge.calibration.reflectance import MAX_REFLECTANCE, MIN_SIGNAL_COUNTS, signal_range
from xenoedge.export.errors import ExportError

from xenoedge.errors import UnknownNameError

__all__ = [
    "CLASSES_OUTPUT",
    "CONFIDENCE_OUTPUT",
    "DARK_INPUT",
    "DEFAULT_OPSET",
    "GAIN_INPUT",
    "HEIGHT_DIM",
    "METADATA_KEYS",
    "POST_NODES",
    "PRE_NODES",
    "RAW_INPUT",
    "REFLECTANCE_INPUT",
    "VARIANTS",
    "WIDTH_DIM",
    "export_onnx",
    "graph_metadata",
    "metadata_from_config",
    "preprocess_reference",
    "reference_gain",
]

# ---- the graph contract ------------------------------------------------------------------
RAW_INPUT = "raw"  # (1, H, W, C) uint16 counts
DARK_INPUT = "dark"  # (H, W, C) float32 counts
GAIN_INPUT = "gain"  # (H, W, C) float32 1/counts
REFLECTANCE_INPUT = "reflectance"  # (1, H, W, C) float32
CLASSES_OUTPUT = "classes"  # (1, H, W) uint8
CONFIDENCE_OUTPUT = "confidence"  # (1, H, W) float32
HEIGHT_DIM, WIDTH_DIM = "height", "width"  # dim_param names with dynamic=True
DEFAULT_OPSET = 17

#: Inputs per variant, in order.
VARIANTS: dict[str, tuple[str, ...]] = {
    "raw": (RAW_INPUT, DARK_INPUT, GAIN_INPUT),
    "reflectance": (REFLECTANCE_INPUT,),
}

#: Names of the preprocessing nodes (graph input → NCHW spectra), in graph order.
PRE_NODES = {
    "cast": "pre/cast_float",
    "pad": "pre/pad_to_pool",
    "pool_rows_view": "pre/pool_rows_view",
    "pool_rows": "pre/pool_rows_sum",
    "pool_cols_view": "pre/pool_cols_view",
    "pool_cols": "pre/pool_cols_sum",
    "pool_mean": "pre/pool_mean",
    "pool_nhwc": "pre/pool_nhwc",
    "sub_dark": "pre/sub_dark",
    "mul_gain": "pre/mul_gain",
    "clip": "pre/clip",
    "abs": "pre/l1_abs",
    "sum": "pre/l1_sum",
    "add_eps": "pre/l1_add_eps",
    "div": "pre/l1_div",
    "transpose": "pre/to_nchw",
}
#: Names of the postprocessing nodes (logits → outputs).
POST_NODES = {
    "to_nhwc": "post/logits_to_nhwc",  # ONNX Runtime CPU targets only (xenoedge.export.channels_last_post)
    "upsample": "post/upsample_logits",
    "crop": "post/crop_logits",
    "argmax": "post/argmax",
    "cast": "post/classes_uint8",
    "softmax": "post/softmax",
    "max": "post/confidence_max",
}
#: Internal tensor names at the model's boundary.
SPECTRA_TENSOR = "spectra"  # (1, C, H, W) float32 L1 spectra, the model's input
LOGITS_TENSOR = "logits"  # (1, n_classes, H, W) float32

#: metadata_props keys every export writes (values are strings; lists are JSON).
METADATA_KEYS = (
    "xenoedge_version",
    "model_name",
    "n_bands",
    "n_classes",
    "wavelengths_nm",
    "labels",
    "variant",
    "l1_eps",
    "max_reflectance",
    "pool",
)


# ---- numpy mirror -------------------------------------------------------------------------
def reference_gain(dark: np.ndarray, white: np.ndarray) -> np.ndarray:
    """The graph's ``gain`` input: (H, W, C) float32 1 / max(white − dark, MIN_SIGNAL_COUNTS), in 1/counts.

    Compute once per reference load and bind it (with ``dark``) to every frame's inference.

    >>> reference_gain(np.zeros((1, 1, 2), np.float32), np.array([[[4.0, 0.0]]], np.float32)).tolist()
    [[[0.25, 1.0]]]
    """
    return (np.float32(1.0) / signal_range(dark, white)).astype(np.float32)


def preprocess_reference(raw: np.ndarray, dark: np.ndarray, gain: np.ndarray, *, pool: int = 1) -> np.ndarray:
    """NumPy mirror of the raw graph's preprocessing: (h, w, C) L1 spectra, float32.

    ``raw`` (H, W, C) integer counts (uint16); ``dark`` (counts) and ``gain`` (1/counts,
    :func:`reference_gain`) at the graph's reference size: (H, W, C), or the working size
    (H/p, W/p, C) when ``pool`` = p > 1 (``xenoedge.calibration.pooling.pooled_references``). Same
    operations in the same order as the graph: the frame pooled p x p
    (``xenoedge.calibration.pooling.pool_blocks``), (raw − dark) · gain, clipped to
    [0, MAX_REFLECTANCE], then :func:`xenoedge.calibration.normalise.l1_normalise`. Each spectrum sums to ~1.
    """
    from xenoedge.calibration.pooling import pool_blocks

    raw = np.asarray(raw)
    if raw.ndim != 3:
        raise ExportError(f"raw frame must be (H, W, C), got shape {raw.shape}")
    counts = pool_blocks(raw, pool)
    out = np.empty(counts.shape, dtype=np.float32)
    np.subtract(counts, np.asarray(dark, dtype=np.float32), out=out)
    np.multiply(out, np.asarray(gain, dtype=np.float32), out=out)
    np.clip(out, 0.0, MAX_REFLECTANCE, out=out)
    return l1_normalise(out)


# ---- metadata -------------------------------------------------------------------------------
def xenoedge_version() -> str:
    """The installed xenoedge distribution's version ("0+unknown" when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xenoedge")
    except PackageNotFoundError:
        return "0+unknown"


def metadata_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata for :func:`export_onnx` from a checkpoint config (the second value of
    ``xenoedge.xeno.checkpoint.load_model``)."""
    meta: dict[str, Any] = {}
    if "wavelengths_nm" in config:
        meta["wavelengths_nm"] = [float(v) for v in config["wavelengths_nm"]]
    if "labels" in config:
        meta["labels"] = config["labels"]
    if "label_set" in config:
        meta["label_set"] = config["label_set"]
    if config.get("sensor"):
        meta["sensor"] = config["sensor"]
    return meta


def graph_metadata(path: Path) -> dict[str, Any]:
    """metadata_props of an exported graph, JSON values decoded (``wavelengths_nm``, ``labels``, numbers)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    out: dict[str, Any] = {}
    for prop in model.metadata_props:
        try:
            out[prop.key] = json.loads(prop.value)
        except json.JSONDecodeError:
            out[prop.key] = prop.value
    return out


def _metadata_strings(
    model, *, variant: str, n_bands: int, extra: Mapping[str, Any] | None, pool: int = 1
) -> dict[str, str]:
    values: dict[str, Any] = {
        "xenoedge_version": xenoedge_version(),
        "model_name": getattr(model, "registry_name", type(model).__name__),
        "n_bands": n_bands,
        "n_classes": int(getattr(model, "n_classes", 0)),
        "wavelengths_nm": [],
        "labels": [],
        "variant": variant,
        "l1_eps": L1_EPS,
        "max_reflectance": MAX_REFLECTANCE,
        "min_signal_counts": MIN_SIGNAL_COUNTS,
        "pool": pool,
    }
    for key, value in (extra or {}).items():
        if key in ("variant", "n_bands", "l1_eps", "max_reflectance", "pool"):
            raise ExportError(f"metadata key {key!r} is set by the export itself")
        values[key] = value
    wavelengths = values["wavelengths_nm"]
    if wavelengths and len(wavelengths) != n_bands:
        raise ExportError(f"metadata wavelengths_nm has {len(wavelengths)} entries, the model takes {n_bands} bands")
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


# ---- export ---------------------------------------------------------------------------------
def _WorkingSize(model):
    """An ``nn.Module`` whose forward is ``model.forward_working``: what a pooling graph traces."""
    from torch import nn

    class WorkingSize(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner.forward_working(x)

    return WorkingSize(model)


def model_pool(model) -> int:
    """The model's pooling factor from frame to working size (1 for models that work at full size)."""
    return int(getattr(model, "input_pool", 1) or 1)


def _check_request(model, *, height: int, width: int, n_bands: int, variant: str, opset: int) -> None:
    if variant not in VARIANTS:
        raise UnknownNameError("graph variant", str(variant), list(VARIANTS))
    in_channels = getattr(model, "in_channels", None)
    if in_channels is not None and in_channels != n_bands:
        raise ExportError(f"n_bands={n_bands} does not match the model, which takes {in_channels} bands")
    multiple = int(getattr(model, "required_multiple", 1))
    if height < 1 or width < 1 or height % multiple or width % multiple:
        raise ExportError(
            f"input size {height}x{width} is not a positive multiple of {multiple} "
            f"({getattr(model, 'registry_name', type(model).__name__)} pools {multiple}x); "
            "pad the frame (xenoedge.xeno.models.pad_to_multiple) or export at a size that divides"
        )
    if opset < DEFAULT_OPSET:
        raise ExportError(f"opset {opset} is below the supported minimum {DEFAULT_OPSET}")


def _export_model_graph(model, *, height: int, width: int, n_bands: int, dynamic: bool, opset: int, path: Path):
    """torch.onnx.export (TorchScript exporter) of the bare model: spectra (1, C, H, W) → logits."""
    import onnx
    import torch

    was_training = model.training
    model.eval()
    example = torch.full((1, n_bands, height, width), 1.0 / n_bands, dtype=torch.float32)
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {
            SPECTRA_TENSOR: {2: HEIGHT_DIM, 3: WIDTH_DIM},
            LOGITS_TENSOR: {2: HEIGHT_DIM, 3: WIDTH_DIM},
        }
    try:
        # dynamo=False is deliberate (the dynamo exporter needs onnxscript); silence its deprecation notice
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            # shape-dependent Python branches (padding to a multiple) are fixed at the export size, as intended
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=[SPECTRA_TENSOR],
                output_names=[LOGITS_TENSOR],
                opset_version=opset,
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    return onnx.load(str(path))


def _value_info(name: str, elem_type: int, shape: list[int | str]):
    from onnx import helper

    return helper.make_tensor_value_info(name, elem_type, shape)


def _pool_nodes(counts: str, *, pool: int, height: int, width: int, n_bands: int):
    """Nodes and initialisers that pool (1, H, W, C) float32 ``counts`` p x p to (1, H/p, W/p, C).

    Rows first, as two ReduceSum nodes over reshaped views (measured fastest in both ONNX
    Runtime and OpenVINO, docs/models.md); H and W are edge-padded to multiples of p first.
    Returns (nodes, initialisers, name of the pooled tensor).
    """
    from onnx import helper, numpy_helper
    from xenoedge.calibration.pooling import working_shape

    h, w = working_shape(height, width, pool)
    hp, wp = h * pool, w * pool
    nodes, inits = [], []
    if (hp, wp) != (height, width):
        pads = np.array([0, 0, 0, 0, 0, hp - height, wp - width, 0], np.int64)
        inits.append(numpy_helper.from_array(pads, "pre/pool_pads"))
        nodes.append(
            helper.make_node("Pad", [counts, "pre/pool_pads"], ["pre/padded"], name=PRE_NODES["pad"], mode="edge")
        )
        counts = "pre/padded"
    inits += [
        numpy_helper.from_array(np.array([1, h, pool, wp * n_bands], np.int64), "pre/pool_rows_shape"),
        numpy_helper.from_array(np.array([1, h, w, pool, n_bands], np.int64), "pre/pool_cols_shape"),
        numpy_helper.from_array(np.array([2], np.int64), "pre/pool_rows_axis"),
        numpy_helper.from_array(np.array([3], np.int64), "pre/pool_cols_axis"),
        numpy_helper.from_array(np.array(1.0 / (pool * pool), np.float32), "pre/pool_scale"),
    ]
    nodes += [
        helper.make_node("Reshape", [counts, "pre/pool_rows_shape"], ["pre/rows"], name=PRE_NODES["pool_rows_view"]),
        helper.make_node(
            "ReduceSum", ["pre/rows", "pre/pool_rows_axis"], ["pre/rows_sum"], name=PRE_NODES["pool_rows"], keepdims=0
        ),
        helper.make_node(
            "Reshape", ["pre/rows_sum", "pre/pool_cols_shape"], ["pre/cols"], name=PRE_NODES["pool_cols_view"]
        ),
        helper.make_node(
            "ReduceSum", ["pre/cols", "pre/pool_cols_axis"], ["pre/block_sum"], name=PRE_NODES["pool_cols"], keepdims=0
        ),
        helper.make_node("Mul", ["pre/block_sum", "pre/pool_scale"], ["pre/pooled"], name=PRE_NODES["pool_mean"]),
    ]
    return nodes, inits, "pre/pooled"


def _compose(
    core,
    *,
    variant: str,
    confidence: bool,
    n_bands: int,
    height: int | str,
    width: int | str,
    opset: int,
    pool: int = 1,
):
    """Wrap the bare model graph with the named pre/post nodes; returns a new ModelProto.

    ``pool`` > 1 (static sizes only): the raw frame is pooled before calibration, ``dark`` and
    ``gain`` are inputs at the working size, and the core's logits are upsampled (bilinear,
    half-pixel, as ``F.interpolate(align_corners=False)``) and cropped to H x W before the arg-max.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from xenoedge.calibration.pooling import working_shape

    c = n_bands
    nodes, inits, inputs = [], [], []
    inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "pre/clip_min"))
    inits.append(numpy_helper.from_array(np.array(MAX_REFLECTANCE, np.float32), "pre/clip_max"))
    inits.append(numpy_helper.from_array(np.array([-1], np.int64), "pre/l1_axes"))
    inits.append(numpy_helper.from_array(np.array(L1_EPS, np.float32), "pre/l1_eps"))
    ref_h, ref_w = (height, width) if pool == 1 else working_shape(int(height), int(width), pool)
    if variant == "raw":
        inputs += [
            _value_info(RAW_INPUT, TensorProto.UINT16, [1, height, width, c]),
            _value_info(DARK_INPUT, TensorProto.FLOAT, [ref_h, ref_w, c]),
            _value_info(GAIN_INPUT, TensorProto.FLOAT, [ref_h, ref_w, c]),
        ]
        nodes.append(
            helper.make_node("Cast", [RAW_INPUT], ["pre/counts"], name=PRE_NODES["cast"], to=TensorProto.FLOAT)
        )
        counts = "pre/counts"
        if pool > 1:
            pool_nodes, pool_inits, counts = _pool_nodes(
                counts, pool=pool, height=int(height), width=int(width), n_bands=c
            )
            nodes += pool_nodes
            inits += pool_inits
        nodes += [
            helper.make_node("Sub", [counts, DARK_INPUT], ["pre/signal"], name=PRE_NODES["sub_dark"]),
            helper.make_node("Mul", ["pre/signal", GAIN_INPUT], ["pre/reflectance"], name=PRE_NODES["mul_gain"]),
        ]
        reflectance = "pre/reflectance"
    else:
        inputs.append(_value_info(REFLECTANCE_INPUT, TensorProto.FLOAT, [1, height, width, c]))
        reflectance = REFLECTANCE_INPUT
        if pool > 1:
            pool_nodes, pool_inits, reflectance = _pool_nodes(
                reflectance, pool=pool, height=int(height), width=int(width), n_bands=c
            )
            nodes += pool_nodes
            inits += pool_inits
    nodes += [
        helper.make_node(
            "Clip", [reflectance, "pre/clip_min", "pre/clip_max"], ["pre/clipped"], name=PRE_NODES["clip"]
        ),
        helper.make_node("Abs", ["pre/clipped"], ["pre/abs"], name=PRE_NODES["abs"]),
        helper.make_node("ReduceSum", ["pre/abs", "pre/l1_axes"], ["pre/l1"], name=PRE_NODES["sum"], keepdims=1),
        helper.make_node("Add", ["pre/l1", "pre/l1_eps"], ["pre/l1_eps_added"], name=PRE_NODES["add_eps"]),
        helper.make_node("Div", ["pre/clipped", "pre/l1_eps_added"], ["pre/spectra_nhwc"], name=PRE_NODES["div"]),
        helper.make_node(
            "Transpose", ["pre/spectra_nhwc"], [SPECTRA_TENSOR], name=PRE_NODES["transpose"], perm=[0, 3, 1, 2]
        ),
    ]
    nodes += list(core.graph.node)
    logits = LOGITS_TENSOR
    if pool > 1:
        scales = np.array([1.0, 1.0, float(pool), float(pool)], np.float32)
        inits.append(numpy_helper.from_array(scales, "post/upsample_scales"))
        nodes.append(
            helper.make_node(
                "Resize",
                [LOGITS_TENSOR, "", "post/upsample_scales"],
                ["post/logits_upsampled"],
                name=POST_NODES["upsample"],
                mode="linear",
                coordinate_transformation_mode="half_pixel",
            )
        )
        logits = "post/logits_upsampled"
        if int(ref_h) * pool != int(height) or int(ref_w) * pool != int(width):
            inits += [
                numpy_helper.from_array(np.array([0, 0], np.int64), "post/crop_starts"),
                numpy_helper.from_array(np.array([int(height), int(width)], np.int64), "post/crop_ends"),
                numpy_helper.from_array(np.array([2, 3], np.int64), "post/crop_axes"),
            ]
            nodes.append(
                helper.make_node(
                    "Slice",
                    [logits, "post/crop_starts", "post/crop_ends", "post/crop_axes"],
                    ["post/logits_cropped"],
                    name=POST_NODES["crop"],
                )
            )
            logits = "post/logits_cropped"
    nodes += [
        helper.make_node("ArgMax", [logits], ["post/argmax"], name=POST_NODES["argmax"], axis=1, keepdims=0),
        helper.make_node("Cast", ["post/argmax"], [CLASSES_OUTPUT], name=POST_NODES["cast"], to=TensorProto.UINT8),
    ]
    outputs = [_value_info(CLASSES_OUTPUT, TensorProto.UINT8, [1, height, width])]
    if confidence:
        nodes += [
            helper.make_node("Softmax", [logits], ["post/probabilities"], name=POST_NODES["softmax"], axis=1),
            helper.make_node(
                "ReduceMax", ["post/probabilities"], [CONFIDENCE_OUTPUT], name=POST_NODES["max"], axes=[1], keepdims=0
            ),
        ]
        outputs.append(_value_info(CONFIDENCE_OUTPUT, TensorProto.FLOAT, [1, height, width]))
    graph = helper.make_graph(nodes, "xenoedge", inputs, outputs, initializer=inits + list(core.graph.initializer))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="xenoedge")
    model.ir_version = core.ir_version
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def _name_unnamed_nodes(model) -> None:
    """Give every node a unique name (quantisation and FP16 block lists address nodes by name)."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def _check(model, what: str) -> None:
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"ONNX checker rejected the {what} graph: {exc}") from None


def _simplify(model):
    import onnxslim

    slim = onnxslim.slim(model)
    if slim is None:  # onnxslim returns None only when it wrote to a path
        raise ExportError("onnxslim returned no model")
    return slim


def export_onnx(
    model,
    *,
    height: int,
    width: int,
    n_bands: int,
    path: Path,
    variant: str = "raw",
    confidence: bool = True,
    dynamic: bool = False,
    opset: int = DEFAULT_OPSET,
    metadata: Mapping[str, Any] | None = None,
    simplify: bool = True,
) -> Path:
    """Export a xenoedge model (``xenoedge.xeno.models``) to one ONNX file at ``path``; returns ``path``.

    ``height`` x ``width`` is the frame size in pixels (multiples of ``model.required_multiple``);
    with ``dynamic=True`` H and W become the dims ``"height"`` / ``"width"`` (the example size is
    still checked; every size run later must divide by ``required_multiple`` too). ``variant``
    is ``"raw"`` (uint16 counts plus ``dark``/``gain`` inputs) or ``"reflectance"``; see the
    module docstring for the exact contract. ``metadata`` adds ONNX ``metadata_props`` (e.g.
    :func:`metadata_from_config`: ``wavelengths_nm``, ``labels``); non-string values are stored
    as JSON. The graph is checked with ``onnx.checker`` (full check) before and after onnxslim
    simplification (``simplify=False`` skips it).
    """
    import tempfile

    import onnx
    from xenoedge.calibration.pooling import working_shape

    path = Path(path)
    _check_request(model, height=height, width=width, n_bands=n_bands, variant=variant, opset=opset)
    pool = model_pool(model)
    if pool > 1 and dynamic:
        raise ExportError(
            f"{model.registry_name} pools the frame {pool}x{pool} inside the graph, which is exported at a fixed "
            "frame size; export without --dynamic, at the camera's frame size (--shape)"
        )
    props = _metadata_strings(model, variant=variant, n_bands=n_bands, extra=metadata, pool=pool)
    # An edge-first model's own torch pooling is not traced: the graph pools the raw frame itself.
    traced, (core_h, core_w) = model, (height, width)
    if pool > 1:
        traced, (core_h, core_w) = _WorkingSize(model), working_shape(height, width, pool)
    with tempfile.TemporaryDirectory(prefix="xenoedge-onnx-") as tmp:
        core_path = Path(tmp) / "core.onnx"
        was_training = model.training
        model.eval()
        try:
            core = _export_model_graph(
                traced, height=core_h, width=core_w, n_bands=n_bands, dynamic=dynamic, opset=opset, path=core_path
            )
        finally:
            model.train(was_training)
    h: int | str = HEIGHT_DIM if dynamic else height
    w: int | str = WIDTH_DIM if dynamic else width
    full = _compose(
        core, variant=variant, confidence=confidence, n_bands=n_bands, height=h, width=w, opset=opset, pool=pool
    )
    _name_unnamed_nodes(full)
    _check(full, "exported")
    if simplify:
        full = _simplify(full)
        _name_unnamed_nodes(full)
        _check(full, "simplified")
    del full.metadata_props[:]
    onnx.helper.set_model_props(full, props)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(full, str(path))
    return path
