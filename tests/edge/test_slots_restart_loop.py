"""Restart loops end: real device processes started again and again, as systemd's
``Restart=on-failure`` with ``RestartPreventExitStatus=78`` would (deploy/xenoedge.service)."""

from __future__ import annotations

import multiprocessing

import pytest
from xenoedge.edge.flashing import EXIT_RESTART_LOOP, SlotStore, install_bundle

from tests.edge.install_fixtures import CRASH_EXIT, CROP_BUNDLE, device_start, policy, variant


def supervise(state_dir, crashing: tuple[str, ...], limit: int = 40) -> list[int]:
    """Start the device until it serves (0) or refuses to start (78); the exit codes in order."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["xenoedge.edge.flashing", "tests.edge.install_fixtures"])
    codes = []
    for _ in range(limit):
        child = ctx.Process(target=device_start, args=(str(state_dir), crashing))
        child.start()
        child.join(60)
        codes.append(child.exitcode)
        if child.exitcode in (0, EXIT_RESTART_LOOP):
            break
    return codes


@pytest.fixture
def device(tmp_path):
    """crop 1.0.0 known-good in slot a, 2.0.0 just switched to in slot b (unconfirmed)."""
    store = SlotStore(tmp_path / "state")
    install_bundle(store, CROP_BUNDLE, policy(self_test=False))
    store.mark_good()
    install_bundle(store, variant(tmp_path / "v2.xeb", version="2.0.0"), policy(self_test=False))
    return store


def test_a_new_model_that_crashes_the_daemon_is_rolled_back_after_three_starts(device):
    codes = supervise(device.root, crashing=("2.0.0",))
    assert codes == [CRASH_EXIT] * 3 + [0]
    info = device.info()
    assert info["active"]["version"] == "1.0.0" and info["inactive"]["failed"]
    assert info["failed_starts"] == 0 and info["boot_attempts"] == 0


def test_when_every_model_crashes_the_device_stops_instead_of_looping(device):
    codes = supervise(device.root, crashing=("1.0.0", "2.0.0"))
    # 3 starts of the new model, rollback, 5 starts of the known-good one, then exit 78 for good
    assert codes == [CRASH_EXIT] * 8 + [EXIT_RESTART_LOOP]
    assert supervise(device.root, crashing=("1.0.0", "2.0.0")) == [EXIT_RESTART_LOOP]
    device.reset_failed_starts()  # a person fixed the cause (or flashed a working bundle)
    assert supervise(device.root, crashing=()) == [0]
