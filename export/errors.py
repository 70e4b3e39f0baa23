"""Errors of the export toolchain (``export/``).

Tiny and import-free on purpose: ``xenoedge.export.bundle`` and the device may import it without
pulling torch, onnx or onnxruntime.
"""

from __future__ import annotations

from xenoedge.errors import UnknownNameError, XenoedgeError

__all__ = ["ExportError", "UnknownNameError", "XenoedgeError"]


class ExportError(XenoedgeError):
    """An export, quantisation or conversion that cannot be done as asked.

    Raised for: INT8 without calibration inputs, calibration inputs whose names, shapes or
    dtypes do not match the graph, an input size that is not a multiple of the model's
    ``required_multiple``, a band count that does not match the model, and similar.
    """
