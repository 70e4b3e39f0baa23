"""The bundle manifest (schema version 1): validation, canonical bytes, completion of file entries.

The manifest is a JSON object. Its exact bytes are what the detached signature covers, so it is
written one way only (:func:`dumps_manifest`: sorted keys, 2-space indent, ASCII, no NaN) and read
strictly (:func:`loads_manifest`: UTF-8, no duplicate keys, no NaN/Infinity). docs/bundles.md
describes every field.

>>> is_semver("1.2.3-rc.1+build.5"), is_semver("1.2")
(True, False)
>>> member_path_problem("models/cpu/model.onnx") is None, member_path_problem("../etc/passwd")
(True, "has a '..' component")
"""

from __future__ import annotations

import copy
import datetime as _dt
import itertools
import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any

from xenoedge.export.bundle.errors import IncompatibleBundleError, ManifestError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
SELFTEST_INPUT = "selftest/input.npz"
SELFTEST_EXPECTED = "selftest/expected.npz"
MAX_MANIFEST_BYTES = 4 << 20

RUNTIMES = ("onnxruntime", "openvino", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
VARIANTS = ("raw", "reflectance")
LAYOUTS = ("NHWC",)
DTYPES = ("uint8", "uint16", "float16", "float32")
SIGNATURE_ALGORITHM = "ed25519"

REQUIRED_KEYS = (
    "schema_version",
    "name",
    "version",
    "created_at",
    "sensor",
    "input",
    "preprocessing",
    "labels",
    "targets",
    "accuracy",
    "provenance",
    "selftest",
)
OPTIONAL_KEYS = ("description", "signature", "extra")

# semver.org 2.0.0, the official regular expression
_SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TARGET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_COMPONENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,99}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")
MAX_PATH_CHARS = 200


class Manifest(dict):
    """A validated manifest (a plain ``dict``) plus what reading the bundle found out.

    ``signed``: the bundle holds ``manifest.sig``; ``signature_verified``: it was checked
    against a caller's public key (never from anything inside the bundle); ``key_id``: the
    fingerprint of that key, or the one the manifest names.
    """

    signed: bool = False
    signature_verified: bool = False
    key_id: str | None = None

    def files(self) -> dict[str, dict]:
        """Every listed member: path -> {"path", "size", "sha256"} (targets then self-test)."""
        return listed_files(self)


def is_semver(text: object) -> bool:
    """True for a semantic version string (semver.org 2.0.0)."""
    return isinstance(text, str) and _SEMVER_RE.match(text) is not None


def member_path_problem(path: object) -> str | None:
    """Why ``path`` is not an acceptable member name, or None when it is.

    Accepted: relative POSIX paths of 1-4 components of ``[A-Za-z0-9_][A-Za-z0-9._+-]*``,
    at most 200 characters; so no absolute path, no ``..``, no ``.``, no backslash, no empty part.
    """
    if not isinstance(path, str) or not path:
        return "is empty or not a string"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "is an absolute path"
    parts = path.split("/")
    if ".." in parts:
        return "has a '..' component"
    if "\\" in path:
        return "has a backslash"
    if len(path) > MAX_PATH_CHARS:
        return f"is longer than {MAX_PATH_CHARS} characters"
    if len(parts) > 4:
        return "has more than 4 components"
    for part in parts:
        if not _COMPONENT_RE.match(part):
            return f"has a component {part!r} outside [A-Za-z0-9_][A-Za-z0-9._+-]*"
    return None


def utc_now_iso() -> str:
    """Current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_created_at(text: str) -> _dt.datetime:
    """Parse the manifest's UTC ISO time (``Z`` or ``+00:00``); raises ValueError otherwise."""
    when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None or when.utcoffset() != _dt.timedelta(0):
        raise ValueError("not UTC")
    return when


def code_version() -> dict:
    """{"xenoedge": package version, "git_commit": HEAD or None, "git_dirty": bool or None}."""
    try:
        from importlib.metadata import version

        pkg = version("xenoedge")
    except Exception:  # not installed (running from a checkout)
        pkg = None
    commit = dirty = None
    root = Path(__file__).resolve().parents[2]
    try:
        run = dict(cwd=root, capture_output=True, text=True, timeout=5, check=True)
        commit = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], **run).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {"xenoedge": pkg, "git_commit": commit, "git_dirty": dirty}


# --------------------------------------------------------------------------- bytes


def dumps_manifest(manifest: dict) -> bytes:
    """The canonical manifest bytes: sorted keys, indent 2, ASCII, trailing newline, no NaN."""
    try:
        text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False)
    except ValueError as exc:  # NaN or Infinity somewhere (e.g. a DSC of an absent class)
        raise ManifestError(f"manifest: {exc}; write null for an undefined number") from None
    except TypeError as exc:
        raise ManifestError(f"manifest: not JSON-serialisable: {exc}") from None
    return (text + "\n").encode("ascii")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ManifestError(f"manifest: duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> None:
    raise ManifestError(f"manifest: {name} is not allowed; write null for an undefined number")


def loads_manifest(data: bytes) -> Manifest:
    """Parse and validate manifest bytes (strict: UTF-8, no duplicate keys, no NaN)."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest: {len(data)} bytes, over the {MAX_MANIFEST_BYTES} byte limit")
    try:
        text = data.decode("utf-8")
        obj = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest: not UTF-8 ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"manifest: not JSON ({exc})") from None
    validate_manifest(obj)
    return Manifest(obj)


# --------------------------------------------------------------------------- validation


def _fail(where: str, problem: str) -> ManifestError:
    return ManifestError(f"manifest: {where}: {problem}")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _obj(parent: dict, key: str, where: str) -> dict:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise _fail(f"{where}{key}", "missing or not an object")
    return value


def _str(parent: dict, key: str, where: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not value:
        raise _fail(f"{where}{key}", "missing or not a non-empty string")
    return value


def _validate_file_list(entries: object, where: str, prefix: str) -> list[str]:
    if not isinstance(entries, list) or not entries:
        raise _fail(where, "missing or not a non-empty list")
    paths = []
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"path", "size", "sha256"}:
            raise _fail(at, "must be an object with exactly path, size and sha256")
        path = entry["path"]
        problem = member_path_problem(path)
        if problem:
            raise _fail(f"{at}.path", f"{path!r} {problem}")
        if not path.startswith(prefix):
            raise _fail(f"{at}.path", f"{path!r} must start with {prefix!r}")
        if not _is_int(entry["size"]) or entry["size"] < 0:
            raise _fail(f"{at}.size", "must be a non-negative integer (bytes)")
        if not isinstance(entry["sha256"], str) or not _SHA256_RE.match(entry["sha256"]):
            raise _fail(f"{at}.sha256", "must be 64 lowercase hex digits")
        paths.append(path)
    return paths


def _validate_input(spec: dict) -> None:
    w = "input."
    if spec.get("layout") not in LAYOUTS:
        raise _fail(w + "layout", f"must be one of {LAYOUTS}, got {spec.get('layout')!r}")
    if spec.get("dtype") not in DTYPES:
        raise _fail(w + "dtype", f"must be one of {DTYPES}, got {spec.get('dtype')!r}")
    if spec.get("variant") not in VARIANTS:
        raise _fail(w + "variant", f"must be one of {VARIANTS}, got {spec.get('variant')!r}")
    if spec["variant"] == "raw" and not spec["dtype"].startswith("uint"):
        raise _fail(w + "dtype", "a raw-input model takes integer counts (uint8/uint16)")
    wl = spec.get("wavelengths_nm")
    if not isinstance(wl, list) or not wl or not all(_is_number(v) and v > 0 for v in wl):
        raise _fail(w + "wavelengths_nm", "must be a non-empty list of positive numbers (nm)")
    if any(b <= a for a, b in itertools.pairwise(wl)):
        raise _fail(w + "wavelengths_nm", "must be strictly increasing")
    shape = spec.get("shape")
    if not isinstance(shape, list) or len(shape) != 4:
        raise _fail(w + "shape", "must be [N, H, W, C] (null for a dynamic N, H or W)")
    for i, dim in enumerate(shape):
        if not ((_is_int(dim) and dim > 0) or (dim is None and i < 3)):
            raise _fail(w + "shape", f"dimension {i} must be a positive integer{' or null' if i < 3 else ''}")
    if shape[3] != len(wl):
        raise _fail(w + "shape", f"C={shape[3]} but {len(wl)} wavelengths")


def _validate_labels(labels: object) -> None:
    if not isinstance(labels, list) or not labels:
        raise _fail("labels", "missing or not a non-empty list")
    names = set()
    for i, label in enumerate(labels):
        at = f"labels[{i}]"
        if not isinstance(label, dict) or set(label) != {"id", "name", "color"}:
            raise _fail(at, "must be an object with exactly id, name and color")
        if label["id"] != i or not _is_int(label["id"]):
            raise _fail(f"{at}.id", f"must be {i} (ids are 0..n-1 in order; 0 is background)")
        if not isinstance(label["name"], str) or not label["name"] or label["name"] in names:
            raise _fail(f"{at}.name", "must be a non-empty, unique string")
        names.add(label["name"])
        color = label["color"]
        if not isinstance(color, list) or len(color) != 3 or not all(_is_int(c) and 0 <= c <= 255 for c in color):
            raise _fail(f"{at}.color", "must be [r, g, b] with 0-255 integers")


def _validate_targets(targets: dict) -> list[str]:
    if not targets:
        raise _fail("targets", "needs at least one target")
    paths: list[str] = []
    for name, target in targets.items():
        at = f"targets.{name}"
        if not _TARGET_RE.match(name):
            raise _fail(at, "target names are [a-z0-9][a-z0-9._-]* (at most 64 characters)")
        if not isinstance(target, dict):
            raise _fail(at, "must be an object")
        if target.get("runtime") not in RUNTIMES:
            raise _fail(f"{at}.runtime", f"must be one of {RUNTIMES}, got {target.get('runtime')!r}")
        if target.get("precision") not in PRECISIONS:
            raise _fail(f"{at}.precision", f"must be one of {PRECISIONS}, got {target.get('precision')!r}")
        files = _validate_file_list(target.get("files"), f"{at}.files", f"models/{name}/")
        if target.get("model") not in files:
            raise _fail(f"{at}.model", f"must name one of its files {files}, got {target.get('model')!r}")
        paths += files
    return paths


def _validate_accuracy(accuracy: dict, targets: dict) -> None:
    for name, record in accuracy.items():
        at = f"accuracy.{name}"
        if name not in targets:
            raise _fail(at, f"no such target (targets: {', '.join(targets)})")
        if not isinstance(record, dict):
            raise _fail(at, "must be an object")
        for key in ("pixel_agreement", "dsc_drop", "max_drop", "mean_dsc"):
            if key in record and record[key] is not None and not _is_number(record[key]):
                raise _fail(f"{at}.{key}", "must be a number or null")
        if "pixel_agreement" in record and record["pixel_agreement"] is not None:
            if not 0 <= record["pixel_agreement"] <= 1:
                raise _fail(f"{at}.pixel_agreement", "must be within [0, 1]")
        dsc = record.get("dsc", {})
        if not isinstance(dsc, dict) or not all(v is None or _is_number(v) for v in dsc.values()):
            raise _fail(f"{at}.dsc", "must map class names to numbers or null")
        if "passed" in record and not isinstance(record["passed"], bool):
            raise _fail(f"{at}.passed", "must be true or false")


def _validate_selftest(selftest: dict) -> list[str]:
    files = _validate_file_list(selftest.get("files"), "selftest.files", "selftest/")
    for key in ("input", "expected"):
        if selftest.get(key) not in files:
            raise _fail(f"selftest.{key}", f"must name one of selftest.files {files}, got {selftest.get(key)!r}")
    agreement = selftest.get("min_agreement")
    if not _is_number(agreement) or not 0 < agreement <= 1:
        raise _fail("selftest.min_agreement", "must be a number in (0, 1] (fraction of pixels)")
    return files


def validate_manifest(manifest: object) -> None:
    """Raise :class:`ManifestError` naming the first field that breaks schema version 1."""
    if not isinstance(manifest, dict):
        raise ManifestError("manifest: not a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise _fail(", ".join(missing), "missing")
    unknown = sorted(set(manifest) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise _fail(", ".join(unknown), f"unknown field (known: {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)})")
    if manifest["schema_version"] != SCHEMA_VERSION or not _is_int(manifest["schema_version"]):
        raise _fail("schema_version", f"{manifest['schema_version']!r} is not supported (this reader knows 1)")
    name = manifest["name"]
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _fail("name", f"{name!r}: use [A-Za-z0-9][A-Za-z0-9._-]* (at most 64 characters)")
    if not is_semver(manifest["version"]):
        raise _fail("version", f"{manifest['version']!r} is not a semantic version like 1.2.0")
    try:
        parse_created_at(manifest["created_at"])
    except (TypeError, ValueError, AttributeError):
        example = "2025-01-31T12:00:00Z"
        raise _fail("created_at", f"{manifest['created_at']!r} is not a UTC ISO time like {example}") from None
    sensor = _obj(manifest, "sensor", "")
    _str(sensor, "name", "sensor.")
    signature = _str(sensor, "signature", "sensor.")
    if any(c.isspace() for c in signature):
        raise _fail("sensor.signature", "must not contain whitespace")
    _validate_input(_obj(manifest, "input", ""))
    preprocessing = _obj(manifest, "preprocessing", "")
    for key in ("clip_max", "l1_eps"):
        if key in preprocessing and not (_is_number(preprocessing[key]) and preprocessing[key] > 0):
            raise _fail(f"preprocessing.{key}", "must be a positive number")
    _validate_labels(manifest["labels"])
    targets = _obj(manifest, "targets", "")
    paths = _validate_targets(targets)
    _validate_accuracy(_obj(manifest, "accuracy", ""), targets)
    _obj(manifest, "provenance", "")
    paths += _validate_selftest(_obj(manifest, "selftest", ""))
    duplicates = sorted({p for p in paths if paths.count(p) > 1})
    if duplicates:
        raise _fail("files", f"listed more than once: {', '.join(duplicates)}")
    if "signature" in manifest:
        info = manifest["signature"]
        if not isinstance(info, dict) or info.get("algorithm") != SIGNATURE_ALGORITHM:
            raise _fail("signature.algorithm", f"must be {SIGNATURE_ALGORITHM!r}")
        if not isinstance(info.get("key_id"), str) or not _KEY_ID_RE.match(info["key_id"]):
            raise _fail("signature.key_id", "must be 16 lowercase hex digits")
        if set(info) != {"algorithm", "key_id"}:
            raise _fail("signature", "must hold exactly algorithm and key_id")
    if "description" in manifest and not isinstance(manifest["description"], str):
        raise _fail("description", "must be a string")


def listed_files(manifest: dict) -> dict[str, dict]:
    """path -> file entry for every member the manifest lists (targets, then the self-test)."""
    out: dict[str, dict] = {}
    for target in manifest["targets"].values():
        for entry in target["files"]:
            out[entry["path"]] = entry
    for entry in manifest["selftest"]["files"]:
        out[entry["path"]] = entry
    return out


# --------------------------------------------------------------------------- completion (for write_bundle)


def _entries(spec: object, given: dict[str, tuple[int, str]], prefix: str, where: str) -> list[dict]:
    """File entries for one target or the self-test: listed paths, or every given file under ``prefix``."""
    if spec is None:
        paths = sorted(p for p in given if p.startswith(prefix))
        if not paths:
            raise _fail(where, f"no files given under {prefix!r}")
    elif isinstance(spec, list):
        paths = [e if isinstance(e, str) else e.get("path") if isinstance(e, dict) else e for e in spec]
    else:
        raise _fail(where, "must be a list of paths or {path} objects")
    out = []
    for path in paths:
        if path not in given:
            raise _fail(where, f"{path!r} is listed but missing from the files given")
        size, sha256 = given[path]
        out.append({"path": path, "size": size, "sha256": sha256})
    return out


def _default_model(files: list[dict], where: str) -> str:
    paths = [e["path"] for e in files]
    if len(paths) == 1:
        return paths[0]
    entries = [p for p in paths if p.endswith((".onnx", ".xml"))]
    if len(entries) == 1:
        return entries[0]
    raise _fail(f"{where}.model", f"name the file to load among {paths}")


def complete_manifest(manifest: dict, given: dict[str, tuple[int, str]]) -> dict:
    """A copy of ``manifest`` with file entries (size, sha256) filled in from ``given``.

    ``given`` maps member path -> (size in bytes, SHA-256 hex). Defaults: ``schema_version``
    1, ``created_at`` now, ``provenance.code`` from :func:`code_version`, ``accuracy`` {},
    a target's ``files`` = every given file under ``models/<target>/`` and its ``model`` =
    the only file or the only ``.onnx``/``.xml``; the self-test's ``input``/``expected`` =
    ``selftest/input.npz``/``selftest/expected.npz`` and ``files`` = every file under
    ``selftest/``. A given file that nothing lists is an error.
    """
    if not isinstance(manifest, dict):
        raise ManifestError("manifest: not a dict")
    m = copy.deepcopy(manifest)
    m.setdefault("schema_version", SCHEMA_VERSION)
    m.setdefault("created_at", utc_now_iso())
    m.setdefault("accuracy", {})
    provenance = m.setdefault("provenance", {})
    if isinstance(provenance, dict) and "code" not in provenance:
        provenance["code"] = code_version()
    m.pop("signature", None)  # set by the signer only
    targets = m.get("targets")
    if not isinstance(targets, dict):
        raise _fail("targets", "missing or not an object")
    for name, target in targets.items():
        if not isinstance(target, dict):
            raise _fail(f"targets.{name}", "must be an object")
        target["files"] = _entries(target.get("files"), given, f"models/{name}/", f"targets.{name}.files")
        if "model" not in target:  # (not setdefault: the default raises when it is ambiguous)
            target["model"] = _default_model(target["files"], f"targets.{name}")
    selftest = m.get("selftest", {})
    if not isinstance(selftest, dict):
        raise _fail("selftest", "must be an object")
    m["selftest"] = selftest
    selftest.setdefault("input", SELFTEST_INPUT)
    selftest.setdefault("expected", SELFTEST_EXPECTED)
    selftest["files"] = _entries(selftest.get("files"), given, "selftest/", "selftest.files")
    listed = {e["path"] for t in targets.values() for e in t["files"]} | {e["path"] for e in selftest["files"]}
    stray = sorted(set(given) - listed)
    if stray:
        raise _fail("files", f"given but listed by no target nor the self-test: {', '.join(stray)}")
    validate_manifest(m)
    return m


# --------------------------------------------------------------------------- compatibility


def compatible_targets(manifest: dict, *, sensor_signature: str, runtimes: tuple[str, ...] | None = None) -> list[str]:
    """Targets of ``manifest`` this device can run, best first in manifest order.

    Raises :class:`IncompatibleBundleError` when the sensor signature differs or, given the
    device's ``runtimes`` (e.g. ``("onnxruntime",)``), no target uses one of them.
    """
    expected = manifest["sensor"]["signature"]
    if expected != sensor_signature:
        raise IncompatibleBundleError(
            f"bundle {manifest['name']} {manifest['version']} is built for sensor {expected}, "
            f"this camera is {sensor_signature}"
        )
    names = [n for n, t in manifest["targets"].items() if runtimes is None or t["runtime"] in runtimes]
    if not names:
        have = ", ".join(f"{n} ({t['runtime']})" for n, t in manifest["targets"].items())
        raise IncompatibleBundleError(f"no target for runtimes {', '.join(runtimes or ())}; bundle has {have}")
    return names
