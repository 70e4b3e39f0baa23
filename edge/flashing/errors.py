"""Errors of model flashing: one ``FlashError`` root under ``XenoedgeError``, one subclass per reason.

Every install failure leaves the active slot untouched; the error says why (and, for a bundle
problem, keeps the underlying :class:`xenoedge.export.bundle.BundleError` as ``__cause__``).
"""

from __future__ import annotations

from xenoedge.errors import XenoedgeError

__all__ = [
    "EXIT_RESTART_LOOP",
    "BundleRejected",
    "FlashError",
    "InstallBusyError",
    "NoSpaceError",
    "RestartLoopError",
    "RollbackError",
    "SelfTestFailed",
    "SlotStateError",
]

#: Exit status the daemon should use for :class:`RestartLoopError`, so that systemd's
#: ``RestartPreventExitStatus=78`` (deploy/xenoedge.service) stops restarting it (78 = EX_CONFIG).
EXIT_RESTART_LOOP = 78


class FlashError(XenoedgeError):
    """Root of every flashing error (install, slots, rollback)."""


class BundleRejected(FlashError):
    """The bundle was refused before it could become active: whole-bundle SHA-256, signature,
    size, compatibility (sensor, engines), layout, hostile archive member or ONNX external data.
    ``reason`` is a short machine-readable word (``sha256``, ``signature``, ``size``,
    ``incompatible``, ``archive``, ``integrity``, ``manifest``, ``external-data``)."""

    def __init__(self, message: str, *, reason: str = "bundle"):
        self.reason = reason
        super().__init__(message)


class SelfTestFailed(FlashError):
    """The unpacked bundle did not load, or its golden self-test gave a mask below its threshold."""


class NoSpaceError(FlashError):
    """The device's storage is full (ENOSPC/EDQUOT, or not enough free space for the bundle)."""


class RollbackError(FlashError):
    """No slot to go back to (no known-good or previous bundle), or that slot is damaged."""


class InstallBusyError(FlashError):
    """Another install (or rollback) holds the slot store, or installing now would overwrite
    the only known-good slot while the active one is still unconfirmed."""


class SlotStateError(FlashError):
    """The slot store's ``state.json`` cannot be read or written."""


class RestartLoopError(FlashError):
    """The device started too many times in a row without its model serving its first frames,
    and there is nothing left to roll back to. The daemon should exit with
    :data:`EXIT_RESTART_LOOP` and stay down until a person flashes or resets it."""
