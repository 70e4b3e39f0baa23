"""Packets of the xenoedge wire protocol (docs/protocol.md): header, CRC-32C, COBS framing,
and the small payloads (HELLO, STATUS, LOG, ERROR). Masks are in ``xenoedge.edge.protocol.masks``.

Everything on the wire is little-endian. A packet is::

    offset size field
    0      2    magic b"XE"
    2      1    version u8 (1)
    3      1    type u8 (PacketType)
    4      1    flags u8 (0 in version 1; receivers ignore it)
    5      4    sequence u32
    9      8    timestamp_us u64 (sender's monotonic clock, microseconds)
    17     4    payload_length u32 (N)
    21     N    payload
    21+N   4    CRC-32C u32 of bytes [0, 21+N)

and a frame on the wire is ``cobs.encode(packet) + b"\\x00"``.

>>> frame = encode_packet(PacketType.LOG, log_payload(20, "hi"), sequence=7, timestamp_us=1)
>>> frame[-1], frame.count(0)
(0, 1)
>>> packet = parse_packet(cobs.decode(frame[:-1]))
>>> packet.type.name, packet.sequence, packet.log().text
('LOG', 7, 'hi')
"""

from __future__ import annotations

import json
import numbers
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from cobs import cobs
from xenoedge.edge.protocol.crc import crc32c

from xenoedge.errors import XenoedgeError

if TYPE_CHECKING:  # pragma: no cover
    from xenoedge.edge.protocol.masks import MaskMessage

#: Decoders of the payload types defined in other modules (MASK in ``masks``, the flashing types
#: in ``flash``), registered there with ``register_payload_decoder``: this module imports neither,
#: so the protocol's modules have no import circle. ``xenoedge.edge.protocol`` imports all of them.
PAYLOAD_DECODERS: dict[int, Callable[[bytes], object]] = {}


def register_payload_decoder(ptype: int, decode: Callable[[bytes], object]) -> None:
    """Make ``Packet.message()`` decode packets of ``ptype`` with ``decode(payload)``."""
    PAYLOAD_DECODERS[int(ptype)] = decode


def _registered(ptype: int) -> Callable[[bytes], object]:
    try:
        return PAYLOAD_DECODERS[int(ptype)]
    except KeyError:
        raise ProtocolError(f"no decoder registered for packet type {ptype} (import xenoedge.edge.protocol)") from None


MAGIC = b"XE"
PROTOCOL_VERSION = 1
HEADER = struct.Struct("<2sBBBIQI")  # magic, version, type, flags, sequence, timestamp_us, payload_length
HEADER_SIZE = HEADER.size  # 21 bytes
CRC_SIZE = 4
OVERHEAD = HEADER_SIZE + CRC_SIZE  # 25 bytes around every payload
MAX_PAYLOAD_BYTES = 16 * 2**20  # 16 MiB: CRC-32C still detects every 3-bit error far beyond this
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
MODEL_ID_SIZE = 16  # bytes; the first 16 bytes of the bundle's SHA-256
MAX_TEXT_BYTES = 4096  # LOG/ERROR text is truncated to this many UTF-8 bytes


class ProtocolError(XenoedgeError):
    """Bytes that are not a valid packet or payload, or a protocol API used wrongly."""


class PacketType(IntEnum):
    """The u8 ``type`` field."""

    HELLO = 1
    MASK = 2
    STATUS = 3
    LOG = 4
    ERROR = 5
    # flashing (edge/protocol/flash.py); host to device:
    UPLOAD_BEGIN = 6
    UPLOAD_CHUNK = 7
    UPLOAD_END = 8
    INFO_REQUEST = 11
    ROLLBACK_REQUEST = 13
    # device to host:
    UPLOAD_ACK = 9
    UPLOAD_RESULT = 10
    INFO = 12
    ROLLBACK_RESULT = 14


class ErrorCode(IntEnum):
    """Suggested u16 codes of ERROR packets (receivers must accept any other code too)."""

    UNKNOWN = 0
    CAMERA_READ = 1  # a frame could not be read; retrying
    CAMERA_LOST = 2  # the camera disappeared; reopening
    BAD_FRAME = 3  # wrong shape, NaNs, ...: the frame was skipped
    ENGINE = 4  # inference failed on a frame
    BUNDLE_REFUSED = 5  # incompatible, tampered or unverifiable bundle
    CALIBRATION = 6  # references missing, stale or mismatched
    LINK = 7  # the output link failed (reported once it is back)
    INTERNAL = 8  # anything else


def model_id_from_sha256(sha256: str | bytes) -> bytes:
    """The 16-byte ``model_id``: the first 16 bytes of a bundle's SHA-256 (64 hex digits or 32 bytes).

    >>> model_id_from_sha256("00" * 16 + "ff" * 16).hex()
    '00000000000000000000000000000000'
    """
    return sha256_bytes(sha256)[:MODEL_ID_SIZE]


def sha256_bytes(sha256: str | bytes) -> bytes:
    """A SHA-256 as its 32 bytes, from 64 hex digits or bytes; ``ProtocolError`` otherwise."""
    if isinstance(sha256, str):
        try:
            sha256 = bytes.fromhex(sha256)
        except ValueError:
            raise ProtocolError(f"not a hex SHA-256: {sha256!r}") from None
    sha256 = as_bytes("sha256", sha256)
    if len(sha256) != 32:
        raise ProtocolError(f"a SHA-256 has 32 bytes, got {len(sha256)}")
    return sha256


def max_frame_bytes(max_payload: int = MAX_PAYLOAD_BYTES) -> int:
    """Largest COBS-encoded frame (without its 0x00) for payloads up to ``max_payload`` bytes."""
    n = OVERHEAD + max_payload
    return n + n // 254 + 1


def monotonic_us() -> int:
    """The default packet clock: ``time.monotonic_ns() // 1000`` (µs, arbitrary epoch)."""
    return time.monotonic_ns() // 1000


def check_uint(name: str, value: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= maximum:
        raise ProtocolError(f"{name} must be an integer in [0, {maximum}], got {value!r}")
    return int(value)


def as_bytes(name: str, data: object) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"{name} must be bytes, got {type(data).__name__}")
    return bytes(data)


def build_packet(ptype: int, payload: bytes, *, sequence: int, timestamp_us: int, flags: int = 0) -> bytes:
    """The unframed packet: 21-byte header + payload + CRC-32C (4 bytes), little-endian."""
    payload = as_bytes("payload", payload)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds MAX_PAYLOAD_BYTES={MAX_PAYLOAD_BYTES}")
    header = HEADER.pack(
        MAGIC,
        PROTOCOL_VERSION,
        check_uint("type", ptype, 255),
        check_uint("flags", flags, 255),
        check_uint("sequence", sequence, U32_MAX),
        check_uint("timestamp_us", timestamp_us, U64_MAX),
        len(payload),
    )
    body = header + payload
    return body + crc32c(body).to_bytes(CRC_SIZE, "little")


def frame_packet(packet: bytes) -> bytes:
    """COBS-encode an unframed packet and append the 0x00 delimiter."""
    return cobs.encode(packet) + b"\x00"


def encode_packet(ptype: int, payload: bytes, *, sequence: int, timestamp_us: int) -> bytes:
    """One frame ready for the link: ``cobs.encode(header + payload + crc) + b"\\x00"``."""
    return frame_packet(build_packet(ptype, payload, sequence=sequence, timestamp_us=timestamp_us))


class PacketEncoder:
    """Numbers packets (u32 sequence, wrapping) and stamps them with an injected µs clock.

    >>> enc = PacketEncoder(clock_us=lambda: 5)
    >>> [parse_packet(cobs.decode(enc.encode(PacketType.LOG, log_payload(20, "x"))[:-1])).sequence for _ in "ab"]
    [0, 1]
    """

    def __init__(self, *, clock_us: Callable[[], int] = monotonic_us, start_sequence: int = 0):
        self.clock_us = clock_us
        self.sequence = check_uint("start_sequence", start_sequence, U32_MAX)

    def encode(self, ptype: int, payload: bytes) -> bytes:
        """The next frame (COBS + 0x00); advances the sequence number."""
        frame = encode_packet(ptype, payload, sequence=self.sequence, timestamp_us=int(self.clock_us()))
        self.sequence = (self.sequence + 1) & U32_MAX
        return frame


@dataclass(frozen=True)
class Packet:
    """One verified packet. ``type`` is a ``PacketType``; the payload is parsed on demand by the helpers."""

    type: PacketType
    sequence: int
    timestamp_us: int
    payload: bytes
    flags: int = 0

    def _expect(self, ptype: PacketType) -> None:
        if self.type != ptype:
            raise ProtocolError(f"packet is {self.type.name}, not {ptype.name}")

    def mask(self) -> MaskMessage:
        """The MASK payload decoded (raises ``ProtocolError`` for another type or a malformed payload)."""
        self._expect(PacketType.MASK)
        return _registered(PacketType.MASK)(self.payload)  # type: ignore[return-value]

    def status(self) -> StatusMessage:
        self._expect(PacketType.STATUS)
        return decode_status(self.payload)

    def hello(self) -> dict[str, Any]:
        self._expect(PacketType.HELLO)
        return decode_hello(self.payload)

    def log(self) -> LogMessage:
        self._expect(PacketType.LOG)
        return decode_log(self.payload)

    def error(self) -> ErrorMessage:
        self._expect(PacketType.ERROR)
        return decode_error(self.payload)

    def message(self) -> object:
        """The payload decoded according to ``type`` (MaskMessage, StatusMessage, dict, LogMessage,
        ErrorMessage; the flashing types as in ``xenoedge.edge.protocol.flash``; None for the empty requests)."""
        own = {
            PacketType.HELLO: self.hello,
            PacketType.STATUS: self.status,
            PacketType.LOG: self.log,
            PacketType.ERROR: self.error,
            PacketType.INFO_REQUEST: lambda: None,
            PacketType.ROLLBACK_REQUEST: lambda: None,
        }
        if self.type in own:
            return own[self.type]()
        return _registered(self.type)(self.payload)


class ChecksumError(ProtocolError):
    """A structurally sound packet whose CRC-32C does not match."""


class UnsupportedPacket(ProtocolError):
    """A packet with a valid CRC but a version or type this receiver does not know."""


def parse_packet(data: bytes) -> Packet:
    """Verify and parse one unframed packet (COBS already removed). Raises ``ProtocolError``
    (``UnsupportedPacket`` for a CRC-valid packet of an unknown version or type)."""
    data = as_bytes("packet", data)
    if len(data) < OVERHEAD:
        raise ProtocolError(f"packet of {len(data)} bytes is shorter than the {OVERHEAD}-byte minimum")
    magic, version, ptype, flags, sequence, timestamp_us, length = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {magic!r}")
    if length != len(data) - OVERHEAD:
        raise ProtocolError(f"payload_length {length} but {len(data) - OVERHEAD} payload bytes")
    expected = int.from_bytes(data[-CRC_SIZE:], "little")
    if crc32c(memoryview(data)[:-CRC_SIZE]) != expected:
        raise ChecksumError("CRC-32C mismatch")
    if version != PROTOCOL_VERSION:
        raise UnsupportedPacket(f"protocol version {version} (this receiver speaks {PROTOCOL_VERSION})")
    try:
        kind = PacketType(ptype)
    except ValueError:
        raise UnsupportedPacket(f"unknown packet type {ptype}") from None
    return Packet(kind, sequence, timestamp_us, data[HEADER_SIZE:-CRC_SIZE], flags)


# ---------------------------------------------------------------- LOG and ERROR


def _text_bytes(text: str) -> bytes:
    if not isinstance(text, str):
        raise ProtocolError(f"text must be str, got {type(text).__name__}")
    raw = text.encode("utf-8")
    if len(raw) > MAX_TEXT_BYTES:  # cut at a character boundary
        raw = raw[:MAX_TEXT_BYTES].decode("utf-8", errors="ignore").encode("utf-8")
    return raw


@dataclass(frozen=True)
class LogMessage:
    level: int  # Python logging levels: 10 DEBUG, 20 INFO, 30 WARNING, 40 ERROR, 50 CRITICAL
    text: str


@dataclass(frozen=True)
class ErrorMessage:
    code: int  # ErrorCode value (any u16 is accepted)
    text: str


def log_payload(level: int, text: str) -> bytes:
    """LOG payload: level u8 (Python logging level) + UTF-8 text (at most 4096 bytes, cut at a character)."""
    return bytes([check_uint("level", level, 255)]) + _text_bytes(text)


def decode_log(payload: bytes) -> LogMessage:
    """Inverse of ``log_payload``; invalid UTF-8 is replaced by U+FFFD."""
    payload = as_bytes("payload", payload)
    if len(payload) < 1:
        raise ProtocolError("LOG payload needs at least 1 byte (level)")
    return LogMessage(payload[0], payload[1:].decode("utf-8", errors="replace"))


def error_payload(code: int, text: str) -> bytes:
    """ERROR payload: code u16 LE + UTF-8 text (at most 4096 bytes, cut at a character)."""
    return check_uint("code", code, 0xFFFF).to_bytes(2, "little") + _text_bytes(text)


def decode_error(payload: bytes) -> ErrorMessage:
    """Inverse of ``error_payload``; invalid UTF-8 is replaced by U+FFFD."""
    payload = as_bytes("payload", payload)
    if len(payload) < 2:
        raise ProtocolError("ERROR payload needs at least 2 bytes (code)")
    return ErrorMessage(int.from_bytes(payload[:2], "little"), payload[2:].decode("utf-8", errors="replace"))


# ---------------------------------------------------------------- HELLO

HELLO_KEYS = (
    "protocol_version",
    "device_id",
    "camera_id",
    "sensor_signature",
    "bundle_name",
    "bundle_version",
    "model_id",
)


def hello_payload(info: dict[str, Any]) -> bytes:
    """HELLO payload: one UTF-8 JSON object, keys sorted, no spaces.

    ``info`` must hold every key of ``HELLO_KEYS`` except ``protocol_version`` (filled in;
    values may be null); ``model_id`` is 32 lowercase hex digits (16 bytes) or null. Extra
    keys are allowed, e.g. ``labels``: [{"id", "name", "color": [r, g, b]}, ...].
    """
    if not isinstance(info, dict):
        raise ProtocolError(f"HELLO info must be a dict, got {type(info).__name__}")
    info = {"protocol_version": PROTOCOL_VERSION, **info}
    missing = [k for k in HELLO_KEYS if k not in info]
    if missing:
        raise ProtocolError(f"HELLO info lacks {', '.join(missing)}")
    if info["protocol_version"] != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol_version must be {PROTOCOL_VERSION}")
    model_id = info["model_id"]
    if isinstance(model_id, (bytes, bytearray)):
        info["model_id"] = model_id = bytes(model_id).hex()
    if model_id is not None and not (
        isinstance(model_id, str) and len(model_id) == 2 * MODEL_ID_SIZE and _is_hex(model_id)
    ):
        raise ProtocolError(f"model_id must be {2 * MODEL_ID_SIZE} lowercase hex digits or null, got {model_id!r}")
    return json_bytes(info, "HELLO info")


def json_bytes(obj: dict[str, Any], what: str) -> bytes:
    """One compact UTF-8 JSON object, keys sorted (HELLO, INFO, flashing results)."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} must be a dict, got {type(obj).__name__}")
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"{what} is not JSON-serialisable: {exc}") from None
    return text.encode("utf-8")


def json_object(data: bytes, what: str) -> dict[str, Any]:
    """Inverse of ``json_bytes``: the decoded JSON object; ``ProtocolError`` for anything else."""
    try:
        obj = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"{what} is not UTF-8 JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    return obj


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def decode_hello(payload: bytes) -> dict[str, Any]:
    """Inverse of ``hello_payload``: the JSON object (it must carry an integer ``protocol_version``)."""
    info = json_object(as_bytes("payload", payload), "HELLO payload")
    if not isinstance(info.get("protocol_version"), int):
        raise ProtocolError("HELLO payload must be a JSON object with an integer protocol_version")
    return info


# ---------------------------------------------------------------- STATUS

STATUS = struct.Struct("<IIQQ16sIIIII")  # 60 bytes, see StatusMessage
#: Optional delivery fields after the first 60 bytes: masks_delivered u64 [60], masks_lost u64 [68],
#: link_down_s u32 [76], link_state u8 [80] (81 bytes in all). A receiver that knows only the
#: first 60 bytes ignores them (section 5 of docs/protocol.md).
STATUS_DELIVERY = struct.Struct("<QQIB")
#: ``link_state`` values: no link state known, up, down (lost after being up), waiting (never up yet)
LINK_STATES = ("unknown", "up", "down", "waiting")


@dataclass(frozen=True)
class StatusMessage:
    """STATUS heartbeat, 60 bytes little-endian (offsets in brackets):

    uptime_s u32 [0], fps_x100 u32 [4] (frames per second x 100), frames u64 [8],
    dropped_frames u64 [16], model_id 16 bytes [24], camera_errors u32 [40],
    frame_errors u32 [44], engine_errors u32 [48], link_errors u32 [52], latency_us u32 [56]
    (per-frame processing time). Counters saturate at their maximum.

    Optional delivery fields (None when the payload is the 60-byte form): masks_delivered u64 [60]
    (masks the link took), masks_lost u64 [68] (masks dropped because the link was down or full),
    link_down_s u32 [76] (seconds down or waiting since start), link_state [80] (``LINK_STATES``).
    """

    uptime_s: int
    fps: float
    frames: int
    dropped_frames: int
    model_id: bytes
    camera_errors: int = 0
    frame_errors: int = 0
    engine_errors: int = 0
    link_errors: int = 0
    latency_us: int = 0
    masks_delivered: int | None = None
    masks_lost: int | None = None
    link_down_s: int | None = None
    link_state: str | None = None


def _saturate(name: str, value: float, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:  # also rejects NaN
        raise ProtocolError(f"{name} must be a non-negative number, got {value!r}")
    return maximum if value >= maximum else min(round(float(value)), maximum)


def checked_model_id(model_id: bytes) -> bytes:
    model_id = as_bytes("model_id", model_id)
    if len(model_id) != MODEL_ID_SIZE:
        raise ProtocolError(f"model_id must be {MODEL_ID_SIZE} bytes, got {len(model_id)}")
    return model_id


def status_payload(
    *,
    uptime_s: float,
    fps: float,
    frames: int,
    dropped_frames: int,
    model_id: bytes,
    camera_errors: int = 0,
    frame_errors: int = 0,
    engine_errors: int = 0,
    link_errors: int = 0,
    latency_us: float = 0,
    masks_delivered: int | None = None,
    masks_lost: int = 0,
    link_down_s: float = 0,
    link_state: str = "unknown",
) -> bytes:
    """STATUS payload (see ``StatusMessage``); fps is sent as round(fps x 100). 60 bytes, or 81 with
    the delivery fields when ``masks_delivered`` is given."""
    base = STATUS.pack(
        _saturate("uptime_s", uptime_s, U32_MAX),
        _saturate("fps x 100", fps * 100 if isinstance(fps, numbers.Real) else fps, U32_MAX),
        _saturate("frames", frames, U64_MAX),
        _saturate("dropped_frames", dropped_frames, U64_MAX),
        checked_model_id(model_id),
        _saturate("camera_errors", camera_errors, U32_MAX),
        _saturate("frame_errors", frame_errors, U32_MAX),
        _saturate("engine_errors", engine_errors, U32_MAX),
        _saturate("link_errors", link_errors, U32_MAX),
        _saturate("latency_us", latency_us, U32_MAX),
    )
    if masks_delivered is None:
        return base
    if link_state not in LINK_STATES:
        raise ProtocolError(f"link_state must be one of {', '.join(LINK_STATES)}, got {link_state!r}")
    return base + STATUS_DELIVERY.pack(
        _saturate("masks_delivered", masks_delivered, U64_MAX),
        _saturate("masks_lost", masks_lost, U64_MAX),
        _saturate("link_down_s", link_down_s, U32_MAX),
        LINK_STATES.index(link_state),
    )


def decode_status(payload: bytes) -> StatusMessage:
    """Inverse of ``status_payload``. Longer payloads are accepted (later versions may append fields);
    the delivery fields are read when the payload holds them (81 bytes or more)."""
    payload = as_bytes("payload", payload)
    if len(payload) < STATUS.size:
        raise ProtocolError(f"STATUS payload of {len(payload)} bytes, expected {STATUS.size}")
    up, fps100, frames, dropped, model_id, cam, frame, engine, link, latency = STATUS.unpack_from(payload)
    extra: tuple = ()
    if len(payload) >= STATUS.size + STATUS_DELIVERY.size:
        delivered, lost, down_s, state = STATUS_DELIVERY.unpack_from(payload, STATUS.size)
        extra = (delivered, lost, down_s, LINK_STATES[state] if state < len(LINK_STATES) else "unknown")
    return StatusMessage(up, fps100 / 100, frames, dropped, model_id, cam, frame, engine, link, latency, *extra)
