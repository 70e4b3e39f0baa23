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

from xenoedge.errors import CalibrationError

app = typer.Typer(help="White/dark references: capture, check, import, apply.", no_args_is_help=True)

BIT_DEPTHS = (8, 10, 12, 14, 16)


def _print_report(report) -> None:
    table = Table(title=report.what, show_lines=False)
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for check in report.checks:
        table.add_row(check.name, "[green]ok[/green]" if check.ok else "[red]FAIL[/red]", check.detail)
    console.print(table)


def _capture(kind: str, camera: str, sensor: str, frames: int, out: Path, exposure: float, seed: int) -> None:
    from xenoedge.calibration.capture import capture_reference
    from xenoedge.calibration.store import load_references, merge_reference, save_references
    from xenoedge.calibration.validation import validate_dark, validate_white
    from xenoedge.devices.open_camera import camera_from_spec

    from xenoedge.sensors import get_sensor

    cam = camera_from_spec(camera, get_sensor(sensor), seed=seed, exposure_ms=exposure)
    profile = cam.sensor  # the camera string may name a window of the sensor (size=HxW)
    existing = None
    if out.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # age/exposure of the old file do not matter here
            existing = load_references(out, camera_id=cam.camera_id, sensor=profile)
    if kind == "white" and (existing is None or existing.dark is None):
        raise CalibrationError(f"{out}: capture the dark reference first (xenoedge calibrate dark ... --out {out})")
    with cam, progress_bar() as bar:
        task = bar.add_task(f"{kind} reference from {cam.camera_id}", total=frames)
        capture = capture_reference(cam, kind, frames, progress=lambda done, _t: bar.update(task, completed=done))
    if capture.fallback:
        console.print(f"note: {cam.camera_id} cannot capture a {kind} reference itself; frames were read as they came")
    report = (
        validate_dark(capture, profile) if kind == "dark" else validate_white(capture, existing.dark, profile)  # type: ignore[union-attr]
    )
    _print_report(report)
    if not report.ok:
        console.print(f"[red]{kind} reference rejected; {out} left unchanged[/red]")
        raise typer.Exit(1)
    refs = merge_reference(existing, kind, capture, cam.camera_id, profile, stats={"validation": report.to_dict()})
    save_references(out, refs)
    console.print(f"{kind} reference of {cam.camera_id} ({capture.n_frames} frames) stored in {out}")
    if kind == "dark" and refs.white is not None:
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
    from xenoedge.calibration.validation import defect_map

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
    if profile is not None or loaded.sensor_signature.split(":")[0] in _known_sensors():
        cube_shape = (profile or get_sensor(loaded.sensor)).cube_shape
        defects = defect_map(loaded.dark, loaded.white, cube_shape)
        console.print(f"defective (hot or dead) pixels: {int(defects.sum())} of {defects.size}")
    console.print("[green]references verified[/green]")


def _known_sensors() -> set[str]:
    from xenoedge.sensors import SENSORS

    return set(SENSORS)


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
    from xenoedge.calibration.store import save_references
    from xenoedge.devices.formats import read_dark_pattern, read_specim_capture

    from xenoedge.sensors import get_sensor

    if (dark_pattern is None) == (specim is None):
        raise typer.BadParameter("give exactly one of --dark-pattern or --specim")
    if dark_pattern is not None:
        refs = references_from_dark_pattern(read_dark_pattern(dark_pattern), get_sensor(sensor), camera_id)
    else:
        capture = read_specim_capture(specim)
        profile = _specim_sensor(capture)
        refs = references_from_specim(
            capture.dark, capture.white, profile, camera_id, wavelengths_nm=capture.wavelengths_nm
        )
    save_references(out, refs)
    have = " and ".join(k for k in ("dark", "white") if getattr(refs, k) is not None)
    console.print(f"imported {have} reference(s) for {camera_id} into {out}")


def _bit_depth(*arrays: np.ndarray) -> int:
    top = max(float(np.max(a)) for a in arrays)
    for bits in BIT_DEPTHS:
        if top <= (1 << bits) - 1:
            return bits
    raise CalibrationError(f"counts up to {top:g} exceed 16 bits")


def _specim_sensor(capture):
    from xenoedge.sensors import custom_sensor

    lines, width, _ = capture.cube.shape
    return custom_sensor(
        f"envi-{capture.name}",
        capture.wavelengths_nm,
        lines,
        width,
        _bit_depth(capture.cube, capture.dark, capture.white),
    )


def _rgb_and_saturation(reflectance: np.ndarray, saturated: np.ndarray, wavelengths_nm: np.ndarray):
    from xenoedge.xeno.previews import pseudo_rgb

    rgb = pseudo_rgb(reflectance, wavelengths_nm)
    grey = rgb.mean(axis=2, keepdims=True).astype(np.uint8).repeat(3, axis=2)
    grey[saturated] = (255, 0, 0)
    return rgb, grey


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
    from xenoedge.calibration.importers import references_from_specim
    from xenoedge.calibration.reflectance import reflectance_from_raw
    from xenoedge.calibration.store import load_references
    from xenoedge.devices.formats import cube_format, read_cube, read_specim_capture, write_cube, write_rgb_png

    from xenoedge.sensors import get_sensor

    if capture.is_dir():
        specim = read_specim_capture(capture)
        name, raw, wavelengths = specim.name, specim.cube, specim.wavelengths_nm
        profile = _specim_sensor(specim)
        if refs is None:
            references = references_from_specim(
                specim.dark, specim.white, profile, "specim", wavelengths_nm=wavelengths
            )
            refs_used = "the capture's own DARKREF/WHITEREF"
        else:
            references, refs_used = load_references(refs, require_complete=True), str(refs)
    else:
        fmt = cube_format(capture)
        name = capture.name[: -len(fmt.suffix)]
        if fmt.name == "tivita":
            raise CalibrationError(f"{capture}: a Tivita SpecCube already holds reflectance; nothing to calibrate")
        raw, wavelengths = read_cube(capture)
        if refs is None:
            raise CalibrationError(f"{capture}: give --refs (this file carries no references)")
        references, refs_used = load_references(refs, require_complete=True), str(refs)
        if wavelengths is None:
            known = sensor or references.sensor
            try:
                wavelengths = get_sensor(known).wavelengths()
            except KeyError:
                raise CalibrationError(f"{capture}: no wavelengths in the file; give --sensor") from None
        profile = None
    if not np.issubdtype(raw.dtype, np.integer):
        raise CalibrationError(f"{capture}: holds {raw.dtype} values, not raw counts (already reflectance?)")
    if raw.min() < 0:
        raise CalibrationError(f"{capture}: negative raw counts (min {raw.min()})")
    for kind in ("dark", "white"):
        ref = getattr(references, kind)
        try:
            np.broadcast_shapes(ref.shape, raw.shape)
        except ValueError:
            raise CalibrationError(
                f"{kind} reference of shape {ref.shape} ({refs_used}) does not fit {capture} of shape {raw.shape}"
            ) from None
    saturation_counts = (profile or _profile_for(references.sensor, raw)).saturation_counts
    reflectance = reflectance_from_raw(raw, references.dark, references.white)
    saturated = (raw >= saturation_counts).any(axis=2)
    out.mkdir(parents=True, exist_ok=True)
    cube_path = write_cube(out / f"{name}_reflectance.npz", reflectance, np.asarray(wavelengths, dtype=np.float32))
    rgb, sat_picture = _rgb_and_saturation(reflectance, saturated, wavelengths)
    write_rgb_png(out / f"{name}_rgb.png", rgb)
    write_rgb_png(out / f"{name}_saturation.png", sat_picture)
    report = {
        "capture": str(capture),
        "references": refs_used,
        "shape": list(reflectance.shape),
        "saturation_counts": int(saturation_counts),
        "saturated_pixel_fraction": float(saturated.mean()),
        "reflectance_median": float(np.median(reflectance)),
        "reflectance_above_1_fraction": float((reflectance > 1).mean()),
        "outputs": [cube_path.name, f"{name}_rgb.png", f"{name}_saturation.png"],
    }
    (out / f"{name}_report.json").write_text(json.dumps(report, indent=2))
    console.print(
        f"{name}: {reflectance.shape[0]}x{reflectance.shape[1]}x{reflectance.shape[2]} reflectance, "
        f"{100 * report['saturated_pixel_fraction']:.2f}% pixels saturated -> {out}"
    )


def _profile_for(sensor_name: str, raw: np.ndarray):
    from xenoedge.sensors import SENSORS, custom_sensor

    if sensor_name in SENSORS:
        return SENSORS[sensor_name]
    h, w, _ = raw.shape
    return custom_sensor(sensor_name, np.arange(raw.shape[2], dtype=float), h, w, _bit_depth(raw))
