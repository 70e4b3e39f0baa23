"""The host side of flashing over a link: upload a bundle with resume, device info, rollback.

``FlashClient(link)`` speaks the flashing packets of docs/protocol.md over any ``xenoedge.edge.links``
link (serial/USB, TCP, a pty), skipping the masks and status packets the device keeps sending
on the same link. ``flash(bundle)`` sends UPLOAD_BEGIN (the device answers with the offset it
holds: 0, or where an earlier, interrupted upload stopped), then chunks with up to ``window``
of them unacknowledged (go-back-N: an ``OFFSET`` answer rewinds to the device's offset), then
UPLOAD_END, and waits for UPLOAD_RESULT. A silent device (lost chunk, lost answer, cable
pulled) is asked again with UPLOAD_BEGIN, which is idempotent, ``retries`` times.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xenoedge.edge.flashing.errors import FlashError
from xenoedge.edge.protocol.decoder import StreamDecoder
from xenoedge.edge.protocol.flash import (
    FlashCode,
    FlashResult,
    UploadAck,
    decode_info,
    decode_result,
    decode_upload_ack,
    upload_begin_payload,
    upload_chunk_payload,
    upload_end_payload,
)
from xenoedge.edge.protocol.packets import Packet, PacketEncoder, PacketType

__all__ = ["FlashClient", "FlashFailed", "FlashReport", "NoAnswer"]

Progress = Callable[[int, int], None]

#: Results that may arrive while the client waits for something else, kept for the next ask.
_KEPT_RESULTS = (PacketType.UPLOAD_RESULT, PacketType.ROLLBACK_RESULT)


class FlashFailed(FlashError):
    """The device refused or failed the request; ``code`` is its ``FlashCode``, the text its reason."""

    def __init__(self, code: FlashCode | int, message: str, details: dict[str, Any] | None = None):
        self.code, self.details = code, details or {}
        name = code.name if isinstance(code, FlashCode) else str(code)
        super().__init__(f"device says {name}: {message}")


class NoAnswer(FlashError):
    """The device did not answer (cable pulled, device down, wrong port or baud)."""


@dataclass
class FlashReport:
    """What a flash did. Bytes are bundle bytes (payload), ``wire_bytes`` all bytes written to the link."""

    bundle: str
    sha256: str
    total_bytes: int
    resumed_from: int  # offset the device already held at the first BEGIN of this call
    sent_bytes: int  # chunk data bytes sent (resends included)
    wire_bytes: int
    upload_seconds: float  # first BEGIN to the END's acknowledgement
    total_seconds: float  # first BEGIN to UPLOAD_RESULT
    before: dict[str, Any] | None  # the active slot before, as INFO gave it
    after: dict[str, Any] | None  # the installed slot
    selftest: dict[str, Any] = field(default_factory=dict)
    resends: int = 0  # go-back-N rewinds and BEGIN re-syncs
    result: dict[str, Any] = field(default_factory=dict)
    confirmed: bool | None = None  # served its first frames and marked good (None: not watched)
    masks_seen: int = 0  # MASK packets the device sent while this flash ran (it kept serving)

    @property
    def throughput_Bps(self) -> float:
        """Bundle bytes moved by this call per second of upload."""
        moved = self.total_bytes - self.resumed_from
        return moved / self.upload_seconds if self.upload_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "throughput_Bps": self.throughput_Bps}


class FlashClient:
    """Flashing requests over ``link`` (an opened ``xenoedge.edge.links`` link: ``write``, ``read``).

    ack_timeout_s: how long to wait for an answer to a BEGIN or chunk before asking again;
    result_timeout_s: how long the install (verify, unpack, self-test, swap) may take;
    retries: unanswered rounds in a row before ``NoAnswer``; chunk_size: data bytes per chunk
    (capped by the device's ``max_chunk``); window: chunks in flight.
    """

    def __init__(
        self,
        link: Any,
        *,
        ack_timeout_s: float = 2.0,
        result_timeout_s: float = 180.0,
        retries: int = 5,
        chunk_size: int = 4096,
        window: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ):
        if chunk_size < 1 or window < 1:
            raise FlashError(f"chunk_size and window must be >= 1, got {chunk_size} and {window}")
        self.link = link
        self.ack_timeout_s, self.result_timeout_s, self.retries = ack_timeout_s, result_timeout_s, retries
        self.chunk_size, self.window = chunk_size, window
        self._clock = clock
        self._encoder = PacketEncoder()
        self._decoder = StreamDecoder()
        self._pending: list[Packet] = []
        self.unsolicited: list[Packet] = []  # ROLLBACK_RESULTs the device sent on its own
        self.masks_seen = 0  # MASK packets skipped while waiting for answers

    # ---- packets -------------------------------------------------------------------------------
    def _send(self, ptype: PacketType, payload: bytes) -> None:
        self.link.write(self._encoder.encode(ptype, payload))

    def _wait(self, types: tuple[PacketType, ...], timeout_s: float) -> Packet | None:
        """The next packet of one of ``types`` within ``timeout_s`` seconds (others are skipped)."""
        deadline = self._clock() + timeout_s
        while True:
            for i, packet in enumerate(self._pending):
                if packet.type in types:
                    del self._pending[i]
                    return packet
            # an UPLOAD_RESULT that follows a refusing ACK, or a ROLLBACK_RESULT that arrives while
            # INFO is asked for, is kept for the caller that asks next
            self._pending = [p for p in self._pending if p.type in _KEPT_RESULTS][-4:]
            remaining = deadline - self._clock()
            if remaining <= 0:
                return None
            data = self.link.read(65536, timeout_s=min(remaining, 0.05))
            if data:
                for packet in self._decoder.feed(data):
                    self.masks_seen += packet.type == PacketType.MASK
                    if packet.type == PacketType.ROLLBACK_RESULT and PacketType.ROLLBACK_RESULT not in types:
                        self.unsolicited.append(packet)
                    elif packet.type in types or packet.type == PacketType.UPLOAD_RESULT:
                        self._pending.append(packet)

    def _result(self, timeout_s: float) -> FlashResult | None:
        packet = self._wait((PacketType.UPLOAD_RESULT,), timeout_s)
        return decode_result(packet.payload) if packet is not None else None

    # ---- info and rollback -------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """The device's INFO object (docs/protocol.md): slots, engines, sensor, free space, upload."""
        for _ in range(self.retries):
            self._send(PacketType.INFO_REQUEST, b"")
            packet = self._wait((PacketType.INFO,), self.ack_timeout_s)
            if packet is not None:
                return decode_info(packet.payload)
        raise NoAnswer(f"no INFO from the device on {_describe(self.link)} after {self.retries} requests")

    def rollback(self) -> FlashResult:
        """Ask the device to return to its last known-good slot; raises ``FlashFailed`` when it cannot.

        A rollback is not idempotent (a second one may leave the slot the first one reached), so an
        unanswered request is sent again only when INFO shows the device neither ran it (same
        active slot) nor is running it (not busy); a rollback whose answer was lost is reported
        from INFO."""
        before = (self.info().get("active") or {}).get("sha256")
        for _ in range(self.retries):
            self._send(PacketType.ROLLBACK_REQUEST, b"")
            packet = self._wait((PacketType.ROLLBACK_RESULT,), self.ack_timeout_s)
            if packet is None:
                state = self.info()
                active = state.get("active") or {}
                if state.get("busy"):  # running: its result follows
                    packet = self._wait((PacketType.ROLLBACK_RESULT,), self.result_timeout_s)
                    if packet is None:
                        raise NoAnswer(f"no ROLLBACK_RESULT from the device on {_describe(self.link)}")
                elif active.get("sha256") != before:  # done; its answer was lost
                    message = (
                        f"rolled back to {active.get('name')} {active.get('version')} in slot {active.get('slot')}"
                    )
                    return FlashResult(FlashCode.OK, {"message": message, "active": active})
                else:  # the request never arrived
                    continue
            result = decode_result(packet.payload)
            if not result.ok:
                raise FlashFailed(result.code, result.message, result.details)
            return result
        raise NoAnswer(f"no answer to ROLLBACK_REQUEST on {_describe(self.link)} after {self.retries} tries")

    def confirm(self, sha256: str, timeout_s: float, poll_s: float = 0.5) -> bool:
        """Watch the new model's first frames: True once INFO shows slot ``sha256`` active and
        marked good, False when ``timeout_s`` passes first. Raises ``FlashFailed`` (``ROLLED_BACK``)
        when the device rolls back by itself because the model failed its first frames."""
        deadline = self._clock() + timeout_s
        while True:
            self._wait((), 0.02)  # read what arrived (an unasked ROLLBACK_RESULT)
            for packet in self.unsolicited:
                result = decode_result(packet.payload)
                if result.code == FlashCode.ROLLED_BACK:
                    self.unsolicited.remove(packet)
                    raise FlashFailed(result.code, result.message, result.details)
            active = self.info().get("active") or {}
            if active.get("sha256") == sha256 and active.get("good"):
                return True
            if active.get("sha256") not in (sha256, None):  # rolled back: its ROLLBACK_RESULT is on the way
                packet = self._wait((PacketType.ROLLBACK_RESULT,), self.ack_timeout_s)
                packet = packet or next(iter(self.unsolicited), None)
                if packet is not None:
                    result = decode_result(packet.payload)
                    raise FlashFailed(result.code, result.message, result.details)
                raise FlashFailed(FlashCode.ROLLED_BACK, f"the device serves {active.get('version')} again")
            if self._clock() >= deadline:
                return False
            self._wait((), min(poll_s, max(0.0, deadline - self._clock())))

    # ---- upload ------------------------------------------------------------------------------
    def _begin(self, total: int, sha: bytes, version: str) -> UploadAck:
        for _ in range(self.retries):
            self._send(PacketType.UPLOAD_BEGIN, upload_begin_payload(total, sha, version))
            packet = self._wait((PacketType.UPLOAD_ACK,), self.ack_timeout_s)
            if packet is None:
                continue
            ack = decode_upload_ack(packet.payload)
            if ack.code != FlashCode.OK:
                self._raise(ack.code, "UPLOAD_BEGIN refused")
            if ack.total_size == total:
                return ack
        raise NoAnswer(f"no answer to UPLOAD_BEGIN on {_describe(self.link)} after {self.retries} tries")

    def _raise(self, code: FlashCode | int, what: str) -> None:
        result = self._result(min(self.ack_timeout_s, 1.0))  # the reason follows the ACK
        if result is not None:
            raise FlashFailed(result.code, result.message, result.details)
        raise FlashFailed(code, what)

    def upload(
        self, data: bytes, *, sha256: bytes | None = None, version: str = "", progress: Progress | None = None
    ) -> tuple[FlashResult, dict[str, Any]]:
        """Upload ``data`` (the bundle bytes) and wait for the install; returns the result and
        transfer statistics. ``sha256`` defaults to the data's (give another one only to test the
        device's check). Raises ``FlashFailed`` or ``NoAnswer``."""
        total = len(data)
        sha = sha256 if sha256 is not None else hashlib.sha256(data).digest()
        self._pending.clear()  # late answers to an earlier request are not this upload's
        wire_before = getattr(getattr(self.link, "stats", None), "bytes_written", 0)
        started = self._clock()
        ack = self._begin(total, sha, version)
        resumed_from = acked = next_send = ack.next_offset
        size = max(1, min(self.chunk_size, ack.max_chunk))
        sent = resends = silent = 0
        rewound_to: int | None = None
        if progress:
            progress(acked, total)
        while acked < total:
            while next_send < total and next_send - acked < self.window * size:
                piece = data[next_send : next_send + size]
                self._send(PacketType.UPLOAD_CHUNK, upload_chunk_payload(next_send, piece))
                next_send += len(piece)
                sent += len(piece)
            packet = self._wait((PacketType.UPLOAD_ACK, PacketType.UPLOAD_RESULT), self.ack_timeout_s)
            if packet is None:  # lost chunk or answer, or no device: ask where it stands
                silent += 1
                if silent > self.retries:
                    raise NoAnswer(f"device silent for {silent} rounds at offset {acked} of {total}")
                ack = self._begin(total, sha, version)
                acked = next_send = ack.next_offset
                resends += 1
                rewound_to = None
                continue
            silent = 0
            if packet.type == PacketType.UPLOAD_RESULT:
                result = decode_result(packet.payload)
                raise FlashFailed(result.code, result.message, result.details)
            ack = decode_upload_ack(packet.payload)
            if ack.total_size not in (total, 0):  # our upload went idle and another one replaced it
                raise FlashFailed(FlashCode.TIMEOUT, f"the device now holds another upload ({ack.total_size} bytes)")
            if ack.code == FlashCode.OK:
                acked = max(acked, ack.next_offset)
                next_send = max(next_send, acked)
                rewound_to = None
            elif ack.code == FlashCode.OFFSET:
                if ack.next_offset != rewound_to:  # one rewind per gap; later OFFSETs repeat it
                    acked = next_send = rewound_to = ack.next_offset
                    resends += 1
            elif ack.code == FlashCode.NO_UPLOAD:  # the device dropped the upload: start over
                ack = self._begin(total, sha, version)
                acked = next_send = ack.next_offset
                resends += 1
            else:
                self._raise(ack.code, f"chunk refused at offset {acked}")
            if progress:
                progress(acked, total)
        result, upload_done = self._end(sha)
        finished = self._clock()
        stats = {
            "resumed_from": resumed_from,
            "sent_bytes": sent,
            "resends": resends,
            "wire_bytes": getattr(getattr(self.link, "stats", None), "bytes_written", 0) - wire_before,
            "upload_seconds": upload_done - started,
            "total_seconds": finished - started,
        }
        return result, stats

    def _end(self, sha: bytes) -> tuple[FlashResult, float]:
        """Send UPLOAD_END (again when unanswered); return the install's UPLOAD_RESULT and the clock
        time of the END's first answer (the end of the upload proper). A repeated
        END reaches a device already installing (the first END's ACK was lost): it answers BUSY, and
        those BUSY answers are skipped, one per extra END, on the way to the real result."""
        for attempt in range(self.retries):
            self._send(PacketType.UPLOAD_END, upload_end_payload(sha))
            packet = self._wait((PacketType.UPLOAD_ACK, PacketType.UPLOAD_RESULT), self.ack_timeout_s)
            if packet is None:
                continue
            acked_s = self._clock()
            extra_ends = attempt  # BUSY answers that may still come
            result = decode_result(packet.payload) if packet.type == PacketType.UPLOAD_RESULT else None
            deadline = self._clock() + self.result_timeout_s
            while result is None or (result.code == FlashCode.BUSY and extra_ends > 0):
                if result is not None:
                    extra_ends -= 1
                result = self._result(max(0.0, deadline - self._clock()))
                if result is None:
                    raise NoAnswer(f"no UPLOAD_RESULT within {self.result_timeout_s:g} s of UPLOAD_END")
            if not result.ok:
                raise FlashFailed(result.code, result.message, result.details)
            return result, acked_s
        raise NoAnswer(f"no answer to UPLOAD_END on {_describe(self.link)} after {self.retries} tries")

    def flash(
        self,
        bundle: str | Path,
        *,
        progress: Progress | None = None,
        ask_info: bool = True,
        confirm_s: float = 0.0,
    ) -> FlashReport:
        """Upload and install ``bundle`` (a ``.xeb`` file); returns a ``FlashReport``. With
        ``confirm_s`` > 0, then watch up to that many seconds until the device marks it good
        (``confirm``). Raises ``FlashFailed`` (with the device's reason) or ``NoAnswer``; the
        device keeps (or returns to) a working model."""
        path = Path(bundle)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FlashError(f"{path}: cannot read the bundle ({exc.strerror or exc})") from None
        masks_before = self.masks_seen
        before = self.info().get("active") if ask_info else None
        version = _bundle_version(path)
        digest = hashlib.sha256(data).digest()
        result, stats = self.upload(data, sha256=digest, version=version, progress=progress)
        details = result.details
        sha256 = digest.hex()
        confirmed = self.confirm(sha256, confirm_s) if confirm_s > 0 else None
        return FlashReport(
            bundle=str(path),
            sha256=sha256,
            total_bytes=len(data),
            confirmed=confirmed,
            masks_seen=self.masks_seen - masks_before,
            before=before,
            after=details.get("installed"),
            selftest=dict(details.get("selftest") or {}),
            result=details,
            **stats,
        )


def _bundle_version(path: Path) -> str:
    """The bundle's manifest version (read, not trusted: the device verifies), or ""."""
    try:
        from xenoedge.export.bundle import inspect_bundle

        return str(inspect_bundle(path)["version"])[:64]
    except Exception:
        return ""


def _describe(link: Any) -> str:
    return str(getattr(link, "description", type(link).__name__))
