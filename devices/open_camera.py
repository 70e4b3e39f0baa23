"""Cameras by name: one table (``CAMERA_KINDS``) turns a camera string into a camera.

A camera string is ``kind[:target][?key=value&...]`` (``xenoedge.devices.camera_spec``). The table
gives, per kind, the form, what it needs, an example, its options and the factory; the
parser's checks, the error for a bad string, ``xenoedge devices list`` and docs/cameras.md
all come from it.

Sensor profile: the string's ``profile=`` (or, for ``sim:``, a profile name as the target)
wins; otherwise the profile the caller passes (the daemon: the bundle's), otherwise the
recording's ``camera.json`` (``file:``) or the domain's usual sensor (``sim:``). A string
whose profile contradicts the caller's is refused. ``size=HxW`` makes it a window of that
sensor (a whole number of mosaic super-pixels).

>>> sorted(CAMERA_KINDS)
['file', 'replay', 'sim', 'v4l2']
>>> camera_from_spec("sim:crop?seed=3").sensor.name
'mosaic-5x5-nir'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xenoedge.devices.camera import Camera
from xenoedge.devices.camera_spec import CameraSpec, CameraSpecError, parse_camera_spec

from xenoedge.errors import CameraError, FileFormatError, UnknownNameError
from xenoedge.sensors import SENSORS, SensorProfile, get_sensor

#: Scene domain of the simulator -> the sensor it is usually filmed with.
SIM_DEFAULT_SENSORS = {"surgical": "tivita", "crop": "mosaic-5x5-nir"}

Factory = Callable[[CameraSpec, "SensorProfile | None", int, float], Camera]


@dataclass(frozen=True)
class CameraKind:
    """One row of the table: ``form`` is the syntax, ``needs`` what must exist for it to work."""

    name: str
    form: str
    needs: str
    example: str
    options: dict[str, str]
    factory: Factory


def sensor_window(sensor: SensorProfile, height: int, width: int) -> SensorProfile:
    """``sensor`` streaming an ``height`` x ``width`` window (a sensor ROI); raises if it does not fit.

    Same name, band set and noise figures; its signature differs (the cube shape is part of it),
    so references and bundles of the full frame are not mixed up with the window's.
    """
    if (height, width) == (sensor.height, sensor.width):
        return sensor
    p = sensor.pattern_size
    if height % p or width % p:
        raise CameraError(
            f"size {height}x{width} does not fit the {p}x{p} mosaic pattern of {sensor.name} "
            f"(a window is a whole number of {p}x{p} super-pixels)"
        )
    full = SENSORS.get(sensor.name, sensor)
    if height > full.height or width > full.width:
        raise CameraError(f"size {height}x{width} is larger than the {sensor.name} sensor ({full.height}x{full.width})")
    return dataclasses.replace(
        sensor,
        height=height,
        width=width,
        description=f"{full.description}; {height}x{width} window",
        extra={**sensor.extra, "window_of": (full.height, full.width)},
    )


def _profile(
    spec: CameraSpec, sensor: SensorProfile | None, fallback: str | None, named: str | None = None
) -> SensorProfile:
    """The sensor profile for ``spec`` (see the module docstring for the order)."""
    requested = spec.text_option("profile")
    if named and requested and named != requested:
        raise spec.error(f"names two profiles, {named!r} and profile={requested!r}")
    requested = requested or named
    try:
        if requested:
            profile = sensor if sensor is not None and sensor.name == requested else get_sensor(requested)
            if sensor is not None and sensor.name != profile.name:
                raise spec.error(
                    f"its profile {profile.name!r} contradicts the sensor {sensor.name!r} this camera is opened for "
                    "(the bundle's or --sensor)"
                )
        elif sensor is not None:
            profile = sensor
        elif fallback:
            profile = get_sensor(fallback)
        else:
            raise spec.error(f"say which sensor it is: add ?profile=NAME (known: {', '.join(sorted(SENSORS))})")
    except UnknownNameError as exc:
        raise spec.error(str(exc)) from None
    size = spec.size_option("size")
    if size is not None:
        try:
            profile = sensor_window(profile, *size)
        except CameraError as exc:
            raise spec.error(str(exc)) from None
    return profile


def _crosstalk(spec: CameraSpec, sensor: SensorProfile):
    path = spec.text_option("crosstalk")
    if path is None:
        return None
    from xenoedge.calibration.mosaic import load_crosstalk

    try:
        return load_crosstalk(path, sensor)
    except FileFormatError as exc:
        raise spec.error(str(exc)) from None


# -- factories ---------------------------------------------------------------------------
def _simulated(spec: CameraSpec, sensor: SensorProfile | None, seed: int, exposure_ms: float) -> Camera:
    from xenoedge.devices.simulated import SimulatedCamera
    from xenoedge.xeno.scene import get_domain

    target = spec.target
    species = spec.list_option("species")
    if target and target not in SIM_DEFAULT_SENSORS and target not in SENSORS:
        raise spec.error(
            f"{target!r} is neither a scene domain ({', '.join(SIM_DEFAULT_SENSORS)}) "
            f"nor a sensor profile ({', '.join(sorted(SENSORS))})"
        )
    named = target if target in SENSORS else None
    if target in SIM_DEFAULT_SENSORS:
        domain = target
    elif species:
        owners = [d for d in SIM_DEFAULT_SENSORS if species[0] in get_domain(d).species]
        domain = owners[0] if owners else "surgical"
    else:
        by_sensor = [d for d, s in SIM_DEFAULT_SENSORS.items() if s == named]
        domain = by_sensor[0] if by_sensor else "surgical"
    known = get_domain(domain).species
    unknown = [s for s in species or () if s not in known]
    if unknown:
        raise spec.error(f"species {', '.join(unknown)} not in the {domain} domain ({', '.join(known)})")
    profile = _profile(spec, sensor, SIM_DEFAULT_SENSORS[domain], named)
    seed = spec.int_option("seed", seed)
    return SimulatedCamera(
        profile,
        domain=domain,
        species=species or known,
        seed=seed,
        exposure_ms=spec.float_option("exposure", exposure_ms, positive=True),
        max_frames=spec.int_option("frames", None, minimum=1),
        fps=spec.float_option("fps", None, positive=True),
        frames_per_scene=spec.int_option("scene", 30, minimum=1),
        camera_id=spec.text_option("id"),
        ring=spec.int_option("ring", None, minimum=2),
    )


def _replay(spec: CameraSpec, sensor: SensorProfile | None, seed: int, exposure_ms: float) -> Camera:
    from xenoedge.devices.replay import ReplayCamera

    if not spec.target:
        raise spec.error("replay needs a folder: replay:PATH")
    folder = Path(spec.target)
    return ReplayCamera(
        _profile(spec, sensor, None),
        folder,
        loop=spec.bool_option("loop"),
        camera_id=spec.text_option("id", f"replay-{folder.name}"),
        exposure_ms=exposure_ms,
    )


def _v4l2(spec: CameraSpec, sensor: SensorProfile | None, seed: int, exposure_ms: float) -> Camera:
    from xenoedge.devices.opencv_camera import OpenCVCamera

    if not spec.target:
        raise spec.error("v4l2 needs a device: v4l2:/dev/video0 (or v4l2:0)")
    profile = _profile(spec, sensor, None)
    return OpenCVCamera(
        profile,
        spec.target,
        mode="v4l2",
        spec_text=spec.text,
        camera_id=spec.text_option("id"),
        pixel_format=spec.text_option("fourcc"),
        frame_size=(profile.height, profile.width),
        exposure_ms=spec.float_option("exposure", None, positive=True),
        gain=spec.float_option("gain", None),
        fps=spec.float_option("fps", None, positive=True),
        shift=spec.int_option("shift", 0, minimum=0),
        crosstalk=_crosstalk(spec, profile),
    )


def _file(spec: CameraSpec, sensor: SensorProfile | None, seed: int, exposure_ms: float) -> Camera:
    from xenoedge.devices.opencv_camera import OpenCVCamera, mode_for
    from xenoedge.devices.recording import read_recording_info, recording_defaults

    target = spec.target
    if not target:
        raise spec.error("file needs a video or image pattern: file:scan.mkv or file:seq/%05d.png")
    try:
        if Path(target).is_dir():  # a recording folder: play what its camera.json names
            info = read_recording_info(target)
            if info is None:
                raise spec.error(
                    f"{target} is a folder without camera.json; give a video or a pattern like {target}/%05d.png"
                )
            target = str(Path(target) / info["frames_file"])
        recorded = recording_defaults(target)
    except FileFormatError as exc:
        raise spec.error(str(exc)) from None
    spec = spec.with_defaults(recorded.options)
    profile = _profile(spec, sensor, None)
    exposure = recorded.exposure_ms if recorded.exposure_ms is not None else exposure_ms
    return OpenCVCamera(
        profile,
        target,
        mode=mode_for(target),
        spec_text=spec.text,
        camera_id=spec.text_option("id"),
        exposure_ms=spec.float_option("exposure", exposure, positive=True),
        fps=spec.float_option("fps", None, positive=True),
        loop=spec.bool_option("loop"),
        shift=spec.int_option("shift", 0, minimum=0),
        labels_pattern=recorded.labels,
        reference_patterns=recorded.references,
        media_fps=recorded.fps,
        crosstalk=_crosstalk(spec, profile),
    )


_COMMON = {"profile": "sensor profile name (`xenoedge sensors`)", "id": "camera id (references are stored per id)"}
_WINDOW = {"size": "HxW window of the sensor (whole mosaic super-pixels)"}
_STREAM = {
    "shift": "right-shift counts by N bits (MSB-aligned data)",
    "crosstalk": ".npy (C, C) band-crosstalk correction for calibration",
}

CAMERA_KINDS: dict[str, CameraKind] = {
    k.name: k
    for k in (
        CameraKind(
            "sim",
            "sim[:DOMAIN|:PROFILE][?OPTIONS]",
            "nothing: the physics simulator films surgical or crop scenes",
            "sim:tivita?species=human",
            {
                **_COMMON,
                **_WINDOW,
                "species": "comma-separated species to rotate through",
                "seed": "scene and noise seed",
                "exposure": "exposure in ms",
                "frames": "stop after N frames",
                "fps": "pace to N frames/s",
                "scene": "frames per scene",
                "ring": "pre-assemble N frames per scene and hand them out in turn (no CPU per read)",
            },
            _simulated,
        ),
        CameraKind(
            "replay",
            "replay:FOLDER[?OPTIONS]",
            "a folder of cube files (.npz, .npy, .hdr, _SpecCube.dat) and a profile with their band count",
            "replay:/data/scans?profile=tivita",
            {**_COMMON, "loop": "start again at the end (1/0)"},
            _replay,
        ),
        CameraKind(
            "v4l2",
            "v4l2:/dev/videoN[?OPTIONS]",
            "a V4L2 device streaming raw mono frames (GREY, Y10, Y12, Y16, Y16_BE, Y10P, Y12P) and a mosaic profile",
            "v4l2:/dev/video0?profile=mosaic-5x5-nir",
            {
                **_COMMON,
                **_WINDOW,
                **_STREAM,
                "fourcc": "pixel format to request, e.g. Y16 or Y10P",
                "exposure": "exposure in ms (manual exposure)",
                "gain": "analogue gain in device units",
                "fps": "frame rate to request",
            },
            _v4l2,
        ),
        CameraKind(
            "file",
            "file:VIDEO|IMAGE|PATTERN|RECORDING[?OPTIONS]",
            "a lossless mono video (FFV1) or 8/16-bit mono image sequence, and a mosaic profile "
            "(read from camera.json beside a recording)",
            "file:seq/%05d.png?profile=mosaic-5x5-nir&fps=10",
            {**_COMMON, **_WINDOW, **_STREAM, "fps": "pace playback to N frames/s", "loop": "start again at the end"},
            _file,
        ),
    )
}


def accepted_forms() -> str:
    """One line listing every kind's form and example (used in errors)."""
    return "; ".join(f"{k.form} (e.g. {k.example})" for k in CAMERA_KINDS.values())


def check_spec(text: str) -> CameraSpec:
    """Parse ``text`` and check its kind and option names against the table."""
    try:
        spec = parse_camera_spec(text)
    except CameraSpecError as exc:
        raise CameraSpecError(f"{exc}; accepted forms: {accepted_forms()}") from None
    kind = CAMERA_KINDS.get(spec.kind)
    if kind is None:
        raise spec.error(f"unknown camera kind {spec.kind!r}; accepted forms: {accepted_forms()}")
    unknown = sorted(set(spec.options) - set(kind.options))
    if unknown:
        raise spec.error(
            f"unknown option {', '.join(unknown)} for {kind.name}; {kind.name} takes: {', '.join(kind.options)}"
        )
    return spec


def camera_from_spec(
    spec: str, sensor: SensorProfile | None = None, *, seed: int = 0, exposure_ms: float = 10.0
) -> Camera:
    """A (not yet opened) camera for camera string ``spec`` (see the module docstring).

    ``sensor``: the profile the caller needs (the daemon: its bundle's), or None to take it from
    the string. ``seed``/``exposure_ms``: defaults for the simulator (the string's options win).
    Raises ``CameraSpecError`` (a ``CameraError``) naming the string and what is wrong.
    """
    parsed = check_spec(spec)
    return CAMERA_KINDS[parsed.kind].factory(parsed, sensor, seed, exposure_ms)


__all__ = [
    "CAMERA_KINDS",
    "SIM_DEFAULT_SENSORS",
    "CameraKind",
    "accepted_forms",
    "camera_from_spec",
    "check_spec",
    "sensor_window",
]
