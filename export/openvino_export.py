"""OpenVINO IR from an exported ONNX graph: FP32, FP16 (compressed weights) and INT8 via NNCF.

- :func:`convert_to_ir` — ``openvino.convert_model`` then ``openvino.save_model``. FP32 saves
  with ``compress_to_fp16=False`` (``save_model`` compresses by default!); FP16 saves with
  ``compress_to_fp16=True``: weights are stored in FP16, inputs and outputs keep their types
  (``raw`` uint16, ``classes`` uint8 ...).
- :func:`quantize_ir_int8` — NNCF post-training quantisation of the FP32 model: plain
  ``nncf.quantize`` (MinMax statistics over ``subset_size`` calibration inputs, symmetric
  ``performance`` preset), or ``nncf.quantize_with_accuracy_control`` when ``max_drop`` is
  given, which reverts the most harmful quantised operations to float until the validation
  metric drops by at most ``max_drop`` (absolute).

The IR is two files: ``model.xml`` (graph) and ``model.bin`` (weights) side by side. Both
functions write them to a temporary name first and rename them into place, so a failed
conversion leaves no half-written IR.

Precision at inference: an FP32 IR on a CPU with AVX512-BF16/AMX runs in bf16 unless the
plugin is told ``INFERENCE_PRECISION_HINT=f32`` (``xenoedge.export.runners.OpenVinoRunner`` does so by
default). An FP16 IR runs in f32 on CPU (weights are decompressed at load) and natively in
f16 on GPU/NPU.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from xenoedge.export.accuracy import mean_dsc, pixel_agreement
from xenoedge.export.errors import ExportError
from xenoedge.export.runners import classes_from_outputs

__all__ = ["IGNORED_ALIASES", "IR_PRECISIONS", "VALIDATION_METRICS", "convert_to_ir", "ir_metadata", "quantize_ir_int8"]

#: Precisions :func:`convert_to_ir` writes.
IR_PRECISIONS = ("fp32", "fp16")
#: Metrics the accuracy-controlled INT8 path can hold to ``max_drop``.
VALIDATION_METRICS = ("dsc", "pixel_agreement")

Inputs = Mapping[str, np.ndarray]

#: Operations NNCF always leaves in float: the folded pre- and postprocessing of the export graph
#: (``xenoedge.export.onnx_export.PRE_NODES`` / ``POST_NODES`` are named ``pre/...`` and ``post/...``).
#: Quantising raw-count arithmetic and the L1 normalisation costs accuracy for no speed, and
#: OpenVINO's CPU plugin cannot compile a FakeQuantize fused onto the uint16 ``raw`` Convert.
#: The quantiser on the first convolution's input (after ``pre/to_nchw``) is still inserted.
FLOAT_PATTERNS = (r"pre/.*", r"post/.*")
#: Aliases accepted in ``ignored_names``: the first convolution (the spectral layer) and the last (the head),
#: as ``xenoedge.export.quantize.quantize_int8(keep_float=...)`` takes them.
IGNORED_ALIASES = ("first", "head")
CONVOLUTION_TYPES = ("Convolution", "GroupConvolution", "ConvolutionBackpropData")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_model(path: str | Path):
    """ov.Model from an ``.onnx`` or ``.xml`` file, with a clear error."""
    import openvino as ov

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".xml":
            return ov.Core().read_model(str(path))
        return ov.convert_model(str(path))
    except Exception as exc:  # OpenVINO's conversion errors are RuntimeError/OpConversionFailure/...
        raise ExportError(f"{path}: OpenVINO cannot read or convert it ({_first_line(exc)})") from None


def _set_metadata(model, metadata: Mapping[str, object] | None) -> None:
    for key, value in (metadata or {}).items():
        model.set_rt_info(str(value), ["model_info", str(key)])


def ir_metadata(xml_path: str | Path) -> dict[str, str]:
    """``model_info`` entries of an IR's ``rt_info``, as :func:`convert_to_ir` / :func:`quantize_ir_int8` wrote them."""
    model = _read_model(xml_path)
    if not model.has_rt_info(["model_info"]):
        return {}
    info = model.get_rt_info(["model_info"])
    return {str(key): value.astype(str) for key, value in info.astype(dict).items()}


def _save(model, out_xml: Path, *, compress_to_fp16: bool) -> Path:
    """Save ``model`` as ``out_xml`` + ``.bin`` atomically (temp names, then rename; .bin first)."""
    import openvino as ov

    out_xml = Path(out_xml)
    if out_xml.suffix != ".xml":
        raise ExportError(f"{out_xml}: an OpenVINO IR path must end in .xml")
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    tmp_xml = out_xml.with_name(f".{out_xml.stem}.tmp-{os.getpid()}.xml")
    tmp_bin, out_bin = tmp_xml.with_suffix(".bin"), out_xml.with_suffix(".bin")
    try:
        ov.save_model(model, str(tmp_xml), compress_to_fp16=compress_to_fp16)
        for path in (tmp_xml, tmp_bin):
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp_bin, out_bin)
        os.replace(tmp_xml, out_xml)
    except OSError as exc:
        raise ExportError(f"{out_xml}: cannot write the IR ({exc})") from None
    except Exception as exc:
        raise ExportError(f"{out_xml}: OpenVINO cannot save the model ({_first_line(exc)})") from None
    finally:
        for path in (tmp_xml, tmp_bin):
            path.unlink(missing_ok=True)
    return out_xml


def convert_to_ir(
    onnx_path: str | Path,
    out_xml: str | Path,
    *,
    precision: Literal["fp32", "fp16"] = "fp32",
    metadata: Mapping[str, object] | None = None,
) -> Path:
    """Convert ``onnx_path`` to OpenVINO IR ``out_xml`` (+ ``.bin``) in ``precision``; returns ``out_xml``.

    ``fp16`` stores weights in FP16 (``compress_to_fp16``); graph inputs/outputs keep their
    dtypes and shapes. ``metadata`` (key -> value, stored as strings) goes into the IR's
    ``rt_info`` under ``model_info``, like Ultralytics' export metadata.
    """
    if precision not in IR_PRECISIONS:
        raise ExportError(f"OpenVINO IR precision must be one of {', '.join(IR_PRECISIONS)}, got {precision!r}")
    model = _read_model(onnx_path)
    _set_metadata(model, {"precision": precision, "source": Path(onnx_path).name, **(metadata or {})})
    return _save(model, Path(out_xml), compress_to_fp16=precision == "fp16")


def _model_inputs(model) -> dict[str, tuple[object, Any]]:
    """name -> (partial shape, numpy dtype) of an ov.Model's inputs."""
    out = {}
    for port in model.inputs:
        out[port.get_any_name()] = (port.get_partial_shape(), port.get_element_type().to_dtype())
    return out


def _check_items(kind: str, items: Sequence[Inputs], model_inputs: dict[str, tuple[object, Any]]) -> None:
    """Every item names exactly the model's inputs, with the model's dtype and a compatible shape."""
    import openvino as ov

    for number, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ExportError(f"{kind} input {number}: expected a dict name -> array, got {type(item).__name__}")
        names = set(item)
        if names != set(model_inputs):
            raise ExportError(
                f"{kind} input {number}: names {sorted(names)} do not match the graph's inputs {sorted(model_inputs)}"
            )
        for name, (shape, dtype) in model_inputs.items():
            value = np.asarray(item[name])
            if value.dtype != dtype:
                raise ExportError(f"{kind} input {number}: {name!r} is {value.dtype}, the graph takes {dtype}")
            if not shape.compatible(ov.PartialShape(list(value.shape))):
                raise ExportError(f"{kind} input {number}: {name!r} has shape {value.shape}, the graph takes {shape}")


def _resolve_ignored(model, ignored_names: Sequence[str] | str) -> list[str]:
    """OpenVINO operation names for ``ignored_names``; ``"first"`` / ``"head"`` name the first / last convolution."""
    if isinstance(ignored_names, str):
        ignored_names = (ignored_names,)
    ops = list(model.get_ordered_ops())
    convs = [op.get_friendly_name() for op in ops if op.get_type_name() in CONVOLUTION_TYPES]
    known = {op.get_friendly_name() for op in ops}
    names, unknown = [], []
    for name in ignored_names:
        if name in IGNORED_ALIASES:
            if not convs:
                raise ExportError(f"ignored_names {name!r}: the model has no convolution")
            names.append(convs[0] if name == "first" else convs[-1])
        elif name in known:
            names.append(name)
        else:
            unknown.append(name)
    if unknown:
        raise ExportError(
            f"ignored_names not in the model: {', '.join(unknown)} "
            f"(use 'first', 'head' or an operation name; convolutions: {', '.join(convs) or 'none'})"
        )
    return list(dict.fromkeys(names))


def _validation_fn(metric: str) -> Callable[[Any, Iterable[tuple[Inputs, np.ndarray]]], tuple[float, list[float]]]:
    """NNCF validation function: (compiled model, items) -> (mean metric, metric per item)."""
    score = mean_dsc if metric == "dsc" else pixel_agreement

    def validate(compiled_model, items: Iterable[tuple[Inputs, np.ndarray]]) -> tuple[float, list[float]]:
        values = []
        for inputs, expected in items:
            result = compiled_model(dict(inputs))
            outputs = {port.get_any_name(): np.asarray(value) for port, value in result.items()}
            values.append(score(classes_from_outputs(outputs, source="INT8 validation"), expected))
        return float(np.mean(values)), values

    return validate


def _check_validation(validation: Sequence[tuple[Inputs, np.ndarray]], model_inputs: dict) -> None:
    if not validation:
        raise ExportError("INT8 with accuracy control (max_drop) needs validation items (inputs, expected classes)")
    for number, item in enumerate(validation):
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise ExportError(f"validation item {number}: expected (inputs dict, expected classes (H, W) uint8)")
        expected = np.asarray(item[1])
        if expected.ndim != 2 or not np.issubdtype(expected.dtype, np.integer):
            raise ExportError(
                f"validation item {number}: expected classes must be an (H, W) integer array, "
                f"got {expected.dtype} {expected.shape}"
            )
    _check_items("validation", [item[0] for item in validation], model_inputs)


def quantize_ir_int8(
    onnx_or_ir_path: str | Path,
    out_xml: str | Path,
    calibration_inputs: Sequence[Inputs],
    *,
    validation: Sequence[tuple[Inputs, np.ndarray]] | None = None,
    max_drop: float | None = None,
    metric: Literal["dsc", "pixel_agreement"] = "dsc",
    ignored_names: Sequence[str] | str = (),
    subset_size: int = 300,
    preset: Literal["performance", "mixed"] = "performance",
    target_device: Literal["ANY", "CPU", "GPU", "NPU"] = "ANY",
    metadata: Mapping[str, object] | None = None,
) -> Path:
    """INT8 OpenVINO IR ``out_xml`` (+ ``.bin``) from an FP32 ``.onnx`` or ``.xml`` via NNCF; returns ``out_xml``.

    ``calibration_inputs``: graph inputs by name, e.g. ``{"raw": (1, H, W, C) uint16, "dark":
    (H, W, C) float32, "gain": (H, W, C) float32}``; NNCF collects MinMax statistics over the
    first ``subset_size`` of them. ``ignored_names``: operations kept in float: ``"first"`` (the
    first convolution, the spectral layer), ``"head"`` (the last convolution) or OpenVINO
    operation names (ONNX node names; a Conv with bias becomes ``<name>/WithoutBiases``). The
    folded pre/post-processing (:data:`FLOAT_PATTERNS`) always stays in float.
    ``preset="performance"`` quantises weights and activations symmetrically.
    ``target_device``: NNCF's ``TargetDevice`` for the target at hand (export passes the target
    row's ``nncf_target_device``: ``NPU`` for ``intel-npu``, ``ANY`` for ``cpu``, which spans x86
    and ARM and uses the same CPU hardware configuration in NNCF 3.4); recorded in the IR's
    ``rt_info`` as ``model_info/int8_target_device`` when not ``ANY``. NNCF 3.4 quantises 8-bit
    weights and activations for NPU with the CPU hardware configuration (its MinMax algorithm
    switches GPU/NPU A8W8 to CPU), so the NPU choice is recorded more than it changes today.

    With ``max_drop`` (absolute, in the metric's units, e.g. 0.01 = 1 DSC point), runs
    ``nncf.quantize_with_accuracy_control`` on ``validation``: (inputs, expected classes
    (H, W) uint8) pairs, where "expected" is normally the FP32 reference's prediction. The
    ``metric`` per item is ``"dsc"`` — mean DSC over the classes present in the expected map,
    background left out when any foreground is present (:func:`xenoedge.export.accuracy.mean_dsc`) —
    or ``"pixel_agreement"`` — the fraction of pixels whose class matches. The FP32 model's
    score and the INT8 model's score on ``validation`` are written into the IR's ``rt_info``
    (``model_info/int8_validation_*``); the accuracy gate still checks the artifact afterwards.
    """
    import nncf

    if not calibration_inputs:
        raise ExportError("INT8 quantisation needs calibration inputs (none given): pass frames from the data set")
    if max_drop is not None and not (isinstance(max_drop, int | float) and 0 <= max_drop <= 1):
        raise ExportError(f"max_drop must be a number in [0, 1], got {max_drop!r}")
    if metric not in VALIDATION_METRICS:
        raise ExportError(f"metric must be one of {', '.join(VALIDATION_METRICS)}, got {metric!r}")
    if subset_size < 1:
        raise ExportError(f"subset_size must be >= 1, got {subset_size}")
    presets = {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}
    if preset not in presets:
        raise ExportError(f"preset must be one of {', '.join(presets)}, got {preset!r}")
    try:
        device = nncf.TargetDevice[target_device]
    except KeyError:
        raise ExportError(f"target_device must be one of ANY, CPU, GPU, NPU, got {target_device!r}") from None

    model = _read_model(onnx_or_ir_path)
    model_inputs = _model_inputs(model)
    _check_items("calibration", list(calibration_inputs), model_inputs)
    names = _resolve_ignored(model, ignored_names)
    common = {
        "preset": presets[preset],
        "target_device": device,
        "subset_size": min(subset_size, len(calibration_inputs)),
        "ignored_scope": nncf.IgnoredScope(names=names, patterns=list(FLOAT_PATTERNS), validate=False),
    }
    calibration = nncf.Dataset(list(calibration_inputs))
    info: dict[str, object] = {"precision": "int8", "source": Path(onnx_or_ir_path).name, "int8_preset": preset}
    if target_device != "ANY":  # the cpu target's IRs keep the rt_info they were gated with
        info["int8_target_device"] = target_device
    try:
        if max_drop is None:
            quantized = nncf.quantize(model, calibration, **common)
        else:
            _check_validation(validation or [], model_inputs)
            items = [(dict(inputs), np.asarray(expected)) for inputs, expected in validation]
            validate = _validation_fn(metric)
            quantized = nncf.quantize_with_accuracy_control(
                model,
                calibration,
                nncf.Dataset(items, lambda item: item[0]),
                validate,
                max_drop=float(max_drop),
                drop_type=nncf.DropType.ABSOLUTE,
                **common,
            )
            info.update(_validation_scores(model, quantized, items, validate, metric, max_drop))
    except ExportError:
        raise
    except Exception as exc:  # nncf.ValidationError, nncf.InternalError, RuntimeError from OpenVINO ...
        raise ExportError(f"{onnx_or_ir_path}: NNCF INT8 quantisation failed ({_first_line(exc)})") from None
    _set_metadata(quantized, {**info, **(metadata or {})})
    return _save(quantized, Path(out_xml), compress_to_fp16=False)


def _validation_scores(model, quantized, items, validate, metric: str, max_drop: float) -> dict[str, object]:
    """FP32 and INT8 scores on the validation items (OpenVINO CPU, f32 hint), for the IR's rt_info."""
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": "f32"}
    fp32, _ = validate(ov.Core().compile_model(model, "CPU", config), items)
    int8, _ = validate(ov.Core().compile_model(quantized, "CPU", config), items)
    return {
        "int8_validation_metric": metric,
        "int8_validation_fp32": f"{fp32:.6f}",
        "int8_validation_int8": f"{int8:.6f}",
        "int8_validation_max_drop": f"{max_drop:g}",
    }
