"""FP16 conversion with onnxconverter-common: model weights and compute in float16, I/O and calibration in float32.

``keep_io_types=True`` keeps the graph's inputs and outputs as exported (``raw`` uint16,
``dark``/``gain``/``reflectance`` float32, ``classes`` uint8, ``confidence`` float32). Left in
float32 (casts inserted around them):

* the named pre/post-processing nodes of :mod:`xenoedge.export.onnx_export` (counts up to 65535 and
  1/counts gains do not fit float16's range and precision; the L1 sum is a long reduction);
* ``Resize`` (its ``scales``/``sizes`` stay float32 as TensorRT and OpenVINO expect) and the
  other ops onnxconverter-common blocks by default (``DEFAULT_OP_BLOCK_LIST``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from xenoedge.export.errors import ExportError
from xenoedge.export.onnx_export import LOGITS_TENSOR, POST_NODES, PRE_NODES, SPECTRA_TENSOR

__all__ = ["FP32_OP_TYPES", "convert_fp16"]

#: Op types always left in float32 (on top of onnxconverter-common's default block list).
FP32_OP_TYPES = ("Resize", "Upsample", "ArgMax", "Softmax", "ReduceMax", "ReduceSum")


def convert_fp16(fp32_path: Path, out_path: Path, *, keep_float: tuple[str, ...] = ()) -> Path:
    """Convert the FP32 graph at ``fp32_path`` to FP16 at ``out_path``; returns ``out_path``.

    ``keep_float`` adds node names to keep in float32. The result passes ``onnx.checker``.
    """
    import onnx

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    model = onnx.load(str(fp32_path))
    present = {node.name for node in model.graph.node}
    unknown = [n for n in keep_float if n not in present]
    if unknown:
        raise ExportError(f"nodes to keep in float32 not in the graph: {unknown}")
    try:
        converted = _convert_model_part(model, keep_float)
    except ValueError as exc:  # e.g. the graph is already float16
        raise ExportError(f"FP16 conversion of {fp32_path} failed: {exc}") from None
    try:
        onnx.checker.check_model(converted)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"FP16 graph of {fp32_path} fails the ONNX checker: {exc}") from None
    props = {p.key: p.value for p in model.metadata_props}
    props["precision"] = "fp16"
    del converted.metadata_props[:]
    onnx.helper.set_model_props(converted, props)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(converted, str(out_path))
    return out_path


def _convert_model_part(model, keep_float: tuple[str, ...]):
    """Convert only the model between ``spectra`` and ``logits``; pre/post nodes are copied untouched.

    Converting the whole graph with the pre/post nodes blocked trips onnxconverter-common
    (1.16) when a blocked node feeds a float graph output (``confidence``): it inserts a
    Cast pair it then cannot remove. Cutting the graph at the model boundary avoids that and
    leaves the calibration arithmetic bit-identical to FP32 by construction.
    """
    import onnx
    from onnx import helper
    from onnxconverter_common import float16

    fixed_names = {*PRE_NODES.values(), *POST_NODES.values()}
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}
    for tensor in (SPECTRA_TENSOR, LOGITS_TENSOR):
        if tensor not in types:
            raise ExportError(f"graph has no {tensor!r} tensor: not exported by xenoedge.export.onnx_export")
    pre = [n for n in model.graph.node if n.name in fixed_names and n.name.startswith("pre/")]
    post = [n for n in model.graph.node if n.name in fixed_names and not n.name.startswith("pre/")]
    core_nodes = [n for n in model.graph.node if n.name not in fixed_names]
    used = {name for node in core_nodes for name in node.input}
    core_inits = [t for t in model.graph.initializer if t.name in used]
    core = helper.make_model(
        helper.make_graph(core_nodes, "core", [types[SPECTRA_TENSOR]], [types[LOGITS_TENSOR]], core_inits),
        opset_imports=model.opset_import,
    )
    core.ir_version = model.ir_version
    op_block = sorted({*float16.DEFAULT_OP_BLOCK_LIST, *FP32_OP_TYPES})
    with warnings.catch_warnings():  # "the float32 number 1e-9 will be truncated to 1e-7": expected, per weight
        warnings.filterwarnings("ignore", category=UserWarning, module="onnxconverter_common")
        half = float16.convert_float_to_float16(
            core, keep_io_types=True, op_block_list=op_block, node_block_list=list(keep_float)
        )
    fixed_used = {name for node in (*pre, *post) for name in node.input}
    fixed_inits = [t for t in model.graph.initializer if t.name in fixed_used and t.name not in used]
    graph = helper.make_graph(
        [*pre, *half.graph.node, *post],
        model.graph.name,
        list(model.graph.input),
        list(model.graph.output),
        [*fixed_inits, *half.graph.initializer],
    )
    out = helper.make_model(graph, opset_imports=model.opset_import, producer_name=model.producer_name)
    out.ir_version = model.ir_version
    return onnx.shape_inference.infer_shapes(out)
