"""Camera strings: parsing, the table of kinds, sensor profile choice and the errors for bad strings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from xenoedge.devices.camera_spec import CameraSpecError, parse_camera_spec
from xenoedge.devices.open_camera import CAMERA_KINDS, accepted_forms, camera_from_spec, sensor_window
from xenoedge.devices.opencv_camera import OpenCVCamera
from xenoedge.devices.replay import ReplayCamera
from xenoedge.devices.simulated import SimulatedCamera

from xenoedge.errors import CameraError
from xenoedge.sensors import get_sensor

DOC = Path(__file__).resolve().parents[2] / "docs" / "cameras.md"
NIR = get_sensor("mosaic-5x5-nir")


def test_parse_keeps_the_printf_pattern_and_decodes_option_values():
    spec = parse_camera_spec(" file:seq/%05d.png?profile=mosaic-5x5-nir&fps=10&id=plot%207 ")
    assert (spec.kind, spec.target) == ("file", "seq/%05d.png")
    assert spec.options == {"profile": "mosaic-5x5-nir", "fps": "10", "id": "plot 7"}
    assert parse_camera_spec("sim").target == "" and parse_camera_spec("SIM:crop").kind == "sim"
    assert parse_camera_spec("v4l2:/dev/video0").target == "/dev/video0"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty camera string"),
        ("9cam:x", "is not a camera kind name"),
        ("sim:crop?seed=1&seed=2", "option 'seed' is given twice"),
        ("sim:crop?seed", "options must be key=value pairs"),
    ],
)
def test_malformed_strings(text, match):
    with pytest.raises(CameraSpecError, match=match):
        parse_camera_spec(text)


def test_the_documented_forms_make_cameras():
    sim = camera_from_spec("sim:tivita?species=human")
    assert isinstance(sim, SimulatedCamera)
    assert (sim.sensor.name, sim.domain, sim.species) == ("tivita", "surgical", ("human",))
    crop = camera_from_spec("sim:crop")
    assert (crop.sensor.name, crop.domain) == ("mosaic-5x5-nir", "crop")
    assert camera_from_spec("sim:surgical").sensor.name == "tivita"
    replay = camera_from_spec("replay:/data/scans", get_sensor("tivita"))
    assert isinstance(replay, ReplayCamera) and replay.folder == Path("/data/scans")
    device = camera_from_spec("v4l2:/dev/video0?profile=mosaic-5x5-nir&exposure=8&gain=2&fourcc=Y10P")
    assert isinstance(device, OpenCVCamera) and device.mode == "v4l2" and not device.is_open
    assert (device.pixel_format.name, device.requested_exposure_ms, device.gain) == ("Y10P", 8.0, 2.0)
    assert device.frame_size == (1088, 2048) and device.camera_id == "v4l2-video0"
    video = camera_from_spec("file:scan.mkv", NIR)
    assert (video.mode, video.camera_id) == ("video", "file-scan")
    seq = camera_from_spec("file:seq/%05d.png?profile=mosaic-5x5-nir&fps=10")
    assert (seq.mode, seq.fps, seq.camera_id) == ("images", 10.0, "file-seq")


def test_every_example_in_the_table_builds_a_camera():
    for kind in CAMERA_KINDS.values():
        cam = camera_from_spec(kind.example)
        assert not cam.is_open, kind.name


def test_existing_callers_keep_working():
    """The daemon and `xenoedge calibrate` pass (spec, sensor, seed=, exposure_ms=)."""
    cam = camera_from_spec("sim:crop", NIR, seed=2, exposure_ms=25.0)
    assert (cam.camera_id, cam.exposure_ms, cam.sensor) == ("sim-mosaic-5x5-nir-2", 25.0, NIR)
    assert camera_from_spec("sim", get_sensor("tivita")).domain == "surgical"
    assert camera_from_spec("sim:crop?seed=5&exposure=4", NIR, seed=2).camera_id == "sim-mosaic-5x5-nir-5"


def test_unknown_kind_lists_every_accepted_form():
    with pytest.raises(CameraSpecError) as err:
        camera_from_spec("usb:0")
    message = str(err.value)
    assert message.startswith("camera 'usb:0': unknown camera kind 'usb'; accepted forms: ")
    for kind in CAMERA_KINDS.values():
        assert kind.form in message and kind.example in message
    assert isinstance(err.value, CameraError)


@pytest.mark.parametrize(
    ("text", "sensor", "match"),
    [
        ("sim:crop?colour=red", None, r"unknown option colour for sim; sim takes: profile, id, size, species"),
        ("sim:orchard", None, r"'orchard' is neither a scene domain \(surgical, crop\) nor a sensor profile"),
        ("sim:crop?species=human", None, r"species human not in the crop domain \(wheat, maize, tomato\)"),
        ("sim:tivita?profile=mosaic-5x5-nir", None, "names two profiles"),
        ("sim:crop?seed=x", None, "option seed='x' must be an integer"),
        ("file:seq/%05d.png?fps=-1", NIR, "option fps='-1' must be a positive finite number"),
        ("file:seq/%05d.png", None, r"say which sensor it is: add \?profile=NAME"),
        ("file:seq/%05d.png?profile=nir", None, "unknown sensor profile 'nir'"),
        ("file:seq/%05d.png?profile=mosaic-4x4-vis", NIR, "contradicts the sensor 'mosaic-5x5-nir'"),
        ("file:seq/%05d.png?size=100", NIR, "option size='100' must look like HEIGHTxWIDTH"),
        ("file:seq/%05d.png?size=2000x2000", NIR, "larger than the mosaic-5x5-nir sensor"),
        ("v4l2:?profile=mosaic-5x5-nir", None, r"v4l2 needs a device: v4l2:/dev/video0"),
        ("file:", NIR, "file needs a video or image pattern"),
        ("replay:", NIR, "replay needs a folder"),
        ("replay:/data/scans", None, "say which sensor it is"),
    ],
)
def test_bad_strings_name_the_string_and_the_problem(text, sensor, match):
    with pytest.raises(CameraError, match=match) as err:
        camera_from_spec(text, sensor)
    assert str(err.value).startswith(f"camera {text!r}") or text in str(err.value)


def test_a_window_keeps_the_pattern_and_gets_its_own_signature():
    window = sensor_window(NIR, 100, 130)
    assert window.cube_shape == (20, 26, 25) and window.mosaic == NIR.mosaic and window.name == NIR.name
    assert window.signature != NIR.signature and window.extra["window_of"] == (1088, 2048)
    assert sensor_window(NIR, 1088, 2048) is NIR
    assert camera_from_spec("sim:crop?size=100x130").sensor.signature == window.signature


def test_docs_list_every_kind_with_its_form_example_and_options():
    text = DOC.read_text()
    rows = {m[0]: m for m in re.findall(r"^\| `(\w+)` \| `([^`]+)` \| .* \| `([^`]+)` \| (.*) \|$", text, re.M)}
    assert sorted(rows) == sorted(CAMERA_KINDS)
    for name, kind in CAMERA_KINDS.items():
        _, form, example, options = rows[name]
        assert (form.replace("\\|", "|"), example) == (kind.form, kind.example)
        assert [o.strip(" `") for o in options.split(",")] == list(kind.options)
    assert accepted_forms().count("e.g.") == len(CAMERA_KINDS)
