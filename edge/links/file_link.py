"""File link for recordings (append, fsync on flush and close) and a null link for benchmarks."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from xenoedge.edge.links import fdio
from xenoedge.edge.links._base import (
    DEFAULT_BACKOFF_S,
    DEFAULT_BUFFER_BYTES,
    Clock,
    Link,
    LinkError,
    ReconnectingLink,
    Sleep,
)


class FileLink(ReconnectingLink[int]):
    """Append everything written to ``path`` (a recording of the byte stream, replayable by a receiver).

    The file is created if missing (its folder must exist) and never truncated. ``flush`` and
    ``close`` fsync it. A failed write (disk full, medium removed) takes the link down like an
    unplug: data is buffered and the file reopened by path with backoff. There is no inbound
    channel: ``read`` waits ``timeout_s`` seconds and returns ``b""``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        reconnect: bool = True,
        backoff: Sequence[float] = DEFAULT_BACKOFF_S,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        super().__init__(reconnect=reconnect, backoff=backoff, buffer_bytes=buffer_bytes, clock=clock, sleep=sleep)
        self.path = Path(path)
        self.description = f"file:{self.path}"

    def _connect(self) -> int:
        if not self.path.parent.is_dir():
            raise LinkError(f"folder {self.path.parent} does not exist")
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _disconnect(self, handle: int) -> None:
        try:
            os.fsync(handle)
        except OSError:
            pass
        fdio.close_quietly(handle)

    def _send(self, handle: int, data: memoryview) -> None:
        fdio.send_all(handle, data, stall_timeout_s=1.0, clock=self._clock)

    def _recv_nowait(self, handle: int, max_bytes: int) -> bytes:
        return b""

    def _wait_readable(self, handle: int, timeout_s: float) -> None:
        self._sleep(timeout_s)

    def _drain_os(self, handle: int, timeout_s: float) -> bool:
        try:
            os.fsync(handle)
        except OSError:
            return False
        return True


class NullLink(Link):
    """Accepts and discards everything (counts bytes); for benchmarks. ``read`` waits ``timeout_s`` and returns b""."""

    description = "null"

    def __init__(self, *, sleep: Sleep = time.sleep) -> None:
        super().__init__()
        self._sleep = sleep

    @property
    def connected(self) -> bool:
        return self._opened and not self._closed

    def open(self) -> None:
        if self._closed:
            raise LinkError("null: link is closed")
        self._opened = True

    def write(self, data: bytes, *, keep: bool = True) -> bool:
        self._check_usable()
        self.stats.bytes_written += memoryview(data).nbytes
        self.stats.writes_ok += 1
        return True

    def read(self, max_bytes: int = 4096, timeout_s: float = 0.0) -> bytes:
        self._check_usable()
        if timeout_s > 0:
            self._sleep(timeout_s)
        return b""

    def flush(self, timeout_s: float | None = None) -> bool:
        self._check_usable()
        return True

    def close(self) -> None:
        self._closed = True
