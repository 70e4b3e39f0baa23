"""Calibration: the numpy-only base layer (errors, sensor profiles, band response, references).

Importing this package must stay cheap and must never import torch, onnx or nncf.
"""

from calibration.errors import (
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
