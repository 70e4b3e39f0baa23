"""Turn references made by other software into ``References``.

Array level only: the CLI reads the files with ``xenoedge.devices.formats`` (``read_dark_pattern``,
``read_specim_capture``) and passes the arrays here, so ``calibration`` reads no camera
formats itself.

- Tivita ``DarkPattern.dpic``: (lines, C) float64, one dark value per line and band ->
  dark (lines, 1, C) float32, no white (the Tivita delivers reflectance itself).
- Specim ``DARKREF_``/``WHITEREF_``: (n, W, C) successive readings of the detector line ->
  dark and white (1, W, C) float32, the mean over the n lines.

Imported references carry ``frames`` = the number of lines averaged (1 for a DarkPattern,
whose history is unknown) and ``exposure_ms`` NaN unless given ("unknown": the exposure
check on load skips it).
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
from xenoedge.calibration.capture import ReferenceCapture, capture_from_lines, iso_utc, utc_now
from xenoedge.calibration.references import ReferenceMeta, References

from xenoedge.errors import CalibrationError
from xenoedge.sensors import SensorProfile

#: Largest difference (nm) between a file's band centres and the sensor profile's.
WAVELENGTH_TOLERANCE_NM = 1.0


def _check_values(name: str, a: np.ndarray) -> None:
    n_bad = int(a.size - np.count_nonzero(np.isfinite(a)))
    if n_bad:
        raise CalibrationError(f"{name}: {n_bad} NaN/inf values")
    n_neg = int(np.count_nonzero(a < 0))
    if n_neg:
        raise CalibrationError(f"{name}: {n_neg} negative values (min {float(a.min()):g})")


def references_from_dark_pattern(
    dark_pattern: np.ndarray,
    sensor: SensorProfile,
    camera_id: str,
    *,
    exposure_ms: float | None = None,
    captured_at: datetime | None = None,
    source: str = "import:tivita-darkpattern",
) -> References:
    """References with only a dark, (lines, 1, C) float32, from a Tivita DarkPattern (lines, C).

    ``lines`` must equal the sensor's cube height and ``C`` its band count
    (``CalibrationError`` naming the DarkPattern otherwise). ``captured_at`` defaults to
    now (the file carries no time: the import time is the best known).
    """
    pattern = np.asarray(dark_pattern)
    h, _, c = sensor.cube_shape
    if pattern.ndim != 2:
        raise CalibrationError(f"DarkPattern must be (lines, bands), got shape {pattern.shape}")
    if pattern.shape != (h, c):
        raise CalibrationError(
            f"DarkPattern has {pattern.shape[0]} lines x {pattern.shape[1]} bands; sensor {sensor.name} "
            f"needs {h} lines x {c} bands"
        )
    _check_values("DarkPattern", pattern)
    meta = ReferenceMeta(
        captured_at=iso_utc(captured_at or utc_now()),
        exposure_ms=math.nan if exposure_ms is None else float(exposure_ms),
        frames=1,
        source=source,
        stats={"mean_level_counts": float(pattern.mean())},
    )
    return References(
        camera_id=camera_id,
        sensor=sensor.name,
        sensor_signature=sensor.signature,
        dark=pattern.astype(np.float32)[:, None, :],
        dark_meta=meta,
    )


def specim_captures(
    dark: np.ndarray,
    white: np.ndarray,
    sensor: SensorProfile,
    camera_id: str,
    *,
    wavelengths_nm: np.ndarray | None = None,
    exposure_ms: float | None = None,
    captured_at: datetime | None = None,
) -> tuple[ReferenceCapture, ReferenceCapture]:
    """(dark, white) ``ReferenceCapture`` of shape (1, W, C) from Specim reference stacks (n, W, C).

    The lines are successive readings, so the captures carry temporal noise and stability
    figures and go through ``validate_dark``/``validate_white`` like a camera capture.
    Checks W and C against the sensor and, when given, ``wavelengths_nm`` against its
    band centres (within ``WAVELENGTH_TOLERANCE_NM``).
    """
    _, w, c = sensor.cube_shape
    if wavelengths_nm is not None:
        wl = np.asarray(wavelengths_nm, dtype=np.float64).ravel()
        if wl.size != c or np.max(np.abs(wl - sensor.wavelengths())) > WAVELENGTH_TOLERANCE_NM:
            raise CalibrationError(
                f"Specim reference wavelengths ({wl.size} bands, {wl.min():.1f}-{wl.max():.1f} nm) differ "
                f"from sensor {sensor.name}'s ({c} bands, {sensor.wavelengths_nm[0]}-"
                f"{sensor.wavelengths_nm[-1]} nm)"
            )
    when = iso_utc(captured_at or utc_now())
    exposure = math.nan if exposure_ms is None else float(exposure_ms)
    out = []
    for kind, stack in (("dark", dark), ("white", white)):
        name = f"Specim {'DARKREF' if kind == 'dark' else 'WHITEREF'}"
        stack = np.asarray(stack)
        if stack.ndim != 3 or stack.shape[1:] != (w, c) or stack.shape[0] < 1:
            raise CalibrationError(f"{name} has shape {stack.shape}; sensor {sensor.name} needs (lines, {w}, {c})")
        _check_values(name, stack)
        out.append(
            capture_from_lines(
                kind,  # type: ignore[arg-type]
                stack,
                camera_id=camera_id,
                sensor=sensor.name,
                exposure_ms=exposure,
                captured_at=when,
                saturation_counts=sensor.saturation_counts,
            )
        )
    return out[0], out[1]


def references_from_specim(
    dark: np.ndarray,
    white: np.ndarray,
    sensor: SensorProfile,
    camera_id: str,
    *,
    wavelengths_nm: np.ndarray | None = None,
    exposure_ms: float | None = None,
    captured_at: datetime | None = None,
    source: str = "import:specim",
) -> References:
    """References with dark and white (1, W, C) float32: Specim stacks (n, W, C) averaged over lines.

    See ``specim_captures`` for the checks; validate those captures to judge the
    references before trusting them.
    """
    dark_capture, white_capture = specim_captures(
        dark,
        white,
        sensor,
        camera_id,
        wavelengths_nm=wavelengths_nm,
        exposure_ms=exposure_ms,
        captured_at=captured_at,
    )
    return References(
        camera_id=camera_id,
        sensor=sensor.name,
        sensor_signature=sensor.signature,
        dark=dark_capture.mean,
        white=white_capture.mean,
        dark_meta=dark_capture.to_meta(source),
        white_meta=white_capture.to_meta(source),
    )
