"""install_bundle: every check before the switch, with real bundles, real files and ONNX Runtime."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
from xenoedge.edge.flashing import (
    BundleRejected,
    FlashError,
    InstallBusyError,
    NoSpaceError,
    SelfTestFailed,
    SlotStore,
    check_slot_files,
    device_state_dir,
    install_bundle,
    install_into_root,
)
from xenoedge.edge.flashing.selftest import selftest_slot
from xenoedge.export.bundle import file_sha256, generate_keypair, read_manifest, sign_bundle

from tests.edge.install_fixtures import (
    CROP_BUNDLE,
    TIVITA_SENSOR,
    failing_selftest_files,
    policy,
    variant,
)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("bundles")
    private, public = generate_keypair()
    other_private, _ = generate_keypair()
    v2 = variant(base / "v2.xeb", version="1.1.0")
    return {
        "v1": CROP_BUNDLE,
        "v2": v2,
        "signed": sign_bundle(v2, private, out=base / "signed.xeb"),
        "other_signed": sign_bundle(v2, other_private, out=base / "other.xeb"),
        "bad_selftest": variant(base / "bad.xeb", version="1.2.0", files=failing_selftest_files(CROP_BUNDLE, base)),
        "public": public,
    }


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for folders)."""
    return {
        p.relative_to(root).as_posix(): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
        if not p.name.endswith(".lock")
    }


def installed_v1(tmp_path: Path, bundles) -> SlotStore:
    store = SlotStore(tmp_path / "state")
    install_bundle(store, bundles["v1"], policy())
    store.mark_good()
    return store


def test_first_install_unpacks_selftests_and_switches(tmp_path, bundles):
    store = SlotStore(tmp_path / "state")
    assert store.recover() == [] and store.active() is None
    steps = []
    report = install_bundle(
        store, bundles["v1"], policy(), expected_sha256=file_sha256(bundles["v1"]), on_step=steps.append
    )
    active = store.active()
    assert report.slot == active.slot == "a" and report.previous is None
    assert (active.name, active.version, active.sha256) == ("crop", "1.0.0", file_sha256(bundles["v1"]))
    assert report.selftest["passed"] and report.selftest["agreement"] >= report.selftest["min_agreement"]
    assert "onnxruntime" in report.selftest["engine"]
    assert check_slot_files(active.folder) is None
    assert list(store.staging_dir.iterdir()) == []
    # the switch is the rename of state.json, after the slot is complete and fsynced
    assert steps.index("rename slots/a") < steps.index("fsync-dir slots") < steps.index("rename state.json")
    assert steps[-1] == "remove staging/bundle.xeb"
    state = json.loads(store.state_path.read_text())
    assert state["active"] == "a" and state["slots"]["b"] is None and state["known_good"] is None


def test_second_install_goes_to_the_other_slot_and_keeps_the_previous(tmp_path, bundles):
    store = installed_v1(tmp_path, bundles)
    report = install_bundle(store, bundles["v2"], policy())
    assert report.previous.slot == "a" and report.previous.version == "1.0.0"
    assert store.active().slot == "b" and store.active().version == "1.1.0"
    assert store.inactive().version == "1.0.0" and store.info()["known_good"] == "a"
    assert selftest_slot(store.active().folder, read_manifest(store.active().folder), runtimes=("onnxruntime",))[
        "passed"
    ]


def assert_refused(store: SlotStore, before: dict, error: FlashError) -> None:
    """The active slot, its files and state.json are exactly as before; staging is empty."""
    assert str(error)
    assert snapshot(store.root) == before


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("sha256", "sha256"),
        ("unsigned", "signature"),
        ("other_key", "signature"),
        ("sensor", "incompatible"),
        ("runtime", "incompatible"),
        ("size", "size"),
    ],
)
def test_refusals_leave_the_device_untouched(tmp_path, bundles, case, reason):
    store = installed_v1(tmp_path, bundles)
    before = snapshot(store.root)
    trusted = policy(trusted_public_key=bundles["public"])
    calls = {
        "sha256": lambda: install_bundle(store, bundles["v2"], policy(), expected_sha256="0" * 64),
        "unsigned": lambda: install_bundle(store, bundles["v2"], trusted),
        "other_key": lambda: install_bundle(store, bundles["other_signed"], trusted),
        "sensor": lambda: install_bundle(store, bundles["v2"], policy(sensor_signature=TIVITA_SENSOR)),
        "runtime": lambda: install_bundle(store, bundles["v2"], policy(runtimes=("tensorrt",))),
        "size": lambda: install_bundle(store, bundles["v2"], policy(max_bundle_bytes=40_000)),
    }
    with pytest.raises(BundleRejected) as info:
        calls[case]()
    assert info.value.reason == reason
    assert_refused(store, before, info.value)
    assert store.active().version == "1.0.0"


def test_signed_bundle_installs_with_the_trusted_key(tmp_path, bundles):
    store = installed_v1(tmp_path, bundles)
    report = install_bundle(store, bundles["signed"], policy(trusted_public_key=bundles["public"]))
    assert report.signed and report.verified_key_id is not None
    assert (store.active().folder / "manifest.sig").stat().st_size == 64


def _rewrite_member(src: Path, dest: Path, name: str, data: bytes | None) -> Path:
    """Copy a tar bundle with member ``name``'s bytes replaced (None: dropped), canonical headers."""
    from xenoedge.export.bundle.archive import _header

    with tarfile.open(src) as tar, open(dest, "wb") as out:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
        mtime = members[0][0].mtime
        for info, payload in members:
            if info.name == name:
                if data is None:
                    continue
                payload = data
            out.write(_header(info.name, len(payload), mtime))
            out.write(payload + b"\0" * (-len(payload) % 512))
        out.write(b"\0" * 1024)
        out.write(b"\0" * (-out.tell() % 10240))
    return dest


def test_empty_or_stripped_signature_and_manifest_fields_cannot_switch_checking_off(tmp_path, bundles):
    store = installed_v1(tmp_path, bundles)
    before = snapshot(store.root)
    trusted = policy(trusted_public_key=bundles["public"])
    empty_sig = _rewrite_member(bundles["signed"], tmp_path / "empty-sig.xeb", "manifest.sig", b"")
    stripped = _rewrite_member(bundles["signed"], tmp_path / "no-sig.xeb", "manifest.sig", None)
    opt_out = variant(tmp_path / "optout.xeb", extra={"verify": False, "require_signature": False, "signature": None})
    for bundle in (empty_sig, stripped, opt_out):
        with pytest.raises(BundleRejected) as info:
            install_bundle(store, bundle, trusted)
        assert info.value.reason == "signature", (bundle.name, str(info.value))
        assert snapshot(store.root) == before


def test_failing_selftest_touches_no_slot(tmp_path, bundles):
    """Self-tested in staging: the active slot, the previous bundle in the inactive slot and
    state.json stay exactly as they were."""
    store = installed_v1(tmp_path, bundles)
    install_bundle(store, bundles["v2"], policy())
    store.mark_good()
    before = snapshot(store.root)
    with pytest.raises(SelfTestFailed, match="self-test failed"):
        install_bundle(store, bundles["bad_selftest"], policy())
    assert snapshot(store.root) == before
    assert store.active().version == "1.1.0" and store.inactive().version == "1.0.0"


def test_not_enough_free_space_is_refused_before_unpacking(tmp_path, bundles):
    store = installed_v1(tmp_path, bundles)
    before = snapshot(store.root)
    with pytest.raises(NoSpaceError, match="bytes free"):
        install_bundle(store, bundles["v2"], policy(min_free_bytes=store.free_bytes()))
    assert snapshot(store.root) == before


DISK_FULL_SCRIPT = textwrap.dedent(
    """
    import os, subprocess, sys, json
    state = sys.argv[1]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + sys.argv[4], "none", state], check=True)
    from xenoedge.edge.flashing import SlotStore, install_bundle, NoSpaceError
    from xenoedge.edge.flashing.selftest import selftest_slot
    from xenoedge.export.bundle import read_manifest
    from tests.edge.install_fixtures import policy
    store = SlotStore(state)
    install_bundle(store, sys.argv[2], policy())
    store.mark_good()
    filler = os.path.join(state, "filler")

    def fill_the_disk(step):  # another writer takes the last bytes once the unpacking has begun
        if step.startswith("write staging/.unpack") and not os.path.exists(filler):
            with open(filler, "wb") as f:
                try:
                    while True:
                        f.write(b"x" * 4096)
                        f.flush()
                except OSError:
                    pass

    try:
        install_bundle(store, sys.argv[3], policy(), on_step=fill_the_disk)
        result = {"error": None}
    except NoSpaceError as exc:
        result = {"error": str(exc)}
    active = store.active()
    result["active"] = active.version
    result["serves"] = selftest_slot(active.folder, read_manifest(active.folder), runtimes=("onnxruntime",))["passed"]
    result["staging"] = os.listdir(store.staging_dir)
    result["slot_b"] = os.path.exists(store.slot_folder("b"))
    print(json.dumps(result))
    """
)


def test_disk_full_mid_write_is_a_no_space_error_and_the_active_model_keeps_working(tmp_path, bundles):
    """A real ENOSPC: the state folder is a small tmpfs (in a user+mount namespace) with room for
    the installed v1 plus v2's staged copy and unpacked files (so the free-space check before
    unpacking passes); once the second install starts unpacking, another writer fills it up."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no unprivileged user+mount namespaces here: {probe.stderr.decode().strip()}")
    state = tmp_path / "mnt"
    state.mkdir()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), OPENBLAS_NUM_THREADS="1")
    biggest = max(bundles["v1"].stat().st_size, bundles["v2"].stat().st_size)
    size_kib = (3 * biggest + (512 << 10)) >> 10  # v1's slot, v2 staged and unpacked, manifests and folders
    args = [str(state), str(bundles["v1"]), str(bundles["v2"]), f"{size_kib}k"]
    done = subprocess.run(
        ["unshare", "-Urm", sys.executable, "-c", DISK_FULL_SCRIPT, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["error"] and "no space left" in result["error"], result
    assert result == result | {"active": "1.0.0", "serves": True, "staging": [], "slot_b": False}


def test_one_install_at_a_time(tmp_path, bundles):
    store = installed_v1(tmp_path, bundles)
    with store.install_lock(), pytest.raises(InstallBusyError, match="another install"):
        install_bundle(store, bundles["v2"], policy())
    assert store.active().version == "1.0.0"


def test_unconfirmed_active_protects_the_known_good_slot(tmp_path, bundles):
    store = installed_v1(tmp_path, bundles)
    install_bundle(store, bundles["v2"], policy())  # b active, not yet marked good; a known-good
    with pytest.raises(InstallBusyError, match="known-good"):
        install_bundle(store, bundles["v1"], policy())
    assert store.info()["known_good"] == "a" and store.active().slot == "b"
    store.mark_good()
    assert install_bundle(store, bundles["v1"], policy()).slot == "a"


def test_install_into_a_device_root(tmp_path, bundles):
    root = tmp_path / "sdcard"
    with pytest.raises(FlashError, match="no such folder"):
        install_into_root(root, bundles["v1"], policy())
    root.mkdir()
    report = install_into_root(root, bundles["v1"], policy())
    store = SlotStore(device_state_dir(root))
    assert store.root == root / "var" / "lib" / "xenoedge"
    assert store.active().sha256 == report.installed.sha256 == file_sha256(bundles["v1"])
    # leftovers of a flash cut short are cleared without counting a device start
    (store.staging_dir / "bundle.xeb").write_bytes(b"partial")
    install_into_root(root, bundles["v2"], policy())
    assert store.info()["failed_starts"] == 0 and store.active().version == "1.1.0"


def test_report_is_json_able(tmp_path, bundles):
    store = SlotStore(tmp_path / "state")
    report = install_bundle(store, bundles["v1"], policy())
    data = json.loads(json.dumps(report.to_dict()))
    assert data["installed"]["version"] == "1.0.0" and data["bytes"] == bundles["v1"].stat().st_size
    assert json.loads(json.dumps(store.info()))["active"]["slot"] == "a"


def test_missing_bundle_file(tmp_path):
    store = SlotStore(tmp_path / "state")
    with pytest.raises(BundleRejected, match="no such bundle"):
        install_bundle(store, tmp_path / "nope.xeb", policy())


def test_selftest_runs_on_the_engine_the_device_names(tmp_path, bundles):
    """runtimes=("openvino",): the self-test must open the OpenVINO target, not fall back to ORT."""
    pytest.importorskip("openvino")
    store = SlotStore(tmp_path / "state")
    report = install_bundle(store, bundles["v1"], policy(runtimes=("openvino",)))
    assert report.selftest["engine"].startswith("cpu-openvino-int8 on openvino/")
    assert report.selftest["agreement"] >= report.selftest["min_agreement"]


def test_a_bundle_swapped_in_staging_between_checks_is_refused(tmp_path, bundles, monkeypatch):
    """A concurrent writer (fault injected around the real verify_bundle) replaces the staged copy
    with another valid bundle after the checks: the unpacked manifest differs, refused."""
    import xenoedge.export.bundle.archive as archive

    real = archive.verify_bundle

    def verify_then_swap(path, **kwargs):
        manifest = real(path, **kwargs)
        shutil.copyfile(bundles["v2"], path)
        return manifest

    store = installed_v1(tmp_path, bundles)
    before = snapshot(store.root)
    monkeypatch.setattr(archive, "verify_bundle", verify_then_swap)
    with pytest.raises(BundleRejected, match="changed while being installed"):
        install_bundle(store, bundles["v1"], policy())
    assert snapshot(store.root) == before


def test_an_unexpected_error_mid_install_is_a_clean_flash_error(tmp_path, bundles):
    """An ordinary exception at any step before the switch (here raised from on_step right after
    the inactive slot was released): typed, cleaned up, the active slot serving as before."""
    store = installed_v1(tmp_path, bundles)
    install_bundle(store, bundles["v2"], policy(self_test=False))
    store.mark_good()

    def explode(step: str) -> None:
        if step.startswith("remove slots/"):
            raise ValueError("simulated bug")

    with pytest.raises(FlashError, match="ValueError: simulated bug") as err:
        install_bundle(store, bundles["v1"], policy(self_test=False), on_step=explode)
    assert not isinstance(err.value, (BundleRejected, SelfTestFailed))
    assert store.active().version == "1.1.0" and list(store.staging_dir.iterdir()) == []
    assert store.inactive() is None and not store.slot_folder("a").exists()  # released, then cleaned
    assert SlotStore(store.root).recover() == []
