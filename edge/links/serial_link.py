"""Serial/USB CDC links through pyserial, and a pseudo-terminal link for demos.

On Linux an unplugged USB CDC device usually shows up only as "readable but returned no
data" or a failed write. If the old descriptor stays open, the device re-enumerates under a
*new* ttyACM number, so :class:`SerialLink` closes at once and reopens by the path it was
given: give it the stable ``/dev/serial/by-id/...`` symlink or the udev alias ``/dev/xenoedge``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import time
import tty
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import serial
from xenoedge.edge.links import fdio
from xenoedge.edge.links._base import (
    DEFAULT_BACKOFF_S,
    DEFAULT_BUFFER_BYTES,
    Clock,
    Link,
    LinkError,
    LinkLost,
    NoSuchPortError,
    ReconnectingLink,
    Sleep,
    log,
)

DEFAULT_BAUD = 921600
#: directories searched for a stable name of a ttyACM/ttyUSB node (udev alias first)
STABLE_DIRS: tuple[str, ...] = ("/dev/xenoedge", "/dev/serial/by-id")
_NUMBERED_NODE = re.compile(r"/dev/tty(ACM|USB)\d+$")  # renumbered on replug; /dev/ttyGS0 (gadget side) is not
_LOOP_CHUNK_BYTES = 1024  # pyserial's loop:// refuses a single write longer than its write timeout allows


def stable_alias(device: str | os.PathLike[str], search: Sequence[str] = STABLE_DIRS) -> str | None:
    """A stable path (udev alias or ``/dev/serial/by-id`` link) that resolves to ``device``, or None.

    ``search`` entries may be a symlink (``/dev/xenoedge``) or a directory of symlinks.
    """
    target = os.path.realpath(device)
    for entry in search:
        p = Path(entry)
        candidates = sorted(p.iterdir()) if p.is_dir() and not p.is_symlink() else [p]
        for c in candidates:
            if c.is_symlink() and os.path.realpath(c) == target and str(c) != str(device):
                return str(c)
    return None


def serial_ports() -> list[str]:
    """The serial ports present now: pyserial's ``comports()`` devices, then the stable names
    (``/dev/xenoedge``, ``/dev/serial/by-id/...``) that point at them."""
    from serial.tools import list_ports

    try:
        ports = sorted({p.device for p in list_ports.comports()})
    except Exception:  # a sysfs oddity must not hide the real error
        ports = []
    stable: list[str] = []
    for entry in STABLE_DIRS:
        p = Path(entry)
        try:
            stable += sorted(str(c) for c in p.iterdir()) if p.is_dir() and not p.is_symlink() else []
            stable += [str(p)] if p.is_symlink() and p.exists() else []
        except OSError:
            continue
    return stable + ports


def is_port_path(port: str) -> bool:
    """A filesystem path (``/dev/ttyACM0``), as opposed to a pyserial URL (``loop://``, ``socket://``)."""
    return "://" not in port and not port.startswith("loop:")


def no_such_port(port: str, what: str = "serial") -> NoSuchPortError:
    """The error for a missing port path: names it and lists the serial ports that exist."""
    ports = serial_ports()
    present = f"serial ports here: {', '.join(ports)}" if ports else "no serial ports are present on this machine"
    return NoSuchPortError(f"{what}:{port}: no such port ({port} does not exist); {present}")


@dataclasses.dataclass
class _SerialHandle:
    port: Any  # a pyserial Serial (posix) or a URL-handler instance such as loop://
    fd: int | None
    device: str  # what the path resolved to when opened, e.g. /dev/ttyACM1


class SerialLink(ReconnectingLink[_SerialHandle]):
    """A serial port or USB CDC gadget, opened by path (or pyserial URL) with exclusive access.

    Args:
        port: device path, ideally stable (``/dev/xenoedge``, ``/dev/serial/by-id/...``), or a
            pyserial URL such as ``loop://``.
        baud: line rate in baud (bits per second); USB CDC ignores it, a real UART does not.
        write_timeout_s: longest time in seconds the port may accept no byte before the link
            counts as lost (a stalled or unplugged device).
        exclusive: take an exclusive ``flock`` so a second process cannot interleave bytes.
        wait_for_port: a port path that does not exist at ``open`` is waited for (state
            ``WAITING``, opened by the backoff as soon as it appears); without it, ``open`` raises
            :class:`NoSuchPortError` naming the path and listing the ports that exist.
        reconnect, backoff, buffer_bytes, clock, sleep: see :class:`ReconnectingLink`.
        open_serial: factory with the signature of ``serial.serial_for_url`` (injectable).

    >>> with SerialLink("loop://") as link:
    ...     link.write(b"ping"), link.read(16, timeout_s=1.0)
    (True, b'ping')
    """

    def __init__(
        self,
        port: str,
        baud: int = DEFAULT_BAUD,
        *,
        write_timeout_s: float = 0.5,
        exclusive: bool = True,
        wait_for_port: bool = False,
        reconnect: bool = True,
        backoff: Sequence[float] = DEFAULT_BACKOFF_S,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        open_serial: Callable[..., Any] = serial.serial_for_url,
    ) -> None:
        super().__init__(reconnect=reconnect, backoff=backoff, buffer_bytes=buffer_bytes, clock=clock, sleep=sleep)
        if baud <= 0:
            raise LinkError(f"serial:{port}: baud must be a positive number of bits per second, got {baud}")
        if write_timeout_s <= 0:
            raise LinkError(f"serial:{port}: write_timeout_s must be > 0 seconds, got {write_timeout_s}")
        self.port, self.baud = str(port), int(baud)
        self.write_timeout_s, self.exclusive = float(write_timeout_s), exclusive
        self.wait_for_port = wait_for_port
        self._open_serial = open_serial
        self.description = f"serial:{self.port}@{self.baud}"
        if _NUMBERED_NODE.match(self.port) and not os.path.islink(self.port):
            alias = stable_alias(self.port) if os.path.exists(self.port) else None
            hint = f"; use {alias}" if alias else "; use /dev/serial/by-id/... or the udev alias /dev/xenoedge"
            log.warning("%s: a ttyACM/ttyUSB number changes on replug%s", self.description, hint)

    def open(self) -> None:
        """Open the port. A path that does not exist raises :class:`NoSuchPortError` (naming it and
        the ports that exist) unless ``wait_for_port``: then the link waits for it (``WAITING``)."""
        if not self._opened and not self._closed and is_port_path(self.port) and not os.path.exists(self.port):
            if not self.wait_for_port:
                self._closed = True
                raise no_such_port(self.port)
            log.warning("%s: WAITING for the port to appear (%s does not exist yet)", self.description, self.port)
        super().open()

    @property
    def device(self) -> str | None:
        """The node the port path resolved to at the last open (e.g. ``/dev/ttyACM1``), None while down."""
        handle = self._handle
        return handle.device if handle is not None else None

    def _connect(self) -> _SerialHandle:
        port = self._open_serial(
            self.port, baudrate=self.baud, exclusive=self.exclusive, timeout=0, write_timeout=self.write_timeout_s
        )
        try:
            fd = port.fileno()
        except (AttributeError, OSError, ValueError):  # URL handlers (loop://) have no descriptor
            fd = None
        device = os.path.realpath(self.port) if "://" not in self.port else self.port
        return _SerialHandle(port, fd, device)

    def _disconnect(self, handle: _SerialHandle) -> None:
        try:
            handle.port.close()
        except Exception:  # a vanished device may fail close(); release every descriptor anyway
            for name in ("fd", "pipe_abort_read_r", "pipe_abort_read_w", "pipe_abort_write_r", "pipe_abort_write_w"):
                fdio.close_quietly(getattr(handle.port, name, None))
                setattr(handle.port, name, None)
            handle.port.is_open = False

    def _send(self, handle: _SerialHandle, data: memoryview) -> None:
        if handle.fd is not None:
            fdio.send_all(handle.fd, data, stall_timeout_s=self.write_timeout_s, clock=self._clock)
            return
        sent = 0
        while sent < len(data):
            chunk = data[sent : sent + _LOOP_CHUNK_BYTES]
            try:
                handle.port.write(chunk)
            except (serial.SerialException, OSError) as exc:
                raise LinkLost(f"write failed: {exc}", sent) from None
            sent += len(chunk)

    def _recv_nowait(self, handle: _SerialHandle, max_bytes: int) -> bytes:
        if handle.fd is not None:
            return fdio.recv_nowait(handle.fd, max_bytes)
        try:
            return handle.port.read(min(max_bytes, handle.port.in_waiting))
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"read failed: {exc}") from None

    def _wait_readable(self, handle: _SerialHandle, timeout_s: float) -> None:
        if handle.fd is not None:
            fdio.wait_readable(handle.fd, timeout_s)
            return
        deadline = time.monotonic() + timeout_s  # loop:// only: poll its queue in real time
        try:
            while not handle.port.in_waiting and time.monotonic() < deadline:
                time.sleep(0.001)
        except Exception:  # the port was closed by the other thread
            pass

    def _drain_os(self, handle: _SerialHandle, timeout_s: float) -> bool:
        if handle.fd is None:
            return True
        deadline = self._clock() + timeout_s
        try:
            while handle.port.out_waiting:
                if self._clock() >= deadline:
                    return False
                self._sleep(0.001)
        except (serial.SerialException, OSError):
            return False
        return True

    def _default_flush_timeout_s(self) -> float:
        return self.write_timeout_s


class PtyLink(Link):
    """A fresh pseudo-terminal pair for demos: the link writes the master, a receiver opens :attr:`slave_path`.

    The slave end is set raw and kept open by the link, so a receiver may come and go. Bytes
    nobody reads fill the kernel's pty buffer; after that a write stalls for ``write_timeout_s``
    seconds and its unsent rest is dropped (counted). No reconnect: the pair lives as long as the link.

    Args:
        write_timeout_s: longest time in seconds the pty may accept no byte before a write gives up.
        announce: called with a one-line message naming the slave path on open (default: stderr).
    """

    def __init__(
        self,
        *,
        write_timeout_s: float = 0.05,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.write_timeout_s = float(write_timeout_s)
        self._clock, self._sleep = clock, sleep
        self._announce = announce if announce is not None else (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._master: int | None = None
        self._slave: int | None = None
        self.slave_path: str | None = None
        self.description = "pty"

    @property
    def connected(self) -> bool:
        return self._master is not None

    def open(self) -> None:
        if self._closed:
            raise LinkError("pty: link is closed")
        if self._opened:
            return
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave, self._opened = master, slave, True
        self.slave_path = os.ttyname(slave)
        self.description = f"pty:{self.slave_path}"
        self._announce(f"pty link: receiver port is {self.slave_path}")

    def write(self, data: bytes, *, keep: bool = True) -> bool:
        self._check_usable()
        view = memoryview(data).cast("B")
        master = self._require_master()
        try:
            fdio.send_all(master, view, stall_timeout_s=self.write_timeout_s, clock=self._clock)
        except LinkLost as lost:
            self.stats.bytes_written += lost.sent
            self.stats.dropped_bytes += len(view) - lost.sent
            self.stats.writes_failed += 1
            self.stats.last_error = lost.reason
            return False
        self.stats.bytes_written += len(view)
        self.stats.writes_ok += 1
        return True

    def read(self, max_bytes: int = 4096, timeout_s: float = 0.0) -> bytes:
        self._check_usable()
        master = self._require_master()
        try:
            data = fdio.recv_nowait(master, max_bytes)
            if not data and timeout_s > 0:
                fdio.wait_readable(master, timeout_s)
                data = fdio.recv_nowait(master, max_bytes)
        except LinkLost:
            return b""
        return data

    def flush(self, timeout_s: float | None = None) -> bool:
        self._check_usable()
        return True

    def _require_master(self) -> int:
        self._check_usable()
        if self._master is None:  # pragma: no cover - open() sets it
            raise LinkError("pty: not open")
        return self._master

    def close(self) -> None:
        if self._closed:
            return
        fdio.close_quietly(self._master)
        fdio.close_quietly(self._slave)
        self._master = self._slave = None
        self._closed = True
