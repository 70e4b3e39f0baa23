"""The ``xenoedge`` command line: one typer app, sub-commands by verb.

Heavy modules are imported inside each command, so ``xenoedge --help`` and the device
commands stay fast and never touch torch, onnx or nncf.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape
from xenoedge.cli import bundle as bundle_cli
from xenoedge.cli import calibrate as calibrate_cli
from xenoedge.cli import device as device_cli
from xenoedge.cli import devices as devices_cli
from xenoedge.cli import flash as flash_cli
from xenoedge.cli import mender as mender_cli
from xenoedge.cli import scan as scan_cli
from xenoedge.cli import science as science_cli
from xenoedge.cli.common import (
    console,
    output_folder_option,
    print_table,
    progress_bar,
    split_csv,
    wide_table,
)

from xenoedge.errors import XenoedgeError

app = typer.Typer(help="xenoedge: cross-species spectral segmentation from training to the edge.", no_args_is_help=True)
app.add_typer(calibrate_cli.app, name="calibrate")
app.add_typer(bundle_cli.app, name="bundle")
science_cli.register(app)
device_cli.register(app)
devices_cli.register(app)
scan_cli.register(app)
flash_cli.register(app)
mender_cli.register(app, bundle_cli.app)


@app.command()
def simulate(
    out: Path = typer.Option(
        ..., "--out", "-o", metavar="FOLDER", callback=output_folder_option, help="Folder to write the data set into."
    ),
    domain: str = typer.Option("surgical", help="surgical (organs) or crop (leaves)."),
    species: str = typer.Option(
        None,
        help="Comma-separated species (surgical: human,pig,rat; crop: wheat,maize,tomato). Default: all.",
    ),
    states: str = typer.Option(None, help="Comma-separated states regions may take. Default: all of the domain."),
    subjects: int = typer.Option(2, min=1, help="Subjects (animals, patients, plants) per species."),
    images: int = typer.Option(2, min=1, help="Images per subject."),
    sensor: str = typer.Option("tivita", help="Sensor profile (see `xenoedge sensors`)."),
    size: str = typer.Option(None, help="Cube size HxW, e.g. 120x160. Default: the sensor's."),
    pathological: float = typer.Option(
        0.5, min=0.0, max=1.0, help="Probability that a tissue/leaf region is pathological."
    ),
    cube_format: str = typer.Option("npz", "--format", help="Cube file format: npz, tivita or envi."),
    seed: int = typer.Option(0, help="Data set seed: the same seed gives the same data set."),
) -> None:
    """Simulate a labelled spectral data set, with previews and median-spectra plots."""
    from xenoedge.xeno.scene import get_domain
    from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset

    height = width = None
    if size:
        try:
            height, width = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise typer.BadParameter(f"size must look like 120x160, got {size!r}", param_hint="--size") from None
    spec = DatasetSpec(
        domain=domain,
        species=split_csv(species) or get_domain(domain).species,
        states=split_csv(states),
        subjects_per_species=subjects,
        images_per_subject=images,
        sensor=sensor,
        height=height,
        width=width,
        pathological_probability=pathological,
        cube_format=cube_format,
        seed=seed,
    )
    with progress_bar() as progress:
        task = progress.add_task("simulating", total=len(spec.species) * subjects * images)
        index = write_dataset(out, spec, lambda done, total: progress.update(task, completed=done))
    console.print(
        f"wrote {len(index['images'])} images "
        f"({index['height']}x{index['width']}x{len(index['wavelengths_nm'])}) "
        f"to {out}; previews in {out / 'preview'}, spectra in {out / 'median_spectra.png'}"
    )


@app.command("camera-preview")
def camera_preview(
    out: Path = typer.Option(
        Path("demo-output/live"),
        "--out",
        "-o",
        metavar="FOLDER",
        callback=output_folder_option,
        help="Folder for pictures and summary.",
    ),
    sensor: str = typer.Option("tivita", help="Sensor profile of the simulated camera."),
    domain: str = typer.Option("surgical", help="surgical or crop scenes."),
    species: str = typer.Option(None, help="Comma-separated species to rotate through. Default: all."),
    frames: int = typer.Option(30, min=1, help="Frames to read."),
    frames_per_scene: int = typer.Option(10, min=1, help="Frames before the camera moves to a new scene."),
    picture_every: int = typer.Option(5, min=1, help="Write a picture every N frames."),
    seed: int = typer.Option(0, help="Camera seed: same seed, same scenes."),
) -> None:
    """Simulated camera -> references -> calibration -> pictures, no model (checks a camera's calibration)."""
    from xenoedge.devices.simulated import SimulatedCamera
    from xenoedge.edge.demo import run_camera_demo
    from xenoedge.xeno.scene import get_domain

    from xenoedge.sensors import get_sensor

    scene_domain = get_domain(domain)
    camera = SimulatedCamera(
        get_sensor(sensor),
        domain=domain,
        species=split_csv(species) or scene_domain.species,
        seed=seed,
        frames_per_scene=frames_per_scene,
    )
    with progress_bar() as progress:
        task = progress.add_task(f"{camera.camera_id}", total=frames)
        summary = run_camera_demo(
            camera,
            out,
            frames,
            picture_every=picture_every,
            label_colors=scene_domain.labels.colors(),
            label_names=scene_domain.labels.names,
            progress=lambda done: progress.update(task, completed=done),
        )
    console.print(
        f"{summary['frames']} frames at {summary['frames_per_second']} frames/s "
        f"({'x'.join(map(str, summary['cube_shape']))}); pictures and summary.json in {out}"
    )


@app.command()
def sensors() -> None:
    """List the sensor profiles."""
    from xenoedge.sensors import SENSORS

    table = wide_table("name", "raw frame", "cube", "bands (nm)", "bit depth", "signature", names=("name", "signature"))
    for p in SENSORS.values():
        wl = p.wavelengths()
        table.add_row(
            p.name,
            f"{p.height}x{p.width}",
            "x".join(map(str, p.cube_shape)),
            f"{len(wl)}: {wl[0]:.0f}-{wl[-1]:.0f}",
            str(p.bit_depth),
            p.signature,
        )
    print_table(table)


def main(argv: list[str] | None = None) -> None:
    """Entry point: our errors become one red line and exit code 2, never a traceback.
    ``argv``: the arguments (default: the command line's)."""
    try:
        app(args=argv, prog_name="xenoedge")
    except XenoedgeError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
