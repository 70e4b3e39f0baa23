"""The post-processing of a pooling graph in channels-last layout, for ONNX Runtime on the CPU.

A pooling bundle's graph upsamples the (1, K, h, w) logits to the full frame (``Resize``,
bilinear, half-pixel) and takes the arg-max over the class axis (docs/export_onnx.md). ONNX
Runtime's CPU provider runs that faster with the classes last: a ``Transpose`` of the small
logits to (1, h, w, K), ``Resize`` with scales (1, p, p, 1) (its channels-last bilinear
kernel) and the arg-max over the last, contiguous axis. Measured on the surgical bundle's
post-processing alone (12 classes, 120 x 160 -> 480 x 640, 2 threads, docs/export_onnx.md):
ONNX Runtime 7.1-12.7 ms NCHW vs 4.3-6.6 ms NHWC; OpenVINO 8.5-9.7 ms NCHW vs 53 ms NHWC,
so only ONNX Runtime CPU targets get it (``xenoedge.export.export``). The same arithmetic on
the same values: the classes are unchanged; the confidence (a Softmax over another axis) agrees
to float rounding (2.4e-7 on the surgical bundle).
"""

from __future__ import annotations

import numpy as np
from xenoedge.export.errors import ExportError
from xenoedge.export.onnx_export import POST_NODES
from xenoedge.export.onnx_graph import drop_unused_initializers

__all__ = ["channels_last_post"]

NHWC_LOGITS = "post/logits_nhwc"
NHWC_SCALES = "post/upsample_scales_nhwc"
NHWC_CROP_AXES = "post/crop_axes_nhwc"
CLASS_AXIS = 3  # the class axis of (1, H, W, K)


def channels_last_post(model) -> bool:
    """Rewrite ``model`` (an ``onnx.ModelProto``, changed in place) so that the logits are upsampled
    and arg-maxed in (1, h, w, K) layout. False (nothing changed) when the graph has no upsampling
    node (a bundle that does not pool) or is already channels-last."""
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    by_name = {node.name: node for node in graph.node}
    resize = by_name.get(POST_NODES["upsample"])
    if resize is None or resize.input[0] == NHWC_LOGITS:
        return False
    inits = {t.name: t for t in graph.initializer}
    scales = numpy_helper.to_array(inits[resize.input[2]])
    if scales.shape != (4,) or scales[0] != 1 or scales[1] != 1:
        return False
    graph.initializer.append(
        numpy_helper.from_array(np.array([1.0, scales[2], scales[3], 1.0], np.float32), NHWC_SCALES)
    )
    transpose = helper.make_node(
        "Transpose", [resize.input[0]], [NHWC_LOGITS], name=POST_NODES["to_nhwc"], perm=[0, 2, 3, 1]
    )
    position = list(graph.node).index(resize)
    graph.node.insert(position, transpose)
    resize.input[0], resize.input[2] = NHWC_LOGITS, NHWC_SCALES
    crop = by_name.get(POST_NODES["crop"])
    if crop is not None:
        graph.initializer.append(numpy_helper.from_array(np.array([1, 2], np.int64), NHWC_CROP_AXES))
        crop.input[3] = NHWC_CROP_AXES
    for key in ("argmax", "softmax"):
        node = by_name.get(POST_NODES[key])
        if node is not None:
            _set_int_attribute(node, "axis", CLASS_AXIS)
    confidence_max = by_name.get(POST_NODES["max"])
    if confidence_max is not None:
        _set_reduce_axes(graph, confidence_max, CLASS_AXIS)
    drop_unused_initializers(graph)
    del graph.value_info[:]  # the upsampled tensors change shape: infer them again
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    model.CopyFrom(inferred)
    return True


def _set_int_attribute(node, name: str, value: int) -> None:
    for attribute in node.attribute:
        if attribute.name == name:
            attribute.i = value
            return
    from onnx import helper

    node.attribute.append(helper.make_attribute(name, value))


def _set_reduce_axes(graph, node, axis: int) -> None:
    """Point a ReduceMax at ``axis``: the ``axes`` attribute (opset < 18) or its axes input (>= 18)."""
    from onnx import numpy_helper

    if len(node.input) > 1 and node.input[1]:
        name = f"{node.name}_axes_nhwc"
        graph.initializer.append(numpy_helper.from_array(np.array([axis], np.int64), name))
        node.input[1] = name
        return
    for attribute in node.attribute:
        if attribute.name == "axes":
            del attribute.ints[:]
            attribute.ints.append(axis)
            return
    raise ExportError(f"{node.name}: a ReduceMax without axes cannot be pointed at the class axis")
