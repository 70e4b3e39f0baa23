"""Validate reference captures before they are accepted, and map defective pixels.

``validate_dark`` and ``validate_white`` return a ``ValidationReport``: a list of named
checks, each with a one-line human explanation and the figures behind it. Nothing is
raised; ``raise_if_failed(report, "dark reference")`` turns a failed report into a
``ReferenceValidationError`` carrying the report.

Default limits (``ValidationLimits``), in counts unless said otherwise:

=========================  =========  ==========================================================
limit                      default    meaning
=========================  =========  ==========================================================
dark_level_min_factor      0.25       every band's median dark >= 0.25 x sensor dark level
dark_level_max_factor      3.0        every band's median dark <= 3 x sensor dark level + margin
dark_level_margin_counts   5.0        absolute slack on the upper limit (sensors with ~0 dark)
dark_noise_factor          3.0        median temporal noise <= 3 x read noise + 1 count
dark_noise_margin_counts   1.0
dark_stability_fraction    0.005      frame-mean spread <= max(1 count, 0.5 % of the dark level)
min_signal_counts          50.0       white - dark >= 50 counts per pixel and band ...
max_defect_fraction        0.001      ... except in at most 0.1 % of a band's pixels ...
min_defect_pixels          1          ... or 1 pixel, whichever is more (a 1-line push-broom ref)
max_saturated_fraction     0.001      at most 0.1 % of pixels with any band saturated (any frame)
white_stability_fraction   0.01       frame-mean spread <= max(1 count, 1 % of white - dark)
stability_min_counts       1.0
=========================  =========  ==========================================================

The dark level is judged relative to the sensor profile's nominal dark level (an
absolute band would need one per sensor): a dark far below nominal means a wrong
black-level setting, far above means light is leaking in (lens not capped).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from xenoedge.calibration.capture import ReferenceCapture
from xenoedge.calibration.references import References, require_broadcast

from xenoedge.errors import CalibrationError, ReferenceValidationError
from xenoedge.sensors import SENSORS, SensorProfile, get_sensor

#: How many failing bands a check's detail names before it says "and N more".
MAX_BANDS_LISTED = 30


@dataclass(frozen=True)
class ValidationLimits:
    """Acceptance limits for reference captures; see the module docstring for each one."""

    dark_level_min_factor: float = 0.25
    dark_level_max_factor: float = 3.0
    dark_level_margin_counts: float = 5.0
    dark_noise_factor: float = 3.0
    dark_noise_margin_counts: float = 1.0
    dark_stability_fraction: float = 0.005
    min_signal_counts: float = 50.0
    max_defect_fraction: float = 0.001
    min_defect_pixels: int = 1
    max_saturated_fraction: float = 0.001
    white_stability_fraction: float = 0.01
    stability_min_counts: float = 1.0


DEFAULT_LIMITS = ValidationLimits()


@dataclass(frozen=True)
class Check:
    """One validation check: ``detail`` explains it in a line, ``values`` holds the figures."""

    name: str
    ok: bool
    detail: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValidationReport:
    """The checks run on one reference capture (``what``: "dark reference", ...)."""

    what: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str, **values: Any) -> Check:
        check = Check(name, bool(ok), detail, _plain(values))
        self.checks.append(check)
        return check

    def to_text(self) -> str:
        """Multi-line report: a verdict line, then one "[ok]"/"[FAIL]" line per check."""
        verdict = "passed" if self.ok else f"FAILED ({len(self.failed)} of {len(self.checks)} checks)"
        lines = [f"{self.what}: {verdict}"]
        width = max((len(c.name) for c in self.checks), default=0)
        for c in self.checks:
            lines.append(f"  [{'ok' if c.ok else 'FAIL':>4}] {c.name:<{width}}  {c.detail}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "ok": self.ok, "checks": [asdict(c) for c in self.checks]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python numbers/lists, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if np.isfinite(v) else None
    return value


def raise_if_failed(report: ValidationReport, what: str | None = None) -> None:
    """Raise ``ReferenceValidationError`` (carrying ``report``) when any check failed."""
    if not report.ok:
        name = what or report.what
        raise ReferenceValidationError(f"{name} rejected:\n{report.to_text()}", report)


def _band_list(bands: np.ndarray, wavelengths_nm: np.ndarray, fractions: np.ndarray, unit: str) -> str:
    """Band indices as "0 (600.0 nm): 12.5%, 3 (646.9 nm): 2% <unit>", at most 30 named."""
    parts = [
        f"{int(b)} ({float(wavelengths_nm[b]):.1f} nm): {100 * float(fractions[b]):.3g}%"
        for b in bands[:MAX_BANDS_LISTED]
    ]
    more = len(bands) - MAX_BANDS_LISTED
    return ", ".join(parts) + (f" and {more} more bands" if more > 0 else "") + f" {unit}"


def _finite_check(report: ValidationReport, arrays: dict[str, np.ndarray]) -> bool:
    bad = {name: int(np.size(a) - np.count_nonzero(np.isfinite(a))) for name, a in arrays.items()}
    bad = {k: v for k, v in bad.items() if v}
    if bad:
        detail = "; ".join(f"{name} has {n} NaN/inf values" for name, n in bad.items())
        report.add("finite", False, detail + " (other checks skipped)", nonfinite_counts=bad)
        return False
    report.add("finite", True, "no NaN or inf values")
    return True


def _stability_check(
    report: ValidationReport, capture: ReferenceCapture, level: float, fraction: float, min_counts: float
) -> None:
    spread = float(np.ptp(capture.frame_means))
    limit = max(min_counts, fraction * abs(level))
    report.add(
        "stability",
        spread <= limit,
        f"frame means spread {spread:.2f} counts over {capture.n_frames} frames "
        f"(limit {limit:.2f} = max({min_counts:g}, {100 * fraction:g}% of {level:.1f}))",
        spread_counts=spread,
        limit_counts=limit,
        frame_means=capture.frame_means,
    )


def _check_sensor_shape(capture: ReferenceCapture, sensor: SensorProfile) -> None:
    require_broadcast(
        capture.mean.shape,
        sensor.cube_shape,
        f"{capture.kind} capture of shape {capture.mean.shape} does not fit the {sensor.name} cube {sensor.cube_shape}",
    )
    if capture.mean.shape[-1] != sensor.n_bands:
        raise CalibrationError(
            f"{capture.kind} capture has {capture.mean.shape[-1]} bands, sensor {sensor.name} {sensor.n_bands}"
        )


def validate_dark(
    capture: ReferenceCapture, sensor: SensorProfile, limits: ValidationLimits | None = None
) -> ValidationReport:
    """Checks "finite", "level", "noise" and "stability" of a dark capture.

    level: each band's median dark within [min_factor x nominal, max_factor x nominal +
    margin]; failing bands are named by index and nm. noise: median temporal noise over
    pixels and bands <= noise_factor x read noise + margin (passes, saying so, for a single
    frame). stability: spread of frame means <= max(1 count, 0.5 % of the level).
    """
    lim = limits or DEFAULT_LIMITS
    _check_sensor_shape(capture, sensor)
    report = ValidationReport("dark reference")
    if not _finite_check(report, {"dark mean": capture.mean, "dark noise": capture.temporal_noise}):
        return report
    wl = sensor.wavelengths()
    nominal = sensor.dark_level_counts
    lo = lim.dark_level_min_factor * nominal
    hi = lim.dark_level_max_factor * nominal + lim.dark_level_margin_counts
    band_level = np.median(capture.mean.reshape(-1, capture.mean.shape[-1]), axis=0)
    bad = np.flatnonzero((band_level < lo) | (band_level > hi))
    level = float(np.median(band_level))
    if bad.size:
        shown = ", ".join(f"{b} ({wl[b]:.1f} nm): {band_level[b]:.1f}" for b in bad[:MAX_BANDS_LISTED])
        more = f", and {bad.size - MAX_BANDS_LISTED} more" if bad.size > MAX_BANDS_LISTED else ""
        detail = (
            f"median dark outside [{lo:.1f}, {hi:.1f}] counts in bands {shown}{more} "
            f"(sensor nominal {nominal:g}; light leak or wrong black level?)"
        )
    else:
        detail = f"median dark {level:.1f} counts, every band within [{lo:.1f}, {hi:.1f}]"
    report.add(
        "level",
        bad.size == 0,
        detail,
        median_counts=level,
        band_median_counts=band_level,
        failing_bands=bad,
        range_counts=[lo, hi],
    )
    noise_limit = lim.dark_noise_factor * sensor.read_noise_counts + lim.dark_noise_margin_counts
    if capture.n_frames < 2:
        report.add("noise", True, "not measured: needs at least 2 frames", limit_counts=noise_limit)
    else:
        noise = float(np.median(capture.temporal_noise))
        report.add(
            "noise",
            noise <= noise_limit,
            f"median temporal noise {noise:.2f} counts (limit {noise_limit:.2f} = "
            f"{lim.dark_noise_factor:g} x read noise {sensor.read_noise_counts:g} + "
            f"{lim.dark_noise_margin_counts:g})",
            median_counts=noise,
            limit_counts=noise_limit,
        )
    _stability_check(report, capture, level, lim.dark_stability_fraction, lim.stability_min_counts)
    return report


def validate_white(
    capture: ReferenceCapture,
    dark_mean: np.ndarray,
    sensor: SensorProfile,
    limits: ValidationLimits | None = None,
) -> ValidationReport:
    """Checks "finite", "signal", "saturation" and "stability" of a white capture.

    ``dark_mean`` is the accepted dark, any shape broadcastable to the white's.
    signal: white - dark >= min_signal_counts, per band allowing max_defect_fraction of
    pixels below it (dead pixels); the detail names every failing band by index and nm
    with its failing fraction. saturation: the worst frame's fraction of pixels with any
    band >= the sensor's saturation count <= max_saturated_fraction. stability: spread of
    frame means <= max(1 count, 1 % of the mean white - dark signal).
    """
    lim = limits or DEFAULT_LIMITS
    _check_sensor_shape(capture, sensor)
    dark_mean = np.asarray(dark_mean, dtype=np.float32)
    require_broadcast(
        capture.mean.shape,
        dark_mean.shape,
        f"dark reference of shape {dark_mean.shape} does not fit the white {capture.mean.shape}",
    )
    report = ValidationReport("white reference")
    arrays = {"white mean": capture.mean, "white noise": capture.temporal_noise, "dark": dark_mean}
    if not _finite_check(report, arrays):
        return report
    wl = sensor.wavelengths()
    c = capture.mean.shape[-1]
    signal = (capture.mean - dark_mean).reshape(-1, c)
    below = signal < lim.min_signal_counts
    fraction = below.mean(axis=0)
    allowed = max(lim.max_defect_fraction, lim.min_defect_pixels / signal.shape[0])
    bad = np.flatnonzero(fraction > allowed)
    median_signal = float(np.median(signal))
    if bad.size:
        detail = f"bands {_band_list(bad, wl, fraction, f'of pixels below {lim.min_signal_counts:g} counts')}"
        detail += f" (white - dark; at most {100 * allowed:.3g}% allowed per band; lights off or tile missing?)"
    else:
        detail = (
            f"white - dark median {median_signal:.1f} counts; at most {100 * fraction.max():.3g}% "
            f"of any band's pixels below {lim.min_signal_counts:g} counts"
        )
    report.add(
        "signal",
        bad.size == 0,
        detail,
        median_signal_counts=median_signal,
        band_fraction_below=fraction,
        failing_bands=bad,
        failing_wavelengths_nm=wl[bad],
        min_signal_counts=lim.min_signal_counts,
    )
    sat = float(capture.saturated_fraction)
    band_sat = (capture.mean.reshape(-1, c) >= sensor.saturation_counts).mean(axis=0)
    sat_bands = np.flatnonzero(band_sat > 0)
    detail = (
        f"{100 * sat:.3g}% of pixels saturated (any band >= {sensor.saturation_counts} counts) in the "
        f"worst frame (limit {100 * lim.max_saturated_fraction:g}%)"
    )
    if sat > lim.max_saturated_fraction and sat_bands.size:
        detail += f"; saturated on average: bands {_band_list(sat_bands, wl, band_sat, 'of pixels')}"
        detail += "; lower the exposure or the light"
    report.add(
        "saturation",
        sat <= lim.max_saturated_fraction,
        detail,
        saturated_fraction=sat,
        limit=lim.max_saturated_fraction,
        band_saturated_fraction=band_sat,
    )
    level = float(np.mean(capture.frame_means) - np.mean(dark_mean))
    _stability_check(report, capture, level, lim.white_stability_fraction, lim.stability_min_counts)
    return report


def _robust_center_sigma(values: np.ndarray, min_sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Per band (last axis) median and MAD-based sigma (1.4826 x MAD, floored) of (N, C) values."""
    center = np.median(values, axis=0)
    sigma = 1.4826 * np.median(np.abs(values - center), axis=0)
    return center, np.maximum(sigma, min_sigma)


def defect_map(
    dark: np.ndarray,
    white: np.ndarray,
    cube_shape: tuple[int, int, int],
    *,
    hot_sigma: float = 8.0,
    dead_fraction: float = 0.2,
    min_sigma_counts: float = 0.5,
) -> np.ndarray:
    """(h, w) bool map of defective pixels (True = defective) from a dark and a white reference.

    ``dark`` and ``white`` are counts broadcastable to ``cube_shape`` (h, w, C): per pixel,
    per line (h, 1, C) or per column (1, w, C).

    Hot: any band whose dark exceeds that band's median dark by more than ``hot_sigma``
    robust sigmas (1.4826 x MAD, at least ``min_sigma_counts`` so a perfectly flat dark
    does not flag every count of noise). The statistics run over the dark's own pixels; a
    per-line or per-column dark has no per-pixel information along its broadcast axis,
    so a flagged line or column is flagged whole (for a push-broom sensor a hot
    detector element does spoil its column).
    Dead: any band whose white - dark is below ``dead_fraction`` x that band's median.
    """
    h, w, _ = cube_shape
    dark = np.asarray(dark, dtype=np.float32)
    white = np.asarray(white, dtype=np.float32)
    for name, ref in (("dark", dark), ("white", white)):
        try:
            if np.broadcast_shapes(ref.shape, cube_shape) != tuple(cube_shape):
                raise ValueError
        except ValueError:
            raise CalibrationError(f"{name} of shape {ref.shape} does not fit the cube {cube_shape}") from None
    dark3 = dark.reshape((1,) * (3 - dark.ndim) + dark.shape)
    flat = dark3.reshape(-1, dark3.shape[-1])
    center, sigma = _robust_center_sigma(flat, min_sigma_counts)
    hot = ((dark3 - center) > hot_sigma * sigma).any(axis=-1)
    signal = white - dark
    signal3 = signal.reshape((1,) * (3 - signal.ndim) + signal.shape)
    band_median = np.median(signal3.reshape(-1, signal3.shape[-1]), axis=0)
    dead = (signal3 < dead_fraction * band_median).any(axis=-1)
    return np.broadcast_to(hot, (h, w)) | np.broadcast_to(dead, (h, w))


def references_defect_map(refs: References, sensor: SensorProfile | None = None) -> np.ndarray | None:
    """``defect_map`` of complete ``refs`` on the cube of ``sensor``, or of the table's sensor that
    ``refs`` name; None when neither is known (references of a custom sensor)."""
    if sensor is None and refs.sensor_signature.split(":")[0] not in SENSORS:
        return None
    cube_shape = (sensor or get_sensor(refs.sensor)).cube_shape
    return defect_map(refs.dark, refs.white, cube_shape)
