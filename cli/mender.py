"""Mender fleet rollout (docs/fleet.md): ``xenoedge bundle mender`` builds an artifact on the host,
``xenoedge mender-module STATE FILES`` is the device side of the ``xenoedge-model`` Update Module.

    xenoedge bundle mender BUNDLE.xeb --device-type TYPE [-t TYPE2] [-o OUT.mender] [--public-key KEY.pub]
    xenoedge mender-module STATE FILES      (run by deploy/mender/xenoedge-model, not by hand)

Device-install safe: no torch, onnx or nncf.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import typer
from xenoedge.cli.common import console, input_file_option, output_file_option

#: The daemon configuration the module reads its slot store, trusted key and sensor from.
DEFAULT_DAEMON_CONFIG = Path("/etc/xenoedge/daemon.toml")


def artifact_command(
    bundle: Path,
    manifest: dict,
    device_types: list[str],
    out: Path,
    *,
    artifact_name: str | None = None,
    sha256: str = "",
    mender_artifact: str = "mender-artifact",
    signing_key: Path | None = None,
) -> list[str]:
    """The ``mender-artifact write module-image`` command that wraps ``bundle`` (a file whose name
    ends in ``.xeb``) for the ``xenoedge-model`` module: artifact name ``NAME-VERSION``, software
    version (``rootfs-image.xenoedge-model.version``) the bundle's version, provides
    ``xenoedge-model.bundle_name`` / ``xenoedge-model.bundle_sha256``."""
    from xenoedge.edge.flashing.mender_module import MODULE_TYPE

    name = artifact_name or f"{manifest['name']}-{manifest['version']}"
    command = [mender_artifact, "write", "module-image", "-T", MODULE_TYPE, "-n", name]
    for device_type in device_types:
        command += ["-t", device_type]
    command += ["-f", str(bundle), "--software-version", str(manifest["version"])]
    command += ["-p", f"{MODULE_TYPE}.bundle_name:{manifest['name']}"]
    if sha256:
        command += ["-p", f"{MODULE_TYPE}.bundle_sha256:{sha256}"]
    command += ["--clears-provides", f"{MODULE_TYPE}.*"]
    if signing_key is not None:
        command += ["-k", str(signing_key)]
    return [*command, "-o", str(out)]


def bundle_mender(
    bundle: Path = typer.Argument(..., callback=input_file_option, help="The bundle file (.xeb)."),
    device_type: list[str] = typer.Option(
        ..., "--device-type", "-t", help="Mender device type(s) the artifact installs on (repeat for several)."
    ),
    out: Path = typer.Option(
        None, "--out", "-o", callback=output_file_option, help="Artifact to write (default: BUNDLE with .mender)."
    ),
    artifact_name: str = typer.Option(None, "--artifact-name", "-n", help="Default: NAME-VERSION of the bundle."),
    public_key: Path = typer.Option(
        None,
        "--public-key",
        "-k",
        callback=input_file_option,
        help="Check the bundle's signature with this key first (what devices will do).",
    ),
    mender_key: Path = typer.Option(
        None,
        "--mender-key",
        callback=input_file_option,
        help="Also sign the Mender artifact (mender-artifact -k; devices: ArtifactVerifyKey).",
    ),
    mender_artifact: str = typer.Option("mender-artifact", help="The mender-artifact program."),
) -> None:
    """Wrap a bundle into a Mender artifact for the xenoedge-model Update Module (docs/fleet.md)."""
    from xenoedge.export.bundle import BundleError, file_sha256, load_public_key, verify_bundle

    program = shutil.which(mender_artifact)
    if program is None:
        console.print(
            f"[red]error:[/red] {mender_artifact} not found: install it (Debian: apt-get install mender-artifact, "
            "or https://docs.mender.io/downloads)"
        )
        raise typer.Exit(2)
    try:
        key = load_public_key(public_key) if public_key else None
        manifest = verify_bundle(bundle, public_key=key, require_signature=key is not None)
    except BundleError as exc:
        console.print(f"[red]error:[/red] {bundle}: {exc}")
        raise typer.Exit(1) from None
    if not manifest.signed:
        console.print(
            "[yellow]warning:[/yellow] the bundle is unsigned: devices with a trusted key refuse it "
            "(sign it: xenoedge bundle sign)"
        )
    out = out or bundle.with_suffix(".mender")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="xenoedge-mender-") as tmp:
        # the payload file's name is what the module finds in FILES/files: always NAME-VERSION.xeb
        payload = Path(tmp) / f"{manifest['name']}-{manifest['version']}.xeb"
        shutil.copyfile(bundle, payload)
        command = artifact_command(
            payload,
            manifest,
            device_type,
            out,
            artifact_name=artifact_name,
            sha256=file_sha256(payload),
            mender_artifact=program,
            signing_key=mender_key,
        )
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        console.print(f"[red]error:[/red] {shlex.join(command)} exited {result.returncode}:")
        console.print((result.stderr or result.stdout).strip(), markup=False, highlight=False)
        raise typer.Exit(1)
    name = artifact_name or f"{manifest['name']}-{manifest['version']}"
    console.print(
        f"wrote {out} ({out.stat().st_size} bytes): artifact {name}, type xenoedge-model, "
        f"device types {', '.join(device_type)}; bundle {manifest['name']} {manifest['version']}, "
        f"{'signed, key ' + str(manifest.key_id) if manifest.signed else 'UNSIGNED'}; "
        f"{time.monotonic() - started:.2f} s"
    )


def settings_from_config(config: Path, restart_command: str = "", confirm_s: float = 0.0):
    """The module's settings from the daemon's configuration (its slot store, key, sensor, engines)."""
    from xenoedge.edge.config import load_config
    from xenoedge.edge.flashing.errors import FlashError
    from xenoedge.edge.flashing.install import InstallPolicy
    from xenoedge.edge.flashing.mender_module import ModuleSettings
    from xenoedge.export.bundle import load_public_key

    from xenoedge.sensors import get_sensor

    daemon = load_config(config)
    if daemon.state_dir is None:
        raise FlashError(f"{config}: no [flashing] state_dir: this device has no model slots to install into")
    key = load_public_key(daemon.public_key) if daemon.public_key is not None else None
    policy = dict(
        trusted_public_key=key,
        sensor_signature=get_sensor(daemon.sensor).signature if daemon.sensor else None,
        max_bundle_bytes=daemon.max_bundle_bytes,
        prefer=tuple(daemon.prefer),
    )
    if getattr(daemon, "allow_unsigned", False):
        policy["allow_unsigned"] = True
    return ModuleSettings(
        state_dir=daemon.state_dir,
        policy=InstallPolicy(**policy),
        public_key=key,
        restart_command=shlex.split(restart_command or ""),
        confirm_s=confirm_s,
    )


def mender_module(
    state: str = typer.Argument(..., help="The Update Module state Mender runs (ArtifactInstall, ...)."),
    files: Path = typer.Argument(..., help="The payload's file tree Mender gives the module."),
    config: Path = typer.Option(
        DEFAULT_DAEMON_CONFIG, envvar="XENOEDGE_CONFIG", help="The daemon's config: slot store, trusted key, sensor."
    ),
    restart_command: str = typer.Option(
        "", envvar="XENOEDGE_RESTART_COMMAND", help="Run after a switch, e.g. 'systemctl try-restart xenoedge'."
    ),
    confirm_s: float = typer.Option(
        0.0,
        min=0.0,
        envvar="XENOEDGE_CONFIRM_S",
        help="ArtifactCommit waits this long for the daemon to mark the new model good (0: commit marks it).",
    ),
) -> None:
    """The device side of the xenoedge-model Mender Update Module (deploy/mender/xenoedge-model)."""
    from xenoedge.edge.flashing.mender_module import run_state

    code = run_state(state, files, lambda: settings_from_config(config, restart_command, confirm_s))
    raise typer.Exit(code)


def register(main_app: typer.Typer, bundle_app: typer.Typer) -> None:
    """Add ``bundle mender`` and ``mender-module`` to the ``xenoedge`` app."""
    bundle_app.command("mender")(bundle_mender)
    main_app.command("mender-module")(mender_module)
