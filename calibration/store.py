"""The references file: one ``.npz`` holding a camera's dark and white references.

Layout (``np.savez``, uncompressed, no pickled objects):

``dark``, ``white``
    float32 counts broadcastable to the sensor's cube (h, w, C); a key is absent while
    that reference has not been captured yet.
``meta``
    uint8 array of UTF-8 JSON: ``format`` ("xenoedge-references"), ``format_version``,
    ``camera_id``, ``sensor``, ``sensor_signature``, ``references`` (per kind: the
    ``ReferenceMeta`` fields plus ``dtype`` and ``shape`` of the array) and ``checksum``.

The checksum is ``"sha256:" + hexdigest`` of the canonical meta JSON without the
checksum (sorted keys, compact), followed per stored array (dark, then white) by its
name, dtype, shape and raw C-order bytes. Any edit to an array or to the metadata
breaks it. Unknown exposures are stored as JSON null and loaded as NaN.

Files are written atomically (temp file, fsync, rename) so a reader never sees half a
file, and a failed write keeps the previous references.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
import zipfile
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from xenoedge.calibration.capture import ReferenceCapture, parse_iso_utc, utc_now
from xenoedge.calibration.references import ReferenceMeta, References

from xenoedge.atomic import atomic_write
from xenoedge.errors import CalibrationError, FileFormatError
from xenoedge.sensors import SensorProfile

FORMAT_NAME = "xenoedge-references"
FORMAT_VERSION = 1
KINDS = ("dark", "white")
#: Relative difference between the requested and the stored exposure that still counts as equal.
EXPOSURE_RTOL = 0.01


class ReferenceWarning(UserWarning):
    """References that can still be used but may be wrong: too old, or from another exposure."""


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _canonical(meta: dict) -> bytes:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _checksum(meta: dict, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256(_canonical({k: v for k, v in meta.items() if k != "checksum"}))
    for name in KINDS:
        if name in arrays:
            a = np.ascontiguousarray(arrays[name])
            h.update(f"\n{name}:{a.dtype.str}:{list(a.shape)}\n".encode())
            h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


def _reference_arrays(refs: References) -> dict[str, np.ndarray]:
    arrays = {}
    for kind in KINDS:
        a = getattr(refs, kind)
        if a is not None:
            a = np.asarray(a)
            if a.ndim != 3:
                raise CalibrationError(f"{kind} reference must be 3-D (h|1, w|1, C), got shape {a.shape}")
            a = np.ascontiguousarray(a, dtype=np.float32)
            _check_values(kind, a, "cannot store references")
            arrays[kind] = a
    return arrays


def _check_values(kind: str, a: np.ndarray, where: str) -> None:
    """CalibrationError when ``a`` has NaN/inf or negative counts."""
    n_bad = int(a.size - np.count_nonzero(np.isfinite(a)))
    if n_bad:
        raise CalibrationError(f"{where}: {kind} reference has {n_bad} NaN/inf values")
    n_neg = int(np.count_nonzero(a < 0))
    if n_neg:
        raise CalibrationError(f"{where}: {kind} reference has {n_neg} negative values (min {a.min():g})")


def save_references(path: str | os.PathLike, refs: References) -> Path:
    """Write ``refs`` to ``path`` atomically (see the module docstring for the layout)."""
    path = Path(path)
    arrays = _reference_arrays(refs)
    per_kind: dict[str, Any] = {}
    for kind, a in arrays.items():
        meta_obj: ReferenceMeta | None = getattr(refs, f"{kind}_meta")
        if meta_obj is None:
            raise CalibrationError(f"{kind} reference has no metadata (ReferenceMeta) to store")
        per_kind[kind] = {**_json_safe(asdict(meta_obj)), "dtype": a.dtype.str, "shape": list(a.shape)}
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "camera_id": refs.camera_id,
        "sensor": refs.sensor,
        "sensor_signature": refs.sensor_signature,
        "references": per_kind,
    }
    meta["checksum"] = _checksum(meta, arrays)
    meta_bytes = np.frombuffer(_canonical(meta), dtype=np.uint8)
    return atomic_write(path, lambda f: np.savez(f, meta=meta_bytes, **arrays))


def _read_file(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of a references file; FileFormatError/CalibrationError naming it."""
    if not path.is_file():
        raise FileFormatError(path, "no such references file" if not path.exists() else "not a file")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise FileFormatError(path, f"cannot read it ({e.strerror or e})") from None
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):  # np.load would try it as a pickle otherwise
        what = "an empty file" if not magic else "not a zip archive"
        raise FileFormatError(path, f"not a valid .npz references file ({what}; xenoedge calibrate writes them)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            if "meta" not in names:
                raise FileFormatError(path, "not a xenoedge references file: no 'meta' entry")
            data = {name: npz[name] for name in names}
    except FileFormatError:
        raise
    except zipfile.BadZipFile as e:
        if "CRC" in str(e):
            raise CalibrationError(f"{path}: checksum mismatch: file corrupted or edited ({e})") from None
        raise FileFormatError(path, f"not a valid .npz references file ({e})") from None
    except (OSError, ValueError, EOFError) as e:
        reason = "holds pickled objects" if "pickle" in str(e) else str(e)
        raise FileFormatError(path, f"not a valid .npz references file ({reason})") from None
    try:
        meta = json.loads(data.pop("meta").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FileFormatError(path, f"its meta entry is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise FileFormatError(path, f"not a xenoedge references file (format {meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise FileFormatError(
            path, f"references format version {meta.get('format_version')!r}; this xenoedge reads {FORMAT_VERSION}"
        )
    return meta, data


def _meta_from_json(d: dict) -> ReferenceMeta:
    exposure = d.get("exposure_ms")
    return ReferenceMeta(
        captured_at=str(d.get("captured_at", "")),
        exposure_ms=math.nan if exposure is None else float(exposure),
        frames=int(d.get("frames", 1)),
        source=str(d.get("source", "")),
        stats=dict(d.get("stats") or {}),
    )


def load_references(
    path: str | os.PathLike,
    *,
    camera_id: str | None = None,
    sensor: SensorProfile | None = None,
    exposure_ms: float | None = None,
    max_age_s: float | None = None,
    strict: bool = False,
    require_complete: bool = False,
    now: datetime | None = None,
) -> References:
    """Read and verify a references file written by ``save_references``.

    Always checked (errors): the file exists and is a valid references ``.npz``
    (``FileFormatError`` naming it); the checksum (``CalibrationError`` "checksum mismatch:
    file corrupted or edited"); arrays finite and non-negative, with the dtype and shape
    the metadata records. When given: ``camera_id`` and ``sensor`` (its signature, and
    the arrays must broadcast to its cube) must match; ``require_complete`` demands both
    references.

    Checked with a ``ReferenceWarning``, or ``CalibrationError`` when ``strict``: a
    reference older than ``max_age_s`` seconds at ``now`` (default: the current UTC time),
    or captured at an exposure more than 1 % away from ``exposure_ms``. A reference of
    unknown exposure (NaN, e.g. an imported DarkPattern) is not compared.
    """
    path = Path(path)
    meta, data = _read_file(path)
    per_kind = meta.get("references") or {}
    expected = {k for k in KINDS if k in per_kind}
    if set(data) != expected:
        raise FileFormatError(path, f"arrays {sorted(data)} do not match the metadata, which lists {sorted(expected)}")
    if meta.get("checksum") != _checksum(meta, data):
        raise CalibrationError(f"{path}: checksum mismatch: file corrupted or edited")
    for kind, a in data.items():
        info = per_kind[kind]
        if a.dtype.str != info.get("dtype") or list(a.shape) != info.get("shape") or a.ndim != 3:
            raise FileFormatError(path, f"{kind} array {a.dtype} {a.shape} differs from its metadata")
        _check_values(kind, a, str(path))
    refs = References(
        camera_id=str(meta.get("camera_id")),
        sensor=str(meta.get("sensor")),
        sensor_signature=str(meta.get("sensor_signature")),
        dark=data.get("dark"),
        white=data.get("white"),
        dark_meta=_meta_from_json(per_kind["dark"]) if "dark" in per_kind else None,
        white_meta=_meta_from_json(per_kind["white"]) if "white" in per_kind else None,
    )
    _check_identity(path, refs, camera_id, sensor)
    if require_complete and not refs.complete:
        missing = " and ".join(k for k in KINDS if getattr(refs, k) is None)
        raise CalibrationError(f"{path}: no {missing} reference; capture it with `xenoedge calibrate`")
    _check_age_and_exposure(path, refs, exposure_ms, max_age_s, strict, now)
    return refs


def _check_identity(path: Path, refs: References, camera_id: str | None, sensor: SensorProfile | None) -> None:
    if camera_id is not None and refs.camera_id != camera_id:
        raise CalibrationError(f"{path}: references are for camera {refs.camera_id}, not {camera_id}")
    shapes = [a.shape for a in (refs.dark, refs.white) if a is not None]
    target = sensor.cube_shape if sensor is not None else None
    if sensor is not None and refs.sensor_signature != sensor.signature:
        raise CalibrationError(
            f"{path}: references are for sensor {refs.sensor} ({refs.sensor_signature}), "
            f"not {sensor.name} ({sensor.signature})"
        )
    try:
        full = np.broadcast_shapes(*shapes, *([target] if target else []))
    except ValueError:
        where = f"the {sensor.name} cube {target}" if sensor is not None else "each other"
        raise CalibrationError(f"{path}: reference shapes {shapes} do not fit {where}") from None
    if target is not None and full != target:
        raise CalibrationError(f"{path}: reference shapes {shapes} do not fit the {sensor.name} cube {target}")


def _check_age_and_exposure(
    path: Path,
    refs: References,
    exposure_ms: float | None,
    max_age_s: float | None,
    strict: bool,
    now: datetime | None,
) -> None:
    now_utc = utc_now() if now is None else parse_iso_utc(now.isoformat())
    problems: list[str] = []
    for kind in KINDS:
        m: ReferenceMeta | None = getattr(refs, f"{kind}_meta")
        if m is None:
            continue
        if max_age_s is not None:
            try:
                age_s = (now_utc - parse_iso_utc(m.captured_at)).total_seconds()
            except ValueError:
                problems.append(f"{kind} reference has no valid capture time ({m.captured_at!r})")
            else:
                if age_s > max_age_s:
                    problems.append(
                        f"{kind} reference is {_age_text(age_s)} old "
                        f"(captured {m.captured_at}; limit {_age_text(max_age_s)})"
                    )
        if exposure_ms is not None and math.isfinite(m.exposure_ms):
            if abs(m.exposure_ms - exposure_ms) > EXPOSURE_RTOL * abs(exposure_ms):
                problems.append(
                    f"{kind} reference was captured at {m.exposure_ms:g} ms, the camera runs at {exposure_ms:g} ms"
                )
    if problems:
        message = f"{path}: " + "; ".join(problems) + "; recapture the references"
        if strict:
            raise CalibrationError(message)
        warnings.warn(message, ReferenceWarning, stacklevel=3)  # points at load_references' caller


def _age_text(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def merge_reference(
    existing: References | None,
    kind: str,
    capture: ReferenceCapture,
    camera_id: str,
    sensor: SensorProfile,
    *,
    stats: dict | None = None,
) -> References:
    """``existing`` with the ``kind`` reference replaced by ``capture`` (what ``calibrate dark|white`` stores).

    Capturing white keeps the stored dark; capturing dark keeps a stored white (it is raw
    counts, still valid; re-validate it against the new dark if in doubt). ``stats`` (e.g.
    the validation figures) go into the reference's metadata. Raises ``CalibrationError``
    for a white without a stored dark ("capture the dark reference first"), for a capture
    or existing file of another camera or sensor, and for a capture of the wrong shape.
    """
    if kind not in KINDS:
        raise CalibrationError(f"reference kind must be 'dark' or 'white', not {kind!r}")
    if capture.kind != kind:
        raise CalibrationError(f"a {capture.kind} capture cannot be stored as the {kind} reference")
    if capture.camera_id != camera_id:
        raise CalibrationError(f"the capture is from camera {capture.camera_id}, not {camera_id}")
    if capture.sensor != sensor.name:
        raise CalibrationError(f"the capture is from sensor {capture.sensor}, not {sensor.name}")
    try:
        full = np.broadcast_shapes(capture.mean.shape, sensor.cube_shape)
    except ValueError:
        full = None
    if full != sensor.cube_shape:
        raise CalibrationError(
            f"{kind} capture of shape {capture.mean.shape} does not fit the {sensor.name} cube {sensor.cube_shape}"
        )
    if existing is not None:
        if existing.camera_id != camera_id:
            raise CalibrationError(
                f"the references file holds camera {existing.camera_id}; refusing to add camera {camera_id}'s "
                f"{kind} reference (use another file)"
            )
        if existing.sensor_signature != sensor.signature:
            raise CalibrationError(
                f"the references file is for sensor {existing.sensor} ({existing.sensor_signature}), "
                f"not {sensor.name} ({sensor.signature})"
            )
    if kind == "white" and (existing is None or existing.dark is None):
        raise CalibrationError("no dark reference stored: capture the dark reference first")
    refs = References(
        camera_id=camera_id,
        sensor=sensor.name,
        sensor_signature=sensor.signature,
        dark=existing.dark if existing else None,
        white=existing.white if existing else None,
        dark_meta=existing.dark_meta if existing else None,
        white_meta=existing.white_meta if existing else None,
    )
    setattr(refs, kind, capture.mean.astype(np.float32, copy=False))
    setattr(refs, f"{kind}_meta", capture.to_meta("camera", stats))
    return refs
