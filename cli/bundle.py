"""``xenoedge bundle``: keys, signing, verification and inspection of model bundles (``.xeb``).

    xenoedge bundle keygen --out KEY [--encrypt]          writes KEY (0600) and KEY.pub
    xenoedge bundle sign BUNDLE --key KEY [--out SIGNED]
    xenoedge bundle verify BUNDLE [--key KEY.pub] [--require-signature]
    xenoedge bundle inspect BUNDLE [--key KEY.pub] [--json]

``verify`` exits 0 when the bundle is sound, 1 with one red line saying what is wrong;
unreadable key files and other usage problems exit 2. Format: docs/bundles.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table
from xenoedge.cli.common import console, input_file_option, output_file_option
from xenoedge.export.bundle import (
    BundleError,
    generate_keypair,
    inspect_bundle,
    key_id,
    load_private_key,
    load_public_key,
    save_private_key,
    save_public_key,
    sign_bundle,
    verify_bundle,
)
from xenoedge.export.bundle.signing import private_key_is_encrypted

app = typer.Typer(help="Model bundles: keygen, sign, verify, inspect.", no_args_is_help=True)


def _fail(exc: Exception, code: int) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}", soft_wrap=True, markup=True, highlight=False)
    return typer.Exit(code)


def _public_key(path: Path | None):
    try:
        return load_public_key(path) if path is not None else None
    except BundleError as exc:
        raise _fail(exc, 2) from None


def _read_password(path: Path | None, *, confirm: bool) -> str:
    if path is not None:
        return path.read_text().rstrip("\n")
    return typer.prompt("key password", hide_input=True, confirmation_prompt=confirm, err=True)


@app.command()
def keygen(
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        metavar="FILE",
        callback=output_file_option,
        help="Private key file (PEM, mode 0600); KEY.pub gets the public key.",
    ),
    encrypt: bool = typer.Option(False, help="Encrypt the private key with a password (prompted)."),
    password_file: Path = typer.Option(
        None, callback=input_file_option, help="Read the password from this file instead of prompting."
    ),
    force: bool = typer.Option(False, help="Overwrite existing key files."),
) -> None:
    """Generate an Ed25519 signing key pair."""
    public_path = out.with_name(out.name + ".pub")
    if not force and (out.exists() or public_path.exists()):
        raise _fail(f"{out if out.exists() else public_path} exists; pass --force to replace it", 2)
    password = _read_password(password_file, confirm=True) if encrypt or password_file else None
    private, public = generate_keypair()
    save_private_key(out, private, password=password, overwrite=force)
    save_public_key(public_path, public)
    console.print(f"wrote {out} (private, keep it secret) and {public_path}; key id {key_id(public)}")


@app.command()
def sign(
    bundle: Path = typer.Argument(..., callback=input_file_option, help="Bundle file (.xeb)."),
    key: Path = typer.Option(..., "--key", "-k", callback=input_file_option, help="Private key (PEM)."),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        metavar="FILE",
        callback=output_file_option,
        help="Write the signed bundle here instead of in place.",
    ),
    password_file: Path = typer.Option(
        None, callback=input_file_option, help="Password of an encrypted key (prompted otherwise)."
    ),
) -> None:
    """Sign a bundle (replaces an existing signature)."""
    try:
        password = None
        if private_key_is_encrypted(key):
            password = _read_password(password_file, confirm=False)
        private = load_private_key(key, password)
    except BundleError as exc:
        raise _fail(exc, 2) from None
    try:
        written = sign_bundle(bundle, private, out=out)
    except BundleError as exc:
        raise _fail(exc, 1) from None
    console.print(f"signed {written} with key {key_id(private.public_key())}")


@app.command()
def verify(
    bundle: Path = typer.Argument(..., help="Bundle file (.xeb)."),
    key: Path = typer.Option(None, "--key", "-k", help="Trusted public key (PEM or 64 hex digits)."),
    require_signature: bool = typer.Option(False, help="Fail when the bundle is unsigned."),
) -> None:
    """Check every file's size and SHA-256, the archive layout and, with --key, the signature."""
    public = _public_key(key)
    try:
        manifest = verify_bundle(bundle, public_key=public, require_signature=require_signature)
    except BundleError as exc:
        raise _fail(exc, 1) from None
    if manifest.signature_verified:
        signature = f"signature ok (key {manifest.key_id})"
    elif manifest.signed:
        signature = f"[yellow]signed by key {manifest.key_id}, NOT checked: pass --key[/yellow]"
    else:
        signature = "unsigned"
    files = len(manifest.files())
    console.print(f"ok: {manifest['name']} {manifest['version']}, {files} files verified, {signature}", soft_wrap=True)


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def _accuracy_text(record: dict | None) -> str:
    if not record:
        return "-"
    parts = []
    if record.get("pixel_agreement") is not None:
        parts.append(f"agree {record['pixel_agreement']:.4f}")
    if record.get("dsc_drop") is not None:
        gate = f" / max {record['max_drop']}" if record.get("max_drop") is not None else ""
        parts.append(f"DSC drop {record['dsc_drop']:.4f}{gate}")
    if "passed" in record:
        parts.append("[green]passed[/green]" if record["passed"] else "[red]failed[/red]")
    return ", ".join(parts) or "-"


@app.command()
def inspect(
    bundle: Path = typer.Argument(..., help="Bundle file (.xeb)."),
    key: Path = typer.Option(None, "--key", "-k", help="Public key to check the signature with."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Show what a bundle holds: targets, accuracy, signature, self-test, integrity."""
    public = _public_key(key)
    try:
        info = inspect_bundle(bundle, public_key=public)
    except BundleError as exc:
        raise _fail(exc, 1) from None
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return
    sig = info["signature"]
    if not sig["present"]:
        sig_text = "[yellow]unsigned[/yellow]"
    elif sig["verified"]:
        sig_text = f"[green]verified[/green] (key {sig['key_id']})"
    elif sig["verified"] is False:
        sig_text = f"[red]does not verify[/red] (signed by {sig['key_id']})"
    else:
        sig_text = f"signed by key {sig['key_id']}, not checked (pass --key)"
    shape = "x".join("?" if d is None else str(d) for d in info["input"]["shape"])
    low, high = info["input"]["wavelength_range_nm"]
    head = Table(title=f"{info['name']} {info['version']}", show_header=False)
    head.add_column(style="bold")
    head.add_column()
    for field, value in (
        ("file", f"{info['path']} ({_mib(info['bytes'])})"),
        ("sha256", info["sha256"]),
        ("created", info["created_at"]),
        ("sensor", f"{info['sensor']['name']} ({info['sensor']['signature']})"),
        (
            "input",
            f"{info['input']['variant']} {info['input']['dtype']} {info['input']['layout']} {shape}, "
            f"{info['input']['bands']} bands {low:g}-{high:g} nm",
        ),
        ("labels", ", ".join(info["labels"])),
        ("signature", sig_text),
        (
            "self-test",
            f"{info['selftest']['input']} -> {info['selftest']['expected']}, "
            f"min agreement {info['selftest']['min_agreement']}",
        ),
        ("integrity", "[green]ok[/green]" if info["integrity"]["ok"] else f"[red]{info['integrity']['error']}[/red]"),
    ):
        head.add_row(field, value)
    console.print(head)
    targets = Table(title="targets")
    for column in ("target", "runtime", "precision", "files", "size", "accuracy"):
        targets.add_column(column)
    for target in info["targets"]:
        targets.add_row(
            target["name"],
            target["runtime"],
            target["precision"],
            str(target["files"]),
            _mib(target["bytes"]),
            _accuracy_text(info["accuracy"].get(target["name"])),
        )
    console.print(targets)


if __name__ == "__main__":
    app()
