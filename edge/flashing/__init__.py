"""Model flashing on the device: A/B slots, verified install with self-test, rollback (docs/flashing.md).

Light like ``xenoedge.export.bundle``: stdlib, numpy, cryptography; engines are opened lazily for the
self-test. The wire-protocol upload (``xenoedge.edge.flashing.upload``) and the host side
(``xenoedge.edge.flashing.host``) build on :func:`install_bundle` and :class:`SlotStore`.
"""

from xenoedge.edge.flashing.errors import (
    EXIT_RESTART_LOOP,
    BundleRejected,
    FlashError,
    InstallBusyError,
    NoSpaceError,
    RestartLoopError,
    RollbackError,
    SelfTestFailed,
    SlotStateError,
)
from xenoedge.edge.flashing.install import (
    DEVICE_STATE_SUBDIR,
    InstallPolicy,
    InstallReport,
    device_state_dir,
    install_bundle,
    install_into_root,
)
from xenoedge.edge.flashing.slots import SlotInfo, SlotStore, check_slot_files

__all__ = [
    "DEVICE_STATE_SUBDIR",
    "EXIT_RESTART_LOOP",
    "BundleRejected",
    "FlashError",
    "InstallBusyError",
    "InstallPolicy",
    "InstallReport",
    "NoSpaceError",
    "RestartLoopError",
    "RollbackError",
    "SelfTestFailed",
    "SlotInfo",
    "SlotStateError",
    "SlotStore",
    "check_slot_files",
    "device_state_dir",
    "install_bundle",
    "install_into_root",
]
