"""Output links over real pseudo-terminals, real localhost sockets, real files and pyserial's loop://.

"Unplug" is closing the pty master and removing the by-id style symlink the link opened by
path; "replug" is a new pty pair behind the same symlink. Backoff runs on a fake clock, so
nothing here sleeps to synchronise; the only real waits are bounded reads of data that is
already on its way, and one deliberate 0.2 s write timeout.
"""

from __future__ import annotations

import os
import re
import select
import socket
import threading
import time
import tty
from pathlib import Path

import pytest
import serial
from xenoedge.edge.links import (
    LINK_KINDS,
    UP,
    WAITING,
    FileLink,
    LinkError,
    LinkSpecError,
    NoSuchPortError,
    NullLink,
    OutboundBuffer,
    PtyLink,
    SerialLink,
    TcpLink,
    make_link,
    open_link,
)

from xenoedge.errors import UnknownNameError, XenoedgeError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "links.md"


class FakeClock:
    """Monotonic seconds that move only when told to (``sleep`` advances them)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    advance = sleep


class PtyPair:
    """A real pseudo-terminal pair; the test holds the master (the 'host' side) and one slave fd."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.name = os.ttyname(self._slave)

    def read(self, n: int, timeout_s: float = 5.0) -> bytes:
        """Read exactly ``n`` bytes from the master (bounded wait for data already sent)."""
        out = bytearray()
        while len(out) < n:
            ready, _, _ = select.select([self.master], [], [], timeout_s)
            if not ready:
                break
            out += os.read(self.master, n - len(out))
        return bytes(out)

    def read_all_now(self) -> bytes:
        out = bytearray()
        while select.select([self.master], [], [], 0)[0]:
            out += os.read(self.master, 1 << 16)
        return bytes(out)

    def unplug(self) -> None:
        os.close(self.master)
        os.close(self._slave)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fds_back_to(count: int, timeout_s: float = 30.0) -> int:
    """The open descriptor count once it is back to ``count`` or below (or at the deadline): a leak
    leaves more; threads of earlier tests in the same process may still be closing theirs (fewer,
    or more for a moment) on a busy machine."""
    deadline = time.monotonic() + timeout_s
    while open_fds() > count and time.monotonic() < deadline:
        time.sleep(0.05)
    return open_fds()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def by_id(tmp_path: Path) -> Path:
    return tmp_path / "usb-Xenoedge_Camera_0001-if00"


def serial_link(path: Path, clock: FakeClock, **kw) -> SerialLink:
    return SerialLink(str(path), clock=clock, sleep=clock.sleep, **kw)


# -- serial over a real pty ------------------------------------------------------------------


def test_serial_pty_data_arrives_intact(by_id: Path, clock: FakeClock) -> None:
    pair = PtyPair()
    by_id.symlink_to(pair.name)
    payload = bytes(range(256)) * 4 + b"\x00\n\r\x11\x13"  # every byte value, NL/CR and XON/XOFF untouched
    with serial_link(by_id, clock) as link:
        assert link.connected and link.device == pair.name
        assert link.write(payload)
        assert pair.read(len(payload)) == payload
        assert link.stats.bytes_written == len(payload)
        assert link.flush()
    pair.unplug()


def test_serial_pty_large_write_at_921600(by_id: Path, clock: FakeClock) -> None:
    pair = PtyPair()
    by_id.symlink_to(pair.name)
    payload = os.urandom(4 << 20)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pair.read(len(payload), timeout_s=10)))
    with serial_link(by_id, clock, write_timeout_s=5.0) as link:
        assert link.baud == 921600
        reader.start()
        assert link.write(payload)
        reader.join(15)
    assert got and got[0] == payload
    pair.unplug()


def test_serial_inbound_control_channel(by_id: Path, clock: FakeClock) -> None:
    pair = PtyPair()
    by_id.symlink_to(pair.name)
    with serial_link(by_id, clock) as link:
        assert link.read(64, timeout_s=0) == b""
        os.write(pair.master, b"RELOAD\x00")
        assert link.read(64, timeout_s=2.0) == b"RELOAD\x00"
    pair.unplug()


def test_serial_unplug_replug_cycles_reconnect_without_leaking_fds(by_id: Path, clock: FakeClock) -> None:
    fds_before = open_fds()
    pair = PtyPair()
    by_id.symlink_to(pair.name)
    link = serial_link(by_id, clock, buffer_bytes=4096)
    link.open()
    devices = set()
    cycles = 6
    for cycle in range(cycles):
        live = f"live-{cycle};".encode()
        assert link.write(live)
        assert pair.read(len(live)) == live
        devices.add(link.device)

        pair.unplug()  # the host side vanished ...
        by_id.unlink()  # ... and udev removed the by-id link
        lost = [f"lost-{cycle}-{i};".encode() for i in range(3)]
        assert link.write(lost[0]) is False  # noticed at once (EIO), closed, buffered
        assert not link.connected and link.device is None
        clock.advance(60)  # an attempt is due, but nothing is there yet
        assert link.write(lost[1]) is False
        assert link.stats.connect_failures >= cycle + 1

        pair = PtyPair()  # replug: a new node behind the same stable path
        by_id.symlink_to(pair.name)
        assert link.write(lost[2]) is False  # backoff deadline not passed yet: no attempt, no blocking
        clock.advance(60)
        assert link.flush()
        assert link.connected and link.stats.reconnects == cycle + 1
        expected = b"".join(lost)
        assert pair.read(len(expected)) == expected  # the buffer, in order, then new data
    assert link.stats.disconnects == cycles
    assert link.stats.dropped_bytes == 0 and link.stats.buffered_bytes == 0
    # the link released the old node at once, so the kernel could hand the same number out again
    assert link.device == pair.name
    link.close()
    pair.unplug()
    assert fds_back_to(fds_before) <= fds_before  # nothing leaked


def test_concurrent_reader_and_writer_survive_unplug(by_id: Path) -> None:
    """The daemon's shape: a control-reader thread and a writer share one link across an unplug (real clock)."""
    fds_before = open_fds()
    pair = PtyPair()
    by_id.symlink_to(pair.name)
    link = SerialLink(str(by_id), backoff=(0.001,), write_timeout_s=1.0)
    link.open()
    stop, seen_ab, seen_cd, inbound, errors = threading.Event(), threading.Event(), threading.Event(), bytearray(), []

    def control_reader() -> None:
        try:
            while not stop.is_set():
                inbound.extend(link.read(64, timeout_s=0.01))
                if inbound.startswith(b"AB"):
                    seen_ab.set()
                if inbound.endswith(b"CD"):
                    seen_cd.set()
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    reader = threading.Thread(target=control_reader)
    reader.start()
    os.write(pair.master, b"AB")
    before = [b"m%04d;" % i for i in range(300)]
    assert all(link.write(m) for m in before)
    assert pair.read(6 * 300) == b"".join(before)
    assert seen_ab.wait(5)  # inbound bytes still unread at an unplug are lost with the device

    pair.unplug()
    by_id.unlink()
    during = [b"d%04d;" % i for i in range(50)]
    results = [link.write(m) for m in during]
    assert results[0] is False
    pair = PtyPair()
    by_id.symlink_to(pair.name)
    flushed = False
    for _ in range(10_000):  # bounded: the reader thread or this flush reopens once the 1 ms backoff passed
        if flushed := link.flush():
            break
    assert flushed
    delivered = pair.read(6 * results.count(False))
    assert delivered == b"".join(m for m, ok in zip(during, results, strict=True) if not ok)
    os.write(pair.master, b"CD")  # after the reopen: pyserial discards input that arrived before open()
    assert seen_cd.wait(5)
    stop.set()
    reader.join(5)
    assert not errors and bytes(inbound).startswith(b"AB") and inbound.endswith(b"CD")
    link.close()
    pair.unplug()
    assert fds_back_to(fds_before) <= fds_before  # nothing leaked


def test_serial_read_notices_unplug(by_id: Path, clock: FakeClock) -> None:
    pair = PtyPair()
    by_id.symlink_to(pair.name)
    with serial_link(by_id, clock) as link:
        pair.unplug()
        assert link.read(64, timeout_s=0) == b""  # readable, but the read fails: down
        assert not link.connected and link.stats.disconnects == 1
        by_id.unlink()
        pair = PtyPair()
        by_id.symlink_to(pair.name)
        clock.advance(1)
        assert link.write(b"after")
        assert pair.read(5) == b"after"
    pair.unplug()


def test_serial_bounded_buffer_drops_oldest(by_id: Path, clock: FakeClock) -> None:
    pair = PtyPair()
    by_id.symlink_to(pair.name)
    with serial_link(by_id, clock, buffer_bytes=100) as link:
        pair.unplug()
        by_id.unlink()
        messages = [f"msg{i:03d}-xxx".encode() for i in range(30)]  # 10 bytes each
        assert not any([link.write(m) for m in messages])
        assert link.stats.buffered_bytes == 100
        assert link.stats.dropped_bytes == 200
        assert link.stats.writes_failed == 30
        assert link.write(b"x" * 101) is False  # larger than the whole buffer: dropped itself
        assert link.stats.dropped_bytes == 301
        pair = PtyPair()
        by_id.symlink_to(pair.name)
        clock.advance(60)
        assert link.flush()
        assert pair.read(100) == b"".join(messages[20:])
    pair.unplug()


def test_serial_write_timeout_takes_link_down_and_loses_nothing(by_id: Path, clock: FakeClock) -> None:
    pair = PtyPair()
    by_id.symlink_to(pair.name)
    payload = os.urandom(1 << 20)
    with serial_link(by_id, clock, write_timeout_s=0.2) as link:
        assert link.write(payload) is False  # nobody reads the master: the pty fills and stalls
        assert "write timeout" in link.stats.last_error
        assert not link.connected
        kept = link.stats.buffered_bytes
        assert 0 < kept < len(payload)
        got = pair.read_all_now()  # the host drains what was accepted ...
        assert got == payload[: len(got)] and len(got) + kept == len(payload)
        reader = threading.Thread(target=lambda: got_rest.append(pair.read(kept + 4, timeout_s=10)))
        got_rest: list[bytes] = []
        reader.start()
        clock.advance(1)
        assert link.write(b"next")  # ... reopened by path: the exact unsent tail, then new data
        reader.join(15)
        assert got + got_rest[0] == payload + b"next"
        assert link.stats.reconnects == 1
    pair.unplug()


def test_serial_exclusive_access(by_id: Path, clock: FakeClock) -> None:
    pair = PtyPair()
    by_id.symlink_to(pair.name)
    with serial_link(by_id, clock) as first:
        second = serial_link(by_id, clock, reconnect=False)
        with pytest.raises(LinkError, match="exclusive"):
            second.open()
        assert first.write(b"ok")
    pair.unplug()


def test_serial_first_open_failure(tmp_path: Path, clock: FakeClock) -> None:
    missing = tmp_path / "usb-none"
    for reconnect in (False, True):  # a path that does not exist: refused at once, naming it
        with pytest.raises(NoSuchPortError, match=rf"{missing}: no such port .*serial ports|no serial ports"):
            serial_link(missing, clock, reconnect=reconnect).open()
    broken = tmp_path / "usb-broken"
    broken.mkdir()  # exists but is no port: the open fails, the link stays down and retries
    with pytest.raises(LinkError, match="cannot open"):
        serial_link(broken, clock, reconnect=False).open()
    link = serial_link(missing, clock, wait_for_port=True)  # waits for the device (WAITING)
    link.open()
    assert not link.connected and link.state == WAITING and link.write(b"early") is False
    clock.advance(2.5)
    assert link.down_s() == pytest.approx(2.5)
    pair = PtyPair()
    missing.symlink_to(pair.name)
    assert link.write(b"!")
    assert link.state == UP and link.stats.down_s == pytest.approx(2.5)
    assert pair.read(6) == b"early!"
    assert link.stats.reconnects == 0  # the first successful open is not a reconnect
    link.close()
    pair.unplug()


def test_read_on_down_link_waits_on_injected_clock(by_id: Path, clock: FakeClock) -> None:
    link = serial_link(by_id, clock, wait_for_port=True)  # nothing behind the path
    link.open()
    start = clock()
    assert link.read(16, timeout_s=3.0) == b""
    assert clock() - start >= 3.0  # waited by the injected sleep, retrying as backoff allowed
    assert link.stats.connect_failures >= 3
    link.close()


def test_closed_link_raises(clock: FakeClock) -> None:
    link = SerialLink("loop://", clock=clock)
    with pytest.raises(LinkError, match="before open"):
        link.write(b"x")
    link.open()
    link.close()
    link.close()  # idempotent
    with pytest.raises(LinkError, match="closed"):
        link.write(b"x")


# -- loop://, pty, null ----------------------------------------------------------------------


def test_loop_round_trip() -> None:
    with open_link("loop://") as link:
        assert isinstance(link, SerialLink)
        data = bytes(range(256)) * 8
        assert link.write(data)
        got = b""
        while len(got) < len(data):
            chunk = link.read(4096, timeout_s=1.0)
            assert chunk
            got += chunk
        assert got == data


def test_pty_link_for_demos() -> None:
    messages: list[str] = []
    with open_link("pty", announce=messages.append) as link:
        assert isinstance(link, PtyLink)
        assert link.slave_path and link.slave_path in messages[0]
        with serial.Serial(link.slave_path, 921600, timeout=2) as receiver:
            assert link.write(b"mask\x00")
            assert receiver.read(5) == b"mask\x00"
            receiver.write(b"ack")
            assert link.read(16, timeout_s=2.0) == b"ack"
        assert link.write(b"nobody listening") is True  # the kernel buffer takes it


def test_pty_link_drops_when_nobody_reads() -> None:
    with PtyLink(write_timeout_s=0.05, announce=lambda _: None) as link:
        assert link.write(os.urandom(4 << 20)) is False
        assert link.stats.dropped_bytes > 0 and link.stats.writes_failed == 1


def test_null_link_counts() -> None:
    clock = FakeClock()
    with NullLink(sleep=clock.sleep) as link:
        assert link.write(b"abc") and link.write(memoryview(b"de"))
        assert link.read(10, timeout_s=0.5) == b"" and clock() == 1000.5
        assert link.stats.bytes_written == 5 and link.flush()


# -- TCP against a real localhost server --------------------------------------------------------


class Receiver:
    """A threaded localhost TCP server that collects every byte it receives."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.data = bytearray()
        self.conns: list[socket.socket] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.cond:
                self.conns.append(conn)
                self.cond.notify_all()
            try:
                while chunk := conn.recv(1 << 16):
                    with self.cond:
                        self.data += chunk
                        self.cond.notify_all()
            except OSError:  # the test closed this connection under us (simulated peer loss)
                continue

    def wait_bytes(self, n: int, timeout_s: float = 5.0) -> bytes:
        with self.cond:
            self.cond.wait_for(lambda: len(self.data) >= n, timeout_s)
            return bytes(self.data)

    def wait_connection(self, timeout_s: float = 5.0) -> socket.socket:
        with self.cond:
            self.cond.wait_for(lambda: self.conns, timeout_s)
            return self.conns[-1]

    def stop(self) -> None:
        for conn in self.conns:
            conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)


def test_tcp_round_trip_and_server_restart(clock: FakeClock) -> None:
    fds_before = open_fds()
    server = Receiver()
    port = server.port
    link = open_link(f"tcp:127.0.0.1:{port}", clock=clock, sleep=clock.sleep)
    assert isinstance(link, TcpLink) and link.connected
    payload = os.urandom(1 << 20)
    assert link.write(payload)
    assert server.wait_bytes(len(payload)) == payload
    server.wait_connection().sendall(b"CMD")
    assert link.read(16, timeout_s=2.0) == b"CMD"

    for restart in range(3):
        server.stop()
        assert link.read(16, timeout_s=2.0) == b""  # EOF from the peer: down
        assert not link.connected
        assert link.write(b"while-down;") is False
        clock.advance(60)
        assert link.write(b"refused;") is False  # nobody listens: connection refused, still down
        server = Receiver(port)
        clock.advance(60)
        assert link.write(f"back{restart};".encode())
        expected = f"while-down;refused;back{restart};".encode()
        assert server.wait_bytes(len(expected)) == expected
        assert link.stats.reconnects == restart + 1
    link.close()
    server.stop()
    assert fds_back_to(fds_before) <= fds_before  # nothing leaked


def test_tcp_write_notices_closed_peer(clock: FakeClock) -> None:
    server = Receiver()
    with TcpLink("127.0.0.1", server.port, clock=clock, sleep=clock.sleep) as link:
        server.wait_connection()
        server.stop()
        # the FIN is already here on loopback: the write sees it before sending into a dead connection
        assert link.write(b"x") is False
        assert link.stats.buffered_bytes == 1
    assert link.stats.dropped_bytes == 1  # closed while down: counted


# -- file ----------------------------------------------------------------------------------------


def test_file_link_round_trip_appends(tmp_path: Path) -> None:
    path = tmp_path / "rec.xes"
    with open_link(f"file:{path}") as link:
        assert isinstance(link, FileLink)
        assert link.write(b"one\x00") and link.write(bytearray(b"two\x00"))
        assert link.flush()
        assert link.read(10, timeout_s=0) == b""
    with open_link(f"file:{path}") as link:
        assert link.write(b"three\x00")
    assert path.read_bytes() == b"one\x00two\x00three\x00"


def test_file_link_missing_folder_recovers(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "usb-stick" / "rec.xes"
    with pytest.raises(LinkError, match="does not exist"):
        FileLink(path, reconnect=False).open()
    with FileLink(path, clock=clock, sleep=clock.sleep) as link:
        assert link.write(b"early;") is False
        path.parent.mkdir()
        clock.advance(1)
        assert link.write(b"late;")
    assert path.read_bytes() == b"early;late;"


# -- specs and the docs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "cls", "attrs"),
    [
        ("serial:/dev/xenoedge@115200", SerialLink, {"port": "/dev/xenoedge", "baud": 115200}),
        ("serial:/dev/serial/by-id/usb-X_Y-if00", SerialLink, {"baud": 921600}),
        ("tcp:192.168.7.1:5555", TcpLink, {"host": "192.168.7.1", "port": 5555}),
        ("tcp:[::1]:6000", TcpLink, {"host": "::1", "port": 6000}),
        ("file:rec.xes", FileLink, {"path": Path("rec.xes")}),
        ("null", NullLink, {}),
        ("pty", PtyLink, {}),
        ("loop://", SerialLink, {"port": "loop://"}),
    ],
)
def test_specs_build_the_right_link(spec: str, cls: type, attrs: dict) -> None:
    link = make_link(spec)
    assert type(link) is cls
    for name, value in attrs.items():
        assert getattr(link, name) == value


@pytest.mark.parametrize(
    "spec", ["serial:", "serial:/dev/ttyACM0@fast", "tcp:host", "tcp:host:99999", "tcp::80", "file:", "null:x"]
)
def test_malformed_specs(spec: str) -> None:
    with pytest.raises(LinkSpecError) as info:
        make_link(spec)
    assert isinstance(info.value, XenoedgeError)


def test_unknown_kind_names_the_table() -> None:
    with pytest.raises(UnknownNameError) as info:
        open_link("seral:/dev/ttyACM0")
    message = str(info.value)
    assert "link kind 'seral'" in message and "Did you mean 'serial'?" in message
    for kind in LINK_KINDS:
        assert kind in message


def test_outbound_buffer_keeps_messages_whole() -> None:
    buf = OutboundBuffer(10)
    assert buf.push(b"abc") == 0 and buf.push(b"defgh") == 0
    assert buf.push(b"ijk") == 3  # "abc" goes
    assert buf.push_front(b"z") == 0 and len(buf) == 9
    assert [buf.pop() for _ in range(3)] == [b"z", b"defgh", b"ijk"]


def test_docs_list_every_kind() -> None:
    text = DOCS.read_text()
    rows = dict(re.findall(r"^\| `([a-z]+)` \| `([^`]+)` \|", text, flags=re.M))
    assert rows == {kind.name: kind.syntax for kind in LINK_KINDS.values()}
    for needle in ("/dev/xenoedge", "/dev/serial/by-id", "readable but returned no data", "ID_MM_DEVICE_IGNORE"):
        assert needle in text
