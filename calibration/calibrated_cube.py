"""One raw cube calibrated to reflectance, with its saturated pixels and the figures a report gives.

``calibrate_cube(raw, references)`` checks that ``raw`` is raw counts that fit the references,
computes the reflectance (``reflectance_from_raw``) and marks every pixel with any band at or
above the sensor's saturation count; ``CalibratedCube.report(...)`` is the summary that
``xenoedge calibrate apply`` writes as ``NAME_report.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from xenoedge.calibration.inferred_sensor import sensor_or_inferred
from xenoedge.calibration.references import References, require_broadcast
from xenoedge.calibration.reflectance import reflectance_from_raw

from xenoedge.errors import CalibrationError
from xenoedge.sensors import SensorProfile


@dataclass(frozen=True)
class CalibratedCube:
    """``reflectance`` (H, W, C) float32; ``saturated`` (H, W) bool, True where any band of the raw
    pixel reached ``saturation_counts`` (counts)."""

    reflectance: np.ndarray
    saturated: np.ndarray
    saturation_counts: int

    def report(self, capture: str, references: str, outputs: list[str]) -> dict[str, Any]:
        """The summary of this calibration of ``capture`` with ``references`` (where they came from),
        naming the ``outputs`` written (file names); fractions are of all pixels or values."""
        return {
            "capture": capture,
            "references": references,
            "shape": list(self.reflectance.shape),
            "saturation_counts": int(self.saturation_counts),
            "saturated_pixel_fraction": float(self.saturated.mean()),
            "reflectance_median": float(np.median(self.reflectance)),
            "reflectance_above_1_fraction": float((self.reflectance > 1).mean()),
            "outputs": outputs,
        }


def calibrate_cube(
    raw: np.ndarray,
    references: References,
    *,
    sensor: SensorProfile | None = None,
    what: str = "capture",
    references_source: str = "references",
) -> CalibratedCube:
    """Reflectance and saturation of ``raw`` (H, W, C) integer counts, with complete ``references``.

    The saturation count is ``sensor``'s, or that of the references' sensor
    (``sensor_or_inferred``). ``CalibrationError`` (naming ``what`` and, for a shape mismatch,
    ``references_source``) for float values (already reflectance?), negative counts, and a dark
    or white reference that does not broadcast to ``raw``.
    """
    if not np.issubdtype(raw.dtype, np.integer):
        raise CalibrationError(f"{what}: holds {raw.dtype} values, not raw counts (already reflectance?)")
    if raw.min() < 0:
        raise CalibrationError(f"{what}: negative raw counts (min {raw.min()})")
    for kind in ("dark", "white"):
        ref = getattr(references, kind)
        where = f"({references_source}) does not fit {what} of shape {raw.shape}"
        require_broadcast(ref.shape, raw.shape, f"{kind} reference of shape {ref.shape} {where}")
    saturation_counts = (sensor or sensor_or_inferred(references.sensor, raw)).saturation_counts
    reflectance = reflectance_from_raw(raw, references.dark, references.white)
    saturated = (raw >= saturation_counts).any(axis=2)
    return CalibratedCube(reflectance, saturated, saturation_counts)
