"""The one error hierarchy of xenoedge.

It lives in ``calibration`` because that is the base layer every other package
(``devices``, ``xeno``, ``export``, ``edge``) may import. Catch ``XenoedgeError``
to catch everything we raise on purpose; anything else is a bug.
"""

from __future__ import annotations


class XenoedgeError(Exception):
    """Root of every error xenoedge raises on purpose."""


class UnknownNameError(XenoedgeError, KeyError):
    """A name (sensor profile, species, label set, state ...) that is not in its table.

    The message lists what is available and, where one is close, suggests it
    (it never substitutes the suggestion).
    """

    def __init__(self, kind: str, name: str, available: list[str] | tuple[str, ...]):
        import difflib

        self.kind, self.name, self.available = kind, name, tuple(available)
        close = difflib.get_close_matches(name, self.available, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}; available: {', '.join(self.available)}.{hint}")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.args[0]


class FileFormatError(XenoedgeError):
    """A file that is missing, truncated, or not what its name or header says."""

    def __init__(self, path: object, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}")


class InvalidCubeError(XenoedgeError, ValueError):
    """An array that breaks the cube contract (shape, dtype, band count, values)."""


class CameraError(XenoedgeError):
    """A camera that cannot be opened, fails to deliver, or is used wrongly."""


class CameraExhaustedError(CameraError):
    """A camera that has no more frames (a replay folder played to its end)."""


class CalibrationError(XenoedgeError):
    """References or frames that cannot be calibrated: mismatched, invalid, stale, corrupt."""


class ReferenceValidationError(CalibrationError):
    """A reference capture that failed validation; ``report`` says which checks failed."""

    def __init__(self, message: str, report: object):
        self.report = report
        super().__init__(message)
