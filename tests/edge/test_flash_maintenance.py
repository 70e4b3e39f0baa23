"""Maintenance mode: a device past its restart-loop cap (or with no model to serve) stays up on a
link that carries flashing packets, without model or camera, says why, and a bundle flashed over
that link brings masks back without a restart. Without such a link it still exits 78."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from flash_fixtures import CROP, DeviceUnderTest, bundle_variant, masks_from
from xenoedge.edge.flashing.errors import EXIT_RESTART_LOOP, RestartLoopError
from xenoedge.edge.flashing.host import FlashClient, FlashFailed
from xenoedge.edge.flashing.install import InstallPolicy, install_bundle
from xenoedge.edge.flashing.slots import SlotStore
from xenoedge.edge.protocol.decoder import StreamDecoder
from xenoedge.edge.protocol.flash import FlashCode
from xenoedge.edge.protocol.packets import PacketType, model_id_from_sha256


@pytest.fixture(scope="module")
def v2(tmp_path_factory):
    return bundle_variant(tmp_path_factory.mktemp("v2") / "crop-1.1.0.xeb", version="1.1.0")


def looping_store(root) -> SlotStore:
    """crop 1.0.0, the only slot, started again and again without serving: past the cap."""
    store = SlotStore(root)
    install_bundle(store, CROP, InstallPolicy(self_test=False, allow_unsigned=True))
    with pytest.raises(RestartLoopError):
        for _ in range(20):
            store.recover()
    return store


def packets_until(link, enough, what: str, timeout_s: float = 60.0) -> list:
    """Packets read from ``link`` until ``enough(packets)`` holds: waits for what the test needs to
    see (with a generous deadline for a busy machine), not for a time window."""
    decoder, packets = StreamDecoder(), []
    deadline = time.monotonic() + timeout_s
    while not enough(packets):
        assert time.monotonic() < deadline, f"no {what} within {timeout_s} s: {[p.type for p in packets]}"
        packets.extend(decoder.feed(link.read(65536, timeout_s=0.05)))
    return packets


def _count(packets, kind) -> int:
    return sum(p.type == kind for p in packets)


def cli(*args):
    from typer.testing import CliRunner
    from xenoedge.cli.main import app

    result = CliRunner().invoke(app, list(args))
    return result, " ".join(result.output.split())


def test_a_device_past_its_restart_cap_stays_up_in_maintenance_and_a_flash_brings_masks_back(tmp_path, v2):
    store = looping_store(tmp_path / "state")
    with DeviceUnderTest(tmp_path / "state", bundle=None, probation_frames=2) as dut:
        assert dut.daemon.maintenance and "did not serve its first frames" in dut.daemon.maintenance
        assert dut.daemon.engine is None and not dut.daemon.camera.is_open
        host = dut.host_link()
        # two STATUS packets (every 0.5 s) and no MASK between: up, and serving nothing
        seen = packets_until(host, lambda ps: _count(ps, PacketType.STATUS) >= 2, "two STATUS packets")
        kinds = {p.type for p in seen}
        assert PacketType.MASK not in kinds and PacketType.STATUS in kinds
        statuses = [p.status() for p in seen if p.type == PacketType.STATUS]
        assert all(s.model_id == bytes(16) and s.frames == 0 for s in statuses)
        with pytest.raises(FlashFailed) as refused:  # nothing to go back to: said, and still up
            FlashClient(host).rollback()
        assert refused.value.code == FlashCode.NO_ROLLBACK and dut.daemon.maintenance
        host.close()

        port = dut.link.slave_path
        done, out = cli("device", "info", "--port", port)
        assert done.exit_code == 0, out
        info = json.loads(done.stdout)
        assert "maintenance mode: no model served" in out  # the stderr line beside the JSON
        assert "did not serve its first frames" in info["maintenance"]["reason"]
        assert info["serving"]["model"] is None and info["active"]["version"] == "1.0.0"
        assert info["sensor"]["name"] == "mosaic-5x5-nir"

        done, out = cli("flash", str(v2), "--port", port, "--confirm", "20")
        assert done.exit_code == 0, out
        assert "after: crop 1.1.0" in out and "self-test: passed" in out and "marked good" in out
        assert dut.daemon.maintenance is None and dut.thread.is_alive()
        host = dut.host_link()
        v2_sha = hashlib.sha256(v2.read_bytes()).hexdigest()
        masks = masks_from(host, seconds=30.0, n=2)
        assert len(masks) == 2 and all(m.model_id == model_id_from_sha256(v2_sha) for m in masks)
        info = FlashClient(host).info()
        assert info["maintenance"] is None and info["serving"]["model"] == "crop@1.1.0"
        host.close()
    state = store.info()
    assert state["failed_starts"] == 0 and state["active"]["version"] == "1.1.0" and state["active"]["good"]
    store.recover()  # the next start is a normal one again


def test_hello_and_error_say_maintenance_to_a_receiver_on_the_line_from_the_start(tmp_path):
    """The real daemon's first packets on a pty, read by a host that was there before it started."""
    import threading

    from xenoedge.devices.simulated import SimulatedCamera
    from xenoedge.edge.config import DaemonConfig
    from xenoedge.edge.daemon import Daemon
    from xenoedge.edge.links import PtyLink, SerialLink
    from xenoedge.edge.protocol.sink import ProtocolSink

    from xenoedge.sensors import get_sensor

    looping_store(tmp_path / "state")
    link = PtyLink(announce=lambda line: None, write_timeout_s=0.5)
    link.open()
    host = SerialLink(link.slave_path, 921600, reconnect=False)
    host.open()
    config = DaemonConfig(camera="sim:crop", state_dir=tmp_path / "state", status_interval_s=0.3, threads=1)
    camera = SimulatedCamera(get_sensor("mosaic-5x5-nir"), domain="crop", seed=3)
    daemon = Daemon(config, ProtocolSink(link, device_id="dut"), camera=camera)
    try:
        daemon.start()
        runner = threading.Thread(target=daemon.run, daemon=True)
        runner.start()
        seen = packets_until(
            host,
            lambda ps: (
                _count(ps, PacketType.HELLO)
                and any(p.error().text.startswith("maintenance mode") for p in ps if p.type == PacketType.ERROR)
            ),
            "HELLO and the maintenance ERROR",
        )
        hello = next(p.hello() for p in seen if p.type == PacketType.HELLO)
        assert "did not serve its first frames" in hello["maintenance"]["reason"]
        assert hello["model_id"] is None or hello["model_id"] == "0" * 32
        errors = [p.error().text for p in seen if p.type == PacketType.ERROR]
        assert any(text.startswith("maintenance mode, no model served:") for text in errors), errors
        daemon.stop()
        runner.join(10)
        assert not runner.is_alive()  # SIGTERM in maintenance: a clean stop
    finally:
        daemon.close()
        host.close()
        link.close()


def test_no_model_and_none_to_install_is_maintenance_too_and_flashing_ends_it(tmp_path, v2):
    (tmp_path / "state").mkdir()
    broken = bundle_variant(tmp_path / "broken.xeb", version="1.2.0", break_selftest=True)
    with DeviceUnderTest(tmp_path / "state", bundle=None, probation_frames=2) as dut:
        assert "no model installed" in dut.daemon.maintenance
        host = dut.host_link()
        info = FlashClient(host).info()
        assert "no model installed" in info["maintenance"]["reason"] and info["active"] is None
        with pytest.raises(FlashFailed) as refused:  # a bundle failing its self-test: still in maintenance
            FlashClient(host).flash(broken, confirm_s=0)
        assert refused.value.code == FlashCode.SELFTEST_FAILED and dut.daemon.maintenance
        assert FlashClient(host).info()["active"] is None
        report = FlashClient(host).flash(v2, confirm_s=20)
        assert report.after["version"] == "1.1.0" and report.confirmed
        assert len(masks_from(host, seconds=30.0, n=2)) == 2
        host.close()


@pytest.mark.parametrize("sink", ["null", "png"])
def test_without_a_link_to_flash_over_the_restart_cap_still_exits_78(tmp_path, sink):
    from xenoedge.edge.daemon import daemon_main

    looping_store(tmp_path / "state")
    spec = f"png:{tmp_path / 'masks'}" if sink == "png" else sink
    lines = []
    code = daemon_main(None, state_dir=tmp_path / "state", camera="sim:crop", sink=spec, max_frames=1, log=lines.append)
    assert code == EXIT_RESTART_LOOP == 78 and "not starting again" in lines[-1]
    assert not (tmp_path / "masks").exists() or not any((tmp_path / "masks").iterdir())


def test_xenoedge_run_on_a_pty_stays_up_in_maintenance_and_stops_cleanly_on_sigterm(tmp_path):
    """The real entry point in its own process (camera built from the config, never opened)."""
    import os
    import re
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from xenoedge.edge.links import SerialLink

    looping_store(tmp_path / "state")
    repo = Path(__file__).resolve().parents[2]
    args = ["run", "--state-dir", str(tmp_path / "state"), "--camera", "sim:crop", "--sink", "pty"]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "xenoedge.cli.main", *args], stderr=subprocess.PIPE, text=True, cwd=repo, env=env
    )
    try:
        lines = []
        while not (port := re.search(r"(/dev/pts/\d+)", "".join(lines))) and len(lines) < 20:
            lines.append(proc.stderr.readline())  # the pty link names its receiver port on stderr
        assert port, lines
        host = SerialLink(port.group(1), 921600, reconnect=False)
        host.open()
        info = FlashClient(host).info()
        assert "did not serve its first frames" in info["maintenance"]["reason"]
        assert info["sensor"]["name"] == "mosaic-5x5-nir"  # from the active slot's manifest
        host.close()
        assert proc.poll() is None  # still up: not exit 78
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
