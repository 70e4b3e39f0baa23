"""``xenoedge scan``: the handheld crop-scanning session (docs/scan.md).

    xenoedge scan --session scans/north-12 --field "North 12" --plot P1 --gps /dev/ttyACM0@9600
    xenoedge scan --session scans/north-12 --plot P2          # resume: next plot, same references
    xenoedge scan --session scans/north-12 --interval 2 --frames 30 --camera file:seq/%05d.png

Device-side: no torch, onnx or nncf.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from xenoedge.cli.common import check_input_file, console, input_file_option, output_folder_option, split_csv


def scan(
    session: Path = typer.Option(
        ...,
        "--session",
        "-s",
        metavar="FOLDER",
        callback=output_folder_option,
        help="Session folder: created, or resumed when it holds one.",
    ),
    field: str = typer.Option(None, help="Field name (needed for a new session)."),
    plot: str = typer.Option(None, help="Plot of the next frames (default: P1, or the resumed session's last plot)."),
    note: str = typer.Option(None, help="Operator note, kept in the session."),
    camera: str = typer.Option("sim:crop", help="Camera spec: sim:crop, replay:DIR, file:SEQ, v4l2:/dev/videoN."),
    bundle: str = typer.Option("crop", help="Bundle file, or the packaged default: crop."),
    sensor: str = typer.Option(None, help="Sensor profile of the camera (default: the bundle's)."),
    seed: int = typer.Option(0, help="Seed of a simulated camera."),
    exposure: float = typer.Option(10.0, help="Exposure in ms."),
    interval: float = typer.Option(
        None,
        min=0.0,
        help="Take a frame every S seconds (0: back to back), not on Enter "
        "(a camera without references of its own still waits for the white-tile Enters).",
    ),
    frames: int = typer.Option(None, min=1, help="End after this many frames."),
    gps: str = typer.Option(None, help="GPS serial port sending NMEA 0183: PORT or PORT@BAUD, e.g. /dev/ttyACM0@9600."),
    gps_max_age: float = typer.Option(5.0, min=0.0, help="A GPS fix older than this (s) counts as missing."),
    references: Path = typer.Option(
        None, callback=input_file_option, help="Use this references file (xenoedge calibrate) instead of capturing."
    ),
    recalibrate: bool = typer.Option(False, help="Capture new references (white-tile step) in a resumed session."),
    reference_frames: int = typer.Option(8, min=1, help="Frames averaged per reference in the white-tile step."),
    max_reference_age: float = typer.Option(60.0, min=0.0, help="Refuse references older than this (minutes)."),
    override_references: bool = typer.Option(
        False, help="Scan on references that failed their checks or are too old (recorded in the session)."
    ),
    threads: int = typer.Option(None, min=1, help="Inference threads."),
    prefer: str = typer.Option(
        None, help="Bundle targets or runtimes to try first, comma-separated (e.g. onnxruntime)."
    ),
    in_flight: int = typer.Option(1, min=1, help="Frames between capture and their record (2 overlaps capture)."),
    tables_every: float = typer.Option(
        1.0, min=0.0, help="Rewrite tables and plot summaries at most every S seconds (0: after every frame)."
    ),
) -> None:
    """Scan crop plots: white-tile step, then frames on Enter (or at an interval) with the crop model;
    per-frame and per-plot CSV/GeoJSON, pictures and summaries in the session folder."""
    if bundle != "crop":
        check_input_file(Path(bundle), "bundle file")
    from xenoedge.edge.scan import ScanOptions, run_scan
    from xenoedge.edge.scan.gps import rejected_text
    from xenoedge.edge.scan.measure import SHARE_NAMES, percent_text

    options = ScanOptions(
        session=session,
        field=field,
        plot=plot,
        note=note,
        camera=camera,
        bundle=None if bundle == "crop" else Path(bundle),  # None: ScanSession finds the packaged crop bundle
        sensor=sensor,
        seed=seed,
        exposure_ms=exposure,
        interval_s=interval,
        frames=frames,
        gps=gps,
        gps_max_age_s=gps_max_age,
        references=references,
        recalibrate=recalibrate,
        reference_frames=reference_frames,
        max_reference_age_s=max_reference_age * 60.0 if max_reference_age > 0 else None,
        override_references=override_references,
        threads=threads,
        prefer=split_csv(prefer) or (),
        frames_in_flight=in_flight,
        tables_every_s=tables_every,
    )
    result = run_scan(options, log=lambda line: console.print(line, markup=False, highlight=False))
    table = Table(title=f"{session}: run {result.run}, {result.frames} frames ({result.stop_reason})")
    for column in ("plot", "frames", "leaf cover", "healthy", "stressed", "lesion", "confidence", "GPS"):
        table.add_column(column)
    for p in result.plots:
        s = p.counts.summary()
        conf = "-" if s["mean_confidence"] is None else f"{s['mean_confidence']:.2f}"
        table.add_row(
            p.plot,
            str(p.frames),
            percent_text(s["leaf_cover"]),
            *(percent_text(s[n]) for n in SHARE_NAMES),
            conf,
            f"{p.frames_with_position}/{p.frames}",
        )
    console.print(table)
    if result.gps and result.gps["rejected_total"]:
        console.print(
            f"[yellow]warning:[/yellow] the GPS sent {result.gps['rejected_total']} bad lines "
            f"({rejected_text(result.gps['rejected'])})"
        )
    if result.gps and result.gps["port_errors"]:
        console.print(
            f"[yellow]warning:[/yellow] the GPS port failed {result.gps['port_errors']} times (reopened each time)"
        )
    console.print(f"tables: {session}/frames.csv, plots.csv (+ .geojson); pictures: {session}/plots/<plot>/")


def register(app: typer.Typer) -> None:
    app.command()(scan)
