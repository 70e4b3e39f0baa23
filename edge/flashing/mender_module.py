"""The ``xenoedge-model`` Mender Update Module (protocol v3): a fleet rollout of model bundles through
the same install path as ``xenoedge flash --to`` (docs/fleet.md).

Mender runs the module (``deploy/mender/xenoedge-model``, installed as
``/usr/share/mender/modules/v3/xenoedge-model``) once per state as ``xenoedge-model STATE FILES``,
with ``FILES`` the payload's file tree (``header/``, ``files/``, ``tmp/``; ``streams/`` and
``stream-next`` only during ``Download``). The shell entry answers the queries itself and hands
the states that act to :func:`run_state`:

``Download``
    nothing: Mender stores the payload in ``FILES/files`` and checks its checksums after streaming
    (a module must not install anything before that).
``ArtifactInstall``
    exactly one ``.xeb`` in ``FILES/files``; a note of the active slot goes to ``FILES/tmp`` first,
    then :func:`xenoedge.edge.flashing.install.install_bundle` verifies (hash, signature with the device's
    trusted key, compatibility, space), unpacks into staging, self-tests, and only then switches
    the inactive A/B slot in with one atomic ``state.json`` write. A refused bundle fails the
    state (exit 1): Mender reports the deployment failed and the device keeps its model, byte for
    byte. With a restart command (the daemon loads its model at start) it runs after the switch.
``ArtifactCommit``
    the new slot must still be the active one. With ``confirm_s`` > 0 the module waits that long
    for the daemon to mark it good (its first ``probation_frames`` masks served); a daemon that
    rolled it back, or no confirmation in time, fails the commit, and Mender rolls back. With
    ``confirm_s`` = 0 (no daemon on this machine) the commit marks the slot good itself: the
    self-test in ``ArtifactInstall`` is then the evidence.
``ArtifactRollback``
    when the slot this artifact installed is active, :meth:`SlotStore.rollback` switches back to
    the slot that was active before (and the daemon is restarted); when the install never switched
    (refused, or cut short), nothing to do. A first model has nothing to go back to: the state
    fails and says so (Mender then marks the device inconsistent rather than pretend).
``ArtifactFailure``
    clears what a cut-short install left (``SlotStore.clean_leftovers``) and logs the slots.

``SupportsRollback`` answers ``Yes``, ``NeedsArtifactReboot`` ``No``; every other or unknown state
does nothing and succeeds, as the protocol asks. Messages go to stderr (Mender's deployment log);
stdout carries only query answers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xenoedge.edge.flashing.errors import FlashError, RollbackError
from xenoedge.edge.flashing.install import InstallPolicy, install_bundle
from xenoedge.edge.flashing.slots import SlotStore, StepCallback

from xenoedge.errors import XenoedgeError

__all__ = [
    "ACTING_STATES",
    "INCOMING_PREFIX",
    "MODULE_TYPE",
    "PENDING_NAME",
    "QUERY_ANSWERS",
    "ModuleSettings",
    "run_state",
]

#: The payload type: the name of the update module and the ``-T`` of ``mender-artifact write module-image``.
MODULE_TYPE = "xenoedge-model"
#: Answers to Mender's queries (stdout); the shell entry answers these without starting Python.
QUERY_ANSWERS = {"SupportsRollback": "Yes", "NeedsArtifactReboot": "No", "ProvidePayloadFileSizes": "No"}
#: The states that act (the shell entry hands only these to ``xenoedge mender-module``).
ACTING_STATES = ("ArtifactInstall", "ArtifactCommit", "ArtifactRollback", "ArtifactFailure")
#: What ArtifactInstall notes in ``FILES/tmp`` before it touches anything (kept until Mender's cleanup).
PENDING_NAME = "xenoedge-install.json"
_CHUNK = 1 << 20


@dataclass
class ModuleSettings:
    """The device's side of the module: its slot store (``state_dir``, ``public_key``: the trusted
    Ed25519 key, the same as the daemon's), the install ``policy`` (the daemon's), a
    ``restart_command`` run after every switch (e.g. ``["systemctl", "try-restart", "xenoedge"]``;
    empty: none), and ``confirm_s``: how long ArtifactCommit waits for the daemon to mark the new
    slot good (0: the commit marks it good itself). ``poll_s``: how often it looks."""

    state_dir: Path
    policy: InstallPolicy
    public_key: object = None
    restart_command: list[str] = field(default_factory=list)
    confirm_s: float = 0.0
    poll_s: float = 0.5


class _StateFailed(Exception):
    """A state failed; the message is for Mender's log."""


def _say(message: str) -> None:
    print(f"xenoedge-model: {message}", file=sys.stderr, flush=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _payload(files_dir: Path) -> Path:
    """The one ``.xeb`` of this payload (``FILES/files``)."""
    folder = files_dir / "files"
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    bundles = [n for n in names if n.endswith(".xeb")]
    if len(bundles) != 1 or len(names) != 1:
        raise _StateFailed(
            f"a {MODULE_TYPE} payload carries exactly one .xeb file, this one has {names or 'none'} "
            f"(build it with `xenoedge bundle mender BUNDLE.xeb --device-type TYPE`)"
        )
    return folder / bundles[0]


def _pending(files_dir: Path) -> dict | None:
    path = files_dir / "tmp" / PENDING_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise _StateFailed(f"{path}: unreadable ({exc})") from None


def _slot_line(record: dict | None, slot: str | None) -> str:
    if not record or slot is None:
        return "no model"
    return f"{record['name']} {record['version']} (slot {slot})"


def _brief(slot: str | None, record: dict | None) -> dict | None:
    if slot is None or record is None:
        return None
    return {"slot": slot, "name": record["name"], "version": record["version"], "sha256": record["sha256"]}


def _active(store: SlotStore) -> tuple[str | None, dict | None]:
    state = store.read_state()
    active = state["active"]
    return active, (state["slots"][active] if active is not None else None)


def _restart(settings: ModuleSettings, why: str) -> None:
    if not settings.restart_command:
        return
    command = settings.restart_command
    _say(f"{why}: running {shlex.join(command)}")
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _StateFailed(f"restart command {shlex.join(command)} failed: {exc}") from None
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
        raise _StateFailed(f"restart command {shlex.join(command)} exited {result.returncode}: {tail[0]}")


def _store(settings: ModuleSettings) -> SlotStore:
    return SlotStore(settings.state_dir, public_key=settings.public_key)


def _recorded_active(state_dir: Path) -> dict | None:
    """The active slot as ``state.json`` records it, read without creating anything (None: none)."""
    try:
        state = json.loads((Path(state_dir) / "state.json").read_text(encoding="utf-8"))
        return _brief(state["active"], state["slots"][state["active"]] if state["active"] else None)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _StateFailed(f"{state_dir}/state.json: unreadable ({exc})") from None


def _note_install(files_dir: Path, settings: ModuleSettings) -> tuple[Path, dict]:
    """Before anything changes: which bundle this artifact installs and which slot is active now,
    noted in ``FILES/tmp`` (a rollback after a cut, power or kill, must know what was active)."""
    bundle = _payload(files_dir)
    pending = {
        "artifact_name": _header_value(files_dir, "artifact_name"),
        "bundle": bundle.name,
        "bundle_sha256": _sha256(bundle),
        "previous": _recorded_active(settings.state_dir),
        "state_dir": str(settings.state_dir),
    }
    (files_dir / "tmp").mkdir(exist_ok=True)
    _write_json(files_dir / "tmp" / PENDING_NAME, pending)
    return bundle, pending


INCOMING_PREFIX = ".mender-incoming-"


@contextlib.contextmanager
def _readable_by(bundle: Path, settings: ModuleSettings, owner: tuple[int, int] | None):
    """``bundle``, or (acting as ``owner``, who cannot enter Mender's root-only file tree) a copy
    of it in a 0700 folder of the owner's inside the state folder, removed afterwards."""
    if owner is None:
        yield bundle
        return
    state_dir = Path(settings.state_dir)
    if not state_dir.exists():
        state_dir.mkdir(parents=True)
        os.chown(state_dir, *owner)
    folder = Path(tempfile.mkdtemp(prefix=INCOMING_PREFIX, dir=state_dir))
    try:
        copy = folder / bundle.name
        shutil.copyfile(bundle, copy)
        for path in (folder, copy):
            os.chown(path, *owner)
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _remove_incoming(settings: ModuleSettings) -> None:
    """Copies a cut-short install left behind (see :func:`_readable_by`)."""
    for leftover in Path(settings.state_dir).glob(INCOMING_PREFIX + "*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _install(bundle: Path, pending: dict, settings: ModuleSettings, on_step: StepCallback | None) -> str | None:
    store = _store(settings)
    store.clean_leftovers()  # an earlier install cut short: its half-written slot goes first
    previous = pending["previous"]
    artifact = pending["artifact_name"]
    sha256 = pending["bundle_sha256"]
    _say(f"installing {pending['bundle']} (artifact {artifact or '?'}, sha256 {sha256[:12]}…) into {store.root}")
    try:
        report = install_bundle(store, bundle, settings.policy, expected_sha256=sha256, on_step=on_step)
    except FlashError as exc:
        now, now_record = _active(store)
        raise _StateFailed(f"{exc}; the device keeps {_slot_line(now_record, now)}") from None
    selftest = report.selftest
    verdict = "skipped" if selftest.get("passed") is None else f"passed, agreement {selftest.get('agreement')}"
    key = f"signature verified (key {report.verified_key_id})" if report.verified_key_id else "signature NOT checked"
    before = _slot_line(previous, previous and previous["slot"])
    _say(
        f"installed {report.installed.name} {report.installed.version} into slot {report.slot} "
        f"(before: {before}); self-test {verdict}; {key}; {report.seconds:.2f} s"
    )
    return "model switched"


def _installed_slot(store: SlotStore, pending: dict) -> tuple[str | None, dict | None, bool]:
    """(active slot, its record, whether it is the bundle this artifact installed)."""
    active, record = _active(store)
    previous = pending.get("previous") or {}
    ours = (
        record is not None
        and record.get("sha256") == pending["bundle_sha256"]
        and not (active == previous.get("slot") and record.get("sha256") == previous.get("sha256"))
    )
    return active, record, ours


def _commit(pending: dict | None, settings: ModuleSettings, sleep: Callable[[float], None]) -> None:
    if pending is None:
        raise _StateFailed("nothing to commit: ArtifactInstall left no note in tmp/ (did it run?)")
    store = _store(settings)
    active, record, ours = _installed_slot(store, pending)
    if not ours:
        raise _StateFailed(
            f"the device no longer runs this artifact's bundle (it runs {_slot_line(record, active)}); not committing"
        )
    if settings.confirm_s <= 0:
        store.mark_good(active)
        _say(f"committed: {_slot_line(record, active)} marked good (its self-test passed at install)")
        return
    deadline = time.monotonic() + settings.confirm_s
    _say(f"waiting up to {settings.confirm_s:g} s for the daemon to serve {_slot_line(record, active)}'s first frames")
    while True:
        state = store.read_state()
        now = state["slots"].get(active) if state["active"] == active else None
        if now is None or now.get("sha256") != pending["bundle_sha256"] or now.get("failed"):
            current = state["active"]
            why = (now or state["slots"].get(active) or {}).get("failed") or "switched away"
            raise _StateFailed(
                f"the daemon left the new model ({why}); it runs {_slot_line(state['slots'].get(current), current)}"
            )
        if now.get("good"):
            _say(f"committed: the daemon served {_slot_line(now, active)}'s first frames and marked it good")
            return
        if time.monotonic() >= deadline:
            raise _StateFailed(
                f"{_slot_line(now, active)} was not marked good within {settings.confirm_s:g} s "
                "(is the daemon running, with a camera?); not committing"
            )
        sleep(settings.poll_s)


def _rollback(pending: dict | None, settings: ModuleSettings) -> str | None:
    if pending is None:
        _say("nothing to roll back: this artifact's install never started")
        return None
    store = _store(settings)
    store.clean_leftovers()
    active, record, ours = _installed_slot(store, pending)
    if not ours:
        _say(f"nothing to roll back: this artifact's bundle is not active; it runs {_slot_line(record, active)}")
        return None
    previous = pending.get("previous")
    if previous is None:
        raise _StateFailed(
            f"{_slot_line(record, active)} is the first model on this device: there is no earlier one to return "
            "to; it stays active (it passed its self-test)"
        )
    try:
        target = store.rollback(
            f"mender ArtifactRollback of {pending.get('artifact_name') or 'an artifact'}", from_slot=active
        )
    except RollbackError as exc:
        raise _StateFailed(f"rollback failed: {exc}") from None
    _say(f"rolled back from {_slot_line(record, active)} to {target.name} {target.version} (slot {target.slot})")
    if target.slot != previous["slot"] or target.sha256 != previous["sha256"]:
        _say(f"note: before the install slot {previous['slot']} ({previous['name']} {previous['version']}) was active")
    return "model switched back"


def _failure(settings: ModuleSettings) -> None:
    store = _store(settings)
    for note in store.clean_leftovers():
        _say(note)
    active, record = _active(store)
    _say(f"artifact failed; the device runs {_slot_line(record, active)}")


def _header_value(files_dir: Path, name: str) -> str | None:
    try:
        return (files_dir / "header" / name).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _owner(settings: ModuleSettings) -> tuple[int, int] | None:
    """(uid, gid) to act as: the state folder's owner when we are root and it is not (the daemon's
    user, systemd ``StateDirectory``), so every file the install writes stays the daemon's; else None."""
    if os.geteuid() != 0:
        return None
    path = Path(settings.state_dir)
    while not path.exists() and path != path.parent:
        path = path.parent
    st = path.stat()
    return (st.st_uid, st.st_gid) if st.st_uid != 0 else None


def _act(
    action: Callable[[ModuleSettings], str | None], settings: ModuleSettings, owner: tuple[int, int] | None
) -> tuple[int, str | None]:
    """Run ``action`` (as ``owner``, the state folder's, in a child process, when given); (exit
    status, what switched or None). Mender's file tree is root's alone: the child never touches it."""
    if owner is None:
        try:
            return 0, action(settings)
        except (_StateFailed, XenoedgeError, OSError) as exc:
            return 1, str(exc)
        except Exception as exc:  # never a traceback in Mender's log: one line saying what broke
            return 1, f"unexpected {type(exc).__name__}: {exc}"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the owner, act, report through the pipe
        code = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(owner[1])
            os.setuid(owner[0])
            try:
                switched, code = action(settings), 0
            except (_StateFailed, XenoedgeError, OSError) as exc:
                switched = str(exc)
            except Exception as exc:
                switched = f"unexpected {type(exc).__name__}: {exc}"
            os.write(write, json.dumps({"code": code, "message": switched}).encode())
        except BaseException as exc:  # never return into the parent's code from the child
            with contextlib.suppress(Exception):
                os.write(write, json.dumps({"code": 1, "message": f"{type(exc).__name__}: {exc}"}).encode())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    try:
        answer = json.loads(data)
    except ValueError:
        return 1, f"the install process (uid {owner[0]}) ended without an answer (wait status {status})"
    return int(answer["code"]), answer["message"]


def run_state(
    state: str,
    files_dir: str | os.PathLike,
    settings: ModuleSettings | Callable[[], ModuleSettings],
    *,
    on_step: StepCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run one Update Module state; the exit status for Mender (0 success, 1 failure).

    Queries print their answer (:data:`QUERY_ANSWERS`) on stdout; unknown states do nothing and
    return 0. ``settings`` may be a callable, called only by the states that need them (so a
    broken device configuration fails those states, not the queries). Run as root, the states act
    as the owner of the state folder (a child process drops to its uid/gid: the files stay the
    daemon's), and the restart command runs as root after a switch. ``on_step`` hears every
    durable step of the install (``install_bundle``'s), for crash tests.

    >>> run_state("SupportsRollback", "/nonexistent", lambda: None)
    Yes
    0
    >>> run_state("SomeFutureState", "/nonexistent", lambda: None)
    0
    """
    if state in QUERY_ANSWERS:
        print(QUERY_ANSWERS[state], flush=True)
        return 0
    if state not in ACTING_STATES:
        return 0
    files = Path(files_dir)
    try:
        resolved = settings() if callable(settings) else settings
        owner = _owner(resolved)
        # Mender's file tree is root's alone: the note and the payload are handled here, before acting
        if state == "ArtifactInstall":
            _remove_incoming(resolved)
            bundle, pending = _note_install(files, resolved)
            with _readable_by(bundle, resolved, owner) as source:
                code, message = _act(lambda s: _install(source, pending, s, on_step), resolved, owner)
        else:
            pending = _pending(files)
            if state == "ArtifactCommit":
                code, message = _act(lambda s: _commit(pending, s, sleep), resolved, owner)
            elif state == "ArtifactRollback":
                code, message = _act(lambda s: _rollback(pending, s), resolved, owner)
            else:
                _remove_incoming(resolved)
                code, message = _act(_failure, resolved, owner)
        if code == 0 and message:
            _restart(resolved, message)
    except (_StateFailed, XenoedgeError, OSError) as exc:
        code, message = 1, str(exc)
    if code != 0:
        _say(f"{state} failed: {message}")
    return code
