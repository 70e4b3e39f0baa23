"""Flashing packets of the wire protocol (docs/protocol.md sections 4 and 5): bundle upload,
device info and rollback, in the style of mcumgr's image upload.

Host to device: ``UPLOAD_BEGIN`` (total size, SHA-256 of the whole bundle, version),
``UPLOAD_CHUNK`` (offset + data), ``UPLOAD_END``, ``INFO_REQUEST``, ``ROLLBACK_REQUEST``.
Device to host: ``UPLOAD_ACK`` (the next offset the device expects, after every BEGIN and
CHUNK), ``UPLOAD_RESULT`` (install outcome), ``INFO``, ``ROLLBACK_RESULT``.

Layouts (little-endian, offsets in bytes)::

    UPLOAD_BEGIN   total_size u64 [0], sha256 32 bytes [8], version UTF-8 [40..] (at most 64 bytes)
    UPLOAD_CHUNK   offset u64 [0], data [8..] (1 .. the device's max_chunk bytes)
    UPLOAD_END     sha256 32 bytes [0]
    UPLOAD_ACK     code u16 [0], next_offset u64 [2], total_size u64 [10], max_chunk u32 [18]   (22 bytes)
    UPLOAD_RESULT, ROLLBACK_RESULT   code u16 [0], UTF-8 JSON object [2..]
    INFO           UTF-8 JSON object
    INFO_REQUEST, ROLLBACK_REQUEST   empty

>>> p = upload_chunk_payload(4096, b"abc")
>>> decode_upload_chunk(p)
UploadChunk(offset=4096, data=b'abc')
>>> decode_upload_ack(upload_ack_payload(FlashCode.OK, 10, 20, 4096)).next_offset
10
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from xenoedge.edge.protocol.packets import (
    PacketType,
    ProtocolError,
    as_bytes,
    check_uint,
    json_bytes,
    json_object,
    register_payload_decoder,
    sha256_bytes,
)

SHA256_SIZE = 32
MAX_VERSION_BYTES = 64
U64_MAX = 2**64 - 1
BEGIN = struct.Struct("<Q32s")  # total_size, sha256; then the version text
CHUNK_HEADER = struct.Struct("<Q")  # offset; then the data
ACK = struct.Struct("<HQQI")  # code, next_offset, total_size, max_chunk (22 bytes)
RESULT_HEADER = struct.Struct("<H")  # code; then UTF-8 JSON


class FlashCode(IntEnum):
    """u16 result codes of UPLOAD_ACK, UPLOAD_RESULT and ROLLBACK_RESULT (0 is success)."""

    OK = 0
    BUSY = 1  # another upload or install is in progress
    TOO_LARGE = 2  # bundle over the device's limit, or a chunk over max_chunk
    BAD_REQUEST = 3  # malformed payload, chunk past the end, END before all bytes arrived
    OFFSET = 4  # chunk not at the expected offset: resend from next_offset
    NO_UPLOAD = 5  # chunk or END without a matching BEGIN
    SHA256_MISMATCH = 6  # the received bytes do not hash to the SHA-256 given in BEGIN
    SIGNATURE = 7  # unsigned, wrongly signed or tampered bundle
    INCOMPATIBLE = 8  # another sensor, or no engine of the device runs it
    BAD_BUNDLE = 9  # not a valid bundle (archive, manifest, hashes, unsafe members)
    SELFTEST_FAILED = 10  # the golden self-test did not reach its agreement
    NO_SPACE = 11  # not enough free space on the device
    TIMEOUT = 12  # the upload was idle for longer than the device's timeout and was dropped
    NO_ROLLBACK = 13  # no known-good slot to return to
    ROLLED_BACK = 14  # the new model failed its first frames; the device returned to the previous one
    INTERNAL = 15  # anything else (the text says what)


@dataclass(frozen=True)
class UploadBegin:
    total_size: int  # bytes of the whole bundle file
    sha256: bytes  # 32 bytes, SHA-256 of the whole bundle file
    version: str  # the bundle's semver (informational; the manifest is what counts)


@dataclass(frozen=True)
class UploadChunk:
    offset: int  # byte offset of ``data`` in the bundle file
    data: bytes


@dataclass(frozen=True)
class UploadAck:
    code: FlashCode | int
    next_offset: int  # the offset the device expects next (= bytes it holds)
    total_size: int  # of the upload the device holds (0: none)
    max_chunk: int  # largest chunk data the device accepts, bytes


@dataclass(frozen=True)
class FlashResult:
    code: FlashCode | int
    details: dict[str, Any]  # "message" (text) always; more per packet type (docs/protocol.md)

    @property
    def ok(self) -> bool:
        return self.code == FlashCode.OK

    @property
    def message(self) -> str:
        return str(self.details.get("message", ""))


def _code(code: int) -> FlashCode | int:
    try:
        return FlashCode(code)
    except ValueError:
        return code


def upload_begin_payload(total_size: int, sha256: bytes | str, version: str) -> bytes:
    """UPLOAD_BEGIN: total_size u64, sha256 (32 bytes), version UTF-8 (at most 64 bytes)."""
    text = str(version).encode("utf-8")
    if len(text) > MAX_VERSION_BYTES:
        raise ProtocolError(f"version of {len(text)} UTF-8 bytes exceeds {MAX_VERSION_BYTES}")
    return BEGIN.pack(check_uint("total_size", total_size, U64_MAX), sha256_bytes(sha256)) + text


def decode_upload_begin(payload: bytes) -> UploadBegin:
    payload = as_bytes("payload", payload)
    if not BEGIN.size <= len(payload) <= BEGIN.size + MAX_VERSION_BYTES:
        raise ProtocolError(f"UPLOAD_BEGIN payload of {len(payload)} bytes, expected 40 to 104")
    total, sha = BEGIN.unpack_from(payload)
    try:
        version = payload[BEGIN.size :].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("UPLOAD_BEGIN version is not UTF-8") from None
    return UploadBegin(total, sha, version)


def upload_chunk_payload(offset: int, data: bytes) -> bytes:
    """UPLOAD_CHUNK: offset u64, then the data bytes."""
    return CHUNK_HEADER.pack(check_uint("offset", offset, U64_MAX)) + as_bytes("data", data)


def decode_upload_chunk(payload: bytes) -> UploadChunk:
    payload = as_bytes("payload", payload)
    if len(payload) <= CHUNK_HEADER.size:
        raise ProtocolError(f"UPLOAD_CHUNK payload of {len(payload)} bytes carries no data")
    (offset,) = CHUNK_HEADER.unpack_from(payload)
    return UploadChunk(offset, payload[CHUNK_HEADER.size :])


def upload_end_payload(sha256: bytes | str) -> bytes:
    """UPLOAD_END: the 32-byte SHA-256 of the upload being finished."""
    return sha256_bytes(sha256)


def decode_upload_end(payload: bytes) -> bytes:
    payload = as_bytes("payload", payload)
    if len(payload) != SHA256_SIZE:
        raise ProtocolError(f"UPLOAD_END payload of {len(payload)} bytes, expected {SHA256_SIZE}")
    return payload


def upload_ack_payload(code: int, next_offset: int, total_size: int, max_chunk: int) -> bytes:
    """UPLOAD_ACK (22 bytes): code u16, next_offset u64, total_size u64, max_chunk u32."""
    return ACK.pack(
        check_uint("code", int(code), 0xFFFF),
        check_uint("next_offset", next_offset, U64_MAX),
        check_uint("total_size", total_size, U64_MAX),
        check_uint("max_chunk", max_chunk, 2**32 - 1),
    )


def decode_upload_ack(payload: bytes) -> UploadAck:
    """Inverse of ``upload_ack_payload``; longer payloads are accepted (room for later fields)."""
    payload = as_bytes("payload", payload)
    if len(payload) < ACK.size:
        raise ProtocolError(f"UPLOAD_ACK payload of {len(payload)} bytes, expected {ACK.size}")
    code, next_offset, total, max_chunk = ACK.unpack_from(payload)
    return UploadAck(_code(code), next_offset, total, max_chunk)


def result_payload(code: int, details: dict[str, Any]) -> bytes:
    """UPLOAD_RESULT / ROLLBACK_RESULT: code u16, then one compact UTF-8 JSON object (keys sorted)."""
    return RESULT_HEADER.pack(check_uint("code", int(code), 0xFFFF)) + json_bytes(details, "result details")


def decode_result(payload: bytes) -> FlashResult:
    payload = as_bytes("payload", payload)
    if len(payload) < RESULT_HEADER.size:
        raise ProtocolError(f"result payload of {len(payload)} bytes, expected at least 2")
    (code,) = RESULT_HEADER.unpack_from(payload)
    return FlashResult(_code(code), json_object(payload[RESULT_HEADER.size :], "result details"))


def info_payload(info: dict[str, Any]) -> bytes:
    """INFO: one compact UTF-8 JSON object, keys sorted (keys: docs/protocol.md)."""
    return json_bytes(info, "INFO")


def decode_info(payload: bytes) -> dict[str, Any]:
    return json_object(as_bytes("payload", payload), "INFO payload")


for _type, _decode in (
    (PacketType.UPLOAD_BEGIN, decode_upload_begin),
    (PacketType.UPLOAD_CHUNK, decode_upload_chunk),
    (PacketType.UPLOAD_END, decode_upload_end),
    (PacketType.UPLOAD_ACK, decode_upload_ack),
    (PacketType.UPLOAD_RESULT, decode_result),
    (PacketType.INFO, decode_info),
    (PacketType.ROLLBACK_RESULT, decode_result),
):
    register_payload_decoder(_type, _decode)
