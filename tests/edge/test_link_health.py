"""Link health over real ptys and real missing paths: masks delivered vs lost, link states, no leaks.

Every wait is for an observed event (masks decoded by the reader, a counter moving), never a rate.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from daemon_fixtures import SENSOR, crop_bundle_fixture  # noqa: F401  (fixture)
from xenoedge.devices.simulated import SimulatedCamera
from xenoedge.edge.config import DaemonConfig
from xenoedge.edge.daemon import Daemon, daemon_main, summary_line
from xenoedge.edge.links import DOWN, UP, WAITING, NoSuchPortError, SerialLink, check_port, open_link, port_spec
from xenoedge.edge.protocol import StreamDecoder
from xenoedge.edge.protocol.packets import PacketType
from xenoedge.edge.protocol.sink import ProtocolSink
from xenoedge.edge.sinks import LinkSink, sink_from_spec

from xenoedge.sensors import get_sensor

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 120.0  # generous: only a hang reaches it


def wait_for(condition, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def read_within(fd: int, size: int, timeout_s: float = WAIT_S) -> bytes:
    """``os.read`` that fails after ``timeout_s`` instead of blocking forever on a silent pty."""
    import select

    ready, _, _ = select.select([fd], [], [], timeout_s)
    assert ready, f"nothing to read after {timeout_s} s"
    return os.read(fd, size)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Host:
    """The host end of a pty pair behind a stable symlink; a thread decodes what arrives."""

    def __init__(self, link_path: Path, *, reading: bool = True):
        import tty

        self.master, self.slave = os.openpty()  # the slave stays open: a master read never sees a hang-up
        tty.setraw(self.slave)
        self.name = os.ttyname(self.slave)
        if link_path.is_symlink():
            link_path.unlink()
        link_path.symlink_to(self.name)
        self.link_path = link_path
        self.decoder = StreamDecoder()
        self.masks = 0
        self.statuses: list = []
        self.reading = threading.Event()
        if reading:
            self.reading.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        import select

        while not self._stop.is_set():
            if not self.reading.wait(0.05):
                continue
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            for packet in self.decoder.feed(data):
                if packet.type == PacketType.MASK:
                    self.masks += 1
                elif packet.type == PacketType.STATUS:
                    self.statuses.append(packet.status())

    def unplug(self) -> None:
        """Close the host end and remove the stable name, as a pulled USB cable does."""
        self._stop.set()
        self._thread.join(5)
        os.close(self.master)
        os.close(self.slave)
        self.link_path.unlink()


def crop_camera(fps: float) -> SimulatedCamera:
    return SimulatedCamera(get_sensor(SENSOR), domain="crop", species=("tomato",), seed=3, fps=fps)


def run_in_thread(daemon: Daemon) -> tuple[threading.Thread, dict]:
    out: dict = {}
    thread = threading.Thread(target=lambda: out.setdefault("stats", daemon.run()), daemon=True)
    thread.start()
    return thread, out


# -- missing ports and sinks that cannot be written: errors at start ---------------------------


def test_a_missing_serial_port_is_an_error_naming_it_and_listing_the_ports(tmp_path):
    missing = tmp_path / "ttyACM9"
    with pytest.raises(NoSuchPortError) as error:
        sink_from_spec(f"serial:{missing}@921600")
    text = str(error.value)
    assert f"{missing}: no such port" in text and ("serial ports here: " in text or "no serial ports" in text)
    with pytest.raises(NoSuchPortError, match="no such port"):
        check_port(port_spec(str(missing)))
    assert port_spec(str(missing), 115200) == f"serial:{missing}@115200"  # one spelling for listen, flash, device
    check_port("tcp:127.0.0.1:5555")  # other kinds are not ports to check


def test_daemon_main_refuses_a_missing_port_and_a_png_sink_on_a_file(crop_bundle, tmp_path):
    lines: list[str] = []
    missing = tmp_path / "nonexistent" / "ttyACM9"
    code = daemon_main(None, bundle=crop_bundle, sink=f"serial:{missing}@921600", max_frames=4, log=lines.append)
    assert code == 1 and f"{missing}: no such port" in lines[-1]
    a_file = tmp_path / "EXISTING_FILE"
    a_file.write_text("x")
    code = daemon_main(None, bundle=crop_bundle, sink=f"png:{a_file}", max_frames=4, log=lines.append)
    assert code == 1 and f"{a_file} is a file, not a folder" in lines[-1]


def test_waiting_for_a_port_that_never_comes_warns_and_counts_every_mask_lost(crop_bundle, tmp_path):
    lines: list[str] = []
    port = tmp_path / "ttyACM9"
    code = daemon_main(
        None,
        bundle=crop_bundle,
        camera="sim:crop",
        sink=f"serial:{port}@921600",
        wait_for_port=True,
        max_frames=3,
        capture_frames=2,
        log=lines.append,
    )
    summary = next(line for line in lines if " masks, " in line)
    assert code == 0 and "3 masks, 0 delivered, 3 lost" in summary and "WAITING" in summary
    assert "errors: none" not in summary and "masks lost 3" in summary
    assert "warning: no mask reached" in lines[-1]


@pytest.mark.parametrize("argv", [["listen", "--port"], ["flash", "B.xeb", "--port"], ["device", "info", "--port"]])
@pytest.mark.parametrize("spelling", ["{p}", "serial:{p}@921600"])
def test_listen_flash_and_device_say_no_such_port_at_once(argv, spelling, tmp_path):
    missing = tmp_path / "ttyACM0"
    result = subprocess.run(
        [sys.executable, "-m", "xenoedge.cli.main", *argv, spelling.format(p=missing)],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "300"},
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0 and f"{missing}: no such port" in output, output
    assert "serial ports here" in output or "no serial ports" in output
    assert "masks 0" not in output and "no INFO" not in output and "Traceback" not in output


# -- the host end closed mid-run and reopened ---------------------------------------------------


def test_host_closed_mid_run_and_reopened_counts_delivered_and_lost(crop_bundle, tmp_path):
    by_id = tmp_path / "usb-Xenoedge_0001-if00"
    host = Host(by_id)
    sink = LinkSink(f"serial:{by_id}@921600")
    config = DaemonConfig(bundle=crop_bundle, camera="sim:crop", capture_frames=2, status_interval_s=0.1)
    with Daemon(config, sink, camera=crop_camera(fps=20)) as daemon:
        thread, out = run_in_thread(daemon)
        wait_for(lambda: host.masks >= 3, "masks before the unplug")
        host.unplug()
        wait_for(lambda: daemon.stats.lost >= 3, "masks lost while the host end is closed")
        assert sink.link.state == DOWN
        host = Host(by_id)  # replugged: the same stable name, a new pty
        wait_for(lambda: host.masks >= 3, "masks after the replug")
        wait_for(lambda: any(s.link_state == "up" and s.masks_lost for s in host.statuses), "a STATUS saying so")
        daemon.stop()
        thread.join(WAIT_S)
    sink.close()
    host.unplug()
    stats = out["stats"]
    assert stats.masks == stats.delivered + stats.lost and stats.lost >= 3 and stats.delivered >= 6
    assert stats.errors.get("link", 0) >= 1 and stats.link_down_s > 0 and stats.link_state == UP
    status = next(s for s in reversed(host.statuses) if s.masks_lost)
    assert status.masks_delivered >= 3 and status.masks_lost >= 3
    line = summary_line(stats)
    assert f"{stats.masks} masks, {stats.delivered} delivered, {stats.lost} lost" in line
    assert "errors: none" not in line and f"masks lost {stats.lost}" in line


def test_reader_stalled_until_the_pty_buffer_is_full_loses_masks_then_delivers_again(crop_bundle, tmp_path):
    by_id = tmp_path / "usb-Xenoedge_0002-if00"
    host = Host(by_id, reading=False)  # nobody reads: the kernel's pty buffer fills
    link = SerialLink(str(by_id), write_timeout_s=0.1, backoff=(0.05,))
    link.open()
    sink = ProtocolSink(link)
    config = DaemonConfig(bundle=crop_bundle, camera="sim:crop", capture_frames=2, status_interval_s=0.2)
    with Daemon(config, sink, camera=crop_camera(fps=30)) as daemon:
        thread, out = run_in_thread(daemon)
        wait_for(lambda: daemon.stats.lost >= 2, "masks lost to a full pty buffer")
        stalled_delivered = daemon.stats.delivered
        host.reading.set()  # the reader comes back
        wait_for(lambda: daemon.stats.delivered >= stalled_delivered + 3, "masks delivered again")
        wait_for(lambda: host.masks >= 3, "masks decoded by the reader")
        daemon.stop()
        thread.join(WAIT_S)
    link.close()
    host.unplug()
    stats = out["stats"]
    assert stats.masks == stats.delivered + stats.lost and stats.lost >= 2
    assert host.masks <= stats.delivered  # what the reader decoded was delivered
    assert f"{stats.lost} lost" in summary_line(stats) and "errors: none" not in summary_line(stats)


# -- no leak over many cycles ------------------------------------------------------------------


def test_200_close_reopen_cycles_leak_no_descriptor_or_thread(tmp_path):
    by_id = tmp_path / "usb-Xenoedge_0003-if00"
    fds, threads = open_fds(), threading.active_count()
    import tty

    for _ in range(200):  # open and close the link (a daemon restart, a listen run)
        master, slave = os.openpty()
        tty.setraw(slave)
        by_id.symlink_to(os.ttyname(slave))
        with open_link(f"serial:{by_id}@921600") as link:
            assert link.write(b"hello\x00") and link.state == UP
        assert read_within(master, 16) == b"hello\x00"
        os.close(slave)
        os.close(master)
        by_id.unlink()
    link = SerialLink(str(by_id), backoff=(0.0,), wait_for_port=True)
    link.open()
    assert link.state == WAITING
    for cycle in range(200):  # one link, the host end closed and reopened
        master, slave = os.openpty()
        tty.setraw(slave)
        by_id.symlink_to(os.ttyname(slave))
        os.close(slave)
        assert link.write(b"x", keep=False), cycle
        assert read_within(master, 1) == b"x"
        os.close(master)
        by_id.unlink()
        assert link.write(b"y", keep=False) is False and link.state == DOWN
    link.close()
    assert link.stats.reconnects == 199 and link.stats.disconnects == 200
    assert open_fds() == fds and threading.active_count() == threads


def test_systemd_status_says_the_link_is_down_while_the_watchdog_keeps_coming(crop_bundle, tmp_path):
    """With the host end gone, the unit's STATUS= line says DOWN, and WATCHDOG=1 still arrives after
    it: the frame loop is alive (docs/daemon.md, "Link states")."""
    import socket

    from xenoedge.edge.sdnotify import SdNotifier

    notify_path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(notify_path)
    server.setblocking(False)
    received: list[str] = []

    def drain() -> list[str]:
        """What is queued now. (A blocking read with a timeout never returned on a machine where
        STATUS and WATCHDOG datagrams kept coming closer together than the timeout: CI hung here.)"""
        while True:
            try:
                received.append(server.recv(65536).decode())
            except BlockingIOError:
                return received

    notifier = SdNotifier.from_environ({"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "200000"})
    by_id = tmp_path / "usb-Xenoedge_0002-if00"
    host = Host(by_id)
    sink = LinkSink(f"serial:{by_id}@921600")
    config = DaemonConfig(bundle=crop_bundle, camera="sim:crop", capture_frames=2, status_interval_s=0.1)
    with Daemon(config, sink, camera=crop_camera(fps=20), notifier=notifier) as daemon:
        thread, _ = run_in_thread(daemon)
        wait_for(lambda: host.masks >= 2, "masks before the unplug")
        host.unplug()

        def down_then_watchdog() -> bool:
            messages = drain()
            down = [i for i, m in enumerate(messages) if "STATUS=link DOWN" in m]
            return bool(down) and any(m == "WATCHDOG=1" for m in messages[down[0] + 1 :])

        wait_for(down_then_watchdog, "STATUS=link DOWN, then a watchdog ping")
        daemon.stop()
        thread.join(WAIT_S)
    sink.close()
    server.close()
    down = next(m for m in received if "STATUS=link DOWN" in m)
    assert "lost" in down and "delivered" in down
