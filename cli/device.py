"""``xenoedge run``, ``listen`` and ``demo``: the device daemon, the host receiver, and both end to end.

Device-side commands: no torch, onnx or nncf (the device install runs them).
"""

from __future__ import annotations

import threading
from pathlib import Path

import typer
from xenoedge.cli.common import console, output_folder_option
from xenoedge.edge.builtin_bundles import DEFAULT_BUNDLES, default_bundle


def _bundle_and_camera(bundle: str | None, camera: str | None) -> tuple[Path | None, str | None]:
    if bundle in DEFAULT_BUNDLES:
        return default_bundle(bundle), camera or DEFAULT_BUNDLES[bundle][0]
    return (Path(bundle) if bundle else None), camera


def run(
    config: Path = typer.Option(None, help="Daemon config (TOML; docs/daemon.md). Options below override it."),
    bundle: str = typer.Option(None, help="Bundle file, or a packaged default: surgical, crop (default: surgical)."),
    camera: str = typer.Option(
        None, help="Camera string: sim:crop, replay:DIR, v4l2:/dev/video0?profile=..., file:... (docs/cameras.md)."
    ),
    sink: str = typer.Option(None, help="Output: png:DIR[:EVERY], serial:PATH[@BAUD], tcp:HOST:PORT, file:PATH, pty."),
    frames: int = typer.Option(None, help="Stop after this many frames (default: run until SIGTERM/Ctrl-C)."),
    max_fps: float = typer.Option(None, help="Pace the camera (frames per second)."),
    threads: int = typer.Option(None, help="Inference threads."),
    state_dir: Path = typer.Option(
        None, help="A/B model slots and uploads (docs/flashing.md): serve the active slot, accept flashing."
    ),
    wait_for_port: bool = typer.Option(
        None,
        "--wait-for-port/--no-wait-for-port",
        help="A serial sink whose port does not exist yet: wait for the device (link WAITING) instead of failing.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the final statistics as JSON on stdout."),
) -> None:
    """The device daemon: camera -> calibration -> inference -> masks on a link (docs/daemon.md).

    Exit status: 0 after a clean stop; 1 when it cannot start, or when masks were made but none
    reached the link; 78 after too many failed starts (docs/daemon.md)."""
    import json

    from xenoedge.edge.daemon import daemon_main

    if config is None and bundle is None:
        bundle = "surgical"
    bundle_path, camera = _bundle_and_camera(bundle, camera)
    if config is None:
        camera = camera or "sim:surgical"
        sink = sink or "png:xenoedge-run:10"
        max_fps = max_fps or 30.0
    banner = (
        f"starting: bundle {bundle_path}, camera {camera}, output {sink}; Ctrl-C stops after the current step"
        if config is None
        else f"starting: config {config}; Ctrl-C stops after the current step"
    )
    code = daemon_main(
        config,
        bundle=bundle_path,
        camera=camera,
        sink=sink,
        max_fps=max_fps,
        threads=threads,
        state_dir=state_dir,
        wait_for_port=wait_for_port,
        max_frames=frames,
        log=lambda line: console.print(line, soft_wrap=True, markup=False, highlight=False),
        stats_out=(lambda stats: typer.echo(json.dumps(stats.as_dict(), indent=2))) if as_json else None,
        banner=banner,
    )
    raise typer.Exit(code)


def listen(
    port: str = typer.Option(
        ...,
        help="Device port: /dev/ttyACM0 (better /dev/serial/by-id/...), or a link spec: serial:PATH@BAUD, "
        "file:RECORDING (the same spellings as flash --port).",
    ),
    baud: int = typer.Option(921600, help="Line rate for a bare serial port path (USB CDC ignores it)."),
    out: Path = typer.Option(
        Path("xenoedge-masks"),
        "--out",
        "-o",
        metavar="FOLDER",
        callback=output_folder_option,
        help="Folder for coloured mask pictures.",
    ),
    every: int = typer.Option(10, min=1, help="Write every N-th mask as a picture."),
    masks: int = typer.Option(None, help="Stop after this many masks."),
) -> None:
    """Host receiver: decode the device's stream, write mask pictures, print live stats.

    A serial port that does not exist is an error at once, listing the ports that do."""
    from xenoedge.edge.links import check_port, open_link, port_spec
    from xenoedge.edge.protocol.receiver import Receiver, link_chunks, run_listen

    spec = port_spec(port, baud)
    check_port(spec)  # "no such port", before any folder is made
    receiver = Receiver(out, None, every=every)
    with open_link(spec) as link:
        try:
            final = run_listen(link_chunks(link), receiver, lambda stats: console.print(stats.line()), max_masks=masks)
        except KeyboardInterrupt:
            final = receiver.stats()
    console.print(f"done: {final.line()}; pictures in {out}")


def demo(
    frames: int = typer.Option(60, min=1, help="Frames to run."),
    bundle: str = typer.Option("surgical", help="Packaged default (surgical, crop) or a bundle file."),
    out: Path = typer.Option(
        Path("demo-output/demo"),
        "--out",
        "-o",
        metavar="FOLDER",
        callback=output_folder_option,
        help="Folder for the received mask pictures.",
    ),
    every: int = typer.Option(5, min=1, help="Write every N-th received mask as a picture."),
    max_fps: float = typer.Option(
        30.0, help="Pace the simulated camera (frames per second; a snapshot camera's rate, above what the CPU infers)."
    ),
) -> None:
    """Daemon and receiver end to end: simulated camera -> bundle -> wire protocol -> receiver -> pictures.

    Prints frames per second, bytes per mask and DSC against the simulator's ground truth. The
    receiver's pictures show each pictured mask over its frame (device and host share this process).
    """
    from xenoedge.devices.open_camera import camera_from_spec
    from xenoedge.edge.config import load_config
    from xenoedge.edge.daemon import run_daemon
    from xenoedge.edge.links import open_link
    from xenoedge.edge.protocol.receiver import Receiver, link_chunks, run_listen
    from xenoedge.edge.protocol.sink import ProtocolSink
    from xenoedge.edge.sinks import RecentFrames
    from xenoedge.export.bundle import read_manifest

    from xenoedge.sensors import get_sensor

    bundle_path, camera = _bundle_and_camera(bundle, None)
    config = load_config(
        None, bundle=bundle_path, camera=camera or "sim:surgical", score_ground_truth=True, max_fps=max_fps
    )
    sensor = get_sensor(config.sensor or read_manifest(bundle_path)["sensor"]["name"])
    the_camera = camera_from_spec(config.camera, sensor, seed=config.seed, exposure_ms=config.exposure_ms)
    frames_seen = RecentFrames(the_camera)
    # A real pseudo-terminal pair: the daemon writes the device end, the receiver reads the host
    # end through pyserial, the same bytes a USB serial cable would carry.
    device_end = open_link("pty", announce=lambda _line: None)
    host_end = open_link(f"serial:{device_end.slave_path}")
    receiver = Receiver(out, None, every=every, frame_rgb=frames_seen.rgb)
    done = threading.Event()
    listener = threading.Thread(
        target=run_listen, args=(link_chunks(host_end, timeout_s=0.05, stop=done.is_set), receiver), daemon=True
    )
    listener.start()
    try:
        stats = run_daemon(config, ProtocolSink(device_end), max_frames=frames, camera=the_camera)
    finally:
        device_end.flush(timeout_s=5)
        done.set()
        listener.join(timeout=10)
        host_end.close()
        device_end.close()
    received = receiver.stats()
    dsc = "n/a" if stats.mean_dsc is None else f"{stats.mean_dsc:.3f}"
    stopped = f"{stats.stopped_during}; " if stats.stopped_during else ""
    console.print(
        f"daemon: {stopped}{stats.masks} masks at {stats.fps:.1f} fps, {stats.delivered} delivered, {stats.lost} lost, "
        f"{stats.dropped} frames dropped; mean DSC vs ground truth {dsc}"
    )
    console.print(f"receiver: {received.line()}")
    console.print(f"mask pictures in {out}")


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(listen)
    app.command()(demo)
