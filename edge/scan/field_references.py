"""Calibration in the field: the white-tile step at the start of a scan, and when to refuse.

A new session (or ``--recalibrate``) captures a dark reference (lens capped) and a white
reference (white tile filling the view) from the scan camera with ``xenoedge.calibration.capture`` and
checks both with ``xenoedge.calibration.validation`` (levels, noise, stability, signal, saturation). A
resumed session reuses its stored references; ``--references FILE`` takes references captured
with ``xenoedge calibrate``. Either way the references are checked for what makes a scan wrong:

- a validation that failed (captured now, or recorded in the file's metadata);
- age: any reference older than ``max_age_s`` (light and sensor temperature drift in the field);
- exposure: captured at another exposure than the camera runs at.

Any such problem refuses the scan (``ScanCalibrationError`` listing them) unless the operator
overrides; the override and its reasons go into the session's record. References of another
camera or sensor, a corrupt file or one missing a reference are never overridable (errors from
``xenoedge.calibration.store``). Accepted references are stored in the session (``references.npz``,
atomically) so a resumed session uses the same ones.

Whether the white-tile step needs the operator (``references_need_operator``): a camera that
captures references itself (the simulator; a replay folder's ENVI references; a ``file:``
recording with recorded dark and white frames) does not; any other camera's references are its
ordinary frames, so each step must wait until the lens is capped / the tile is held up, also when
frames are then taken at an interval.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from xenoedge.calibration.capture import capture_reference
from xenoedge.calibration.reference_update import merge_validated, validate_capture
from xenoedge.calibration.references import References
from xenoedge.calibration.store import ReferenceWarning, load_references, save_references
from xenoedge.calibration.validation import ValidationReport
from xenoedge.edge.scan.errors import ScanCalibrationError
from xenoedge.edge.scan.store import SessionStore, output_error

from xenoedge.errors import CalibrationError

DARK_PROMPT = "White-tile step 1/2: cap the lens (dark reference), then press Enter"
WHITE_PROMPT = (
    "White-tile step 2/2: hold the white tile so it fills the view, in the light you scan in, then press Enter"
)


def references_need_operator(camera: Any) -> bool:
    """True when ``camera`` (a ``xenoedge.devices.camera.Camera``) has no references of its own, so the
    white-tile step averages its ordinary frames and must wait for the operator at each step.

    Told apart without reading a frame: a ``captures_references`` attribute wins; the OpenCV
    driver (``file:``, ``v4l2:``) has its own only with both ``reference_patterns`` (a recording
    made with ``--references``); other drivers have them when they implement ``_read_reference``
    (the simulator, replay folders). Anything else needs the operator."""
    from xenoedge.devices.camera import Camera

    explicit = getattr(camera, "captures_references", None)
    if explicit is not None:
        return not explicit
    patterns = getattr(camera, "reference_patterns", None)
    if isinstance(patterns, dict):
        return not (patterns.get("dark") and patterns.get("white"))
    implementation = getattr(type(camera), "_read_reference", None)
    return implementation is None or implementation is Camera._read_reference


@dataclass
class FieldReferences:
    """The references a scan runs with and how they were judged.

    ``source``: ``captured``, ``session`` or ``file:PATH``; ``problems``: one line per reason to
    refuse (empty when fine); ``overridden``: scanning anyway on the operator's word.
    """

    references: References
    source: str
    problems: list[str] = field(default_factory=list)
    overridden: bool = False
    reports: list[dict] = field(default_factory=list)

    def record(self, at: str) -> dict[str, Any]:
        """What the session keeps about this decision (``calibrations`` in session.json)."""
        refs = self.references
        return {
            "at": at,
            "source": self.source,
            "camera_id": refs.camera_id,
            "captured_at": {k: getattr(refs, f"{k}_meta").captured_at for k in ("dark", "white")},
            "exposure_ms": {k: getattr(refs, f"{k}_meta").exposure_ms for k in ("dark", "white")},
            "ok": not self.problems,
            "problems": list(self.problems),
            "overridden": self.overridden,
            "validation": self.reports,
        }


def capture_field_references(
    camera: Any,
    n_frames: int,
    *,
    confirm: Callable[[str], bool],
    clock: Callable[[], datetime],
) -> tuple[References, list[ValidationReport]]:
    """Dark, then white, from an open ``camera``; both validated. ``confirm(prompt)`` waits for
    the operator (False: the input ended, ``ScanCalibrationError``)."""
    sensor = camera.sensor
    refs: References | None = None
    reports = []
    for kind, prompt in (("dark", DARK_PROMPT), ("white", WHITE_PROMPT)):
        if not confirm(prompt):
            raise ScanCalibrationError("white-tile step abandoned: the input ended", ["abandoned"])
        capture = capture_reference(camera, kind, n_frames, clock=clock)
        report = validate_capture(capture, refs, sensor)
        reports.append(report)
        refs = merge_validated(refs, capture, report, camera.camera_id, sensor)
    return refs, reports  # type: ignore[return-value]


def _report_problems(reports: list[ValidationReport]) -> list[str]:
    return [f"{r.what} failed: {c.name}: {c.detail}" for r in reports for c in r.failed]


def _stored_problems(refs: References) -> list[str]:
    problems = []
    for kind in ("dark", "white"):
        validation = getattr(refs, f"{kind}_meta").stats.get("validation")
        if isinstance(validation, dict) and validation.get("ok") is False:
            failed = [c.get("name") for c in validation.get("checks", []) if not c.get("ok")]
            problems.append(f"{kind} reference failed validation when captured ({', '.join(map(str, failed))})")
    return problems


def load_checked(path: Path, camera: Any, max_age_s: float | None, now: datetime) -> tuple[References, list[str]]:
    """References of ``path`` for ``camera``; identity errors raise, age/exposure/validation become problems."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ReferenceWarning)
        refs = load_references(
            path,
            camera_id=camera.camera_id,
            sensor=camera.sensor,
            exposure_ms=camera.exposure_ms,
            max_age_s=max_age_s,
            require_complete=True,
            now=now,
        )
    problems = [str(w.message) for w in caught if issubclass(w.category, ReferenceWarning)]
    return refs, problems + _stored_problems(refs)


def obtain_field_references(
    camera: Any,
    store: SessionStore,
    *,
    references_file: Path | None,
    recalibrate: bool,
    n_frames: int,
    max_age_s: float | None,
    override: bool,
    confirm: Callable[[str], bool],
    clock: Callable[[], datetime],
) -> FieldReferences:
    """The references this scan runs with (see the module docstring); the camera must be open.

    Raises ``ScanCalibrationError`` (with ``.decision`` holding the refused ``FieldReferences``
    when there is one to record) unless the problems are overridden."""
    now = clock()
    if references_file is not None:
        refs, problems = load_checked(references_file, camera, max_age_s, now)
        decision = FieldReferences(refs, f"file:{references_file}", problems)
    elif store.references_file.exists() and not recalibrate:
        try:
            refs, problems = load_checked(store.references_file, camera, max_age_s, now)
        except CalibrationError as exc:  # another camera or sensor than the session's references
            raise ScanCalibrationError(
                f"{exc}; run the white-tile step for this camera (--recalibrate)", [str(exc)]
            ) from None
        decision = FieldReferences(refs, "session", problems)
    else:
        refs, reports = capture_field_references(camera, n_frames, confirm=confirm, clock=clock)
        decision = FieldReferences(refs, "captured", _report_problems(reports), reports=[r.to_dict() for r in reports])
    if decision.problems and not override:
        lines = "\n".join(f"  - {p}" for p in decision.problems)
        error = ScanCalibrationError(
            f"refusing to scan on these references ({decision.source}):\n{lines}\n"
            "capture new ones (--recalibrate, white tile ready) or scan anyway with --override-references "
            "(recorded in the session)",
            decision.problems,
        )
        error.decision = decision  # type: ignore[attr-defined]
        raise error
    decision.overridden = bool(decision.problems)
    if decision.source != "session":
        try:
            save_references(store.references_file, decision.references)
        except OSError as exc:
            raise output_error(store.references_file, exc) from None
    return decision
