"""What a scan session raises on purpose (all ``XenoedgeError``: the CLI prints one red line, exit 2)."""

from __future__ import annotations

from xenoedge.errors import XenoedgeError


class ScanError(XenoedgeError):
    """A scan session that cannot start or go on: bad options, a bundle without crop labels, a
    session folder that is not one or is in use."""


class ScanCalibrationError(ScanError):
    """The field references failed validation or are too old; ``problems`` lists why, one line each.
    Scanning needs new references (``--recalibrate``) or ``--override-references`` (recorded)."""

    def __init__(self, message: str, problems: list[str]):
        self.problems = list(problems)
        super().__init__(message)


class ScanOutputError(ScanError):
    """A session file could not be written (disk full, I/O error). The frame being written is lost;
    everything committed before it is intact and the session can be resumed."""

    def __init__(self, message: str, errno_code: int | None = None):
        self.errno = errno_code
        super().__init__(message)
