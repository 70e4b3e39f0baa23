"""Calibration: the numpy-only base layer (errors, sensor profiles, band response, references).

Importing this package must stay cheap and must never import torch, onnx or nncf. It turns
the telemetry of every library off first (``calibration.telemetry``): every entry point
imports this base layer before OpenVINO or NNCF.
"""

from calibration.telemetry import disable_telemetry  # first: before anything imports OpenVINO or NNCF

disable_telemetry()

from calibration.errors import (  # noqa: E402
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
