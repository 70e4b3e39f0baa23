"""Flashing end to end over a real pseudo-terminal pair: the real daemon serves masks from its
A/B slots while the host uploads, and every fault leaves the active model serving."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from flash_fixtures import (
    CROP,
    SURGICAL,
    DeviceUnderTest,
    bundle_variant,
    failing_on_frames_variant,
    masks_from,
    write_key,
)
from install_fixtures import unpacked_files
from xenoedge.edge.flashing.host import FlashClient, FlashFailed
from xenoedge.edge.flashing.upload import UploadLimits
from xenoedge.edge.links import SerialLink
from xenoedge.edge.protocol.flash import FlashCode
from xenoedge.edge.protocol.packets import PacketType, model_id_from_sha256
from xenoedge.export.bundle import generate_keypair

REPO = Path(__file__).resolve().parents[2]
CROP_SHA = hashlib.sha256(CROP.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def v2(tmp_path_factory) -> Path:
    return bundle_variant(tmp_path_factory.mktemp("v2") / "crop-1.1.0.xeb", version="1.1.0")


def serving(host, sha256: str, seconds: float = 30.0) -> bool:
    """Masks keep coming, made by the model with this bundle SHA-256 (waits for 2 masks, at most
    ``seconds``: generous, so that a busy machine's slow frames do not read as a stopped daemon)."""
    masks = masks_from(host, seconds=seconds, n=2)
    return len(masks) == 2 and all(m.model_id == model_id_from_sha256(sha256) for m in masks)


def hold_until_masks_sent(dut: DeviceUnderTest, n: int, timeout_s: float = 60.0) -> None:
    """Wait until the daemon has written ``n`` more masks to its link. Called from a flash's progress
    callback, it holds the host mid-upload (no chunk sent, nothing read), so those masks are in the
    link when the upload goes on: "masks kept coming during the flash" holds by construction, not
    by the machine's speed against the upload's."""
    import time

    start = dut.daemon.stats.delivered
    deadline = time.monotonic() + timeout_s
    while dut.daemon.stats.delivered < start + n:
        assert time.monotonic() < deadline, f"the daemon sent no {n} masks in {timeout_s} s"
        time.sleep(0.01)


def test_flash_hot_swaps_the_model_reports_and_rolls_back_on_request(tmp_path, v2):
    with DeviceUnderTest(tmp_path / "state") as dut:
        host = dut.host_link()
        assert serving(host, CROP_SHA)
        client = FlashClient(host)
        seen = []

        def progress(done: int, total: int) -> None:
            if not seen:  # the first chunk is acknowledged: the upload is under way
                hold_until_masks_sent(dut, 2)
            seen.append(done)

        report = client.flash(v2, progress=progress)
        assert report.before["version"] == "1.0.0" and report.after["version"] == "1.1.0"
        assert report.selftest["passed"] and report.selftest["daemon_agreement"] >= 0.98
        assert report.resumed_from == 0 and report.sent_bytes == report.total_bytes == v2.stat().st_size
        assert seen[-1] == report.total_bytes and seen == sorted(seen)
        assert report.masks_seen >= 2  # masks kept coming while the bundle went up (held for 2) and installed
        v2_sha = hashlib.sha256(v2.read_bytes()).hexdigest()
        assert serving(host, v2_sha)  # hot-swapped, the daemon never stopped
        info = client.info()
        assert info["active"]["sha256"] == v2_sha and info["inactive"]["sha256"] == CROP_SHA
        assert info["sensor"]["name"] == "mosaic-5x5-nir" and "onnxruntime" in info["engines"]
        assert info["free_bytes"] > 0 and info["upload"] is None and not info["busy"]
        assert info["serving"]["model"] == "crop@1.1.0"
        result = client.rollback()
        assert result.details["active"]["sha256"] == CROP_SHA
        assert serving(host, CROP_SHA)
        host.close()


def test_cable_pulled_mid_upload_resumes_from_the_devices_offset(tmp_path, v2):
    with DeviceUnderTest(tmp_path / "state") as dut:
        host = dut.host_link()
        total = v2.stat().st_size

        def pull(done, _total):
            if done > total // 2:
                host.close()  # the cable is pulled: the host's port disappears mid-upload

        with pytest.raises(Exception, match="closed"):
            FlashClient(host, chunk_size=2048, window=2).flash(v2, progress=pull)
        held = FlashClient(again := dut.host_link()).info()["upload"]
        assert held is not None and held["next_offset"] > total // 2
        report = FlashClient(again).flash(v2)
        assert report.resumed_from == held["next_offset"] and report.sent_bytes == total - held["next_offset"]
        assert report.after["version"] == "1.1.0"
        assert serving(again, hashlib.sha256(v2.read_bytes()).hexdigest())
        again.close()


def test_a_replugged_cable_is_reopened_and_the_same_flash_goes_on(tmp_path, v2):
    with DeviceUnderTest(tmp_path / "state") as dut:
        host = SerialLink(dut.link.slave_path, 921600)  # reconnects by path, as the CLI's link does
        host.open()
        total, pulled = v2.stat().st_size, []

        def replug(done, _total):
            if done > total // 3 and not pulled:
                pulled.append(done)
                gone = os.open(os.devnull, os.O_RDWR)  # the USB node vanished under the open port:
                os.dup2(gone, host._handle.fd)  # bytes written now are lost, the next read finds it dead ...
                os.close(gone)

        report = FlashClient(host, chunk_size=2048, window=2, ack_timeout_s=1.0).flash(v2, progress=replug)
        assert pulled and host.stats.disconnects >= 1 and host.stats.reconnects >= 1  # ... and came back
        assert report.resends >= 1 and report.after["version"] == "1.1.0"  # the lost chunks were sent again
        assert serving(host, hashlib.sha256(v2.read_bytes()).hexdigest())
        host.close()


class LosingEndAckClient(FlashClient):
    """A host whose first UPLOAD_END's acknowledgement is lost on the way back."""

    ends, dropped = 0, False

    def _send(self, ptype, payload):
        self.ends += ptype == PacketType.UPLOAD_END
        super()._send(ptype, payload)

    def _wait(self, types, timeout_s):
        packet = super()._wait(types, timeout_s)
        if packet is not None and packet.type == PacketType.UPLOAD_ACK and self.ends == 1 and not self.dropped:
            self.dropped = True
            return None
        return packet


def test_a_lost_answer_to_upload_end_does_not_fail_a_good_install(tmp_path, v2):
    with DeviceUnderTest(tmp_path / "state") as dut:
        host = dut.host_link()
        client = LosingEndAckClient(host)
        report = client.flash(v2)  # END again -> BUSY (installing) is skipped -> the real result
        assert client.dropped and client.ends == 2 and report.after["version"] == "1.1.0"
        host.close()


class CorruptingLink:
    """A host link that flips one bit in the ``n``-th write: real damage on the real pty."""

    def __init__(self, inner, n: int):
        self.inner, self.n, self.writes = inner, n, 0
        self.stats, self.description = inner.stats, inner.description

    def write(self, data: bytes) -> bool:
        self.writes += 1
        if self.writes == self.n:
            data = bytearray(data)
            data[len(data) // 2] ^= 0x10
        return self.inner.write(bytes(data))

    def read(self, max_bytes=4096, timeout_s=0.0):
        return self.inner.read(max_bytes, timeout_s)


def test_corrupt_chunk_is_caught_by_the_crc_and_resent(tmp_path, v2):
    with DeviceUnderTest(tmp_path / "state") as dut:
        host = dut.host_link()
        link = CorruptingLink(host, n=5)  # write 1 is INFO, 2 BEGIN, 3.. chunks
        report = FlashClient(link, chunk_size=4096, window=3).flash(v2)
        assert report.resends >= 1 and report.sent_bytes > report.total_bytes
        stats = dut.daemon.control_stats  # the device's inbound decoder dropped the damaged frame
        assert stats.crc_errors + stats.framing_errors >= 1 and stats.packets >= 20
        assert report.after["sha256"] == hashlib.sha256(v2.read_bytes()).hexdigest()
        host.close()


def test_refused_bundles_leave_the_active_model_serving_and_say_why(tmp_path):
    key, public = generate_keypair()
    signed_v1 = bundle_variant(tmp_path / "v1-signed.xeb", version="1.0.0", signing_key=key)
    signed_v2 = bundle_variant(tmp_path / "v2-signed.xeb", version="1.1.0", signing_key=key)
    tampered = bytearray(signed_v2.read_bytes())
    model = next(data for name, data in unpacked_files(signed_v2, tmp_path)[1].items() if name.endswith(".onnx"))
    tampered[tampered.index(model) + len(model) // 2] ^= 0x01  # one bit inside a model file
    (tampered_path := tmp_path / "tampered.xeb").write_bytes(bytes(tampered))
    broken = bundle_variant(tmp_path / "broken.xeb", version="1.2.0", signing_key=key, break_selftest=True)
    other_sensor = bundle_variant(tmp_path / "surgical.xeb", source=SURGICAL, signing_key=key)
    v1_sha = hashlib.sha256(signed_v1.read_bytes()).hexdigest()
    with DeviceUnderTest(tmp_path / "state", bundle=signed_v1, public_key=write_key(tmp_path, public)) as dut:
        host = dut.host_link()
        client = FlashClient(host)
        data = signed_v2.read_bytes()
        cases = [
            (
                "wrong sha256",
                lambda: client.upload(data, sha256=hashlib.sha256(b"x").digest()),
                FlashCode.SHA256_MISMATCH,
            ),
            ("unsigned", lambda: client.flash(CROP), FlashCode.SIGNATURE),
            ("tampered", lambda: client.flash(tampered_path), (FlashCode.SIGNATURE, FlashCode.BAD_BUNDLE)),
            ("incompatible sensor", lambda: client.flash(other_sensor), FlashCode.INCOMPATIBLE),
            ("self-test fails", lambda: client.flash(broken), FlashCode.SELFTEST_FAILED),
        ]
        for what, attempt, codes in cases:
            with pytest.raises(FlashFailed) as err:
                attempt()
                pytest.fail(f"{what}: installed")
            assert err.value.code in (codes if isinstance(codes, tuple) else (codes,)), (what, str(err.value))
            assert len(str(err.value)) > 30, what  # a reason a person can act on
            assert client.info()["active"]["sha256"] == v1_sha, what
            assert serving(host, v1_sha), what
        host.close()


def test_disk_full_is_refused_and_the_active_model_keeps_serving(tmp_path, v2):
    state = tmp_path / "state"
    state.mkdir()
    size_kib = (2 * CROP.stat().st_size + (512 << 10)) >> 10  # room for the first install: staged + unpacked
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(state)], capture_output=True
    ).returncode:
        pytest.skip("needs a small tmpfs (root) for a real full disk")
    try:
        with DeviceUnderTest(state) as dut:
            host = dut.host_link()
            free = os.statvfs(state).f_bavail * os.statvfs(state).f_frsize
            assert v2.stat().st_size > 100 * 1024
            (state / "filler").write_bytes(b"\0" * (free - 100 * 1024))  # 100 KB left: less than the bundle
            with pytest.raises(FlashFailed, match="free space") as err:
                FlashClient(host).flash(v2)
            assert err.value.code == FlashCode.NO_SPACE
            assert serving(host, CROP_SHA)
            host.close()
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def _start_device(tmp_path: Path, state: Path) -> tuple[subprocess.Popen, str]:
    config = tmp_path / "device.toml"
    config.write_text(
        f'[camera]\nspec = "sim:crop"\nmax_fps = 4\n[bundle]\npath = "{CROP}"\nallow_unsigned = true\n'
        f'[references]\ncapture_frames = 2\n[flashing]\nstate_dir = "{state}"\n[output]\nsink = "pty"\n'
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "xenoedge.cli.main", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    lines: list[str] = []  # start-up lines (the signature policy, ...), then the pty's receiver port
    while not (match := re.search(r"receiver port is (\S+)", "".join(lines))) and len(lines) < 20:
        lines.append(proc.stderr.readline())
    assert match, lines
    assert any("bundle signatures: NOT checked" in line for line in lines), lines  # logged at every start
    return proc, match.group(1)


def test_device_killed_mid_write_keeps_its_model_and_the_upload_resumes(tmp_path, v2):
    state = tmp_path / "state"
    proc, port = _start_device(tmp_path, state)
    try:
        host = SerialLink(port, reconnect=False)
        host.open()
        assert serving(host, CROP_SHA, seconds=30)  # start-up: imports, first install, self-test
        total, every = v2.stat().st_size, UploadLimits().fsync_bytes
        durable = int(total * 0.85) // every * every  # the last fsync point before the power cut ...
        assert 0 < durable and durable + every < total

        def kill(done, _total):
            if done > durable + every // 4 and proc.poll() is None:  # ... a quarter block past it
                proc.send_signal(signal.SIGKILL)  # power cut mid-upload

        with pytest.raises(Exception):  # noqa: B017 - the device vanished: no answer or a dead port
            FlashClient(host, chunk_size=2048, window=2, ack_timeout_s=0.5, retries=2).flash(v2, progress=kill)
        proc.wait(timeout=10)
        host.close()
        proc, port = _start_device(tmp_path, state)  # the device comes back
        host = SerialLink(port, reconnect=False)
        host.open()
        assert serving(host, CROP_SHA, seconds=30)  # the active model still works
        client = FlashClient(host)
        held = client.info()["upload"]
        assert held is not None and held["next_offset"] == durable  # the last fsync point (every 64 KiB)
        report = client.flash(v2)
        assert report.resumed_from == durable and report.sent_bytes == total - durable
        assert report.after["version"] == "1.1.0"
        host.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_a_model_that_fails_its_first_frames_is_rolled_back_by_the_device(tmp_path, v2):
    bad = failing_on_frames_variant(tmp_path / "bad.xeb")  # passes its self-test, fails on camera frames
    with DeviceUnderTest(tmp_path / "state", probation_frames=4) as dut:
        host = dut.host_link()
        client = FlashClient(host)
        assert client.flash(v2, confirm_s=30).confirmed  # a good model: served 4 masks, marked good
        v2_sha = hashlib.sha256(v2.read_bytes()).hexdigest()
        with pytest.raises(FlashFailed, match="failed in its first frames") as err:
            client.flash(bad, confirm_s=30)
        assert err.value.code == FlashCode.ROLLED_BACK and err.value.details["active"]["sha256"] == v2_sha
        info = client.info()
        assert info["active"]["sha256"] == v2_sha and info["active"]["good"]
        assert info["inactive"]["version"] == "1.3.0" and not info["inactive"]["good"]
        assert serving(host, v2_sha)
        host.close()


def test_flash_and_device_commands_of_the_cli(tmp_path, v2):
    from typer.testing import CliRunner
    from xenoedge.cli.main import app

    def cli(*args):
        result = CliRunner().invoke(app, list(args))
        return result, " ".join(result.output.split())

    with DeviceUnderTest(tmp_path / "state", probation_frames=2) as dut:
        port = dut.link.slave_path
        done, out = cli("flash", str(v2), "--port", port, "--confirm", "30")
        assert done.exit_code == 0, out
        assert "before: crop 1.0.0" in out and "after: crop 1.1.0" in out and "self-test: passed" in out
        assert "marked good" in out and "kB/s" in out
        info = json.loads(cli("device", "info", "--port", port)[0].stdout)
        assert info["active"]["version"] == "1.1.0" and info["inactive"]["version"] == "1.0.0"
        back, out = cli("device", "rollback", "--port", port)
        assert back.exit_code == 0 and "crop 1.0.0" in out, out
        refused, _ = cli("flash", str(SURGICAL), "--port", port)
        assert isinstance(refused.exception, FlashFailed) and refused.exception.code == FlashCode.INCOMPATIBLE
    root = tmp_path / "sdcard"
    root.mkdir()
    done, out = cli("flash", str(CROP), "--to", str(root), "--sensor", "mosaic-5x5-nir", "--allow-unsigned")
    assert done.exit_code == 0 and "installed crop 1.0.0" in out, out
    assert json.loads(cli("device", "info", "--root", str(root))[0].stdout)["active"]["version"] == "1.0.0"
    args = ["flash", str(SURGICAL), "--to", str(root), "--sensor", "mosaic-5x5-nir", "--allow-unsigned"]
    refused = subprocess.run(  # the real entry point: one red line, exit code 2
        [sys.executable, "-m", "xenoedge.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
        cwd=REPO,
    )
    assert refused.returncode == 2 and "incompatible" in refused.stderr and "Traceback" not in refused.stderr


def test_a_device_in_a_restart_loop_stops_with_exit_status_78(tmp_path):
    from xenoedge.edge.daemon import daemon_main
    from xenoedge.edge.flashing.errors import EXIT_RESTART_LOOP, RestartLoopError
    from xenoedge.edge.flashing.install import InstallPolicy, install_bundle
    from xenoedge.edge.flashing.slots import SlotStore

    store = SlotStore(tmp_path / "state")
    install_bundle(store, CROP, InstallPolicy(self_test=False, allow_unsigned=True))
    with pytest.raises(RestartLoopError):  # starts that never served their first frames
        for _ in range(20):
            store.recover()
    lines = []
    code = daemon_main(None, state_dir=tmp_path / "state", camera="sim:crop", max_frames=1, log=lines.append)
    assert code == EXIT_RESTART_LOOP == 78 and "not starting again" in lines[-1]


def test_a_device_root_that_is_not_mounted_or_holds_no_slots_is_refused_and_nothing_is_created(tmp_path):
    from typer.testing import CliRunner
    from xenoedge.cli.main import app
    from xenoedge.edge.flashing.errors import FlashError

    missing, empty = tmp_path / "not-mounted", tmp_path / "empty-card"
    empty.mkdir()
    for args, says in (
        (("device", "info", "--root", str(missing)), "not a folder"),
        (("flash", str(CROP), "--to", str(missing)), "not a folder"),
        (("device", "info", "--root", str(empty)), "holds no xenoedge model slots"),
        (("device", "rollback", "--root", str(empty)), "holds no xenoedge model slots"),
    ):
        result = CliRunner().invoke(app, list(args))
        assert isinstance(result.exception, FlashError) and says in str(result.exception), (args, result.output)
    assert not missing.exists() and list(empty.iterdir()) == []


class _DropFirstRollbackRequest:
    """A host link that loses the first ROLLBACK_REQUEST it is asked to send (a line glitch)."""

    def __init__(self, link):
        self.link, self.dropped = link, 0

    def write(self, data: bytes) -> bool:
        from xenoedge.edge.protocol.decoder import StreamDecoder
        from xenoedge.edge.protocol.packets import PacketType

        packets = StreamDecoder().feed(data)
        if not self.dropped and any(p.type == PacketType.ROLLBACK_REQUEST for p in packets):
            self.dropped += 1
            return True
        return self.link.write(data)

    def __getattr__(self, name):
        return getattr(self.link, name)


def test_a_lost_rollback_request_is_sent_again_and_rolls_back_once(tmp_path, v2):
    with DeviceUnderTest(tmp_path / "state") as dut:
        host = dut.host_link()
        client = FlashClient(host)
        client.flash(v2)
        assert client.info()["active"]["version"] == "1.1.0"
        lossy = _DropFirstRollbackRequest(host)
        result = FlashClient(lossy, ack_timeout_s=0.5).rollback()
        assert lossy.dropped == 1 and result.ok and "1.0.0" in result.message
        info = FlashClient(host).info()
        assert info["active"]["version"] == "1.0.0" and info["inactive"]["version"] == "1.1.0"
        host.close()
