"""``xenoedge devices list|read`` and ``xenoedge camera-record``: cameras by string, on the device or here.

    xenoedge devices list                       # camera kinds, what each needs, /dev/video* found
    xenoedge devices read --camera "file:seq/%05d.png" --frames 200 --demosaic [--refs refs.npz]
    xenoedge camera-record --camera sim:crop --frames 20 --size 100x130 --out seq/

Device-side commands: no torch, onnx or nncf.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from xenoedge.cli.common import (
    console,
    input_file_option,
    output_folder_option,
    print_table,
    progress_bar,
    wide_table,
)

app = typer.Typer(help="Cameras: the kinds of camera string, the V4L2 devices present, read timing.")


@app.command("list")
def list_devices(
    pattern: str = typer.Option("/dev/video*", help="Device nodes to probe."),
) -> None:
    """List the camera kinds (form, what each needs, example, options) and the V4L2 devices present."""
    from xenoedge.devices.open_camera import CAMERA_KINDS
    from xenoedge.devices.opencv_camera import probe_v4l2_devices

    out = Console()
    kinds = wide_table(
        "kind", "form", "needs", "example", "options", names=("kind", "form", "example"), title="camera strings",
        show_lines=True,
    )  # fmt: skip
    for kind in CAMERA_KINDS.values():
        kinds.add_row(kind.name, kind.form, kind.needs, kind.example, ", ".join(kind.options))
    print_table(kinds, out)
    probes = probe_v4l2_devices(pattern)
    if not probes:
        out.print(f"V4L2 devices: none found ({pattern})")
        return
    devices = wide_table("device", "usable", "detail", "camera string", names=("device", "camera string"))
    devices.title = "V4L2 devices"
    for probe in probes:
        devices.add_row(
            probe.node,
            "[green]yes[/green]" if probe.usable else "[red]no[/red]",
            probe.detail,
            f"v4l2:{probe.node}?profile=NAME" if probe.usable else "",
        )
    print_table(devices, out)


@app.command("read")
def read_frames(
    camera: str = typer.Option(..., help="Camera string (`xenoedge devices list`)."),
    frames: int = typer.Option(100, min=1, help="Frames to read (fewer if the source ends)."),
    sensor: str = typer.Option(None, help="Sensor profile the camera must deliver (default: from the string)."),
    demosaic: bool = typer.Option(False, help="Also demosaic each frame to the cube (xenoedge.calibration.mosaic)."),
    refs: Path = typer.Option(
        None,
        callback=input_file_option,
        help="References file: also calibrate each frame to reflectance (demosaic, crosstalk, dark/white).",
    ),
) -> None:
    """Read frames as fast as the camera delivers and print frames/s (the capture loop's speed)."""
    import contextlib

    import numpy as np
    from xenoedge.calibration.mosaic import cube_from_mosaic
    from xenoedge.devices.open_camera import camera_from_spec

    from xenoedge.errors import CameraExhaustedError
    from xenoedge.sensors import get_sensor

    cam = camera_from_spec(camera, get_sensor(sensor) if sensor else None)
    profile = cam.sensor
    cube = np.empty(profile.cube_shape, dtype=np.uint16) if demosaic and profile.mosaic else None
    calibrator = None
    if refs is not None:
        from xenoedge.calibration.calibrator import FrameCalibrator
        from xenoedge.calibration.store import load_references

        references = load_references(refs, camera_id=cam.camera_id, sensor=profile, require_complete=True)
        calibrator = FrameCalibrator(references, profile, crosstalk=getattr(cam, "crosstalk", None))
    read = 0
    with cam, calibrator if calibrator is not None else contextlib.nullcontext():
        first = cam.read()  # opening, first decode and warm caches are not timed
        started = time.perf_counter()
        try:
            while read < frames:
                frame = cam.read()
                if calibrator is not None:
                    calibrator.process(frame.data, f"frame {frame.index}")
                elif cube is not None:
                    cube_from_mosaic(frame.data, profile, out=cube)
                read += 1
        except CameraExhaustedError:
            pass
        elapsed = time.perf_counter() - started
    shape = "x".join(map(str, first.data.shape))
    what = "read + calibrate" if calibrator is not None else "read + demosaic" if cube is not None else "read"
    console.print(f"camera {cam.camera_id}: {profile.name}, frames {shape} {first.data.dtype}")
    for key, value in first.meta.get("controls", {}).items():
        console.print(f"  {key}: {value}")
    rate = read / elapsed if elapsed > 0 else float("inf")
    typer.echo(f"{what}: {read} frames in {elapsed:.3f} s = {rate:.1f} frames/s ({1e3 / max(rate, 1e-9):.2f} ms/frame)")


def camera_record(
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        metavar="FOLDER",
        callback=output_folder_option,
        help="Folder for the frames, labels and camera.json.",
    ),
    camera: str = typer.Option("sim:crop", help="Camera string to record from (a simulated one by default)."),
    frames: int = typer.Option(20, min=1, help="Frames to record."),
    size: str = typer.Option(None, help="Sensor window HxW, e.g. 100x130 (adds size= to the camera string)."),
    seed: int = typer.Option(0, help="Simulator seed: the same seed gives the same frames."),
    fps: float = typer.Option(10.0, min=0.001, help="Frame rate stored with the recording."),
    video: bool = typer.Option(False, help="Write one lossless FFV1 video (frames.mkv) instead of PNGs."),
    force: bool = typer.Option(False, help="Overwrite a folder that holds an earlier recording."),
    references: int = typer.Option(
        0, min=0, help="Also record N dark and N white reference frames (dark/, white/; simulated cameras)."
    ),
) -> None:
    """Record mosaic frames as a 16-bit PNG sequence (or FFV1 video) for `file:` cameras (docs/cameras.md)."""
    from xenoedge.devices.open_camera import camera_from_spec
    from xenoedge.devices.recording import FRAME_PATTERN, VIDEO_NAME, FolderNotEmptyError, record

    if size:
        camera = f"{camera}{'&' if '?' in camera else '?'}size={size}"
    cam = camera_from_spec(camera, seed=seed)
    with progress_bar() as bar:
        task = bar.add_task(f"recording {cam.camera_id}", total=frames)
        try:
            info = record(
                cam,
                out,
                frames,
                video=video,
                fps=fps,
                camera_text=camera,
                overwrite=force,
                references=references,
                progress=lambda done: bar.update(task, completed=done),
            )
        except FolderNotEmptyError:
            raise FolderNotEmptyError(out, "folder is not empty; pass --force to overwrite a recording") from None
    target = out / (VIDEO_NAME if video else FRAME_PATTERN)
    labels = f", labels in {out / 'labels'}" if info["labels"] else ""
    labels += f", {references} dark and white reference frames" if references else ""
    console.print(f"recorded {frames} {info['size']} {info['profile']} frames to {target}{labels}")
    typer.echo(f"file:{target}")


def register(root: typer.Typer) -> None:
    """Add ``devices`` and ``camera-record`` to the ``xenoedge`` app."""
    root.add_typer(app, name="devices")
    root.command("camera-record")(camera_record)
