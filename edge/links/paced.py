"""``PacedLink``: a link whose writes go no faster than a UART would carry them.

A pseudo-terminal moves bytes as fast as the kernel copies them and ignores the baud rate, so
timing a transfer over a pty says nothing about a serial line. ``PacedLink(inner, baud)``
holds each write back so that the bytes written since the link opened never run ahead of
``baud / 10`` bytes per second (8N1: a start bit, 8 data bits and a stop bit per byte). Reads
are passed through. Used by ``benchmarks/flash_speed.py`` on both ends of the pty.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from xenoedge.edge.links._base import Link, LinkError

#: UART bits on the wire per payload byte with 8N1 framing
BITS_PER_BYTE = 10


class PacedLink(Link):
    """Wrap an opened or unopened ``inner`` link; writes are paced at ``baud / 10`` bytes per second."""

    def __init__(
        self,
        inner: Link,
        baud: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__()
        if baud <= 0:
            raise LinkError(f"baud must be > 0, got {baud}")
        self.inner, self.baud = inner, int(baud)
        self.bytes_per_s = self.baud / BITS_PER_BYTE
        self._clock, self._sleep = clock, sleep
        self._free_at = 0.0  # clock time when the line has sent everything written so far
        self.description = f"{inner.description} paced at {self.baud} baud"
        self.stats = inner.stats

    def open(self) -> None:
        self.inner.open()
        self._opened = True

    def write(self, data: bytes, *, keep: bool = True) -> bool:
        """Wait until a UART would have shifted out the last byte of ``data``, then hand it on
        (so the peer sees a frame complete no earlier than on a real line)."""
        start = max(self._clock(), self._free_at)
        self._free_at = start + len(memoryview(data).cast("B")) / self.bytes_per_s
        wait = self._free_at - self._clock()
        if wait > 0:
            self._sleep(wait)
        return self.inner.write(data, keep=keep)

    def read(self, max_bytes: int = 4096, timeout_s: float = 0.0) -> bytes:
        return self.inner.read(max_bytes, timeout_s)

    def flush(self, timeout_s: float | None = None) -> bool:
        return self.inner.flush(timeout_s)

    def close(self) -> None:
        self.inner.close()
        self._closed = True

    @property
    def connected(self) -> bool:
        return self.inner.connected

    @property
    def state(self) -> str:
        return self.inner.state

    def down_s(self) -> float:
        return self.inner.down_s()

    def __getattr__(self, name: str) -> Any:  # slave_path and the like of the wrapped link
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
