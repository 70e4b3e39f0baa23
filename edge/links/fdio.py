"""Non-blocking descriptor I/O shared by the serial, pty, TCP and file links (Linux/POSIX).

Writes are bounded by a *stall* timeout: the longest time, in seconds, the OS may go without
accepting a single byte. A large message on a slow line therefore never times out while it
makes progress, and a dead peer is noticed within one stall timeout.
"""

from __future__ import annotations

import errno
import os
import select

from xenoedge.edge.links._base import Clock, LinkLost

_AGAIN = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR)


def poll_one(fd: int, events: int, timeout_s: float) -> int:
    """Poll one descriptor; return the revents (0 on timeout). Raises OSError/ValueError for a bad fd."""
    poller = select.poll()
    poller.register(fd, events)
    ready = poller.poll(max(0, int(timeout_s * 1000 + 0.999)))
    return ready[0][1] if ready else 0


def send_all(fd: int, data: memoryview, *, stall_timeout_s: float, clock: Clock) -> None:
    """Write all of ``data`` to the non-blocking ``fd`` or raise :class:`LinkLost` with the bytes sent."""
    sent, total = 0, len(data)
    last_progress = clock()
    while sent < total:
        try:
            written = os.write(fd, data[sent:])
        except OSError as exc:
            if exc.errno not in _AGAIN:
                raise LinkLost(f"write failed: {os.strerror(exc.errno or 0)}", sent) from None
            written = 0
        if written:
            sent += written
            last_progress = clock()
            continue
        remaining = stall_timeout_s - (clock() - last_progress)
        try:
            revents = poll_one(fd, select.POLLOUT, remaining) if remaining > 0 else 0
        except (OSError, ValueError) as exc:
            raise LinkLost(f"write failed: {exc}", sent) from None
        if revents & (select.POLLERR | select.POLLHUP | select.POLLNVAL) and not revents & select.POLLOUT:
            raise LinkLost("write failed: peer hung up", sent)
        if not revents:
            raise LinkLost(f"write timeout: no byte accepted for {stall_timeout_s:g} s", sent)


def recv_nowait(fd: int, max_bytes: int) -> bytes:
    """Bytes readable now (``b""`` if none). A readable descriptor that returns no data means the peer is gone."""
    try:
        revents = poll_one(fd, select.POLLIN, 0)
    except (OSError, ValueError) as exc:
        raise LinkLost(f"read failed: {exc}") from None
    if not revents:
        return b""
    try:
        data = os.read(fd, max_bytes)
    except OSError as exc:
        if exc.errno in _AGAIN:
            return b""
        raise LinkLost(f"read failed: {os.strerror(exc.errno or 0)}") from None
    if not data:
        raise LinkLost("readable but returned no data (device unplugged or peer closed)")
    return data


def wait_readable(fd: int, timeout_s: float) -> None:
    """Block up to ``timeout_s`` seconds until ``fd`` is readable (or errors). Never raises."""
    try:
        poll_one(fd, select.POLLIN, timeout_s)
    except (OSError, ValueError):
        pass


def close_quietly(fd: int | None) -> None:
    """Close a descriptor, ignoring errors (EIO on a vanished device must not leak or raise)."""
    if fd is None:
        return
    try:
        os.close(fd)
    except OSError:
        pass
