"""Cameras by name: one table turns a spec string into a camera.

Specs: ``sim`` or ``sim:surgical`` / ``sim:crop`` (simulated camera), ``replay:FOLDER``
(replay a folder of captures). Used by the CLI (``--camera``) and, later, the daemon's config.

>>> sorted(CAMERA_KINDS)
['replay', 'sim']
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from calibration.errors import CameraError, UnknownNameError
from calibration.sensors import SensorProfile
from devices.camera import Camera


def _simulated(arg: str, sensor: SensorProfile, seed: int, exposure_ms: float) -> Camera:
    from devices.simulated import SimulatedCamera

    return SimulatedCamera(sensor, domain=arg or "surgical", species=_species(arg), seed=seed, exposure_ms=exposure_ms)


def _species(domain: str) -> tuple[str, ...]:
    from xeno.scene import get_domain

    return get_domain(domain or "surgical").species


def _replay(arg: str, sensor: SensorProfile, seed: int, exposure_ms: float) -> Camera:
    from devices.replay import ReplayCamera

    if not arg:
        raise CameraError("replay camera needs a folder: replay:PATH")
    folder = Path(arg)
    return ReplayCamera(sensor, folder, camera_id=f"replay-{folder.name}", exposure_ms=exposure_ms)


CAMERA_KINDS: dict[str, Callable[[str, SensorProfile, int, float], Camera]] = {
    "sim": _simulated,
    "replay": _replay,
}


def camera_from_spec(spec: str, sensor: SensorProfile, *, seed: int = 0, exposure_ms: float = 10.0) -> Camera:
    """A (not yet opened) camera for ``spec`` (``kind[:argument]``) delivering ``sensor`` frames."""
    kind, _, arg = spec.partition(":")
    if kind not in CAMERA_KINDS:
        raise UnknownNameError("camera kind", kind, sorted(CAMERA_KINDS))
    return CAMERA_KINDS[kind](arg, sensor, seed, exposure_ms)
