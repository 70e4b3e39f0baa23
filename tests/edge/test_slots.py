"""SlotStore: mark-good, rollback, boot counting and the restart cap in recover(), leftovers, damage."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from xenoedge.edge.flashing import (
    InstallBusyError,
    RestartLoopError,
    RollbackError,
    SlotStateError,
    SlotStore,
    install_bundle,
)

from tests.edge.install_fixtures import CROP_BUNDLE, ort_models, policy, variant

NO_SELFTEST = policy(self_test=False)


@pytest.fixture(scope="module")
def v2(tmp_path_factory) -> Path:
    return variant(tmp_path_factory.mktemp("slots") / "v2.xeb", version="2.0.0")


def two_slots(tmp_path: Path, v2: Path, **limits) -> SlotStore:
    """a = crop 1.0.0 (known-good), b = 2.0.0 active and unconfirmed."""
    store = SlotStore(tmp_path / "state", **limits)
    install_bundle(store, CROP_BUNDLE, NO_SELFTEST)
    store.mark_good()
    install_bundle(store, v2, NO_SELFTEST)
    return store


def test_empty_store(tmp_path):
    store = SlotStore(tmp_path / "state")
    assert store.recover() == []
    assert store.active() is None and store.inactive() is None
    info = store.info()
    assert info["active"] is None and info["known_good"] is None and info["free_bytes"] > 0
    assert {p.name for p in store.root.iterdir()} >= {"slots", "staging", "uploads"}
    assert (store.staging_dir.stat().st_mode & 0o777) == 0o700
    with pytest.raises(SlotStateError, match="no active slot"):
        store.mark_good()
    with pytest.raises(RollbackError, match="no known-good or previous bundle"):
        store.rollback("asked")


def test_unconfirmed_slot_gets_k_starts_then_goes_back_to_known_good(tmp_path, v2):
    store = two_slots(tmp_path, v2, max_boot_attempts=3)
    for attempt in (1, 2, 3):
        assert store.recover() == []
        assert store.active().version == "2.0.0" and store.info()["boot_attempts"] == attempt
    notes = store.recover()
    assert store.active().slot == "a" and store.active().version == "1.0.0"
    assert any("did not serve its first frames in 3 starts" in n and "rolled back to slot a" in n for n in notes)
    assert store.inactive().failed and store.info()["known_good"] == "a"
    # the failed slot is never rolled back to again
    with pytest.raises(RollbackError):
        store.rollback("asked")


def test_mark_good_confirms_the_new_slot(tmp_path, v2):
    store = two_slots(tmp_path, v2)
    store.recover()
    store.mark_good()
    info = store.info()
    assert info["known_good"] == "b" and info["boot_attempts"] == 0 and info["active"]["good"]
    for _ in range(10):  # a confirmed slot that keeps serving is never rolled back
        store.recover()
        store.mark_good()
    assert store.active().slot == "b"


def test_rollback_on_demand_and_from_a_failing_new_model(tmp_path, v2):
    store = two_slots(tmp_path, v2)
    back = store.rollback("new model failed its first frames")
    assert back.slot == "a" and store.active().version == "1.0.0"
    assert "first frames" in store.inactive().failed
    # from a confirmed slot, on demand: the previous bundle becomes active, the left one stays good
    store = two_slots(tmp_path / "2", v2)
    store.mark_good()
    back = store.rollback("operator asked")
    assert back.slot == "a" and store.inactive().good and not store.inactive().failed


def test_rollback_refuses_a_damaged_target(tmp_path, v2):
    store = two_slots(tmp_path, v2)
    model = store.slot_folder("a").joinpath(*ort_models(store.slot_folder("a"))[0].split("/"))
    model.write_bytes(model.read_bytes()[:-1] + b"\0")
    with pytest.raises(RollbackError, match="damaged"):
        store.rollback("asked")
    assert store.active().slot == "b"


def test_damaged_active_slot_is_left_at_start(tmp_path, v2):
    store = two_slots(tmp_path, v2)
    (store.slot_folder("b") / "selftest" / "input.npz").unlink()
    notes = store.recover()
    assert store.active().slot == "a"
    assert any("damaged" in n and "missing" in n for n in notes)


def test_restart_loop_is_capped(tmp_path):
    store = SlotStore(tmp_path / "state", max_failed_starts=5)
    install_bundle(store, CROP_BUNDLE, NO_SELFTEST)
    store.mark_good()
    for _ in range(5):
        store.recover()  # the daemon crashes before mark_good each time
    with pytest.raises(RestartLoopError, match="5 starts in a row"):
        store.recover()
    with pytest.raises(RestartLoopError):  # and on every later start, until someone acts
        store.recover()
    store.reset_failed_starts()
    assert store.recover() == [] and store.active().version == "1.0.0"


def test_restart_loop_with_two_failing_slots_ends(tmp_path, v2):
    """Known-good crashes: the other slot is tried once, then the device stops instead of looping."""
    store = two_slots(tmp_path, v2, max_boot_attempts=2, max_failed_starts=3)
    starts = 0
    with pytest.raises(RestartLoopError):
        for starts in range(1, 50):  # noqa: B007
            store.recover()
    assert starts < 15
    assert store.active().failed == "" and store.inactive().failed


def test_leftovers_of_a_cut_install_are_removed(tmp_path, v2):
    store = SlotStore(tmp_path / "state")
    install_bundle(store, CROP_BUNDLE, NO_SELFTEST)
    store.mark_good()
    shutil.copytree(store.slot_folder("a"), store.slot_folder("b"))  # unpacked but never switched to
    (store.slots_dir / ".unpack.x.partial").mkdir()
    (store.staging_dir / "bundle.xeb").write_bytes(b"half")
    (store.uploads_dir / "upload.part").write_bytes(b"kept")
    notes = store.recover()
    assert not store.slot_folder("b").exists() and list(store.staging_dir.iterdir()) == []
    assert sorted(p.name for p in store.slots_dir.iterdir()) == ["a"]
    assert (store.uploads_dir / "upload.part").read_bytes() == b"kept"  # the upload's business
    assert any("discarded slot b" in n for n in notes)


def test_corrupt_state_is_rebuilt_from_intact_slots(tmp_path, v2):
    store = two_slots(tmp_path, v2)
    store.state_path.write_text("{not json")
    with pytest.raises(SlotStateError, match="not valid JSON"):
        store.active()
    notes = store.recover()
    assert any("rebuilding" in n for n in notes)
    assert store.active().version == "2.0.0"  # the highest version of the intact slots
    state = json.loads(store.state_path.read_text())
    assert state["slots"]["a"]["version"] == "1.0.0"


def test_rollback_waits_for_no_install(tmp_path, v2):
    store = two_slots(tmp_path, v2)
    with store.install_lock(), pytest.raises(InstallBusyError):
        store.rollback("asked")
    with store.install_lock(), pytest.raises(InstallBusyError):
        store.recover()
    store.mark_good()  # mark_good never waits for an install: the daemon calls it from its frame loop


def test_state_json_is_replaced_atomically(tmp_path, v2):
    store = two_slots(tmp_path, v2)
    steps = []
    store.mark_good(on_step=steps.append)
    assert steps == ["write .state.json.tmp", "fsync .state.json.tmp", "rename state.json", "fsync-dir ."]
    assert not (store.root / ".state.json.tmp").exists()
    steps.clear()
    store.mark_good(on_step=steps.append)
    assert steps == []  # nothing changed, nothing written


def test_with_a_trusted_key_a_slot_edited_on_the_storage_is_left(tmp_path):
    """Someone with the SD card rewrites the active slot's manifest (and state.json's record of
    it) consistently: the hashes agree, but it no longer verifies with the device's key."""
    from xenoedge.export.bundle import generate_keypair, sign_bundle

    private, public = generate_keypair()
    v1 = sign_bundle(CROP_BUNDLE, private, out=tmp_path / "v1.xeb")
    v2 = sign_bundle(variant(tmp_path / "v2.xeb", version="2.0.0"), private, out=tmp_path / "v2s.xeb")
    store = SlotStore(tmp_path / "state", public_key=public)
    trusted = policy(self_test=False, trusted_public_key=public)
    install_bundle(store, v1, trusted)
    store.mark_good()
    install_bundle(store, v2, trusted)
    store.mark_good()
    assert store.recover() == [] and store.active().slot == "b"
    manifest = store.slot_folder("b") / "manifest.json"
    edited = manifest.read_bytes().replace(b'"2.0.0"', b'"2.0.1"')
    manifest.write_bytes(edited)
    state = json.loads(store.state_path.read_text())
    state["slots"]["b"]["manifest_sha256"] = hashlib.sha256(edited).hexdigest()
    store.state_path.write_text(json.dumps(state))
    notes = store.recover()
    assert store.active().slot == "a"
    assert any("does not verify manifest.json with the trusted key" in n for n in notes)


def test_marks_and_rollbacks_name_the_slot_they_mean(tmp_path, v2):
    """The daemon serving slot a while an install switched to b must not mark b good, nor roll
    back b, on the strength of what a did."""
    store = two_slots(tmp_path, v2)  # b active and unconfirmed
    with pytest.raises(SlotStateError, match="slot a is no longer active"):
        store.mark_good("a")
    with pytest.raises(RollbackError, match="slot a is no longer active"):
        store.rollback("a failed", from_slot="a")
    assert store.info()["known_good"] == "a" and store.active().slot == "b" and not store.active().good
    store.mark_good("b")
    assert store.active().good


def test_lost_state_json_is_rebuilt_not_discarded(tmp_path, v2):
    store = two_slots(tmp_path, v2)
    store.state_path.unlink()
    notes = store.recover()
    assert any("missing, but slot folders exist" in n for n in notes)
    assert store.active().version == "2.0.0" and store.inactive().version == "1.0.0"


def test_without_state_json_nothing_installs_over_the_slots_until_recovered(tmp_path, v2):
    from xenoedge.edge.flashing import install_into_root

    store = two_slots(tmp_path, v2)
    store.state_path.unlink()
    with pytest.raises(SlotStateError, match="missing, but slot folders exist"):
        install_bundle(store, CROP_BUNDLE, NO_SELFTEST)
    assert store.slot_folder("a").is_dir() and store.slot_folder("b").is_dir()
    # a host flashing the card rebuilds first: v2 (highest) stays active, v1 is replaced
    card = tmp_path / "sd"
    (card / "var" / "lib").mkdir(parents=True)
    shutil.copytree(store.root, card / "var" / "lib" / "xenoedge")
    report = install_into_root(card, variant(tmp_path / "v3.xeb", version="3.0.0"), NO_SELFTEST)
    assert report.previous.version == "2.0.0" and report.installed.version == "3.0.0"
