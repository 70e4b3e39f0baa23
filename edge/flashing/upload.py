"""The device side of a bundle upload: one resumable upload at a time, stored in ``uploads_dir``.

State machine (docs/upload.md)::

    (none) --BEGIN--> receiving --CHUNK at next_offset--> receiving ... --END + SHA-256 ok--> complete
       ^                  |  BEGIN of the same bundle: resume at next_offset
       +-- discard <------+  BEGIN of another bundle after ``timeout_s`` idle, SHA-256 mismatch, ENOSPC

Files: ``upload.part`` (the bytes, space reserved up front with ``posix_fallocate`` so a full
disk is found at BEGIN, not half-way) and ``upload.json`` (SHA-256, size, version and the
*durable* offset). Chunks are written at once but fsynced only every ``fsync_bytes`` bytes;
``upload.json`` is rewritten atomically (temp + fsync + rename) after each fsync, so after a
power cut or a killed process the upload resumes from a durable offset, never from bytes that
were acknowledged but lost. ``complete`` moves the checked file to ``received.xeb``, the one
file the installer reads.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xenoedge.edge.flashing.errors import FlashError
from xenoedge.edge.protocol.flash import FlashCode, UploadAck, UploadBegin, UploadChunk

from xenoedge.atomic import atomic_write, fsync_dir

__all__ = ["UploadError", "UploadLimits", "UploadManager"]

PART_NAME, STATE_NAME, RECEIVED_NAME = "upload.part", "upload.json", "received.xeb"
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class UploadError(FlashError):
    """An upload request the device refuses; ``code`` is the wire result code (``FlashCode``)."""

    def __init__(self, code: FlashCode, message: str):
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class UploadLimits:
    """Device-side upload limits.

    max_bundle_bytes: largest bundle accepted, bytes. max_chunk: most data bytes per chunk.
    timeout_s: seconds without a chunk after which another upload may replace this one.
    fsync_bytes: received bytes between two fsyncs (and durable-offset records).
    reserve_bytes: free space, bytes, that must remain after the upload and its unpacked copy.
    """

    max_bundle_bytes: int = 64 * 2**20
    max_chunk: int = 16384
    timeout_s: float = 60.0
    fsync_bytes: int = 64 * 1024
    reserve_bytes: int = 1 * 2**20

    def space_needed(self, total_size: int, held: int = 0) -> int:
        """Free bytes needed to take a ``total_size`` upload holding ``held`` bytes already:
        the rest of the file, its unpacked copy in a slot, and the reserve."""
        return (total_size - held) + total_size + self.reserve_bytes


@dataclass
class _Session:
    sha256: bytes
    total_size: int
    version: str
    offset: int  # bytes received (the next offset expected)
    durable: int  # bytes fsynced and recorded in upload.json
    last_chunk_s: float | None  # clock time of the last chunk in this process; None: loaded from disk


class UploadManager:
    """One upload at a time in ``uploads_dir`` (see the module doc). Not thread-safe: call it
    from one thread (the daemon's control thread).

    ``clock``: monotonic seconds (for ``timeout_s``); ``free_bytes``: free space of the folder,
    bytes (default ``shutil.disk_usage``).
    """

    def __init__(
        self,
        uploads_dir: str | os.PathLike,
        limits: UploadLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        free_bytes: Callable[[Path], int] | None = None,
    ):
        self.dir = Path(uploads_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.limits = limits or UploadLimits()
        self._clock = clock
        self._free = free_bytes or (lambda p: shutil.disk_usage(p).free)
        self._file: Any = None
        self._timed_out: bytes | None = None  # SHA-256 of the last upload dropped for being idle
        with contextlib.suppress(FileNotFoundError):  # a finished upload whose install a restart cut short
            self.received_path.unlink()
        self.session: _Session | None = self._load()

    # ---- persistence ----------------------------------------------------------------------
    @property
    def part_path(self) -> Path:
        return self.dir / PART_NAME

    @property
    def received_path(self) -> Path:
        return self.dir / RECEIVED_NAME

    def _load(self) -> _Session | None:
        """The upload a previous run left, resumed from its durable offset; anything unusable is discarded."""
        state_path = self.dir / STATE_NAME
        try:
            state = json.loads(state_path.read_text())
            sha, total, durable = bytes.fromhex(state["sha256"]), int(state["total_size"]), int(state["durable"])
            version = str(state.get("version", ""))
            if len(sha) != 32 or not 0 <= durable <= total or self.part_path.stat().st_size < durable:
                raise ValueError("inconsistent upload state")
        except (OSError, ValueError, KeyError, TypeError):
            self._remove_files()
            return None
        return _Session(sha, total, version, durable, durable, None)

    def _record(self) -> None:
        s = self.session
        state = {"sha256": s.sha256.hex(), "total_size": s.total_size, "version": s.version, "durable": s.durable}
        atomic_write(self.dir / STATE_NAME, lambda f: f.write(json.dumps(state).encode()))

    def _remove_files(self) -> None:
        self._close_file()
        for name in (STATE_NAME, PART_NAME):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / name).unlink()

    def _close_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def discard(self) -> None:
        """Drop the upload held (files and state)."""
        self._remove_files()
        self.session = None

    def close(self) -> None:
        """Fsync what was received and record it, so a restart resumes there; keep the upload."""
        if self.session is not None and self._file is not None:
            with contextlib.suppress(OSError):
                self._sync()
        self._close_file()

    # ---- requests -------------------------------------------------------------------------
    def ack(self, code: FlashCode = FlashCode.OK) -> UploadAck:
        s = self.session
        return UploadAck(code, s.offset if s else 0, s.total_size if s else 0, self.limits.max_chunk)

    def status(self) -> dict[str, Any] | None:
        """The upload held, for INFO: sha256, version, next_offset, total_size (None: none)."""
        s = self.session
        if s is None:
            return None
        return {"sha256": s.sha256.hex(), "version": s.version, "next_offset": s.offset, "total_size": s.total_size}

    def begin(self, request: UploadBegin) -> UploadAck:
        """Start or resume an upload. Raises ``UploadError`` (TOO_LARGE, BUSY, NO_SPACE, BAD_REQUEST)."""
        if request.total_size <= 0:
            raise UploadError(FlashCode.BAD_REQUEST, "UPLOAD_BEGIN with a total size of 0 bytes")
        if request.total_size > self.limits.max_bundle_bytes:
            raise UploadError(
                FlashCode.TOO_LARGE,
                f"bundle of {request.total_size} bytes exceeds the device's limit of {self.limits.max_bundle_bytes}",
            )
        s = self.session
        if s is not None and s.sha256 == request.sha256 and s.total_size == request.total_size:
            return self.ack()  # resume
        if s is not None and s.last_chunk_s is not None and self._clock() - s.last_chunk_s < self.limits.timeout_s:
            raise UploadError(
                FlashCode.BUSY,
                f"another upload ({s.version or s.sha256.hex()[:12]}, {s.offset}/{s.total_size} bytes) is in "
                f"progress; it may be replaced after {self.limits.timeout_s:g} s without a chunk",
            )
        if s is not None:
            self._timed_out = s.sha256  # its host learns why at its next END (TIMEOUT)
        self.discard()
        needed = self.limits.space_needed(request.total_size)
        free = self._free(self.dir)
        if free < needed:
            raise UploadError(
                FlashCode.NO_SPACE,
                f"not enough free space: {free} bytes free in {self.dir}, {needed} needed for a "
                f"{request.total_size}-byte bundle (upload, unpacked copy, {self.limits.reserve_bytes} reserve)",
            )
        try:
            with open(self.part_path, "wb") as f:
                with contextlib.suppress(AttributeError, OSError):  # reserve the space now where the fs can
                    os.posix_fallocate(f.fileno(), 0, request.total_size)
                f.flush()
                os.fsync(f.fileno())
            self.session = _Session(request.sha256, request.total_size, request.version, 0, 0, self._clock())
            self._record()
            fsync_dir(self.dir)
        except OSError as exc:
            self.discard()
            raise self._os_error(exc, "starting the upload") from None
        return self.ack()

    def chunk(self, request: UploadChunk) -> UploadAck:
        """Store one chunk at the expected offset; answer the next offset. A chunk at another
        offset is answered ``OFFSET`` (nothing written). Raises ``UploadError``."""
        s = self.session
        if s is None:
            raise UploadError(FlashCode.NO_UPLOAD, "UPLOAD_CHUNK without an upload: send UPLOAD_BEGIN first")
        if len(request.data) > self.limits.max_chunk:
            raise UploadError(FlashCode.TOO_LARGE, f"chunk of {len(request.data)} bytes > {self.limits.max_chunk}")
        if request.offset != s.offset:
            return self.ack(FlashCode.OFFSET)
        if request.offset + len(request.data) > s.total_size:
            raise UploadError(
                FlashCode.BAD_REQUEST,
                f"chunk at {request.offset} of {len(request.data)} bytes runs past the end ({s.total_size} bytes)",
            )
        try:
            if self._file is None:
                self._file = open(self.part_path, "r+b")  # kept open across chunks
            self._file.seek(request.offset)
            self._file.write(request.data)
            s.offset += len(request.data)
            s.last_chunk_s = self._clock()
            if s.offset - s.durable >= self.limits.fsync_bytes or s.offset == s.total_size:
                self._sync()
        except OSError as exc:
            self.discard()
            raise self._os_error(exc, f"writing the chunk at {request.offset}") from None
        return self.ack()

    def _sync(self) -> None:
        s = self.session
        if self._file is None:  # nothing written by this process: what it holds is already durable
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        s.durable = s.offset
        self._record()

    def complete(self, sha256: bytes) -> Path:
        """Check the finished upload (every byte, SHA-256) and move it to ``received.xeb``; return
        that path. Raises ``UploadError`` (NO_UPLOAD, BAD_REQUEST, SHA256_MISMATCH: upload dropped)."""
        s = self.session
        if (s is None or s.sha256 != sha256) and sha256 == self._timed_out:
            raise UploadError(
                FlashCode.TIMEOUT,
                f"this upload was idle for more than {self.limits.timeout_s:g} s and was replaced by another one",
            )
        if s is None or s.sha256 != sha256:
            raise UploadError(FlashCode.NO_UPLOAD, "UPLOAD_END for an upload the device does not hold")
        if s.offset != s.total_size:
            raise UploadError(
                FlashCode.BAD_REQUEST, f"UPLOAD_END after {s.offset} of {s.total_size} bytes: send the rest first"
            )
        from xenoedge.export.bundle.archive import file_sha256

        try:
            self._sync()
            self._close_file()
            digest = file_sha256(self.part_path)
        except OSError as exc:
            self.discard()
            raise self._os_error(exc, "checking the upload") from None
        if digest != s.sha256.hex():
            self.discard()
            raise UploadError(
                FlashCode.SHA256_MISMATCH,
                f"the {s.total_size} bytes received hash to {digest}, not to the "
                f"{s.sha256.hex()} announced in UPLOAD_BEGIN; upload dropped",
            )
        os.replace(self.part_path, self.received_path)
        fsync_dir(self.dir)
        self.discard()
        return self.received_path

    def _os_error(self, exc: OSError, what: str) -> UploadError:
        if exc.errno in _FULL:
            return UploadError(FlashCode.NO_SPACE, f"device storage full while {what} ({os.strerror(exc.errno)})")
        return UploadError(FlashCode.INTERNAL, f"{what}: {exc.strerror or exc}")
