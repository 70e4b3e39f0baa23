"""Install a bundle into the inactive A/B slot: check everything, unpack, self-test, switch atomically.

Order (docs/flashing.md), each failure raising a :class:`FlashError` subclass with the active
slot untouched:

0. the device's trust: with neither ``policy.trusted_public_key`` nor ``policy.allow_unsigned``
   every install is refused at once (``BundleRejected(reason="signature")``, the one line of
   :data:`NO_TRUST_HELP` saying what to configure); like RAUC without a keyring;
1. copy the bundle into ``staging/bundle.xeb`` (mode 0600, a folder only the installer uses),
   hashing it on the way: the whole-bundle SHA-256 must equal ``expected_sha256`` when given,
   and the size stay under ``policy.max_bundle_bytes``; everything after reads only this copy;
2. verify the copy without writing a byte: canonical tar layout, manifest schema, every listed
   member with its size and SHA-256, nothing unlisted, linked, special or duplicated, limits;
   and with ``policy.trusted_public_key`` the Ed25519 signature (unsigned, empty or wrong
   signatures refused; nothing inside the bundle can turn this off);
3. compatibility: the camera's sensor signature and the device's runtimes;
4. free space for the unpacked bundle (plus ``policy.min_free_bytes``);
5. unpack into ``staging/unpack`` (re-checking and re-hashing each member as it is written,
   regular files only, fsynced); refuse ONNX models with external data outside the bundle;
6. load it there and run the golden self-test (``policy.self_test``);
7. only now touch the slots: release the inactive slot in ``state.json`` (durably), delete its
   folder, rename ``staging/unpack`` to ``slots/<slot>``, fsync the folders;
8. the switch: one atomic ``state.json`` write makes the new slot active;
9. remove the staging copy.

So a refused bundle (whatever the reason) writes nothing outside ``staging/`` and leaves the
previous bundle in the inactive slot, ready for a rollback.

A crash anywhere leaves either the old state (the half-written slot is discarded by
``SlotStore.recover``) or the new one. ``on_step(name)`` hears every durable step.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from xenoedge.edge.flashing.errors import BundleRejected, FlashError, NoSpaceError
from xenoedge.edge.flashing.slots import NO_SPACE_ERRNOS, SlotInfo, SlotStore, StepCallback, remove_path, slot_dict

from xenoedge.atomic import fsync_dir

__all__ = [
    "DEVICE_STATE_SUBDIR",
    "NO_TRUST_HELP",
    "InstallPolicy",
    "InstallReport",
    "device_state_dir",
    "install_bundle",
    "install_into_root",
    "refuse_without_trust",
    "signature_fields",
    "signature_line",
]

#: Where the slot store lives on a device, relative to its root (systemd StateDirectory=xenoedge).
DEVICE_STATE_SUBDIR = "var/lib/xenoedge"
STAGED_BUNDLE = "bundle.xeb"
STAGED_UNPACK = "unpack"
_CHUNK = 1 << 20

_REASONS = {
    "SignatureError": "signature",
    "IncompatibleBundleError": "incompatible",
    "UnsafeArchiveError": "archive",
    "ArchiveError": "archive",
    "IntegrityError": "integrity",
    "ManifestError": "manifest",
}


#: The one line a refused install says when the device trusts no key and did not opt in to unsigned
#: bundles. TOML's dotted keys (``bundle.public_key``), not ``[bundle]``: consoles with markup eat brackets.
NO_TRUST_HELP = (
    "this device trusts no signing key: set bundle.public_key in its daemon.toml (flash --to: --public-key KEY), "
    "or, for development only, bundle.allow_unsigned = true (flash --to: --allow-unsigned)"
)


@dataclass
class InstallPolicy:
    """What this device accepts; set by the device's configuration, never by the bundle.

    ``trusted_public_key``: when set, only bundles this key signed install; ``allow_unsigned``:
    without a key, install bundles whose signature nobody checks (an explicit opt-in for
    development; with neither, every install is refused: :data:`NO_TRUST_HELP`); ``sensor_signature``:
    the camera's (``SensorProfile.signature``; None: not checked, e.g. a host writing a device
    root without knowing its camera); ``runtimes``: engines available here (None: whatever the
    self-test can open); ``max_bundle_bytes``: largest bundle file (and unpacked total);
    ``self_test``: run the golden self-test before switching; ``min_free_bytes``: space to leave
    free after unpacking; ``prefer``: target/runtime names the self-test tries first.
    """

    trusted_public_key: Ed25519PublicKey | None = None
    allow_unsigned: bool = False
    sensor_signature: str | None = None
    runtimes: tuple[str, ...] | None = None
    max_bundle_bytes: int = 2 << 30
    self_test: bool = True
    min_free_bytes: int = 0
    prefer: tuple[str, ...] = ()
    max_members: int = 256
    warmup_runs: int = 0


@dataclass
class InstallReport:
    """What an install did: ``slot`` written, ``previous`` active bundle (None on a first
    install), ``installed`` (now active), ``selftest`` (``passed``, ``agreement``,
    ``min_agreement``, ``engine``, ``seconds``; ``{"passed": None}`` when skipped), ``seconds``
    (whole install), ``signed``/``key_id`` of the bundle, ``bytes`` of the bundle file."""

    slot: str
    previous: SlotInfo | None
    installed: SlotInfo
    selftest: dict
    seconds: float
    signed: bool = False
    verified_key_id: str | None = None
    bytes: int = 0
    steps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "slot": self.slot,
            "previous": slot_dict(self.previous),
            "installed": slot_dict(self.installed),
            "selftest": self.selftest,
            "seconds": self.seconds,
            "signed": self.signed,
            "verified_key_id": self.verified_key_id,
            "bytes": self.bytes,
        }


def signature_fields(public_key: Ed25519PublicKey | None, allow_unsigned: bool) -> dict:
    """What INFO and HELLO say about the bundles this device installs: ``allow_unsigned`` (true
    only without a key: unsigned bundles install) and ``trusted_key_id`` (the key's id, or null).
    With neither, every install is refused."""
    from xenoedge.export.bundle.signing import key_id

    return {
        "allow_unsigned": bool(allow_unsigned) and public_key is None,
        "trusted_key_id": key_id(public_key) if public_key is not None else None,
    }


def signature_line(public_key: Ed25519PublicKey | None, allow_unsigned: bool, *, key_path: object = None) -> str:
    """One line for the log at every start: which bundles this device installs."""
    fields = signature_fields(public_key, allow_unsigned)
    if fields["trusted_key_id"] is not None:
        where = f" ({key_path})" if key_path else ""
        return f"bundle signatures: required; only bundles signed by key {fields['trusted_key_id']}{where} install"
    if fields["allow_unsigned"]:
        return (
            "bundle signatures: NOT checked (bundle.allow_unsigned = true): any bundle sent over the link "
            "installs, signed or not; for development only, set bundle.public_key on a device in use"
        )
    return f"bundle signatures: every install is refused: {NO_TRUST_HELP}"


def refuse_without_trust(policy: InstallPolicy) -> None:
    """``BundleRejected(reason="signature")`` with :data:`NO_TRUST_HELP` when ``policy`` has no
    trusted key and does not allow unsigned bundles (every install is refused then)."""
    if getattr(policy, "trusted_public_key", None) is None and not getattr(policy, "allow_unsigned", False):
        raise BundleRejected(f"bundle refused (signature): {NO_TRUST_HELP}", reason="signature")


def device_state_dir(device_root: str | os.PathLike) -> Path:
    """The slot store of a mounted device root: ``DEVICE_ROOT/var/lib/xenoedge``."""
    return Path(device_root) / DEVICE_STATE_SUBDIR


def _no_space(exc: OSError, what: str) -> NoSpaceError:
    return NoSpaceError(f"{what}: no space left on the device ({exc.strerror or exc})")


def _copy_to_staging(source: Path, dest: Path, max_bytes: int, step: StepCallback, store: SlotStore) -> tuple[str, int]:
    """Copy ``source`` to the private ``dest`` (0600), hashing it; (SHA-256 hex, bytes)."""
    try:
        src = open(source, "rb")
    except FileNotFoundError:
        raise BundleRejected(f"{source}: no such bundle file", reason="missing") from None
    except IsADirectoryError:
        raise BundleRejected(f"{source}: is a folder, not a bundle file", reason="missing") from None
    with src:
        size = os.fstat(src.fileno()).st_size
        if size > max_bytes:
            raise BundleRejected(f"{source}: {size} bytes, over this device's limit of {max_bytes}", reason="size")
        digest, count = hashlib.sha256(), 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(dest, flags, 0o600), "wb") as out:
            while chunk := src.read(_CHUNK):
                count += len(chunk)
                if count > max_bytes:
                    raise BundleRejected(f"{source}: grew past this device's limit of {max_bytes} bytes", reason="size")
                digest.update(chunk)
                out.write(chunk)
        step(store.step_name("write", dest))
    return digest.hexdigest(), count


def _rejected(exc: Exception, label: str) -> BundleRejected:
    reason = next((r for cls in type(exc).__mro__ if (r := _REASONS.get(cls.__name__))), "bundle")
    message = str(exc).replace(label, "bundle") if label else str(exc)
    return BundleRejected(f"bundle refused ({reason}): {message}", reason=reason)


def _check_external_data(folder: Path, manifest: dict) -> None:
    from xenoedge.edge.flashing.onnx_refs import external_data_problem
    from xenoedge.export.bundle.manifest import listed_files

    listed = set(listed_files(manifest))
    for name in sorted(listed):
        if name.endswith(".onnx"):
            problem = external_data_problem(folder.joinpath(*name.split("/")), folder, listed)
            if problem:
                raise BundleRejected(f"bundle refused (external-data): {problem}", reason="external-data")


def _check_space(store: SlotStore, manifest: dict, policy: InstallPolicy) -> None:
    from xenoedge.export.bundle.manifest import listed_files

    needed = sum(e["size"] for e in listed_files(manifest).values()) + 64 * 1024  # + manifest, folders
    free = store.free_bytes()
    if needed + policy.min_free_bytes > free:
        raise NoSpaceError(
            f"{store.root}: {free} bytes free, the bundle needs {needed} unpacked"
            + (f" and {policy.min_free_bytes} must stay free" if policy.min_free_bytes else "")
        )


def install_bundle(
    store: SlotStore,
    bundle_path: str | os.PathLike,
    policy: InstallPolicy,
    *,
    expected_sha256: str | None = None,
    on_step: StepCallback | None = None,
    replace_known_good: bool = False,
) -> InstallReport:
    """Install ``bundle_path`` into ``store``'s inactive slot and make it active (steps: module
    docstring); returns an :class:`InstallReport`.

    ``expected_sha256``: the whole-bundle SHA-256 announced by the sender (upload begin);
    ``on_step(name)``: called after every durable step (``"write staging/bundle.xeb"``,
    ``"rename slots/b"``, ``"rename state.json"``, ...); ``replace_known_good``: allow writing
    over the known-good slot while the active one is unconfirmed (refused by default).

    Raises :class:`BundleRejected` (hash, signature, size, layout, hostile member, manifest,
    sensor/engine compatibility, ONNX external data), :class:`SelfTestFailed`,
    :class:`NoSpaceError`, :class:`xenoedge.edge.flashing.errors.InstallBusyError`; in every case the
    active slot and ``state.json``'s active record are unchanged and staging is emptied.
    """
    from xenoedge.export.bundle.archive import extract_bundle, read_manifest, verify_bundle
    from xenoedge.export.bundle.errors import BundleError, IncompatibleBundleError
    from xenoedge.export.bundle.manifest import compatible_targets

    start = time.perf_counter()
    steps: list[str] = []

    def step(name: str) -> None:
        steps.append(name)
        if on_step is not None:
            on_step(name)

    refuse_without_trust(policy)  # before anything is read or written: like RAUC without a keyring
    source = Path(bundle_path)
    if store.staging_dir.resolve() in source.resolve().parents:
        raise FlashError(f"{source}: is inside the installer's staging folder; pass the bundle from elsewhere")
    staged, unpack = store.staging_dir / STAGED_BUNDLE, store.staging_dir / STAGED_UNPACK
    key = policy.trusted_public_key
    checks = dict(
        public_key=key,
        require_signature=key is not None,
        max_total_bytes=policy.max_bundle_bytes,
        max_member_bytes=policy.max_bundle_bytes,
        max_members=policy.max_members,
    )
    slot: str | None = None
    committed = False
    with store.install_lock():
        try:
            for entry in sorted(store.staging_dir.iterdir()):
                remove_path(entry)
                step(store.step_name("remove", entry))
            sha256, size = _copy_to_staging(source, staged, policy.max_bundle_bytes, step, store)
            if expected_sha256 is not None and sha256 != expected_sha256.strip().lower():
                raise BundleRejected(
                    f"bundle refused (sha256): {source.name} has SHA-256 {sha256}, the sender announced "
                    f"{expected_sha256.strip().lower()}",
                    reason="sha256",
                )
            try:
                manifest = verify_bundle(staged, **checks)
            except BundleError as exc:
                raise _rejected(exc, str(staged)) from exc
            try:
                if policy.sensor_signature is not None or policy.runtimes is not None:
                    compatible_targets(
                        manifest,
                        sensor_signature=policy.sensor_signature or manifest["sensor"]["signature"],
                        runtimes=tuple(policy.runtimes) if policy.runtimes is not None else None,
                    )
            except IncompatibleBundleError as exc:
                raise BundleRejected(f"bundle refused (incompatible): {exc}", reason="incompatible") from exc
            _check_space(store, manifest, policy)
            try:
                extract_bundle(staged, unpack, **checks, on_step=lambda op, p: step(store.step_name(op, p)))
            except BundleError as exc:  # the bytes changed under us: staging is not private after all
                raise _rejected(exc, str(staged)) from exc
            if dict(read_manifest(unpack)) != dict(manifest):  # what was checked is what was unpacked
                raise BundleRejected("bundle refused (integrity): it changed while being installed", reason="integrity")
            _check_external_data(unpack, manifest)
            if policy.self_test:
                from xenoedge.edge.flashing.selftest import selftest_slot

                selftest = selftest_slot(
                    unpack, manifest, prefer=policy.prefer, runtimes=policy.runtimes, warmup_runs=policy.warmup_runs
                )
            else:
                selftest = {"passed": None, "skipped": True}
            # Only a bundle that passed everything touches the slots: release the inactive one ...
            state = store.read_state()
            previous = store.slot_info(state["active"], state)
            slot = store.target_slot(state, replace_known_good=replace_known_good)
            store.release_slot(slot, step)
            # ... move the unpacked, fsynced folder into it (same filesystem: one rename) ...
            folder = store.slot_folder(slot)
            os.rename(unpack, folder)
            step(store.step_name("rename", folder))
            fsync_dir(store.slots_dir)
            step(store.step_name("fsync-dir", store.slots_dir))
            fsync_dir(store.staging_dir)
            step(store.step_name("fsync-dir", store.staging_dir))
            from xenoedge.export.bundle.manifest import utc_now_iso

            record = {
                "name": manifest["name"],
                "version": manifest["version"],
                "sha256": sha256,
                "manifest_sha256": hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest(),
                "installed_at": utc_now_iso(),
                "signed": bool(manifest.signed),
                "key_id": manifest.key_id,
            }
            state = store.commit_slot(slot, record, step)  # ... and switch: one atomic state.json write
            committed = True
            with contextlib.suppress(OSError):  # installed; a leftover copy goes at the next start
                remove_path(staged)
                step(store.step_name("remove", staged))
        except OSError as exc:
            _cleanup(store, slot if not committed else None)
            if exc.errno in NO_SPACE_ERRNOS:
                raise _no_space(exc, str(store.root)) from None
            raise FlashError(f"{store.root}: install of {source.name} failed: {exc}") from exc
        except FlashError:
            _cleanup(store, slot if not committed else None)
            raise
        except BundleError as exc:
            _cleanup(store, slot if not committed else None)
            raise _rejected(exc, str(staged)) from exc
        except Exception as exc:  # never an untyped error out of an install: the device reports it
            _cleanup(store, slot if not committed else None)
            raise FlashError(f"{store.root}: install of {source.name} failed: {type(exc).__name__}: {exc}") from exc
    installed = store.slot_info(slot, state)
    return InstallReport(
        slot=slot,
        previous=previous,
        installed=installed,
        selftest=selftest,
        seconds=time.perf_counter() - start,
        signed=bool(manifest.signed),
        verified_key_id=manifest.key_id if manifest.signature_verified else None,
        bytes=size,
        steps=steps,
    )


def _cleanup(store: SlotStore, slot: str | None) -> None:
    """After a failed install: empty staging; delete the released (never committed) slot folder."""
    with contextlib.suppress(OSError):
        for entry in store.staging_dir.iterdir():
            remove_path(entry)
    if slot is not None:
        with contextlib.suppress(OSError):
            state = store.read_state()
            if state["slots"][slot] is None and state["active"] != slot:
                folder = store.slot_folder(slot)
                if folder.exists():
                    shutil.rmtree(folder, ignore_errors=True)
            fsync_dir(store.slots_dir)


def check_device_root(device_root: str | os.PathLike) -> Path:
    """``device_root`` as a Path, or FlashError when it is no folder (a mistyped mount point must not
    become a folder on the host)."""
    root = Path(device_root)
    if not root.is_dir():
        raise FlashError(f"device root {root}: no such folder, or not a folder: is the device's storage mounted there?")
    return root


def install_into_root(
    device_root: str | os.PathLike,
    bundle_path: str | os.PathLike,
    policy: InstallPolicy,
    *,
    expected_sha256: str | None = None,
    on_step: StepCallback | None = None,
    replace_known_good: bool = False,
) -> InstallReport:
    """``xenoedge flash BUNDLE --to DEVICE_ROOT``: install into the slot store of a mounted device
    storage, ``DEVICE_ROOT/var/lib/xenoedge`` (created when missing; ``DEVICE_ROOT`` must be an
    existing folder), with the same checks as :func:`install_bundle`. Runs
    ``SlotStore.clean_leftovers`` first, so the leftovers of an earlier cut-short flash are
    cleared (and a lost ``state.json`` rebuilt) without counting a device start."""
    root = check_device_root(device_root)
    store = SlotStore(device_state_dir(root))
    store.clean_leftovers()
    return install_bundle(
        store,
        bundle_path,
        policy,
        expected_sha256=expected_sha256,
        on_step=on_step,
        replace_known_good=replace_known_good,
    )
