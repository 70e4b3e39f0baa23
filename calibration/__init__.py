"""Calibration: white/dark references, reflectance, band response and resampling, mosaics (NumPy only).

Importing this package must stay cheap and must never import torch, onnx or nncf. The error
classes live in ``xenoedge.errors`` and are re-exported here for the calibration API.
"""

from xenoedge.errors import (
    CalibrationError,
    CameraError,
    CameraExhaustedError,
    FileFormatError,
    InvalidCubeError,
    ReferenceValidationError,
    UnknownNameError,
    XenoedgeError,
)

__all__ = [
    "CalibrationError",
    "CameraError",
    "CameraExhaustedError",
    "FileFormatError",
    "InvalidCubeError",
    "ReferenceValidationError",
    "UnknownNameError",
    "XenoedgeError",
]
