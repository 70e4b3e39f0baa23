"""``xenoedge calibrate``: capture, check, import and apply white/dark references.

    xenoedge calibrate dark  --camera sim --sensor tivita --frames 16 --out refs.npz
    xenoedge calibrate white --camera sim --sensor tivita --frames 16 --out refs.npz
    xenoedge calibrate check refs.npz [--camera-id ID] [--max-age-hours 24] [--strict]
    xenoedge calibrate import --dark-pattern DarkPattern.dpic --camera-id ID --out refs.npz
    xenoedge calibrate apply CAPTURE [--refs refs.npz] --out OUT

A capture that fails validation is reported and not stored (exit code 1); the file keeps
what it had. Everything a person should look at is printed as a table and, for ``apply``,
written as pictures.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import typer
from rich.table import Table
from xenoedge.cli.common import (
    console,
    input_file_option,
    input_folder_option,
    input_path_option,
    output_file_option,
    output_folder_option,
    print_table,
    progress_bar,
    wide_table,
)

app = typer.Typer(help="White/dark references: capture, check, import, apply.", no_args_is_help=True)


def _print_report(report) -> None:
    table = Table(title=report.what, show_lines=False)
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for check in report.checks:
        table.add_row(check.name, "[green]ok[/green]" if check.ok else "[red]FAIL[/red]", check.detail)
    console.print(table)


def _capture(kind: str, camera: str, sensor: str, frames: int, out: Path, exposure: float, seed: int) -> None:
    from xenoedge.calibration.reference_update import capture_reference_update, references_to_update
    from xenoedge.calibration.store import save_references
    from xenoedge.devices.open_camera import camera_from_spec

    from xenoedge.sensors import get_sensor

    cam = camera_from_spec(camera, get_sensor(sensor), seed=seed, exposure_ms=exposure)
    existing = references_to_update(out, kind, cam.camera_id, cam.sensor)  # sensor: maybe a window (size=HxW)
    with cam, progress_bar() as bar:
        task = bar.add_task(f"{kind} reference from {cam.camera_id}", total=frames)
        update = capture_reference_update(
            cam, kind, frames, existing, progress=lambda done, _t: bar.update(task, completed=done)
        )
    if update.capture.fallback:
        console.print(f"note: {cam.camera_id} cannot capture a {kind} reference itself; frames were read as they came")
    _print_report(update.report)
    if update.references is None:
        console.print(f"[red]{kind} reference rejected; {out} left unchanged[/red]")
        raise typer.Exit(1)
    save_references(out, update.references)
    console.print(f"{kind} reference of {cam.camera_id} ({update.capture.n_frames} frames) stored in {out}")
    if kind == "dark" and update.references.white is not None:
        console.print("note: the stored white reference was kept; capture it again if the light or exposure changed")


@app.command()
def dark(
    camera: str = typer.Option("sim", help="Camera spec: sim, sim:crop, replay:FOLDER."),
    sensor: str = typer.Option("tivita", help="Sensor profile of the camera."),
    frames: int = typer.Option(16, min=1, help="Frames to average."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        metavar="FILE",
        callback=output_file_option,
        help="References file (.npz), created or updated.",
    ),
    exposure: float = typer.Option(10.0, help="Exposure in ms."),
    seed: int = typer.Option(0, help="Seed (serial) of a simulated camera."),
) -> None:
    """Capture and validate the dark reference (shutter closed or lens capped)."""
    _capture("dark", camera, sensor, frames, out, exposure, seed)


@app.command()
def white(
    camera: str = typer.Option("sim", help="Camera spec: sim, sim:crop, replay:FOLDER."),
    sensor: str = typer.Option("tivita", help="Sensor profile of the camera."),
    frames: int = typer.Option(16, min=1, help="Frames to average."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        metavar="FILE",
        callback=output_file_option,
        help="References file holding the dark reference.",
    ),
    exposure: float = typer.Option(10.0, help="Exposure in ms."),
    seed: int = typer.Option(0, help="Seed (serial) of a simulated camera."),
) -> None:
    """Capture and validate the white reference (white tile), against the stored dark."""
    _capture("white", camera, sensor, frames, out, exposure, seed)


@app.command()
def check(
    refs: Path = typer.Argument(..., callback=input_file_option, help="References file."),
    camera_id: str = typer.Option(None, help="Refuse references of another camera."),
    sensor: str = typer.Option(None, help="Refuse references of another sensor profile."),
    exposure: float = typer.Option(None, help="Warn when taken at another exposure (ms)."),
    max_age_hours: float = typer.Option(None, help="Warn when older than this."),
    strict: bool = typer.Option(False, help="Refuse instead of warning."),
) -> None:
    """Verify a references file (checksum, values, camera, sensor, age, exposure) and summarise it."""
    from xenoedge.calibration.store import load_references
    from xenoedge.calibration.validation import references_defect_map

    from xenoedge.sensors import get_sensor

    profile = get_sensor(sensor) if sensor else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_references(
            refs,
            camera_id=camera_id,
            sensor=profile,
            exposure_ms=exposure,
            max_age_s=None if max_age_hours is None else max_age_hours * 3600,
            strict=strict,
        )
    table = wide_table(
        *("reference", "shape", "captured (UTC)", "exposure ms", "frames", "source", "level", "noise"),
        names=("captured (UTC)", "source"),
        title=f"{refs}: camera {loaded.camera_id}, sensor {loaded.sensor_signature}",
    )
    for kind, array, meta in (("dark", loaded.dark, loaded.dark_meta), ("white", loaded.white, loaded.white_meta)):
        if array is None or meta is None:
            table.add_row(kind, "[red]missing[/red]", "", "", "", "", "", "")
            continue
        stats = meta.stats
        table.add_row(
            kind,
            "x".join(map(str, array.shape)),
            meta.captured_at,
            f"{meta.exposure_ms:g}",
            str(meta.frames),
            meta.source,
            f"{stats.get('mean_level_counts', float(np.median(array))):.1f}",
            f"{stats['median_temporal_noise_counts']:.2f}" if "median_temporal_noise_counts" in stats else "-",
        )
    print_table(table, console)
    for w in caught:
        console.print(f"[yellow]warning:[/yellow] {w.message}")
    if not loaded.complete:
        console.print("[red]incomplete: capture the missing reference before use[/red]")
        raise typer.Exit(1)
    defects = references_defect_map(loaded, profile)
    if defects is not None:
        console.print(f"defective (hot or dead) pixels: {int(defects.sum())} of {defects.size}")
    console.print("[green]references verified[/green]")


@app.command("import")
def import_references(
    out: Path = typer.Option(
        ..., "--out", "-o", metavar="FILE", callback=output_file_option, help="References file to write."
    ),
    camera_id: str = typer.Option(..., help="Camera the references belong to."),
    dark_pattern: Path = typer.Option(None, callback=input_file_option, help="Tivita DarkPattern.dpic (dark only)."),
    specim: Path = typer.Option(
        None, callback=input_folder_option, help="Specim capture folder with DARKREF_/WHITEREF_ files."
    ),
    sensor: str = typer.Option("tivita", help="Sensor profile (for --dark-pattern)."),
) -> None:
    """Import existing references: a Tivita DarkPattern or a Specim capture's DARKREF/WHITEREF."""
    from xenoedge.calibration.importers import references_from_dark_pattern, references_from_specim
    from xenoedge.calibration.inferred_sensor import specim_sensor
    from xenoedge.calibration.store import save_references
    from xenoedge.devices.formats import read_dark_pattern, read_specim_capture

    from xenoedge.sensors import get_sensor

    if (dark_pattern is None) == (specim is None):
        raise typer.BadParameter("give exactly one of --dark-pattern or --specim")
    if dark_pattern is not None:
        refs = references_from_dark_pattern(read_dark_pattern(dark_pattern), get_sensor(sensor), camera_id)
    else:
        capture = read_specim_capture(specim)
        profile = specim_sensor(capture.name, capture.cube, capture.dark, capture.white, capture.wavelengths_nm)
        refs = references_from_specim(
            capture.dark, capture.white, profile, camera_id, wavelengths_nm=capture.wavelengths_nm
        )
    save_references(out, refs)
    have = " and ".join(k for k in ("dark", "white") if getattr(refs, k) is not None)
    console.print(f"imported {have} reference(s) for {camera_id} into {out}")


@app.command()
def apply(
    capture: Path = typer.Argument(
        ..., callback=input_path_option, help="Specim capture folder, or a raw .hdr/.npy/.npz cube."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", metavar="FOLDER", callback=output_folder_option, help="Output folder."
    ),
    refs: Path = typer.Option(
        None, callback=input_file_option, help="References file (required unless the capture carries its own)."
    ),
    sensor: str = typer.Option(None, help="Sensor profile of a raw cube without wavelengths (.npy)."),
) -> None:
    """Raw capture -> reflectance .npz, pseudo-RGB and saturation pictures, and a report."""
    from xenoedge.calibration.calibrated_cube import calibrate_cube
    from xenoedge.devices.formats import write_cube, write_rgb_png
    from xenoedge.devices.raw_capture import read_raw_capture
    from xenoedge.xeno.previews import pseudo_rgb, saturation_picture

    loaded = read_raw_capture(capture, references_file=refs, sensor=sensor)
    name, wavelengths = loaded.name, loaded.wavelengths_nm
    result = calibrate_cube(
        loaded.raw,
        loaded.references,
        sensor=loaded.sensor,
        what=str(capture),
        references_source=loaded.references_source,
    )
    out.mkdir(parents=True, exist_ok=True)
    cube_path = write_cube(
        out / f"{name}_reflectance.npz", result.reflectance, np.asarray(wavelengths, dtype=np.float32)
    )
    rgb = pseudo_rgb(result.reflectance, wavelengths)
    write_rgb_png(out / f"{name}_rgb.png", rgb)
    write_rgb_png(out / f"{name}_saturation.png", saturation_picture(rgb, result.saturated))
    outputs = [cube_path.name, f"{name}_rgb.png", f"{name}_saturation.png"]
    report = result.report(str(capture), loaded.references_source, outputs)
    (out / f"{name}_report.json").write_text(json.dumps(report, indent=2))
    shape = "x".join(map(str, result.reflectance.shape))
    console.print(
        f"{name}: {shape} reflectance, {100 * report['saturated_pixel_fraction']:.2f}% pixels saturated -> {out}"
    )
