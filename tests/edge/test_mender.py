"""The ``xenoedge-model`` Mender Update Module with the real ``mender`` client in standalone mode
(docs/fleet.md).

Mender 3.4 finds update modules only in ``/usr/share/mender/modules/v3`` and the first artifact
name only in ``/etc/mender/artifact_info`` (neither is a setting); so every ``mender`` run here
happens in a private mount namespace (``unshare -m``, or ``unshare -Urm`` without root) with a
test folder bind-mounted over both: the host's own Mender set-up is never touched. The state data
(``--data``), the device type and the device's slot store live in the test's folder too.

The tests that need ``mender``/``mender-artifact`` skip, naming the missing program, only where they
are not installed (``make test`` installs them); the module's logic is also tested without them.
Nothing waits on a clock: a cut-short install is paused at a named install step (a marker file
says it got there) and then killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from xenoedge.cli.mender import artifact_command
from xenoedge.edge.flashing import SlotStore, check_slot_files
from xenoedge.edge.flashing.mender_module import PENDING_NAME, ModuleSettings, run_state
from xenoedge.edge.flashing.selftest import selftest_slot
from xenoedge.export.bundle import generate_keypair, load_public_key, read_manifest, save_private_key, save_public_key

from tests.edge.install_fixtures import CROP_SENSOR, ORT_ONLY, failing_selftest_files, variant

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "deploy" / "mender" / "xenoedge-model"
DEVICE_TYPE = "xenoedge-test-device"


def _missing_programs() -> list[str]:
    return [p for p in ("mender", "mender-artifact", "unshare") if shutil.which(p) is None]


def _namespace_prefix() -> list[str] | None:
    """``unshare`` arguments that give a private mount namespace here, or None."""
    for prefix in (["unshare", "-m", "--propagation", "private"], ["unshare", "-Urm", "--propagation", "private"]):
        if prefix[1] == "-m" and os.geteuid() != 0:
            continue
        try:
            ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return prefix
    return None


def _needs_mender() -> list[str]:
    missing = _missing_programs()
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed (Debian: apt-get install mender-client mender-artifact; "
            "`make test` installs them as root)"
        )
    prefix = _namespace_prefix()
    if prefix is None:
        pytest.skip(
            "no private mount namespace (unshare -m / -Urm refused): mender's module folder cannot be redirected"
        )
    return prefix


# ------------------------------------------------------------------------------------------ bundles


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A release key, two signed crop bundles, a tampered one and one signed by another key."""
    out = tmp_path_factory.mktemp("mender-release")
    key, public = generate_keypair()
    save_private_key(out / "release.key", key)
    save_public_key(out / "release.pub", public)
    other, _ = generate_keypair()
    bundles = {
        "1.1.0": variant(out / "crop-1.1.0.xeb", version="1.1.0", signing_key=key),
        "1.2.0": variant(out / "crop-1.2.0.xeb", version="1.2.0", signing_key=key),
        "other-key": variant(out / "crop-1.3.0-other.xeb", version="1.3.0", signing_key=other),
    }
    tampered = out / "crop-1.3.0-tampered.xeb"
    data = bytearray(variant(out / "crop-1.3.0.xeb", version="1.3.0", signing_key=key).read_bytes())
    with tarfile.open(out / "crop-1.3.0.xeb") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".onnx"))
    data[member.offset_data + member.size // 2] ^= 0x01  # one bit of the model, after signing
    tampered.write_bytes(bytes(data))
    bundles["tampered"] = tampered
    wrong = failing_selftest_files(bundles["1.1.0"], out)  # signed and intact, but its golden mask is wrong
    bundles["selftest"] = variant(out / "crop-1.3.0-selftest.xeb", version="1.3.0", files=wrong, signing_key=key)
    return {"dir": out, "public_key": out / "release.pub", "bundles": bundles}


def _xenoedge(tmp: Path) -> Path:
    """A ``xenoedge`` program for the module to run: this interpreter with this checkout."""
    program = tmp / "xenoedge"
    program.write_text(
        f"#!/bin/sh\nPYTHONPATH={REPO}${{PYTHONPATH:+:$PYTHONPATH}} exec {sys.executable} -c "
        f'"from xenoedge.cli.main import main; main()" "$@"\n'
    )
    program.chmod(0o755)
    return program


@pytest.fixture(scope="module")
def artifacts(release, tmp_path_factory):
    """``xenoedge bundle mender`` output for the good bundles (the real CLI and mender-artifact); the
    tampered and foreign-key ones are refused there, so they are wrapped with mender-artifact alone
    (the same command line), as someone bypassing the check would."""
    _needs_mender()
    out = tmp_path_factory.mktemp("mender-artifacts")
    xenoedge = _xenoedge(out)
    made = {}
    for name, bundle in release["bundles"].items():
        target = out / f"{name}.mender"
        args = [str(xenoedge), "bundle", "mender", str(bundle), "--device-type", DEVICE_TYPE, "-o", str(target)]
        result = subprocess.run(
            [*args, "--public-key", str(release["public_key"])], capture_output=True, text=True, timeout=120
        )
        if name in ("tampered", "other-key"):
            assert result.returncode == 1 and "error" in result.stderr, result.stderr
            payload = out / name / "crop-1.3.0.xeb"
            payload.parent.mkdir()
            shutil.copy(bundle, payload)
            manifest = {"name": "crop", "version": "1.3.0"}
            command = artifact_command(payload, manifest, [DEVICE_TYPE], target, artifact_name=f"crop-1.3.0-{name}")
            result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        made[name] = target
    return made


# ------------------------------------------------------------------------------------------ a device


class MenderDevice:
    """A device for ``mender`` in standalone mode: the module, a daemon config (slot store, trusted
    key, camera sensor), Mender's data folder; ``mender(*args)`` runs the client in a private mount
    namespace with ``modules/`` over /usr/share/mender/modules/v3 and ``etc-mender/`` over /etc/mender."""

    def __init__(self, root: Path, public_key: Path, prefix: list[str], module: Path = MODULE):
        self.root = root
        self.prefix = prefix
        self.state_dir = root / "device" / "var" / "lib" / "xenoedge"
        for sub in ("modules", "etc-mender", "data", "device"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(module, root / "modules" / "xenoedge-model")
        (root / "modules" / "xenoedge-model").chmod(0o755)
        (root / "etc-mender" / "artifact_info").write_text("artifact_name=factory-image\n")
        (root / "etc-mender" / "mender.conf").write_text("{}\n")
        (root / "data" / "device_type").write_text(f"device_type={DEVICE_TYPE}\n")
        self.config = root / "daemon.toml"
        self.config.write_text(
            f'[camera]\nsensor = "mosaic-5x5-nir"\n[bundle]\npublic_key = "{public_key}"\n'
            f'[flashing]\nstate_dir = "{self.state_dir}"\n'
        )
        runner = root / "mender.sh"
        runner.write_text(
            "#!/bin/sh\nset -e\n"
            f"mount --bind {root / 'modules'} /usr/share/mender/modules/v3\n"
            f"mount --bind {root / 'etc-mender'} /etc/mender\n"
            f'exec mender --config /etc/mender/mender.conf --data {root / "data"} --no-syslog "$@"\n'
        )
        runner.chmod(0o755)
        self.runner = runner
        self.env = dict(
            os.environ,
            XENOEDGE_BIN=str(_xenoedge(root)),
            XENOEDGE_CONFIG=str(self.config),
            XENOEDGE_MENDER_ENV=str(root / "no-such-env-file"),
            OPENBLAS_NUM_THREADS="1",
        )

    def command(self, *args: str) -> list[str]:
        return [*self.prefix, str(self.runner), *args]

    def mender(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), capture_output=True, text=True, env=self.env, timeout=300)

    def artifact_name(self) -> str:
        return self.mender("show-artifact").stdout.strip()

    def provides(self) -> dict[str, str]:
        lines = self.mender("show-provides").stdout.splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def state(self) -> dict:
        return json.loads((self.state_dir / "state.json").read_text())

    def active(self) -> tuple[str | None, str | None]:
        state = self.state()
        active = state["active"]
        return active, (state["slots"][active]["version"] if active else None)

    def snapshot(self) -> dict[str, bytes]:
        """Every file of the slot store but the lock files and the (emptied) staging folder."""
        return {
            str(p.relative_to(self.state_dir)): p.read_bytes()
            for p in sorted(self.state_dir.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")
        }


def _log(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


@pytest.fixture
def device(tmp_path, release):
    return MenderDevice(tmp_path, release["public_key"], _needs_mender())


def _serves(state_dir: Path) -> str:
    """A device start: ``recover()``, then the active slot's files and its golden self-test; its version."""
    store = SlotStore(state_dir)
    store.recover()
    active = store.active()
    assert active is not None
    assert check_slot_files(active.folder) is None
    assert selftest_slot(active.folder, read_manifest(active.folder), runtimes=ORT_ONLY)["passed"]
    return active.version


# ------------------------------------------------------------------------------------------ with mender


def test_mender_install_then_commit_makes_the_bundle_active_and_good(device, artifacts):
    installed = device.mender("install", str(artifacts["1.1.0"]))
    assert installed.returncode == 0, _log(installed)
    assert "self-test passed" in installed.stderr and "signature verified" in installed.stderr
    assert device.active() == ("a", "1.1.0")
    assert device.state()["slots"]["a"]["good"] is False  # installed and self-tested, not committed
    assert device.artifact_name() == "factory-image"

    committed = device.mender("commit")
    assert committed.returncode == 0, _log(committed)
    assert device.state()["known_good"] == "a" and device.state()["slots"]["a"]["good"] is True
    assert device.artifact_name() == "crop-1.1.0"
    provides = device.provides()
    assert provides["rootfs-image.xenoedge-model.version"] == "1.1.0"
    assert provides["xenoedge-model.bundle_name"] == "crop"


def test_a_second_install_then_mender_rollback_returns_to_the_previous_slot(device, artifacts):
    assert device.mender("install", str(artifacts["1.1.0"])).returncode == 0
    assert device.mender("commit").returncode == 0
    second = device.mender("install", str(artifacts["1.2.0"]))
    assert second.returncode == 0, _log(second)
    assert device.active() == ("b", "1.2.0")

    rolled = device.mender("rollback")
    assert rolled.returncode == 0, _log(rolled)
    assert "rolled back from crop 1.2.0 (slot b) to crop 1.1.0 (slot a)" in rolled.stderr
    assert device.active() == ("a", "1.1.0")
    state = device.state()
    assert state["known_good"] == "a" and state["slots"]["b"]["failed"]
    assert device.artifact_name() == "crop-1.1.0"
    assert _serves(device.state_dir) == "1.1.0"


@pytest.mark.parametrize(
    ("bundle", "reason"),
    [
        ("tampered", "bundle refused (integrity)"),
        ("other-key", "bundle refused (signature)"),
        ("selftest", "self-test failed"),
    ],
    ids=["tampered", "other-key", "failing-selftest"],
)
def test_a_refused_bundle_fails_the_artifact_and_the_device_keeps_its_model(device, artifacts, bundle, reason):
    assert device.mender("install", str(artifacts["1.1.0"])).returncode == 0
    assert device.mender("commit").returncode == 0
    before = device.snapshot()

    refused = device.mender("install", str(artifacts[bundle]))
    assert refused.returncode != 0, _log(refused)
    assert reason in refused.stderr
    assert "the device keeps crop 1.1.0 (slot a)" in refused.stderr
    assert device.snapshot() == before  # nothing changed, byte for byte
    assert not any((device.state_dir / "staging").iterdir())
    assert device.artifact_name() == "crop-1.1.0"
    assert _serves(device.state_dir) == "1.1.0"


def _wait_until_unlocked(lock: Path) -> None:
    """Until no process holds ``lock`` (a killed process's threads may take a moment to go, and
    its zombie leader already shows before they have)."""
    import fcntl

    fd = os.open(lock, os.O_RDWR)
    deadline = time.monotonic() + 120  # generous: only a process that never lets go reaches it
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                assert time.monotonic() < deadline, f"{lock} still held after 120 s"
                time.sleep(0.05)
                continue
            fcntl.flock(fd, fcntl.LOCK_UN)
            return
    finally:
        os.close(fd)


PAUSING_MODULE = """#!{python}
import os, sys, time
sys.path.insert(0, {repo!r})
from xenoedge.edge.flashing.mender_module import run_state
from xenoedge.cli.mender import settings_from_config

def on_step(name):
    if name == {step!r}:
        with open({marker!r}, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(600)

sys.exit(run_state(sys.argv[1], sys.argv[2], lambda: settings_from_config(os.environ["XENOEDGE_CONFIG"]),
                   on_step=on_step))
"""


@pytest.mark.parametrize(
    ("step", "serving"),
    [("rename slots/b", "1.1.0"), ("remove staging/bundle.xeb", "1.2.0")],
    ids=["before-the-switch", "after-the-switch"],
)
def test_mender_install_killed_mid_way_leaves_a_working_model(device, artifacts, tmp_path, step, serving):
    assert device.mender("install", str(artifacts["1.1.0"])).returncode == 0
    assert device.mender("commit").returncode == 0
    marker = tmp_path / "paused"
    module = tmp_path / "modules" / "xenoedge-model"
    module.write_text(PAUSING_MODULE.format(python=sys.executable, repo=str(REPO), step=step, marker=str(marker)))

    mender = subprocess.Popen(
        device.command("install", str(artifacts["1.2.0"])),
        env=device.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while not marker.exists() or not marker.read_text():  # the module reached the step (an event, no timeout)
            assert mender.poll() is None, "mender ended before the install reached the step"
            time.sleep(0.05)
        module_pid = int(marker.read_text())
    finally:
        os.killpg(mender.pid, signal.SIGKILL)  # mender, then its module (Mender runs it in its own group)
        mender.wait()
    os.kill(module_pid, signal.SIGKILL)
    _wait_until_unlocked(device.state_dir / ".install.lock")  # the killed module's threads are all gone

    assert device.active()[1] == serving
    assert _serves(device.state_dir) == serving  # the device starts on a working model
    assert device.artifact_name() == "crop-1.1.0"  # Mender never recorded the cut-short install

    shutil.copy(MODULE, module)  # the real module again: the next deployment goes through
    if serving == "1.2.0":  # the daemon served the new model's first frames after the cut
        SlotStore(device.state_dir).mark_good()
    again = device.mender("install", str(artifacts["1.2.0"]))
    assert again.returncode == 0, _log(again)
    assert device.mender("commit").returncode == 0
    assert device.artifact_name() == "crop-1.2.0"
    assert _serves(device.state_dir) == "1.2.0"


# ------------------------------------------------------------------------------------------ without mender


def test_the_shell_entry_answers_the_queries_and_ignores_what_it_does_not_know(tmp_path):
    def run(state: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, XENOEDGE_BIN=str(tmp_path / "must-not-run"), XENOEDGE_MENDER_ENV=str(tmp_path / "none"))
        return subprocess.run(["sh", str(MODULE), state, str(tmp_path)], capture_output=True, text=True, env=env)

    assert run("SupportsRollback").stdout == "Yes\n"
    assert run("NeedsArtifactReboot").stdout == "No\n"
    for state in ("Download", "Cleanup", "ArtifactVerifyReboot", "SomeStateOfAFutureProtocol"):
        result = run(state)
        assert (result.returncode, result.stdout) == (0, ""), state
    missing = run("ArtifactInstall")
    assert missing.returncode == 1 and "xenoedge program was not found" in missing.stderr


def _tree(root: Path, bundle: Path, artifact: str) -> Path:
    """A payload file tree as Mender lays it out after Download."""
    files = root / artifact
    (files / "files").mkdir(parents=True)
    (files / "tmp").mkdir()
    (files / "header").mkdir()
    (files / "header" / "artifact_name").write_text(artifact)
    shutil.copy(bundle, files / "files" / bundle.name)
    return files


def _settings(state_dir: Path, release, **changes) -> ModuleSettings:
    from xenoedge.edge.flashing import InstallPolicy

    key = load_public_key(release["public_key"])
    policy = InstallPolicy(trusted_public_key=key, sensor_signature=CROP_SENSOR, runtimes=ORT_ONLY)
    return ModuleSettings(**(dict(state_dir=state_dir, policy=policy, public_key=key) | changes))


def test_commit_waits_for_the_daemon_and_fails_when_it_rolled_the_model_back(tmp_path, release, capsys):
    bundles = release["bundles"]
    state_dir = tmp_path / "state"
    settings = _settings(state_dir, release)
    first = _tree(tmp_path, bundles["1.1.0"], "crop-1.1.0")
    assert run_state("ArtifactInstall", first, settings) == 0
    assert run_state("ArtifactRollback", first, settings) == 1  # a first model has nothing to go back to
    assert "first model on this device" in capsys.readouterr().err
    assert SlotStore(state_dir).active().version == "1.1.0"
    assert run_state("ArtifactCommit", first, settings) == 0  # confirm_s 0: the commit marks it good
    assert SlotStore(state_dir).known_good().version == "1.1.0"

    second = _tree(tmp_path, bundles["1.2.0"], "crop-1.2.0")
    assert run_state("ArtifactInstall", second, settings) == 0
    waiting = _settings(state_dir, release, confirm_s=30.0)
    looks: list[float] = []

    def daemon_serves(seconds: float) -> None:  # the daemon's probation passes while the commit waits
        looks.append(seconds)
        SlotStore(state_dir).mark_good()

    assert run_state("ArtifactCommit", second, waiting, sleep=daemon_serves) == 0
    assert len(looks) == 1 and SlotStore(state_dir).known_good().version == "1.2.0"

    third = _tree(tmp_path, bundles["1.1.0"], "crop-1.1.0-again")
    assert run_state("ArtifactInstall", third, settings) == 0

    def daemon_fails(seconds: float) -> None:  # the new model's engine fails in its first frames
        SlotStore(state_dir).rollback("engine failed in its first frames")

    capsys.readouterr()
    assert run_state("ArtifactCommit", third, waiting, sleep=daemon_fails) == 1
    assert "the daemon left the new model (engine failed in its first frames)" in capsys.readouterr().err
    assert run_state("ArtifactRollback", third, settings) == 0  # nothing left to do: the daemon did it
    assert SlotStore(state_dir).active().version == "1.2.0"

    fourth = _tree(tmp_path, bundles["1.1.0"], "crop-1.1.0-once-more")
    assert run_state("ArtifactInstall", fourth, settings) == 0
    quick = _settings(state_dir, release, confirm_s=0.01)
    assert run_state("ArtifactCommit", fourth, quick, sleep=lambda s: None) == 1  # no daemon: never confirmed
    assert "was not marked good within" in capsys.readouterr().err
    assert run_state("ArtifactRollback", fourth, settings) == 0
    assert SlotStore(state_dir).active().version == "1.2.0"


def test_restart_command_runs_after_each_switch_and_a_payload_is_one_xeb(tmp_path, release, capsys):
    state_dir = tmp_path / "state"
    log = tmp_path / "restarts"
    restart = [sys.executable, "-c", f"open({str(log)!r}, 'a').write('restart\\n')"]
    settings = _settings(state_dir, release, restart_command=restart)
    first = _tree(tmp_path, release["bundles"]["1.1.0"], "crop-1.1.0")
    assert run_state("ArtifactInstall", first, settings) == 0
    assert json.loads((first / "tmp" / PENDING_NAME).read_text())["previous"] is None
    second = _tree(tmp_path, release["bundles"]["1.2.0"], "crop-1.2.0")
    assert run_state("ArtifactInstall", second, settings) == 0
    assert run_state("ArtifactRollback", second, settings) == 0
    assert log.read_text() == "restart\n" * 3

    refused = _tree(tmp_path, release["bundles"]["tampered"], "crop-tampered")
    assert run_state("ArtifactInstall", refused, settings) == 1  # refused: no switch, no restart
    assert log.read_text() == "restart\n" * 3
    two = _tree(tmp_path, release["bundles"]["1.1.0"], "two-files")
    (two / "files" / "notes.txt").write_text("x")
    capsys.readouterr()
    assert run_state("ArtifactInstall", two, settings) == 1
    assert "exactly one .xeb file" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as the state folder's owner is what root does")
def test_as_root_the_install_acts_as_the_state_folders_owner(tmp_path, release):
    import tempfile

    selftest_slot  # noqa: B018  (the engine is imported here, before the child drops its rights)
    import onnxruntime  # noqa: F401

    base = Path(tempfile.mkdtemp(prefix="xenoedge-mender-owner-", dir="/tmp"))
    try:
        base.chmod(0o755)
        state_dir = base / "state"
        state_dir.mkdir()
        os.chown(state_dir, 65534, 65534)
        settings = _settings(state_dir, release)
        files = _tree(base, release["bundles"]["1.1.0"], "crop-1.1.0")
        for path in [files, *files.rglob("*")]:  # as Mender leaves its file tree: root's alone
            path.chmod(0o700 if path.is_dir() else 0o600)
        assert run_state("ArtifactInstall", files, settings) == 0
        owners = {p.stat().st_uid for p in [state_dir, *state_dir.rglob("*")]}
        assert owners == {65534}
        assert SlotStore(state_dir).active().version == "1.1.0"
        assert not list(state_dir.glob(".mender-incoming-*"))  # the owner's copy of the bundle is gone
        assert json.loads((files / "tmp" / PENDING_NAME).read_text())["previous"] is None
        assert run_state("ArtifactCommit", files, settings) == 0
        assert SlotStore(state_dir).known_good().version == "1.1.0"
        assert {p.stat().st_uid for p in [state_dir, *state_dir.rglob("*")]} == {65534}
    finally:
        shutil.rmtree(base, ignore_errors=True)
