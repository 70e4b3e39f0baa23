"""INT8 with ONNX Runtime static quantisation: QDQ, symmetric signed INT8, per-channel weights.

What TensorRT accepts and what ONNX Runtime's CPU kernels fuse (DESIGN.md section 4):

1. ``quant_pre_process`` (ONNX shape inference + ORT basic optimisation) first, without ORT's
   symbolic shape inference (it fails on the uint16 raw graph; see ``_pre_process``);
2. ``quantize_static`` with ``QuantFormat.QDQ``, ``QuantType.QInt8`` for activations and weights,
   ``ActivationSymmetric`` and ``WeightSymmetric`` (every zero point is 0), per-channel weight
   scales, float32 biases (``QuantizeBias=False``), MinMax calibration by default (Entropy /
   Percentile on request);
3. only the model's compute ops are quantised (``QUANTIZED_OP_TYPES``), and the named
   pre/post-processing nodes of :mod:`xenoedge.export.onnx_export` are always excluded: calibration
   (counts, gain, clip, L1) stays float32;
4. ``keep_float`` keeps chosen layers in float: ``"first"`` (the first convolution after the
   preprocessing, the spectral layer), ``"head"`` (the last convolution before ArgMax), or
   explicit node names.

Two Q/DQ placements (``placement``, one per runtime that runs the graph):

- ``"onnxruntime"`` (the ``cpu`` target, unchanged since the default bundles were gated):
  Q/DQ on the inputs and outputs of :data:`QUANTIZED_OP_TYPES`, 7-bit weights (see
  ``reduce_range``), the Q/DQ pair on ``logits`` removed afterwards (ONNX Runtime 1.32's quantiser
  excludes output quantisation only per op type, ``OpTypesToExcludeOutputQuantization``, which
  would move every other Q/DQ of these graphs; the one-node removal keeps them as gated);
- ``"tensorrt"`` (Jetson): what NVIDIA's explicit-quantisation guidance asks for, all through
  the quantiser's own options, no graph surgery: Q/DQ only on the inputs of the weighted layers
  (``op_types_to_quantize`` = Conv, ConvTranspose, MatMul, Gemm, and
  ``OpTypesToExcludeOutputQuantization`` = the same: their outputs stay float, so the logits
  are float by construction), ``DedicatedQDQPair`` (one Q/DQ pair per consumer, as TensorRT
  fuses them), per-channel weights on the output-channel axis (``QDQOpTypePerChannelSupportToAxis``
  ``{"MatMul": 1}``), full 8-bit weights (TensorRT accumulates in int32; the 7-bit x86 workaround
  does not apply), float biases (``QuantizeBias=False``).

Calibration inputs are dicts of the graph's inputs (e.g. ``{"raw": (1, H, W, C) uint16,
"dark": (H, W, C) float32, "gain": (H, W, C) float32}``), checked against the graph before use.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from xenoedge.export.errors import ExportError
from xenoedge.export.onnx_export import CLASSES_OUTPUT, LOGITS_TENSOR, POST_NODES, PRE_NODES, SPECTRA_TENSOR

from xenoedge.errors import UnknownNameError

__all__ = [
    "CALIBRATION_METHODS",
    "KEEP_FLOAT_ALIASES",
    "PLACEMENTS",
    "QUANTIZED_OP_TYPES",
    "TENSORRT_QUANTIZED_OP_TYPES",
    "check_calibration_inputs",
    "quantization_error_report",
    "quantization_report_table",
    "quantize_int8",
    "resolve_keep_float",
]

#: Calibration method names → onnxruntime.quantization.CalibrationMethod member names.
CALIBRATION_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
#: Op types that get QDQ pairs: the model's compute and the data-movement ops between them
#: (so the int8 data stays int8 through pooling, upsampling and skip concatenation).
QUANTIZED_OP_TYPES = (
    "Conv",
    "ConvTranspose",
    "MatMul",
    "Gemm",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Resize",
    "Concat",
)
#: The weighted layers, whose inputs TensorRT's guidance quantises (and only those).
TENSORRT_QUANTIZED_OP_TYPES = ("Conv", "ConvTranspose", "MatMul", "Gemm")
#: Q/DQ placements: "onnxruntime" (cpu target) and "tensorrt" (Jetson); see the module doc.
PLACEMENTS = ("onnxruntime", "tensorrt")
#: Aliases accepted by ``keep_float``.
KEEP_FLOAT_ALIASES = ("first", "head")
COMPUTE_OP_TYPES = ("Conv", "ConvTranspose", "MatMul", "Gemm")

_ELEM_NUMPY = {
    1: np.dtype(np.float32),
    2: np.dtype(np.uint8),
    3: np.dtype(np.int8),
    4: np.dtype(np.uint16),
    5: np.dtype(np.int16),
    6: np.dtype(np.int32),
    7: np.dtype(np.int64),
    10: np.dtype(np.float16),
}


def _graph_inputs(model) -> dict[str, tuple[np.dtype | None, tuple[int | str, ...]]]:
    """{name: (numpy dtype, shape with ints or dim_param strings)} of the graph inputs (initializers excluded)."""
    initializers = {t.name for t in model.graph.initializer}
    out = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim)
        out[value.name] = (_ELEM_NUMPY.get(tensor.elem_type), shape)
    return out


def check_calibration_inputs(model, frames: Sequence[Mapping[str, np.ndarray]]) -> None:
    """Raise :class:`ExportError` unless every frame dict has exactly the graph's inputs with its dtypes and shapes.

    ``model`` is an ``onnx.ModelProto``. Dynamic dims (``"height"``, ``"width"``) must agree
    between the inputs of one frame.
    """
    if not frames:
        raise ExportError("INT8 quantisation needs calibration inputs (frames from the data set); got none")
    expected = _graph_inputs(model)
    for i, frame in enumerate(frames):
        if not isinstance(frame, Mapping):
            raise ExportError(f"calibration input {i} must be a dict of graph inputs, got {type(frame).__name__}")
        if set(frame) != set(expected):
            raise ExportError(f"calibration input {i} has inputs {sorted(frame)}, the graph takes {sorted(expected)}")
        dims: dict[str, int] = {}
        for name, (dtype, shape) in expected.items():
            array = frame[name]
            if not isinstance(array, np.ndarray) or array.dtype != dtype:
                got = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
                raise ExportError(f"calibration input {i}: {name!r} must be a {dtype} array, got {got}")
            ok = array.ndim == len(shape)
            for size, dim in zip(array.shape, shape, strict=False):
                if isinstance(dim, int) and dim > 0:
                    ok = ok and size == dim
                elif isinstance(dim, str):
                    ok = ok and dims.setdefault(dim, size) == size
            if not ok:
                raise ExportError(f"calibration input {i}: {name!r} has shape {array.shape}, the graph expects {shape}")


def _consumers(model) -> dict[str, list]:
    out: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _producers(model) -> dict[str, object]:
    return {name: node for node in model.graph.node for name in node.output}


def _first_compute_node(model) -> str:
    """The first Conv/MatMul/Gemm reached from the model input (``spectra``), breadth first."""
    consumers = _consumers(model)
    frontier, seen = [SPECTRA_TENSOR], set()
    while frontier:
        tensor = frontier.pop(0)
        for node in consumers.get(tensor, []):
            if node.name in seen:
                continue
            seen.add(node.name)
            if node.op_type in COMPUTE_OP_TYPES:
                return node.name
            frontier.extend(node.output)
    raise ExportError(f"no {'/'.join(COMPUTE_OP_TYPES)} node after the preprocessing ({SPECTRA_TENSOR!r})")


def _head_compute_node(model) -> str:
    """The last Conv/MatMul/Gemm before the ArgMax (walking back from ``logits``)."""
    producers = _producers(model)
    start = LOGITS_TENSOR
    argmax = next((n for n in model.graph.node if n.name == POST_NODES["argmax"]), None)
    if argmax is not None:
        start = argmax.input[0]
    frontier, seen = [start], set()
    while frontier:
        node = producers.get(frontier.pop(0))
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in COMPUTE_OP_TYPES:
            return node.name
        frontier.extend(node.input)
    raise ExportError(f"no {'/'.join(COMPUTE_OP_TYPES)} node before {CLASSES_OUTPUT!r}")


def resolve_keep_float(model, keep_float: Iterable[str]) -> list[str]:
    """Node names to exclude from quantisation: ``"first"``/``"head"`` resolved, other names checked to exist."""
    names = {node.name for node in model.graph.node}
    out: list[str] = []
    for item in keep_float:
        if item == "first":
            name = _first_compute_node(model)
        elif item == "head":
            name = _head_compute_node(model)
        elif item in names:
            name = item
        else:
            compute = sorted(n.name for n in model.graph.node if n.op_type in COMPUTE_OP_TYPES)
            raise UnknownNameError("node to keep in float", str(item), [*KEEP_FLOAT_ALIASES, *compute])
        if name not in out:
            out.append(name)
    return out


def _float_logits(model) -> None:
    """Remove the QuantizeLinear → DequantizeLinear pair on ``logits`` (in place).

    quantize_static quantises every Conv output, the head's too; ArgMax over int8 logits then
    ties wherever the two best classes are within one quantisation step. ArgMax and Softmax
    run in float either way, so the pair buys nothing: without it the head reads int8 inputs
    and writes float32 logits.
    """
    consumers = _consumers(model)
    for q in [n for n in consumers.get(LOGITS_TENSOR, []) if n.op_type == "QuantizeLinear"]:
        dqs = [n for n in consumers.get(q.output[0], []) if n.op_type == "DequantizeLinear"]
        if len(dqs) != len(consumers.get(q.output[0], [])):
            continue
        for dq in dqs:
            for node in consumers.get(dq.output[0], []):
                for i, name in enumerate(node.input):
                    if name == dq.output[0]:
                        node.input[i] = LOGITS_TENSOR
            model.graph.node.remove(dq)
        model.graph.node.remove(q)
    kept = {name for node in model.graph.node for name in node.input}
    for init in [t for t in model.graph.initializer if t.name not in kept]:
        model.graph.initializer.remove(init)


class _FrameReader:
    """onnxruntime CalibrationDataReader over a list of input dicts."""

    def __init__(self, frames: Sequence[Mapping[str, np.ndarray]]):
        self._frames = list(frames)
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self._frames):
            return None
        self._i += 1
        return dict(self._frames[self._i - 1])

    def rewind(self) -> None:
        self._i = 0

    def __iter__(self):  # CalibrationDataReader's protocol, which qdq_loss_debug iterates
        return iter(self.get_next, None)


def _pre_process(fp32_path: Path, out_path: Path) -> None:
    """``quant_pre_process`` with ONNX shape inference and ORT's basic graph optimisation.

    ORT's *symbolic* shape inference is skipped: it does not complete on the raw graph (the
    uint16 → float Cast chain), and when it fails it writes ``sym_shape_infer_temp.onnx`` plus
    an external-data file into the current directory before raising. ONNX's own shape
    inference, which still runs, types every tensor of these convolutional graphs.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(fp32_path), str(out_path), skip_symbolic_shape=True)


def quantize_int8(
    fp32_path: Path,
    out_path: Path,
    calibration_inputs: Iterable[Mapping[str, np.ndarray]] | None,
    *,
    method: str = "minmax",
    per_channel: bool = True,
    keep_float: Iterable[str] = (),
    symmetric_activations: bool = True,
    quantize_bias: bool = False,
    percentile: float = 99.999,
    reduce_range: bool | None = None,
    placement: str = "onnxruntime",
    report: Path | None = None,
) -> Path:
    """Quantise the FP32 graph at ``fp32_path`` to QDQ INT8 at ``out_path``; returns ``out_path``.

    ``calibration_inputs`` are dicts of the graph's inputs (a few dozen frames from the data
    set); ``method`` one of :data:`CALIBRATION_METHODS` (``percentile`` uses ``percentile``);
    ``keep_float`` names nodes to keep in float (``"first"``, ``"head"`` or node names).
    Weights are always symmetric (zero point 0); activations too unless
    ``symmetric_activations=False`` (which TensorRT does not accept). Biases stay float32 unless
    ``quantize_bias=True`` (int32 bias DequantizeLinear nodes, which TensorRT's ONNX parser has
    rejected; ONNX Runtime quantises float biases itself when it fuses QDQ Conv).

    ``placement``: ``"onnxruntime"`` or ``"tensorrt"`` (see the module doc). ``report``: a JSON
    file to write the per-layer quantisation error report to (:func:`quantization_error_report`,
    on the calibration frames).

    ``reduce_range`` (default: on for ``"onnxruntime"``, off for ``"tensorrt"``) keeps weights in
    7 bits ([-64, 63], still symmetric int8 tensors). ONNX Runtime's x86 int8 kernels on CPUs
    without AVX512-VNNI multiply with ``vpmaddubsw``, whose int16 pair sums saturate with
    full-range weights: on such a CPU (an AVX2-only EPYC here) full-range INT8 agreed with FP32
    on 5-50 % of pixels, 7-bit weights on over 94 %. The accuracy gate runs these graphs in ONNX Runtime on the host,
    so the graph that ships is the one that was gated, whatever CPU measured it. The TensorRT
    placement leaves no Q/DQ on the weighted layers' outputs, so ONNX Runtime cannot fuse them
    into its integer kernels: the host runs them as float convolutions on dequantised int8
    values, TensorRT's int8 x int8 -> int32 arithmetic up to rounding, with no saturation.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in CALIBRATION_METHODS:
        raise UnknownNameError("calibration method", str(method), list(CALIBRATION_METHODS))
    if placement not in PLACEMENTS:
        raise UnknownNameError("Q/DQ placement", str(placement), list(PLACEMENTS))
    tensorrt = placement == "tensorrt"
    if reduce_range is None:
        reduce_range = not tensorrt
    if isinstance(keep_float, str):
        keep_float = (keep_float,)
    frames = list(calibration_inputs or [])
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    source = onnx.load(str(fp32_path))
    check_calibration_inputs(source, frames)
    extra_options = {
        "ActivationSymmetric": bool(symmetric_activations),
        "WeightSymmetric": True,
        "QuantizeBias": bool(quantize_bias),
    }
    if method == "percentile":
        extra_options["CalibPercentile"] = float(percentile)
    op_types = list(QUANTIZED_OP_TYPES)
    if tensorrt:
        op_types = list(TENSORRT_QUANTIZED_OP_TYPES)
        extra_options.update(
            {
                "OpTypesToExcludeOutputQuantization": list(TENSORRT_QUANTIZED_OP_TYPES),
                "DedicatedQDQPair": True,
                "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
            }
        )
    with tempfile.TemporaryDirectory(prefix="xenoedge-int8-") as tmp:
        prepared_path = Path(tmp) / "prepared.onnx"
        _pre_process(fp32_path, prepared_path)
        prepared = onnx.load(str(prepared_path))
        exclude = resolve_keep_float(prepared, keep_float)
        present = {node.name for node in prepared.graph.node}
        fixed = [n for n in (*PRE_NODES.values(), *POST_NODES.values()) if n in present]
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print progress
            quantize_static(
                str(prepared_path),
                str(out_path),
                _FrameReader(frames),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=op_types,
                per_channel=per_channel,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=fixed + exclude,
                calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHODS[method]),
                extra_options=extra_options,
                reduce_range=reduce_range,
            )
        quantized = onnx.load(str(out_path))
        if not tensorrt:
            _float_logits(quantized)
        onnx.checker.check_model(quantized)
        if report is not None:
            onnx.save(quantized, str(Path(tmp) / "quantized.onnx"))
            quantization_error_report(prepared_path, Path(tmp) / "quantized.onnx", frames, report)
    # keep provenance (quantize_static keeps metadata_props on current versions; make sure) and record the recipe
    props = {p.key: p.value for p in source.metadata_props}
    props.update({p.key: p.value for p in quantized.metadata_props})
    props.update(
        {
            "precision": "int8",
            "int8_calibration": method,
            "int8_calibration_frames": str(len(frames)),
            "int8_per_channel": str(bool(per_channel)).lower(),
            "int8_kept_float": ",".join(exclude),
            "int8_weight_bits": "7" if reduce_range else "8",
        }
    )
    if tensorrt:  # the onnxruntime graphs keep the metadata they were gated with
        props["int8_placement"] = placement
    del quantized.metadata_props[:]
    onnx.helper.set_model_props(quantized, props)
    onnx.save(quantized, str(out_path))
    return out_path


def quantization_error_report(
    float_path: Path,
    qdq_path: Path,
    calibration_inputs: Sequence[Mapping[str, np.ndarray]],
    out_json: Path,
    *,
    max_frames: int = 4,
) -> dict:
    """Per-layer quantisation error of a QDQ graph, from ONNX Runtime's ``qdq_loss_debug``; returns the report.

    ``float_path`` is the float graph the QDQ graph was quantised from (the pre-processed one,
    so tensor and weight names match). Both graphs run on up to ``max_frames`` of the inputs
    (``collect_activations``, optimisations off); ``create_activation_matching`` /
    ``compute_activation_error`` give, per quantised activation, the signal-to-quantisation-noise
    ratio (SQNR, dB: higher is better) of its Q/DQ alone (``qdq_sqnr_db``) and of the QDQ model's
    value against the float model's (``float_sqnr_db``, the error accumulated up to there);
    ``create_weight_matching`` / ``compute_weight_error`` the SQNR of every quantised weight.
    Rows are grouped by the layer (node) that reads the tensor, worst first. Writes ``out_json``
    and a Markdown table beside it (same name, ``.md``).
    """
    import json

    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        compute_weight_error,
        create_activation_matching,
        create_weight_matching,
        modify_model_output_intermediate_tensors,
    )

    frames = list(calibration_inputs)[: max(1, max_frames)]
    if not frames:
        raise ExportError("the quantisation error report needs calibration inputs; got none")
    with tempfile.TemporaryDirectory(prefix="xenoedge-qdq-debug-") as tmp:
        float_aug, qdq_aug = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
        modify_model_output_intermediate_tensors(str(float_path), str(float_aug))
        modify_model_output_intermediate_tensors(str(qdq_path), str(qdq_aug))
        float_acts = collect_activations(str(float_aug), _FrameReader(frames))
        qdq_acts = collect_activations(str(qdq_aug), _FrameReader(frames))
    activation_error = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
    weight_error = compute_weight_error(create_weight_matching(str(float_path), str(qdq_path)))

    model = onnx.load(str(float_path))
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    layers: dict[str, dict] = {}
    for node in model.graph.node:
        inputs = [name for name in node.input if name in activation_error]
        weights = [name for name in node.input if name in weight_error]
        if not inputs and not weights:
            continue
        layers[node.name] = {
            "op_type": node.op_type,
            "activations": {
                name: {
                    "qdq_sqnr_db": _rounded(activation_error[name].get("qdq_err")),
                    "float_sqnr_db": _rounded(activation_error[name].get("xmodel_err")),
                }
                for name in inputs
            },
            "weights": {name: {"sqnr_db": _rounded(weight_error[name])} for name in weights},
        }

    def worst(layer: dict) -> float:
        values = [v["float_sqnr_db"] for v in layer["activations"].values() if v["float_sqnr_db"] is not None]
        values += [v["sqnr_db"] for v in layer["weights"].values() if v["sqnr_db"] is not None]
        return min(values, default=float("inf"))

    ordered = dict(sorted(layers.items(), key=lambda item: worst(item[1])))
    report = {
        "float_model": Path(float_path).name,
        "qdq_model": Path(qdq_path).name,
        "frames": len(frames),
        "metric": "SQNR in dB (20 log10 |x| / |x - x_q|; higher is better)",
        "layers": ordered,
        "activations": {name: {k: _rounded(v) for k, v in err.items()} for name, err in activation_error.items()},
        "weights": {name: _rounded(value) for name, value in weight_error.items()},
    }
    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(report, indent=2) + "\n")
    out_json.with_suffix(".md").write_text(quantization_report_table(report))
    return report


def _rounded(value: float | None) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), 2)


def quantization_report_table(report: dict, *, limit: int | None = None) -> str:
    """A short Markdown table of :func:`quantization_error_report`'s layers, worst first."""
    lines = [
        "| layer | op | input SQNR Q/DQ (dB) | input SQNR vs float (dB) | weight SQNR (dB) |",
        "|---|---|---|---|---|",
    ]

    def text(values: list) -> str:
        shown = [f"{v:.1f}" for v in values if v is not None]
        return ", ".join(shown) or "-"

    for name, layer in list(report["layers"].items())[:limit]:
        acts, weights = layer["activations"].values(), layer["weights"].values()
        lines.append(
            f"| `{name}` | {layer['op_type']} | {text([a['qdq_sqnr_db'] for a in acts])} "
            f"| {text([a['float_sqnr_db'] for a in acts])} | {text([w['sqnr_db'] for w in weights])} |"
        )
    return "\n".join(lines) + "\n"
