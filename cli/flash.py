"""``xenoedge flash`` and ``xenoedge device info|rollback``: put bundles on devices (docs/upload.md).

``flash BUNDLE --port PORT`` uploads over the device's serial/USB link (resuming an interrupted
upload), ``flash BUNDLE --to DEVICE_ROOT`` installs into a mounted device storage with the same
checks. ``device info`` / ``device rollback`` work over ``--port`` or on a ``--root``.
Device-install safe: no torch, onnx or nncf.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from xenoedge.cli.common import console

app = typer.Typer(help="Talk to a device: its model slots, rollback.", no_args_is_help=True)

PORT_HELP = "Device port: /dev/ttyACM0 (better /dev/serial/by-id/...), or a serial:PATH@BAUD link spec."


def _installed_state(root: Path) -> Path:
    """The state folder of the model slots inside a mounted device storage ``root``; the root must
    exist and hold installed slots (info and rollback create nothing on the host)."""
    from xenoedge.edge.flashing.errors import FlashError
    from xenoedge.edge.flashing.install import check_device_root, device_state_dir

    state = device_state_dir(check_device_root(root))
    if not (state / "state.json").is_file():
        raise FlashError(f"{root} holds no xenoedge model slots ({state}/state.json is missing)")
    return state


def _link_spec(port: str, baud: int) -> str:
    """A plain device path becomes ``serial:PATH@BAUD``; a link spec (``serial:...``, ``loop://``) is kept
    (``xenoedge.edge.links.port_spec``, shared with ``listen``). (Not ``tcp:``: over TCP the device is the client
    of a listening receiver, not a port to open.)"""
    from xenoedge.edge.links import port_spec

    return port_spec(port, baud)


def _open(port: str, baud: int) -> Any:
    """Open the device's port; a serial path that does not exist fails at once ("no such port",
    listing the ports that exist) instead of waiting for answers that cannot come."""
    from xenoedge.edge.links import check_port, open_link

    spec = _link_spec(port, baud)
    check_port(spec)
    return open_link(spec)


def _policy(public_key: Path | None, sensor: str | None, max_bundle_bytes: int, allow_unsigned: bool = False) -> Any:
    from xenoedge.edge.flashing.install import InstallPolicy
    from xenoedge.export.bundle import load_public_key

    from xenoedge.sensors import get_sensor

    return InstallPolicy(
        trusted_public_key=load_public_key(public_key) if public_key else None,
        allow_unsigned=allow_unsigned,
        sensor_signature=get_sensor(sensor).signature if sensor else None,
        max_bundle_bytes=max_bundle_bytes,
    )


def _slot(s: dict | None) -> str:
    if not s:
        return "none"
    return f"{s.get('name')} {s.get('version')} (slot {s.get('slot')}, sha256 {str(s.get('sha256'))[:12]}…)"


def flash(
    bundle: Path = typer.Argument(..., help="The bundle file (.xeb)."),
    port: str = typer.Option(None, help=PORT_HELP),
    baud: int = typer.Option(921600, help="Line rate for a serial port (USB CDC ignores it)."),
    to: Path = typer.Option(None, "--to", help="Install into a mounted device storage (its root folder) instead."),
    public_key: Path = typer.Option(None, help="--to: only bundles this Ed25519 key signed are installed."),
    allow_unsigned: bool = typer.Option(
        False, "--allow-unsigned", help="--to, development only: without --public-key, install an unsigned bundle."
    ),
    sensor: str = typer.Option(None, help="--to: the device camera's sensor profile; the bundle must match it."),
    chunk: int = typer.Option(4096, min=1, help="Bytes per upload chunk (capped by the device)."),
    window: int = typer.Option(8, min=1, help="Chunks in flight before waiting for an answer."),
    timeout: float = typer.Option(2.0, min=0.05, help="Seconds to wait for an answer before asking again."),
    retries: int = typer.Option(
        15, min=1, help="Unanswered requests in a row before giving up (time to replug a cable: retries x timeout)."
    ),
    confirm: float = typer.Option(
        60.0, min=0.0, help="Watch up to this many seconds until the new model served its first frames (0: don't)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Flash a model bundle onto a device: over its link (--port) or into its storage (--to)."""
    if (port is None) == (to is None):
        raise typer.BadParameter("give exactly one of --port and --to")
    if allow_unsigned and (public_key is not None or to is None):
        raise typer.BadParameter("--allow-unsigned goes with --to and without --public-key")
    if to is not None:
        from xenoedge.edge.flashing.install import install_into_root

        started = time.monotonic()
        report = install_into_root(to, bundle, _policy(public_key, sensor, 2 << 30, allow_unsigned))
        info = report.to_dict()
        if as_json:
            typer.echo(json.dumps(info, indent=2, default=str))
        console.print(
            f"installed {_slot(info['installed'])} into {to} (before: {_slot(info['previous'])}); "
            f"self-test {_selftest_line(info['selftest'])}; "
            f"signature {'verified, key ' + info['verified_key_id'] if info['verified_key_id'] else 'NOT checked'}; "
            f"{time.monotonic() - started:.1f} s"
        )
        return
    from xenoedge.edge.flashing.host import FlashClient

    size = bundle.stat().st_size if bundle.is_file() else 0
    link = _open(port, baud)
    try:
        client = FlashClient(link, chunk_size=chunk, window=window, ack_timeout_s=timeout, retries=retries)
        with Progress(
            TextColumn("[bold]flashing"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("upload", total=size)
            report = client.flash(
                bundle, progress=lambda done, total: progress.update(task, completed=done), confirm_s=confirm
            )
    finally:
        link.close()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2, default=str))
    resumed = f", resumed at byte {report.resumed_from}" if report.resumed_from else ""
    raw = baud / 10 if _link_spec(port, baud).startswith("serial:") else None
    share = ""
    if raw and report.throughput_Bps <= 1.05 * raw:
        share = f" ({report.throughput_Bps / raw:.0%} of the line's {raw:.0f} B/s at {baud} baud)"
    elif raw:
        share = f" (above {baud} baud: this link ignores the baud rate, as USB CDC and ptys do)"
    console.print(f"before: {_slot(report.before)}")
    console.print(f"after:  {_slot(report.after)}")
    console.print(f"self-test: {_selftest_line(report.selftest)}")
    if report.confirmed is not None:
        console.print(
            "first frames: served, marked good"
            if report.confirmed
            else f"first frames: not confirmed within {confirm:g} s (the device rolls back by itself if they fail)"
        )
    console.print(
        f"{report.total_bytes} bytes in {report.upload_seconds:.2f} s upload + "
        f"{report.total_seconds - report.upload_seconds:.2f} s install = {report.total_seconds:.2f} s; "
        f"link throughput {report.throughput_Bps / 1000:.1f} kB/s{share}{resumed}; {report.resends} resends"
    )
    console.print(f"the device kept serving: {report.masks_seen} masks arrived during the flash")


def _selftest_line(selftest: dict) -> str:
    if not selftest or selftest.get("passed") is None:
        return "skipped"
    agreement = selftest.get("daemon_agreement", selftest.get("agreement"))
    verdict = "passed" if selftest.get("passed") else "FAILED"
    return f"{verdict}, agreement {agreement} (needs {selftest.get('min_agreement')})"


@app.command()
def info(
    port: str = typer.Option(None, help=PORT_HELP),
    baud: int = typer.Option(921600, help="Line rate for a serial port."),
    root: Path = typer.Option(None, "--root", help="A mounted device storage (its root folder) instead."),
) -> None:
    """The device's model slots, engines, sensor and free space (JSON on stdout)."""
    if (port is None) == (root is None):
        raise typer.BadParameter("give exactly one of --port and --root")
    if root is not None:
        from xenoedge.edge.flashing.slots import SlotStore

        typer.echo(json.dumps(SlotStore(_installed_state(root)).info(), indent=2, sort_keys=True))
        return
    from xenoedge.edge.flashing.host import FlashClient

    with _open(port, baud) as link:
        device = FlashClient(link).info()
    typer.echo(json.dumps(device, indent=2, sort_keys=True))
    if device.get("maintenance"):  # stderr: the JSON on stdout stays machine-readable
        console.print(
            f"[yellow]maintenance mode: no model served[/yellow] ({device['maintenance'].get('reason')}); "
            "flash a bundle with `xenoedge flash BUNDLE --port PORT`"
        )


@app.command()
def rollback(
    port: str = typer.Option(None, help=PORT_HELP),
    baud: int = typer.Option(921600, help="Line rate for a serial port."),
    root: Path = typer.Option(None, "--root", help="A mounted device storage (its root folder) instead."),
    public_key: Path = typer.Option(None, help="--root: the slot to return to must be signed by this key."),
) -> None:
    """Return the device to its last known-good model (the daemon keeps running)."""
    if (port is None) == (root is None):
        raise typer.BadParameter("give exactly one of --port and --root")
    if root is not None:
        from xenoedge.edge.flashing.slots import SlotStore
        from xenoedge.export.bundle import load_public_key

        key = load_public_key(public_key) if public_key else None
        store = SlotStore(_installed_state(root), public_key=key)
        target = store.rollback("rollback requested with xenoedge device rollback")
        console.print(f"rolled back to {target.describe()} in {root}")
        return
    from xenoedge.edge.flashing.host import FlashClient

    with _open(port, baud) as link:
        result = FlashClient(link).rollback()
    console.print(f"{result.message}; now serving {_slot(result.details.get('active'))}")


def register(main_app: typer.Typer) -> None:
    """Add ``flash`` and the ``device`` group to the ``xenoedge`` app."""
    main_app.command()(flash)
    main_app.add_typer(app, name="device")
