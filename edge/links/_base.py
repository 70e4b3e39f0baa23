"""The link interface, its statistics, the bounded outbound buffer and the reconnect machinery.

Every output link (serial/USB CDC, TCP, file, pty, null) is a :class:`Link`. Links that can
lose their peer and get it back (serial, TCP, file) derive from :class:`ReconnectingLink`,
which owns the rules in one place:

* ``write`` never raises because the link is down: it returns ``False`` and keeps the data
  in a bounded buffer (oldest data dropped first, counted in ``stats.dropped_bytes``);
* a lost link is closed at once; reopening is attempted by the next ``write``/``read``/
  ``flush`` whose call time (on the injected clock) is past the backoff deadline;
* the buffer is sent, in order, before new data once the link is back.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from xenoedge.errors import XenoedgeError

log = logging.getLogger("xenoedge.links")

Clock = Callable[[], float]
Sleep = Callable[[float], None]

DEFAULT_BACKOFF_S: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0)
DEFAULT_BUFFER_BYTES = 1 << 20


class LinkError(XenoedgeError):
    """A link that cannot be used: a malformed spec, a first open that failed with reconnect off, a closed link."""


class LinkSpecError(LinkError, ValueError):
    """A link spec string (``serial:/dev/xenoedge@921600``, ``tcp:host:port`` ...) that does not parse."""


class NoSuchPortError(LinkError):
    """A serial port path that does not exist (the message lists the ports that do)."""


#: Link states (``Link.state``): up now; lost after being up; never up yet (device not plugged in,
#: receiver not listening yet).
UP, DOWN, WAITING = "up", "down", "waiting"


class LinkLost(Exception):
    """Internal signal: the peer is gone. ``sent`` bytes of the current message did go out."""

    def __init__(self, reason: str, sent: int = 0):
        super().__init__(reason)
        self.reason, self.sent = reason, sent


@dataclasses.dataclass
class LinkStats:
    """Counters of one link since it was created (bytes are payload bytes, not line bits).

    Attributes:
        bytes_written: bytes the OS accepted for the peer.
        writes_ok: ``write`` calls that returned True.
        writes_failed: ``write`` calls that returned False (data buffered or dropped).
        dropped_bytes: bytes thrown away: buffer overflow (oldest first), oversized messages, close while down.
        buffered_bytes: bytes waiting in the outbound buffer now.
        disconnects: times the link was lost after being up.
        reconnects: successful reopens after a loss (the first open is not counted).
        connect_failures: failed open attempts.
        down_s: seconds the link was down (or waiting for its first open) in finished outages;
            ``Link.down_s()`` adds the outage going on now.
        last_error: the most recent reason the link went down or failed to open, or None.
    """

    bytes_written: int = 0
    writes_ok: int = 0
    writes_failed: int = 0
    dropped_bytes: int = 0
    buffered_bytes: int = 0
    disconnects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    down_s: float = 0.0
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict (for status packets and JSON reports)."""
        return dataclasses.asdict(self)


class Backoff:
    """Reconnect schedule driven by an injected clock: delays in seconds, the last one repeats.

    >>> t = [10.0]
    >>> b = Backoff((0.1, 0.5), clock=lambda: t[0])
    >>> b.failed(); b.next_attempt_s
    10.1
    >>> b.due()
    False
    >>> t[0] = 10.2; b.due()
    True
    >>> b.failed(); b.failed(); round(b.next_attempt_s, 3)
    10.7
    """

    def __init__(self, delays_s: Sequence[float] = DEFAULT_BACKOFF_S, *, clock: Clock = time.monotonic):
        delays = tuple(float(d) for d in delays_s)
        if not delays or any(d < 0 for d in delays):
            raise LinkError(f"backoff needs at least one non-negative delay in seconds, got {delays_s!r}")
        self.delays_s, self._clock = delays, clock
        self._index = 0
        self.next_attempt_s = float("-inf")

    def failed(self) -> None:
        """Schedule the next attempt one delay after now; each failure moves to the next (longer) delay."""
        delay = self.delays_s[min(self._index, len(self.delays_s) - 1)]
        self._index += 1
        self.next_attempt_s = self._clock() + delay

    def reset(self) -> None:
        """Forget past failures (after a successful open)."""
        self._index = 0
        self.next_attempt_s = float("-inf")

    def due(self) -> bool:
        """Whether an attempt may be made now."""
        return self._clock() >= self.next_attempt_s

    def wait_s(self) -> float:
        """Seconds until the next attempt is due (0 when due)."""
        return max(0.0, self.next_attempt_s - self._clock())


class OutboundBuffer:
    """Bounded FIFO of pending messages; drops the oldest bytes first when full.

    Messages are kept whole except a message whose head already went out (``push_front``
    keeps its unsent tail). A message larger than the whole capacity is dropped.

    >>> b = OutboundBuffer(8)
    >>> b.push(b"abcd"), b.push(b"efgh"), b.push(b"ij")
    (0, 0, 4)
    >>> b.pop(), len(b)
    (b'efgh', 2)
    """

    def __init__(self, capacity_bytes: int):
        if capacity_bytes < 0:
            raise LinkError(f"buffer_bytes must be >= 0, got {capacity_bytes}")
        self.capacity_bytes = int(capacity_bytes)
        self._items: collections.deque[bytes] = collections.deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def push(self, data: bytes) -> int:
        """Append ``data`` (copied); return the bytes dropped to make room (or ``len(data)`` if it never fits)."""
        if not data:
            return 0
        if len(data) > self.capacity_bytes:
            return len(data)
        self._items.append(bytes(data))
        self._size += len(data)
        return self._trim()

    def push_front(self, data: bytes) -> int:
        """Put an unsent tail back at the head; return the bytes dropped (the oldest go first)."""
        if not data:
            return 0
        if len(data) > self.capacity_bytes:
            return len(data)
        self._items.appendleft(bytes(data))
        self._size += len(data)
        return self._trim()

    def pop(self) -> bytes:
        """Remove and return the oldest message."""
        item = self._items.popleft()
        self._size -= len(item)
        return item

    def clear(self) -> int:
        """Drop everything; return the bytes dropped."""
        dropped, self._size = self._size, 0
        self._items.clear()
        return dropped

    def _trim(self) -> int:
        dropped = 0
        while self._size > self.capacity_bytes:
            item = self._items.popleft()
            self._size -= len(item)
            dropped += len(item)
        return dropped


class Link(abc.ABC):
    """One outbound byte stream with an inbound control channel.

    ``write`` returns False instead of raising when the link is down; ``read`` returns ``b""``
    when nothing arrived within ``timeout_s`` seconds (or the link is down). Use as a context
    manager or call ``open``/``close``. Links are safe to use from one writer thread and one
    reader thread at once.
    """

    #: human-readable description, e.g. ``serial:/dev/xenoedge@921600``
    description: str = "link"

    def __init__(self) -> None:
        self.stats = LinkStats()
        self._opened = False
        self._closed = False

    @abc.abstractmethod
    def open(self) -> None:
        """Open the link (idempotent)."""

    @abc.abstractmethod
    def write(self, data: bytes, *, keep: bool = True) -> bool:
        """Send ``data``; True when the OS took all of it, False when it was buffered or dropped.
        ``keep=False``: never buffer it: what the OS did not take now is dropped (counted)
        (live data such as masks, worthless when late)."""

    @abc.abstractmethod
    def read(self, max_bytes: int = 4096, timeout_s: float = 0.0) -> bytes:
        """Up to ``max_bytes`` inbound bytes, waiting at most ``timeout_s`` seconds; ``b""`` if none."""

    @abc.abstractmethod
    def flush(self, timeout_s: float | None = None) -> bool:
        """Send the buffer and wait (bounded) until the OS handed data on; True when nothing is left pending."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush (bounded), close, and count what could not be sent as dropped. Idempotent."""

    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """Whether the link is up now (no I/O is done to find out)."""

    @property
    def state(self) -> str:
        """``UP``, ``DOWN`` (lost after being up) or ``WAITING`` (never up yet); no I/O is done."""
        return UP if self.connected else DOWN

    def down_s(self) -> float:
        """Seconds this link has been down or waiting since it was opened, the current outage included."""
        return self.stats.down_s

    def _check_usable(self) -> None:
        if self._closed:
            raise LinkError(f"{self.description}: link is closed")
        if not self._opened:
            raise LinkError(f"{self.description}: link used before open()")

    def __enter__(self) -> Link:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("up" if self.connected else "down")
        return f"<{type(self).__name__} {self.description} {state}>"


H = TypeVar("H")


class ReconnectingLink(Link, Generic[H], abc.ABC):
    """A link that closes itself on loss and reopens by the same address with backoff.

    Subclasses supply the handle operations: ``_connect``, ``_disconnect``, ``_send``,
    ``_recv_nowait``, ``_wait_readable`` and ``_drain_os``. All raise :class:`LinkLost` for a
    lost peer (``_connect`` may raise any ``OSError``/``XenoedgeError``-free exception it meets).

    Args:
        reconnect: reopen after a loss; when False a lost link stays down and data is dropped.
        backoff: delays in seconds between open attempts; the last repeats; reset on success.
        buffer_bytes: capacity of the outbound buffer kept while down, in bytes.
        clock: monotonic clock in seconds (inject a fake one in tests).
        sleep: sleep in seconds, used only by ``read``/``flush`` waiting on a down link.
    """

    def __init__(
        self,
        *,
        reconnect: bool = True,
        backoff: Sequence[float] = DEFAULT_BACKOFF_S,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        super().__init__()
        self.reconnect = reconnect
        self._clock, self._sleep = clock, sleep
        self._backoff = Backoff(backoff, clock=clock)
        self._buffer = OutboundBuffer(buffer_bytes if reconnect else 0)
        self._handle: H | None = None
        self._ever_up = False
        self._down_since: float | None = None  # clock time the current outage began
        self._lock = threading.RLock()

    # -- handle operations supplied by subclasses -------------------------------------------
    @abc.abstractmethod
    def _connect(self) -> H:
        """Open the peer by its address; raise on failure."""

    @abc.abstractmethod
    def _disconnect(self, handle: H) -> None:
        """Release every OS resource of ``handle``; must not raise."""

    @abc.abstractmethod
    def _send(self, handle: H, data: memoryview) -> None:
        """Hand all of ``data`` to the OS or raise LinkLost(reason, sent)."""

    @abc.abstractmethod
    def _recv_nowait(self, handle: H, max_bytes: int) -> bytes:
        """Inbound bytes available now (``b""`` if none) or raise LinkLost."""

    @abc.abstractmethod
    def _wait_readable(self, handle: H, timeout_s: float) -> None:
        """Block up to ``timeout_s`` seconds for inbound data, WITHOUT the lock; must not raise."""

    def _drain_os(self, handle: H, timeout_s: float) -> bool:
        """Wait until the OS sent its queue (bounded); True when empty. Default: nothing to wait for."""
        return True

    # -- public API --------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._handle is not None

    @property
    def state(self) -> str:
        if self._handle is not None:
            return UP
        return DOWN if self._ever_up else WAITING

    def down_s(self) -> float:
        since = self._down_since
        return self.stats.down_s + (max(0.0, self._clock() - since) if since is not None else 0.0)

    def open(self) -> None:
        """Open the link. With ``reconnect`` a failed first open leaves it down and retrying;
        without, it raises :class:`LinkError` naming the address and the reason."""
        with self._lock:
            if self._closed:
                raise LinkError(f"{self.description}: link is closed")
            if self._opened:
                return
            self._opened = True
            self._down_since = self._clock()
            if not self._try_connect() and not self.reconnect:
                self._closed = True
                raise LinkError(f"{self.description}: cannot open: {self.stats.last_error}")

    def write(self, data: bytes, *, keep: bool = True) -> bool:
        """Send ``data`` (bytes-like). Returns False when the link is down: data kept in the buffer or
        dropped (``keep=False``: always dropped, counted in ``dropped_bytes``)."""
        view = memoryview(data).cast("B")
        with self._lock:
            self._check_usable()
            self._reconnect_if_due()
            if self._handle is not None and self._send_buffered():
                try:
                    self._send(self._handle, view)
                except LinkLost as lost:
                    self._lost(lost)
                    self._keep(view[lost.sent :], keep)
                    self.stats.writes_failed += 1
                    return False
                self.stats.bytes_written += len(view)
                self.stats.writes_ok += 1
                return True
            self._keep(view, keep)
            self.stats.writes_failed += 1
            return False

    def read(self, max_bytes: int = 4096, timeout_s: float = 0.0) -> bytes:
        """Inbound bytes (at most ``max_bytes``) within ``timeout_s`` seconds; ``b""`` on timeout or while down."""
        if max_bytes <= 0:
            return b""
        deadline = self._clock() + max(0.0, timeout_s)
        while True:
            with self._lock:
                self._check_usable()
                self._reconnect_if_due()
                handle = self._handle
                if handle is not None:
                    data = self._recv_locked(handle, max_bytes)
                    if data:
                        return data
            remaining = deadline - self._clock()
            if remaining <= 0:
                return b""
            if handle is None:
                wait = remaining if not self.reconnect else min(remaining, max(self._backoff.wait_s(), 1e-3))
                self._sleep(wait)
                continue
            self._wait_readable(handle, remaining)
            with self._lock:
                if self._handle is handle:
                    return self._recv_locked(handle, max_bytes)
            return b""

    def flush(self, timeout_s: float | None = None) -> bool:
        """Send the buffer (reconnecting if due) and wait up to ``timeout_s`` s for the OS queue to empty."""
        with self._lock:
            self._check_usable()
            self._reconnect_if_due()
            if self._handle is None or not self._send_buffered():
                return False
            ok = self._drain_os(self._handle, self._default_flush_timeout_s() if timeout_s is None else timeout_s)
            return ok and not self._buffer

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._opened and self._handle is not None:
                try:
                    self.flush()
                except LinkError:  # pragma: no cover - flush on an open link does not raise
                    pass
            if self._handle is not None:
                self._disconnect(self._handle)
                self._handle = None
            self.stats.dropped_bytes += self._buffer.clear()
            self.stats.buffered_bytes = 0
            self._end_outage()
            self._closed = True

    # -- machinery ---------------------------------------------------------------------------
    def _default_flush_timeout_s(self) -> float:
        return 1.0

    def _try_connect(self) -> bool:
        try:
            handle = self._connect()
        except Exception as exc:  # any failure to open is "still down"; the reason is kept
            self.stats.connect_failures += 1
            self.stats.last_error = f"open failed: {exc}"
            self._backoff.failed()
            log.debug("%s: %s", self.description, self.stats.last_error)
            return False
        self._handle = handle
        self._backoff.reset()
        self._end_outage()
        if self._ever_up:
            self.stats.reconnects += 1
            log.info("%s: reconnected", self.description)
        self._ever_up = True
        return True

    def _reconnect_if_due(self) -> None:
        if self._handle is None and self.reconnect and self._backoff.due():
            self._try_connect()

    def _lost(self, lost: LinkLost) -> None:
        """Close at once (the stale descriptor must not keep the device node busy) and schedule a reopen."""
        handle, self._handle = self._handle, None
        if handle is not None:
            self._disconnect(handle)
        self.stats.disconnects += 1
        self.stats.last_error = lost.reason
        self._down_since = self._clock()
        self._backoff.failed()
        log.warning("%s: link down: %s", self.description, lost.reason)

    def _end_outage(self) -> None:
        """Add the outage that ends now to ``stats.down_s``."""
        if self._down_since is not None:
            self.stats.down_s += max(0.0, self._clock() - self._down_since)
            self._down_since = None

    def _keep(self, data: memoryview, keep: bool = True) -> None:
        self.stats.dropped_bytes += self._buffer.push(data) if keep else len(data)
        self.stats.buffered_bytes = len(self._buffer)

    def _send_buffered(self) -> bool:
        """Send the buffer in order; False (and link down, tail kept) if the link was lost meanwhile."""
        while self._buffer and self._handle is not None:
            item = self._buffer.pop()
            try:
                self._send(self._handle, memoryview(item))
            except LinkLost as lost:
                self._lost(lost)
                self.stats.dropped_bytes += self._buffer.push_front(item[lost.sent :])
                self.stats.buffered_bytes = len(self._buffer)
                return False
            self.stats.bytes_written += len(item)
            self.stats.buffered_bytes = len(self._buffer)
        return self._handle is not None

    def _recv_locked(self, handle: H, max_bytes: int) -> bytes:
        try:
            return self._recv_nowait(handle, max_bytes)
        except LinkLost as lost:
            self._lost(lost)
            return b""
