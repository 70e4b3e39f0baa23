"""Errors of bundles: one ``BundleError`` root under ``XenoedgeError``, a few named subclasses.

Every error about one archive member carries its name in ``member`` and in the message.
"""

from __future__ import annotations

from xenoedge.errors import XenoedgeError

__all__ = [
    "ArchiveError",
    "BundleError",
    "IncompatibleBundleError",
    "IntegrityError",
    "KeyFileError",
    "ManifestError",
    "SignatureError",
    "UnsafeArchiveError",
]


class BundleError(XenoedgeError):
    """Root of every bundle error. ``member`` names the archive member concerned, if any."""

    def __init__(self, message: str, *, member: str | None = None):
        self.member = member
        super().__init__(message)


class ManifestError(BundleError, ValueError):
    """A manifest that breaks the schema (missing field, bad semver, file listed but missing ...)."""


class ArchiveError(BundleError):
    """Not a bundle archive: not an uncompressed tar, truncated, corrupt or non-canonical bytes."""


class UnsafeArchiveError(ArchiveError):
    """A member that extraction must refuse: absolute or ``..`` path, link, device, duplicate,
    unlisted, or over a size/count limit."""


class IntegrityError(BundleError):
    """A member whose size or SHA-256 differs from the manifest, or a listed member that is absent."""


class SignatureError(BundleError):
    """A missing, malformed or wrong signature, or a key that is not the one that signed."""


class KeyFileError(BundleError):
    """A key file that cannot be read, written or decrypted."""


class IncompatibleBundleError(BundleError):
    """A bundle built for another sensor, or with no target the device's engines can run."""
