"""A/B model slots on the device: which bundle is active, which one is known to work, boot counting.

Layout of a state folder (``/var/lib/xenoedge`` on a device, docs/flashing.md)::

    state.json      which slot is active, the last known-good slot, per-slot records, boot counters
    slots/a/        an unpacked bundle (manifest.json, manifest.sig, models/..., selftest/...)
    slots/b/        the other one (or absent)
    staging/        the installer's private copy of the bundle being installed and its unpacking
    uploads/        partial uploads (kept by the wire-protocol upload, edge/flashing/upload.py)
    .state.lock     short lock around every read-modify-write of state.json
    .install.lock   held by one install / rollback / recover at a time

``state.json`` is only ever replaced whole: temp file, fsync, rename, fsync of the folder. A slot
folder counts only when ``state.json`` records it; ``recover()`` (once per device start) removes
anything else (a half-done install), counts the start, and rolls back an unconfirmed slot that
keeps failing to serve its first frames. Every durable step is reported to ``on_step(name)``
(``"write .state.json.tmp"``, ``"fsync .state.json.tmp"``, ``"rename state.json"``,
``"fsync-dir ."``; paths relative to the state folder) so the crash tests can stop the process
exactly there.

Why one file (~700 lines): every transition of the A/B state (install target, commit, mark-good,
rollback, recover, rebuild) runs under the same two locks on the same ``state.json``; one class
keeps that locking protocol private instead of spreading it over modules.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from xenoedge.edge.flashing.errors import (
    InstallBusyError,
    NoSpaceError,
    RestartLoopError,
    RollbackError,
    SlotStateError,
)

from xenoedge.atomic import fsync_dir

__all__ = [
    "DEFAULT_MAX_BOOT_ATTEMPTS",
    "DEFAULT_MAX_FAILED_STARTS",
    "SLOT_NAMES",
    "STATE_FORMAT",
    "SlotInfo",
    "SlotStore",
    "StepCallback",
    "check_slot_files",
]

SLOT_NAMES = ("a", "b")
STATE_FORMAT = 1
#: Starts an unconfirmed (switched to, never marked good) slot gets before ``recover`` rolls back.
DEFAULT_MAX_BOOT_ATTEMPTS = 3
#: Starts in a row without ``mark_good`` after which ``recover`` gives up (RestartLoopError).
DEFAULT_MAX_FAILED_STARTS = 5
NO_SPACE_ERRNOS = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))

#: ``on_step(name)``: called right after each durable step, e.g. ``"rename state.json"``.
StepCallback = Callable[[str], None]


def _no_step(name: str) -> None:
    return None


@dataclass(frozen=True)
class SlotInfo:
    """One installed bundle: ``slot`` ("a"|"b"), bundle ``name`` and semver ``version``,
    ``sha256`` of the whole bundle file it came from, ``folder`` (the unpacked bundle, loadable
    like ``extract_bundle``'s output: ``read_manifest(folder)``, ``open_engine(folder, ...)``),
    ``good`` (marked good after serving its first frames), ``failed`` (why it was left, or "")."""

    slot: str
    name: str
    version: str
    sha256: str
    folder: Path
    installed_at: str = ""
    good: bool = False
    failed: str = ""

    def describe(self) -> str:
        return f"slot {self.slot} ({self.name} {self.version})"


def slot_dict(info: SlotInfo | None) -> dict | None:
    """A ``SlotInfo`` as the protocol's and the reports' slot object (slot, name, version, sha256); None for none."""
    if info is None:
        return None
    return {"slot": info.slot, "name": info.name, "version": info.version, "sha256": info.sha256}


def _empty_state() -> dict:
    return {
        "format": STATE_FORMAT,
        "active": None,
        "known_good": None,
        "slots": {name: None for name in SLOT_NAMES},
        "boot_attempts": 0,
        "failed_starts": 0,
    }


def check_slot_files(folder: Path, manifest_sha256: str | None = None, public_key=None) -> str | None:
    """Why the unpacked bundle in ``folder`` is damaged, or None when it is intact.

    Checks: ``manifest.json`` readable (and of SHA-256 ``manifest_sha256`` when given), its
    ``manifest.sig`` verifying with ``public_key`` (an ``Ed25519PublicKey``) when one is given,
    every file it lists present as a regular file with its size and SHA-256, and nothing else in
    the folder but ``manifest.sig``.
    """
    from xenoedge.export.bundle.archive import file_sha256
    from xenoedge.export.bundle.errors import BundleError
    from xenoedge.export.bundle.manifest import MANIFEST_NAME, SIGNATURE_NAME, listed_files, loads_manifest
    from xenoedge.export.bundle.signing import verify_signature

    folder = Path(folder)
    manifest_path = folder / MANIFEST_NAME
    try:
        data = manifest_path.read_bytes()
    except OSError as exc:
        return f"{manifest_path}: unreadable ({exc.strerror or exc})"
    if manifest_sha256 is not None and hashlib.sha256(data).hexdigest() != manifest_sha256:
        return f"{manifest_path}: differs from the manifest that was installed"
    if public_key is not None:
        try:
            verify_signature(public_key, (folder / SIGNATURE_NAME).read_bytes(), data)
        except OSError:
            return f"{folder / SIGNATURE_NAME}: missing, but this device only runs signed bundles"
        except BundleError:
            return f"{folder / SIGNATURE_NAME}: does not verify {MANIFEST_NAME} with the trusted key"
    try:
        listed = listed_files(loads_manifest(data))
    except BundleError as exc:
        return f"{manifest_path}: {exc}"
    for name, entry in sorted(listed.items()):
        path = folder.joinpath(*name.split("/"))
        if path.is_symlink() or not path.is_file():
            return f"{path}: missing or not a regular file"
        if path.stat().st_size != entry["size"]:
            return f"{path}: {path.stat().st_size} bytes, the manifest says {entry['size']}"
        if file_sha256(path) != entry["sha256"]:
            return f"{path}: SHA-256 differs from the manifest"
    allowed = set(listed) | {MANIFEST_NAME, SIGNATURE_NAME}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_dir() and not path.is_symlink():
            continue
        if rel not in allowed:
            return f"{path}: not part of the bundle"
    return None


def _semver_key(version: str) -> tuple:
    core = version.split("+")[0].split("-")[0]
    try:
        return tuple(int(p) for p in core.split("."))
    except ValueError:
        return ()


class SlotStore:
    """The A/B slot store of one device, rooted at ``state_dir`` (layout: module docstring).

    ``max_boot_attempts``: starts an unconfirmed slot gets before ``recover`` goes back to the
    known-good slot; ``max_failed_starts``: starts in a row without ``mark_good`` after which
    ``recover`` raises :class:`RestartLoopError` instead of letting the device loop;
    ``public_key``: the device's trusted Ed25519 key: ``recover`` and ``rollback`` then also
    require each slot's ``manifest.sig`` to verify (a slot edited on the storage is left).
    Creating a store creates the folders (mode 0700 for staging and uploads) and, in a new
    store, an empty ``state.json``; so a ``state.json`` missing beside slot folders means it was
    lost, and ``recover`` rebuilds it from the intact slots.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike,
        *,
        max_boot_attempts: int = DEFAULT_MAX_BOOT_ATTEMPTS,
        max_failed_starts: int = DEFAULT_MAX_FAILED_STARTS,
        public_key=None,
    ):
        self.root = Path(state_dir)
        self.public_key = public_key
        self.state_path = self.root / "state.json"
        self.slots_dir = self.root / "slots"
        self.staging_dir = self.root / "staging"
        self.uploads_dir = self.root / "uploads"
        self.max_boot_attempts = int(max_boot_attempts)
        self.max_failed_starts = int(max_failed_starts)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.slots_dir.mkdir(exist_ok=True)
            for private in (self.staging_dir, self.uploads_dir):
                private.mkdir(mode=0o700, exist_ok=True)
            if not self.state_path.exists() and not any(self.slot_folder(s).exists() for s in SLOT_NAMES):
                # a store always has a state.json, so a missing one means it was lost (recover rebuilds)
                self.write_state(_empty_state())
        except OSError as exc:
            if exc.errno in NO_SPACE_ERRNOS:
                raise NoSpaceError(f"{self.root}: no space left to create the slot store") from None
            raise SlotStateError(f"{self.root}: cannot create the slot store ({exc.strerror or exc})") from None

    def __repr__(self) -> str:
        return f"SlotStore({str(self.root)!r})"

    # ---- paths and steps ---------------------------------------------------------------------
    def slot_folder(self, slot: str) -> Path:
        """``state_dir/slots/<slot>``."""
        if slot not in SLOT_NAMES:
            raise SlotStateError(f"no slot {slot!r}; slots are {', '.join(SLOT_NAMES)}")
        return self.slots_dir / slot

    def step_name(self, operation: str, path: Path) -> str:
        """``"<operation> <path relative to the state folder>"`` (the name given to ``on_step``)."""
        path = Path(path)
        try:
            rel = path.relative_to(self.root).as_posix()
        except ValueError:
            rel = str(path)
        return f"{operation} {rel or '.'}"

    # ---- locks -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _flock(self, name: str, *, blocking: bool, what: str) -> Iterator[None]:
        fd = os.open(self.root / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                raise InstallBusyError(f"{self.root}: another install or rollback is running; {what} refused") from None
            yield
        finally:
            os.close(fd)

    def install_lock(self, what: str = "install") -> contextlib.AbstractContextManager[None]:
        """Held for a whole install, rollback or recover; a second one gets InstallBusyError."""
        return self._flock(".install.lock", blocking=False, what=what)

    def _state_lock(self) -> contextlib.AbstractContextManager[None]:
        return self._flock(".state.lock", blocking=True, what="state update")

    # ---- state.json --------------------------------------------------------------------------
    def read_state(self) -> dict:
        """The recorded state (a fresh, empty one when ``state.json`` does not exist yet).
        Raises :class:`SlotStateError` when it is unreadable, invalid, or missing beside slot
        folders (``recover`` rebuilds it then)."""
        try:
            data = self.state_path.read_bytes()
        except FileNotFoundError:
            if any(self.slot_folder(slot).exists() for slot in SLOT_NAMES):
                raise SlotStateError(
                    f"{self.state_path}: missing, but slot folders exist (recover() rebuilds it)"
                ) from None
            return _empty_state()
        except OSError as exc:
            raise SlotStateError(f"{self.state_path}: unreadable ({exc.strerror or exc})") from None
        try:
            state = json.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise SlotStateError(f"{self.state_path}: not valid JSON ({exc})") from None
        problem = _state_problem(state)
        if problem:
            raise SlotStateError(f"{self.state_path}: {problem}")
        return state

    def write_state(self, state: dict, on_step: StepCallback | None = None) -> None:
        """Replace ``state.json`` atomically: temp file, fsync, rename, fsync of the folder."""
        step = on_step or _no_step
        problem = _state_problem(state)
        if problem:
            raise SlotStateError(f"refusing to write a broken state: {problem}")
        data = (json.dumps(state, indent=2, sort_keys=True) + "\n").encode()
        tmp = self.root / ".state.json.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                step(self.step_name("write", tmp))
                os.fsync(fd)
                step(self.step_name("fsync", tmp))
            finally:
                os.close(fd)
            os.replace(tmp, self.state_path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if exc.errno in NO_SPACE_ERRNOS:
                raise NoSpaceError(f"{self.state_path}: no space left to record the slot state") from None
            raise SlotStateError(f"{self.state_path}: cannot write ({exc.strerror or exc})") from None
        step(self.step_name("rename", self.state_path))
        fsync_dir(self.root)
        step(self.step_name("fsync-dir", self.root))

    def _update(self, change: Callable[[dict], object], on_step: StepCallback | None = None) -> dict:
        with self._state_lock():
            state = self.read_state()
            before = json.dumps(state, sort_keys=True)
            change(state)
            if json.dumps(state, sort_keys=True) != before:
                self.write_state(state, on_step)
            return state

    # ---- queries -----------------------------------------------------------------------------
    def slot_info(self, slot: str | None, state: dict | None = None) -> SlotInfo | None:
        """The recorded bundle of ``slot`` (None when the slot is empty or ``slot`` is None)."""
        if slot is None:
            return None
        state = state if state is not None else self.read_state()
        record = state["slots"].get(slot)
        if record is None:
            return None
        return SlotInfo(
            slot=slot,
            name=record["name"],
            version=record["version"],
            sha256=record["sha256"],
            folder=self.slot_folder(slot),
            installed_at=record.get("installed_at", ""),
            good=bool(record.get("good")),
            failed=record.get("failed") or "",
        )

    def check_slot(self, slot: str, record: dict | None = None) -> str | None:
        """Why ``slot``'s files are damaged (see :func:`check_slot_files`), or None."""
        record = record if record is not None else (self.read_state()["slots"][slot] or {})
        return check_slot_files(self.slot_folder(slot), record.get("manifest_sha256"), self.public_key)

    def active(self) -> SlotInfo | None:
        """The bundle the daemon should load (None before the first install)."""
        state = self.read_state()
        return self.slot_info(state["active"], state)

    def inactive(self) -> SlotInfo | None:
        """The other slot's bundle (the previous one after an install), or None when it is empty."""
        state = self.read_state()
        return self.slot_info(_other(state["active"]), state)

    def known_good(self) -> SlotInfo | None:
        """The last slot marked good, or None."""
        state = self.read_state()
        return self.slot_info(state["known_good"], state)

    def free_bytes(self) -> int:
        """Bytes free for an unprivileged writer on the state folder's filesystem."""
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def info(self) -> dict:
        """JSON-able summary: active/inactive (slot, name, version, sha256, good, failed),
        known_good slot, boot_attempts, failed_starts, the limits, free_bytes."""
        state = self.read_state()

        def brief(info: SlotInfo | None) -> dict | None:
            if info is None:
                return None
            extra = {"installed_at": info.installed_at, "good": info.good, "failed": info.failed or None}
            return {**slot_dict(info), **extra}

        return {
            "state_dir": str(self.root),
            "active": brief(self.slot_info(state["active"], state)),
            "inactive": brief(self.slot_info(_other(state["active"]), state)),
            "known_good": state["known_good"],
            "boot_attempts": state["boot_attempts"],
            "max_boot_attempts": self.max_boot_attempts,
            "failed_starts": state["failed_starts"],
            "max_failed_starts": self.max_failed_starts,
            "free_bytes": self.free_bytes(),
        }

    # ---- daemon hooks ------------------------------------------------------------------------
    def mark_good(self, slot: str | None = None, *, on_step: StepCallback | None = None) -> None:
        """The active slot served its first frames: it becomes the known-good slot and the boot
        counters are reset. Call it on every start once the first N masks went out (cheap when
        nothing changes). ``slot``: the slot the caller actually served from; when an install or
        rollback switched the active slot meanwhile, nothing is marked and
        :class:`SlotStateError` says so (so a new, unproven slot is never marked good by frames
        the old one served). Raises :class:`SlotStateError` too when no slot is active."""

        def change(state: dict) -> None:
            active = state["active"]
            if active is None:
                raise SlotStateError(f"{self.root}: no active slot to mark good")
            if slot is not None and slot != active:
                raise SlotStateError(
                    f"{self.root}: slot {slot} is no longer active (slot {active} is); not marking it good"
                )
            slot_ = active
            record = state["slots"][slot_]
            record["good"], record["failed"] = True, None
            state["known_good"] = slot_
            state["boot_attempts"] = state["failed_starts"] = 0

        self._update(change, on_step)

    def rollback(
        self,
        reason: str,
        *,
        from_slot: str | None = None,
        on_step: StepCallback | None = None,
        verify: bool = True,
    ) -> SlotInfo:
        """Switch back (one atomic state write) and return the slot now active.

        ``from_slot``: the slot the caller saw failing; when another one is active by now
        (an install switched meanwhile) nothing happens and :class:`RollbackError` says so.

        Goes to the known-good slot when the active one is not it, else to the other slot when it
        holds a bundle that never failed (the previous version). The slot left is recorded as
        failed with ``reason`` unless it was marked good (then it stays the known-good slot, so
        an unconfirmed target that fails its starts comes back to it). Raises
        :class:`RollbackError` when there is nothing to go back to or (with ``verify``) the
        target's files no longer match its manifest.
        """
        with self.install_lock("rollback"), self._state_lock():
            state = self.read_state()
            if from_slot is not None and state["active"] != from_slot:
                now = state["active"]
                raise RollbackError(
                    f"{self.root}: slot {from_slot} is no longer active (slot {now} is); nothing rolled back"
                )
            target = self._rollback_target(state, verify=verify)
            self._switch_back(state, target, reason, failed=False)
            self.write_state(state, on_step)
            return self.slot_info(target, state)

    def _rollback_target(self, state: dict, *, verify: bool) -> str:
        active = state["active"]
        candidates = []
        if state["known_good"] not in (None, active) and state["slots"][state["known_good"]] is not None:
            candidates.append(state["known_good"])
        other = _other(active) if active is not None else None
        if other and other not in candidates and state["slots"][other] is not None:
            if not state["slots"][other].get("failed"):
                candidates.append(other)
        problems = []
        for slot in candidates:
            record = state["slots"][slot]
            problem = self.check_slot(slot, record) if verify else None
            if problem is None:
                return slot
            problems.append(f"slot {slot} ({record['name']} {record['version']}) is damaged: {problem}")
        current = self.slot_info(active, state)
        where = current.describe() if current else "no active slot"
        if problems:
            raise RollbackError(f"{self.root}: cannot roll back from {where}: " + "; ".join(problems))
        raise RollbackError(f"{self.root}: cannot roll back from {where}: no known-good or previous bundle to go to")

    @staticmethod
    def _switch_back(state: dict, target: str, reason: str, *, failed: bool) -> None:
        """Make ``target`` active. ``failed``: the slot left broke (never to be rolled back to
        again); otherwise (an on-demand rollback from a good slot) it stays known-good."""
        left = state["active"]
        record = state["slots"][left] if left is not None else None
        if record is not None:
            if failed or not record.get("good"):
                record["failed"] = reason or "rolled back"
                if state["known_good"] == left:
                    state["known_good"] = None
        state["active"] = target
        if state["slots"][target].get("good"):
            state["known_good"] = target
        state["boot_attempts"] = 0
        state["failed_starts"] = 0

    # ---- start-up ----------------------------------------------------------------------------
    def recover(self, *, on_step: StepCallback | None = None, verify: bool = True) -> list[str]:
        """Bring the store to a clean state at device start; returns what it did, for the log.

        In order: remove the staging area and half-unpacked folders; discard a slot folder that
        ``state.json`` does not record (an install cut short) and forget a recorded slot whose
        folder is gone; with ``verify``, re-hash the active slot against its manifest and roll
        back when it is damaged; count this start (``failed_starts``, and ``boot_attempts`` while
        the active slot is unconfirmed); roll back an unconfirmed slot past
        ``max_boot_attempts``; past ``max_failed_starts`` try the other slot once, and when
        there is none raise :class:`RestartLoopError` (every later start raises it too, until
        an install, a rollback, ``mark_good`` or ``reset_failed_starts``). Call once per device
        start, before loading ``active()``.
        """
        step = on_step or _no_step
        notes: list[str] = []
        with self.install_lock("recover"), self._state_lock():
            state = self._read_or_rebuild_state(notes)
            self._clean_leftovers(state, notes, step)
            if state["active"] is not None and verify:
                record = state["slots"][state["active"]]
                problem = self.check_slot(state["active"], record)
                if problem:
                    self._leave_active(state, f"damaged: {problem}", notes)
            restart_loop = None
            if state["active"] is not None:
                state["failed_starts"] += 1
                if state["active"] != state["known_good"]:
                    state["boot_attempts"] += 1
                    if state["boot_attempts"] > self.max_boot_attempts:
                        self._leave_active(
                            state,
                            f"did not serve its first frames in {self.max_boot_attempts} starts",
                            notes,
                            count_start=True,
                        )
                if state["failed_starts"] > self.max_failed_starts:
                    reason = f"did not serve its first frames in {self.max_failed_starts} starts in a row"
                    if not self._leave_active(state, reason, notes, count_start=True, quiet=True):
                        current = self.slot_info(state["active"], state)
                        restart_loop = (
                            f"{self.root}: {current.describe()} {reason} and there is no other bundle to go "
                            "back to; not starting again until a bundle is installed (e.g. `xenoedge flash "
                            "BUNDLE --to DEVICE_ROOT`) or the start count is reset (SlotStore.reset_failed_starts)"
                        )
            try:
                self.write_state(state, step)
            except NoSpaceError as exc:  # a full disk must not stop the model from serving
                notes.append(f"{exc}; this start was not recorded")
        if restart_loop:
            raise RestartLoopError(restart_loop)
        return notes

    def clean_leftovers(self, on_step: StepCallback | None = None) -> list[str]:
        """The cleaning part of :meth:`recover` without counting a start (a host writing into a
        mounted device root before an install); returns notes."""
        notes: list[str] = []
        with self.install_lock("clean"), self._state_lock():
            state = self._read_or_rebuild_state(notes)
            before = json.dumps(state, sort_keys=True) if self.state_path.exists() else ""
            self._clean_leftovers(state, notes, on_step or _no_step)
            if json.dumps(state, sort_keys=True) != before:
                self.write_state(state, on_step)
        return notes

    def reset_failed_starts(self, on_step: StepCallback | None = None) -> None:
        """Forget the start counters (a person fixed the cause of a restart loop)."""

        def change(state: dict) -> None:
            state["failed_starts"] = state["boot_attempts"] = 0

        self._update(change, on_step)

    def _leave_active(
        self, state: dict, reason: str, notes: list[str], *, count_start: bool = False, quiet: bool = False
    ) -> bool:
        """Roll back inside ``recover`` (state changed in memory); False when there is nowhere to go."""
        current = self.slot_info(state["active"], state)
        try:
            target = self._rollback_target(state, verify=True)
        except RollbackError as exc:
            if not quiet:
                notes.append(f"{current.describe()} {reason}; {exc}")
            return False
        self._switch_back(state, target, reason, failed=True)
        if count_start:
            state["failed_starts"] = 1
            state["boot_attempts"] = 0 if state["active"] == state["known_good"] else 1
        notes.append(f"{current.describe()} {reason}: rolled back to {self.slot_info(target, state).describe()}")
        return True

    def _clean_leftovers(self, state: dict, notes: list[str], step: StepCallback) -> None:
        for entry in sorted(self.staging_dir.iterdir()):
            remove_path(entry)
            step(self.step_name("remove", entry))
            notes.append(f"removed an unfinished install's {entry.name} from staging")
        for entry in sorted(self.slots_dir.iterdir()):
            if entry.name not in SLOT_NAMES:
                remove_path(entry)
                step(self.step_name("remove", entry))
                notes.append(f"removed {entry} (not a slot)")
        for slot in SLOT_NAMES:
            folder, record = self.slot_folder(slot), state["slots"][slot]
            if record is None and (folder.exists() or folder.is_symlink()):
                remove_path(folder)
                step(self.step_name("remove", folder))
                notes.append(f"discarded slot {slot}: an install into it did not finish")
            elif record is not None and not folder.is_dir():
                notes.append(f"slot {slot} ({record['name']} {record['version']}) is recorded but its folder is gone")
                state["slots"][slot] = None
                if state["active"] == slot:
                    state["active"] = None
                    fallback = [s for s in SLOT_NAMES if state["slots"][s] is not None]
                    if fallback:
                        state["active"] = fallback[0]
                        state["boot_attempts"] = 0
                        notes.append(f"slot {fallback[0]} is active now")
                if state["known_good"] == slot:
                    state["known_good"] = None
        fsync_dir(self.slots_dir)
        fsync_dir(self.staging_dir)

    def _read_or_rebuild_state(self, notes: list[str]) -> dict:
        try:
            return self.read_state()
        except SlotStateError as exc:
            notes.append(f"{exc}; rebuilding it from the slot folders")
            return self._rebuild_state(notes)

    def _rebuild_state(self, notes: list[str]) -> dict:
        """A state from the slot folders alone: intact bundles only, the highest version active."""
        from xenoedge.export.bundle.archive import file_sha256, read_manifest

        state = _empty_state()
        for slot in SLOT_NAMES:
            folder = self.slot_folder(slot)
            if not folder.is_dir():
                continue
            problem = check_slot_files(folder, None, self.public_key)
            if problem:
                notes.append(f"slot {slot} is not an intact bundle ({problem}); discarding it")
                continue
            manifest = read_manifest(folder)
            state["slots"][slot] = {
                "name": manifest["name"],
                "version": manifest["version"],
                "sha256": "",
                "manifest_sha256": file_sha256(folder / "manifest.json"),
                "installed_at": "",
                "good": False,
                "failed": None,
            }
        present = [s for s in SLOT_NAMES if state["slots"][s] is not None]
        if present:
            state["active"] = max(present, key=lambda s: _semver_key(state["slots"][s]["version"]))
            notes.append(f"slot {state['active']} is active after the rebuild")
        return state

    # ---- used by xenoedge.edge.flashing.install -------------------------------------------------------
    def target_slot(self, state: dict, *, replace_known_good: bool = False) -> str:
        """The slot an install writes into: the inactive one. Refuses (InstallBusyError) when that
        is the known-good slot while the active one is unconfirmed, unless ``replace_known_good``."""
        target = _other(state["active"]) if state["active"] is not None else SLOT_NAMES[0]
        if (
            state["known_good"] == target
            and state["active"] != state["known_good"]
            and state["slots"][target] is not None
            and not replace_known_good
        ):
            active = self.slot_info(state["active"], state)
            good = self.slot_info(target, state)
            raise InstallBusyError(
                f"{active.describe()} is not confirmed yet (it has not served its first frames); installing now "
                f"would overwrite the last known-good {good.describe()}. Let it run until it is marked good, "
                f"roll back first, or install with replace_known_good"
            )
        return target

    def release_slot(self, slot: str, on_step: StepCallback | None = None) -> None:
        """Forget ``slot`` in ``state.json`` (durably), then delete its folder: the first thing an
        install into it does, so that a crash at any later point leaves it discarded."""
        step = on_step or _no_step

        def change(state: dict) -> None:
            if state["active"] == slot:
                raise SlotStateError(f"slot {slot} is active; it cannot be released")
            state["slots"][slot] = None
            if state["known_good"] == slot:
                state["known_good"] = None

        self._update(change, step)
        folder = self.slot_folder(slot)
        if folder.exists() or folder.is_symlink():
            remove_path(folder)
            step(self.step_name("remove", folder))
            fsync_dir(self.slots_dir)
            step(self.step_name("fsync-dir", self.slots_dir))

    def commit_slot(self, slot: str, record: dict, on_step: StepCallback | None = None) -> dict:
        """Record ``slot``'s new bundle and make it active in one atomic state write (the switch)."""

        def change(state: dict) -> None:
            state["slots"][slot] = dict(record, good=False, failed=None)
            state["active"] = slot
            state["boot_attempts"] = 0
            state["failed_starts"] = 0

        return self._update(change, on_step)


def _other(slot: str | None) -> str | None:
    if slot is None:
        return None
    return SLOT_NAMES[1] if slot == SLOT_NAMES[0] else SLOT_NAMES[0]


def remove_path(path: Path) -> None:
    """Delete a file, link or folder tree (no error when it is already gone)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _state_problem(state: object) -> str | None:
    """Why ``state`` is not a valid state.json object, or None."""
    if not isinstance(state, dict):
        return "not a JSON object"
    if state.get("format") != STATE_FORMAT:
        return f"format {state.get('format')!r} is not {STATE_FORMAT}"
    slots = state.get("slots")
    if not isinstance(slots, dict) or set(slots) != set(SLOT_NAMES):
        return f"'slots' must name exactly {', '.join(SLOT_NAMES)}"
    for name, record in slots.items():
        if record is not None and not (
            isinstance(record, dict) and all(isinstance(record.get(k), str) for k in ("name", "version", "sha256"))
        ):
            return f"slot {name}: record needs name, version and sha256"
    for key in ("active", "known_good"):
        value = state.get(key)
        if value is not None and (value not in SLOT_NAMES or slots[value] is None):
            return f"{key!r} is {value!r}, not a recorded slot"
    for key in ("boot_attempts", "failed_starts"):
        if not isinstance(state.get(key), int) or state[key] < 0:
            return f"{key!r} must be a count"
    return None
