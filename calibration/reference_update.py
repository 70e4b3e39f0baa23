"""One new dark or white reference for a references file: what the file holds, the capture, its
validation against that, and the references to store when it passes.

The order of ``xenoedge calibrate dark|white``::

    existing = references_to_update(path, "white", camera.camera_id, camera.sensor)
    with camera:
        update = capture_reference_update(camera, "white", 16, existing)
    if update.references is not None:
        save_references(path, update.references)

A capture that fails validation leaves ``update.references`` None: the file keeps what it had.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xenoedge.calibration.capture import ProgressCallback, ReferenceCapture, ReferenceKind, capture_reference
from xenoedge.calibration.references import References
from xenoedge.calibration.store import load_references, merge_reference
from xenoedge.calibration.validation import ValidationReport, validate_dark, validate_white

from xenoedge.errors import CalibrationError
from xenoedge.sensors import SensorProfile


def references_to_update(
    path: str | os.PathLike, kind: ReferenceKind, camera_id: str, sensor: SensorProfile
) -> References | None:
    """What ``path`` holds for ``camera_id`` and ``sensor`` (None when there is no file yet).

    The age and exposure of what it holds do not matter (their warnings are ignored); another
    camera or sensor, or a corrupt file, raise as ``load_references`` does. A white reference
    needs the dark one stored first (``CalibrationError`` otherwise).
    """
    path = Path(path)
    existing = None
    if path.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # age/exposure of the old file do not matter here
            existing = load_references(path, camera_id=camera_id, sensor=sensor)
    if kind == "white" and (existing is None or existing.dark is None):
        raise CalibrationError(f"{path}: capture the dark reference first (xenoedge calibrate dark ... --out {path})")
    return existing


def validate_capture(capture: ReferenceCapture, existing: References | None, sensor: SensorProfile) -> ValidationReport:
    """``validate_dark``, or ``validate_white`` against the dark that ``existing`` holds."""
    if capture.kind == "dark":
        return validate_dark(capture, sensor)
    return validate_white(capture, existing.dark, sensor)  # type: ignore[union-attr]


def merge_validated(
    existing: References | None,
    capture: ReferenceCapture,
    report: ValidationReport,
    camera_id: str,
    sensor: SensorProfile,
) -> References:
    """``existing`` with ``capture`` as its reference of that kind, ``report`` kept in the
    reference's metadata (``stats["validation"]``); see ``merge_reference``."""
    return merge_reference(existing, capture.kind, capture, camera_id, sensor, stats={"validation": report.to_dict()})


@dataclass(frozen=True)
class ReferenceUpdate:
    """A captured reference, its validation, and the references to store: ``None`` when the
    validation failed."""

    capture: ReferenceCapture
    report: ValidationReport
    references: References | None


def capture_reference_update(
    camera: Any,
    kind: ReferenceKind,
    n_frames: int,
    existing: References | None,
    *,
    progress: ProgressCallback | None = None,
) -> ReferenceUpdate:
    """Average ``n_frames`` ``kind`` frames from an open ``camera`` (``capture_reference``),
    validate them against ``existing`` (``references_to_update``) and, when they pass, merge them in."""
    capture = capture_reference(camera, kind, n_frames, progress=progress)
    report = validate_capture(capture, existing, camera.sensor)
    if not report.ok:
        return ReferenceUpdate(capture, report, None)
    return ReferenceUpdate(capture, report, merge_validated(existing, capture, report, camera.camera_id, camera.sensor))
