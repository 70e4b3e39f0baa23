"""Telemetry of every library is off in xenoedge (README.md, "Telemetry").

A device product must not send usage data, and must not wait on a network it may not have.
Of the libraries xenoedge installs, only OpenVINO and NNCF phone home, both through the
``openvino_telemetry`` package: ``import openvino`` and ``import nncf`` each send a GA4 event
unless ``~/intel/openvino_telemetry`` holds ``0``, and that package has no environment switch
(only ``CI=true`` and NNCF's own ``NNCF_CI``, which mean more than "no telemetry"). Each event is
sent from a forked ``multiprocessing`` child: with no network it can hang in the name look-up,
it ignores the SIGTERM meant to stop it (it inherits our signal handlers), it keeps the
parent's file locks, and ``multiprocessing``'s exit hook then waits for it forever.

So ``disable_telemetry()`` blocks the import: ``sys.modules["openvino_telemetry"] = None`` makes
``import openvino_telemetry`` raise ``ImportError``, and both OpenVINO and NNCF then fall back
to their own do-nothing stubs. Nothing is written to the user's home (their opt-in choice for
other programs is left as it is), and nothing is sent. If the package was already imported
(xenoedge used as a library after OpenVINO), its backends' ``send`` becomes a no-op. The
environment switches that other libraries honour are set for this process and its children
(``DO_NOT_TRACK``, ``HF_HUB_DISABLE_TELEMETRY``), without overriding a value the user set.

It runs when ``calibration`` is imported: every entry point (``xenoedge``, ``edge-bench``,
``python -m export...``, ``python -m xeno...``) imports this base layer before it imports
OpenVINO or NNCF, which are imported lazily inside functions. Standard library only.
"""

from __future__ import annotations

import os
import sys

BLOCKED_MODULES = (
    "openvino_telemetry",
    "openvino_telemetry.backend",
    "openvino_telemetry.backend.backend_ga",
    "openvino_telemetry.backend.backend_ga4",
)
ENVIRONMENT = {"DO_NOT_TRACK": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def _no_send(self, message) -> None:
    return None


def disable_telemetry() -> None:
    """Turn off the telemetry of every library xenoedge may import (idempotent, cheap)."""
    for name, value in ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    loaded = sys.modules.get("openvino_telemetry")
    if loaded is None:
        for name in BLOCKED_MODULES:
            sys.modules.setdefault(name, None)  # type: ignore[arg-type]
        return
    for name in ("openvino_telemetry.backend.backend_ga", "openvino_telemetry.backend.backend_ga4"):
        module = sys.modules.get(name)
        for attr in ("GABackend", "GA4Backend"):
            cls = getattr(module, attr, None) if module is not None else None
            if cls is not None:
                cls.send = _no_send


def telemetry_disabled() -> bool:
    """True when no library can send telemetry from this process."""
    loaded = sys.modules.get("openvino_telemetry", None)
    if "openvino_telemetry" in sys.modules and loaded is None:
        return True
    ga4 = sys.modules.get("openvino_telemetry.backend.backend_ga4")
    return ga4 is not None and getattr(ga4, "GA4Backend", None) is not None and ga4.GA4Backend.send is _no_send
