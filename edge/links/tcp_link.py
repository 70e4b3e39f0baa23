"""TCP client link for network-attached devices (the receiver listens, the device connects)."""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Sequence

from xenoedge.edge.links import fdio
from xenoedge.edge.links._base import (
    DEFAULT_BACKOFF_S,
    DEFAULT_BUFFER_BYTES,
    Clock,
    LinkError,
    LinkLost,
    ReconnectingLink,
    Sleep,
)


class TcpLink(ReconnectingLink[socket.socket]):
    """TCP client with reconnect, backoff and the bounded buffer of :class:`ReconnectingLink`.

    Before every write the socket is checked without blocking for an orderly close by the peer
    (readable with no data), so a restarted receiver is noticed before data goes into a dead
    connection. Keep-alive probes find a silently vanished peer on an idle link.

    Args:
        host, port: the receiver's address (name, IPv4 or IPv6) and TCP port.
        connect_timeout_s: longest a single connection attempt may block, in seconds.
        write_timeout_s: longest time in seconds the socket may accept no byte before the link counts as lost.
        reconnect, backoff, buffer_bytes, clock, sleep: see :class:`ReconnectingLink`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout_s: float = 1.0,
        write_timeout_s: float = 2.0,
        reconnect: bool = True,
        backoff: Sequence[float] = DEFAULT_BACKOFF_S,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        super().__init__(reconnect=reconnect, backoff=backoff, buffer_bytes=buffer_bytes, clock=clock, sleep=sleep)
        if not 0 < int(port) < 65536:
            raise LinkError(f"tcp:{host}:{port}: port must be 1..65535")
        self.host, self.port = host, int(port)
        self.connect_timeout_s, self.write_timeout_s = float(connect_timeout_s), float(write_timeout_s)
        shown = f"[{host}]" if ":" in host else host
        self.description = f"tcp:{shown}:{self.port}"

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for name, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3)):
                if hasattr(socket, name):
                    sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
        except OSError:
            sock.close()
            raise
        return sock

    def _disconnect(self, handle: socket.socket) -> None:
        with contextlib.suppress(OSError):
            handle.close()

    def _check_peer(self, handle: socket.socket) -> None:
        """Raise LinkLost if the peer closed the connection (readable, but a peek returns nothing)."""
        try:
            readable = fdio.poll_one(handle.fileno(), select.POLLIN, 0)
            if readable and handle.recv(1, socket.MSG_PEEK) == b"":
                raise LinkLost("peer closed the connection")
        except BlockingIOError:
            return
        except (OSError, ValueError) as exc:
            raise LinkLost(f"connection failed: {exc}") from None

    def _send(self, handle: socket.socket, data: memoryview) -> None:
        self._check_peer(handle)
        fdio.send_all(handle.fileno(), data, stall_timeout_s=self.write_timeout_s, clock=self._clock)

    def _recv_nowait(self, handle: socket.socket, max_bytes: int) -> bytes:
        return fdio.recv_nowait(handle.fileno(), max_bytes)

    def _wait_readable(self, handle: socket.socket, timeout_s: float) -> None:
        try:
            fd = handle.fileno()
        except OSError:
            return
        if fd >= 0:
            fdio.wait_readable(fd, timeout_s)

    def _default_flush_timeout_s(self) -> float:
        return self.write_timeout_s
