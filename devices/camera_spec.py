"""Camera strings: ``kind[:target][?key=value&...]`` parsed into a ``CameraSpec``.

The kind names a driver (``sim``, ``replay``, ``v4l2``, ``file``), the target is what it
opens (a scene domain, a folder, a device node, a file or ``%05d`` image pattern) and the
options tune it (``profile=mosaic-5x5-nir&fps=10``). The target is taken as written: it is
never percent-decoded, so ``file:seq/%05d.png`` keeps its printf pattern. Option values are
URL-decoded. Which kinds and options exist is the table in ``xenoedge.devices.open_camera``.

>>> spec = parse_camera_spec("file:seq/%05d.png?profile=mosaic-5x5-nir&fps=10")
>>> spec.kind, spec.target, spec.options
('file', 'seq/%05d.png', {'profile': 'mosaic-5x5-nir', 'fps': '10'})
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from xenoedge.errors import CameraError

_KIND = re.compile(r"[a-z][a-z0-9_-]*")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class CameraSpecError(CameraError, ValueError):
    """A camera string that cannot be parsed or names something that does not exist."""


@dataclass(frozen=True)
class CameraSpec:
    """One parsed camera string. ``text`` is the string as given (used in every error)."""

    text: str
    kind: str
    target: str = ""
    options: dict[str, str] = field(default_factory=dict)

    def error(self, problem: str) -> CameraSpecError:
        """A ``CameraSpecError`` naming this camera string."""
        return CameraSpecError(f"camera {self.text!r}: {problem}")

    def with_defaults(self, defaults: dict[str, str]) -> CameraSpec:
        """This spec with ``defaults`` filled in for options it does not set."""
        return CameraSpec(self.text, self.kind, self.target, {**defaults, **self.options})

    # -- typed option access (each raises a CameraSpecError naming the string) -------------
    def text_option(self, key: str, default: str | None = None) -> str | None:
        value = self.options.get(key)
        return default if value is None or value == "" else value

    def int_option(self, key: str, default: int | None = None, *, minimum: int | None = None) -> int | None:
        value = self.text_option(key)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise self.error(f"option {key}={value!r} must be an integer") from None
        if minimum is not None and number < minimum:
            raise self.error(f"option {key}={number} must be >= {minimum}")
        return number

    def float_option(self, key: str, default: float | None = None, *, positive: bool = False) -> float | None:
        value = self.text_option(key)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise self.error(f"option {key}={value!r} must be a number") from None
        if not number == number or number in (float("inf"), float("-inf")) or (positive and number <= 0):
            raise self.error(f"option {key}={value!r} must be a {'positive ' if positive else ''}finite number")
        return number

    def bool_option(self, key: str, default: bool = False) -> bool:
        value = self.text_option(key)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise self.error(f"option {key}={value!r} must be one of {', '.join(_TRUE + _FALSE)}")

    def size_option(self, key: str = "size") -> tuple[int, int] | None:
        """``HxW`` (rows x columns) in pixels, e.g. ``size=1088x2048``."""
        value = self.text_option(key)
        if value is None:
            return None
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value)
        if not match or 0 in (int(match[1]), int(match[2])):
            raise self.error(f"option {key}={value!r} must look like HEIGHTxWIDTH, e.g. 1088x2048")
        return int(match[1]), int(match[2])

    def list_option(self, key: str) -> tuple[str, ...] | None:
        value = self.text_option(key)
        return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


def parse_camera_spec(text: str) -> CameraSpec:
    """Split ``kind[:target][?options]``; raises ``CameraSpecError`` for a malformed string.

    Only the syntax is checked here; whether the kind and its options exist is checked
    against the table in ``xenoedge.devices.open_camera``.
    """
    if not isinstance(text, str) or not text.strip():
        raise CameraSpecError(f"camera {text!r}: empty camera string")
    stripped = text.strip()
    head, _, query = stripped.partition("?")
    kind, _, target = head.partition(":")
    kind = kind.strip().lower()
    if not _KIND.fullmatch(kind):
        raise CameraSpecError(f"camera {text!r}: {kind!r} is not a camera kind name")
    options: dict[str, str] = {}
    if query:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise CameraSpecError(
                f"camera {text!r}: options must be key=value pairs joined by '&', got {query!r}"
            ) from None
        for key, value in pairs:
            if key in options:
                raise CameraSpecError(f"camera {text!r}: option {key!r} is given twice")
            options[key] = value
    return CameraSpec(text=stripped, kind=kind, target=target.strip(), options=options)


__all__ = ["CameraSpec", "CameraSpecError", "parse_camera_spec"]
