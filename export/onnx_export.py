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

from calibration.errors import UnknownNameError
from calibration.normalise import L1_EPS, l1_normalise
from calibration.reflectance import MAX_REFLECTANCE, MIN_SIGNAL_COUNTS, signal_range
from export.errors import ExportError

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
)


# ---- numpy mirror -------------------------------------------------------------------------
def reference_gain(dark: np.ndarray, white: np.ndarray) -> np.ndarray:
    """The graph's ``gain`` input: (H, W, C) float32 1 / max(white − dark, MIN_SIGNAL_COUNTS), in 1/counts.

    Compute once per reference load and bind it (with ``dark``) to every frame's inference.

    >>> reference_gain(np.zeros((1, 1, 2), np.float32), np.array([[[4.0, 0.0]]], np.float32)).tolist()
    [[[0.25, 1.0]]]
    """
    return (np.float32(1.0) / signal_range(dark, white)).astype(np.float32)


def preprocess_reference(raw: np.ndarray, dark: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """NumPy mirror of the raw graph's preprocessing: (H, W, C) L1 spectra, float32.

    ``raw`` (H, W, C) integer counts (uint16), ``dark`` (H, W, C) float32 counts, ``gain``
    (H, W, C) float32 1/counts (:func:`reference_gain`). Same operations in the same order as
    the graph: (raw − dark) · gain, clipped to [0, MAX_REFLECTANCE], then
    :func:`calibration.normalise.l1_normalise`. Each spectrum sums to ~1.
    """
    raw = np.asarray(raw)
    if raw.ndim != 3:
        raise ExportError(f"raw frame must be (H, W, C), got shape {raw.shape}")
    out = np.empty(raw.shape, dtype=np.float32)
    np.subtract(raw.astype(np.float32), np.asarray(dark, dtype=np.float32), out=out)
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
    """Metadata for :func:`export_onnx` from a checkpoint config (``xeno.checkpoint.load_model``'s second value)."""
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


def _metadata_strings(model, *, variant: str, n_bands: int, extra: Mapping[str, Any] | None) -> dict[str, str]:
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
    }
    for key, value in (extra or {}).items():
        if key in ("variant", "n_bands", "l1_eps", "max_reflectance"):
            raise ExportError(f"metadata key {key!r} is set by the export itself")
        values[key] = value
    wavelengths = values["wavelengths_nm"]
    if wavelengths and len(wavelengths) != n_bands:
        raise ExportError(f"metadata wavelengths_nm has {len(wavelengths)} entries, the model takes {n_bands} bands")
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


# ---- export ---------------------------------------------------------------------------------
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
            "pad the frame (xeno.models.pad_to_multiple) or export at a size that divides"
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


def _compose(core, *, variant: str, confidence: bool, n_bands: int, height: int | str, width: int | str, opset: int):
    """Wrap the bare model graph with the named pre/post nodes; returns a new ModelProto."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c = n_bands
    nodes, inits, inputs = [], [], []
    inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "pre/clip_min"))
    inits.append(numpy_helper.from_array(np.array(MAX_REFLECTANCE, np.float32), "pre/clip_max"))
    inits.append(numpy_helper.from_array(np.array([-1], np.int64), "pre/l1_axes"))
    inits.append(numpy_helper.from_array(np.array(L1_EPS, np.float32), "pre/l1_eps"))
    if variant == "raw":
        inputs += [
            _value_info(RAW_INPUT, TensorProto.UINT16, [1, height, width, c]),
            _value_info(DARK_INPUT, TensorProto.FLOAT, [height, width, c]),
            _value_info(GAIN_INPUT, TensorProto.FLOAT, [height, width, c]),
        ]
        nodes += [
            helper.make_node("Cast", [RAW_INPUT], ["pre/counts"], name=PRE_NODES["cast"], to=TensorProto.FLOAT),
            helper.make_node("Sub", ["pre/counts", DARK_INPUT], ["pre/signal"], name=PRE_NODES["sub_dark"]),
            helper.make_node("Mul", ["pre/signal", GAIN_INPUT], ["pre/reflectance"], name=PRE_NODES["mul_gain"]),
        ]
        reflectance = "pre/reflectance"
    else:
        inputs.append(_value_info(REFLECTANCE_INPUT, TensorProto.FLOAT, [1, height, width, c]))
        reflectance = REFLECTANCE_INPUT
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
    nodes += [
        helper.make_node("ArgMax", [LOGITS_TENSOR], ["post/argmax"], name=POST_NODES["argmax"], axis=1, keepdims=0),
        helper.make_node("Cast", ["post/argmax"], [CLASSES_OUTPUT], name=POST_NODES["cast"], to=TensorProto.UINT8),
    ]
    outputs = [_value_info(CLASSES_OUTPUT, TensorProto.UINT8, [1, height, width])]
    if confidence:
        nodes += [
            helper.make_node("Softmax", [LOGITS_TENSOR], ["post/probabilities"], name=POST_NODES["softmax"], axis=1),
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
    """Export a xenoedge model (``xeno.models``) to one ONNX file at ``path``; returns ``path``.

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

    path = Path(path)
    _check_request(model, height=height, width=width, n_bands=n_bands, variant=variant, opset=opset)
    props = _metadata_strings(model, variant=variant, n_bands=n_bands, extra=metadata)
    with tempfile.TemporaryDirectory(prefix="xenoedge-onnx-") as tmp:
        core_path = Path(tmp) / "core.onnx"
        core = _export_model_graph(
            model, height=height, width=width, n_bands=n_bands, dynamic=dynamic, opset=opset, path=core_path
        )
    h: int | str = HEIGHT_DIM if dynamic else height
    w: int | str = WIDTH_DIM if dynamic else width
    full = _compose(core, variant=variant, confidence=confidence, n_bands=n_bands, height=h, width=w, opset=opset)
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
