"""Flashing packets: round trips, malformed payloads, and docs/protocol.md agreeing with the code."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from xenoedge.edge.protocol import PacketEncoder, PacketType, ProtocolError, StreamDecoder
from xenoedge.edge.protocol.flash import (
    ACK,
    BEGIN,
    MAX_VERSION_BYTES,
    FlashCode,
    decode_info,
    decode_result,
    decode_upload_ack,
    decode_upload_begin,
    decode_upload_chunk,
    decode_upload_end,
    info_payload,
    result_payload,
    upload_ack_payload,
    upload_begin_payload,
    upload_chunk_payload,
    upload_end_payload,
)

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
SHA = hashlib.sha256(b"bundle").digest()


def test_round_trips_through_frames():
    enc, dec = PacketEncoder(clock_us=lambda: 0), StreamDecoder()
    sent = [
        (PacketType.UPLOAD_BEGIN, upload_begin_payload(123456, SHA, "1.2.3-rc.1")),
        (PacketType.UPLOAD_CHUNK, upload_chunk_payload(2**40, b"\x00\x01" * 700)),
        (PacketType.UPLOAD_END, upload_end_payload(SHA.hex())),
        (PacketType.UPLOAD_ACK, upload_ack_payload(FlashCode.OFFSET, 4096, 123456, 16384)),
        (PacketType.UPLOAD_RESULT, result_payload(FlashCode.SELFTEST_FAILED, {"message": "agreement 0.4 < 0.98"})),
        (PacketType.INFO, info_payload({"active": None, "free_bytes": 5})),
        (PacketType.INFO_REQUEST, b""),
    ]
    got = dec.feed(b"".join(enc.encode(t, p) for t, p in sent))
    assert [p.type for p in got] == [t for t, _ in sent]
    begin, chunk, end, ack, result, info, request = (p.message() for p in got)
    assert (begin.total_size, begin.sha256, begin.version) == (123456, SHA, "1.2.3-rc.1")
    assert chunk.offset == 2**40 and chunk.data == b"\x00\x01" * 700 and end == SHA
    assert (ack.code, ack.next_offset, ack.total_size, ack.max_chunk) == (FlashCode.OFFSET, 4096, 123456, 16384)
    assert not result.ok and result.code == FlashCode.SELFTEST_FAILED and "0.98" in result.message
    assert info == {"active": None, "free_bytes": 5} and request is None


@pytest.mark.parametrize(
    ("decode", "payload"),
    [
        (decode_upload_begin, b"\x00" * 39),
        (decode_upload_begin, b"\x00" * (40 + MAX_VERSION_BYTES + 1)),
        (decode_upload_begin, b"\x00" * 40 + b"\xff\xfe"),
        (decode_upload_chunk, b"\x00" * 8),
        (decode_upload_end, b"\x00" * 31),
        (decode_upload_ack, b"\x00" * 21),
        (decode_result, b"\x00"),
        (decode_result, b"\x00\x00[1]"),
        (decode_info, b"not json"),
    ],
)
def test_malformed_payloads_are_protocol_errors(decode, payload):
    with pytest.raises(ProtocolError):
        decode(payload)


def test_builders_refuse_bad_values():
    with pytest.raises(ProtocolError, match="SHA-256"):
        upload_begin_payload(1, b"short", "1")
    with pytest.raises(ProtocolError, match="exceeds"):
        upload_begin_payload(1, SHA, "x" * 65)
    with pytest.raises(ProtocolError):
        upload_chunk_payload(-1, b"x")
    assert decode_upload_ack(upload_ack_payload(99, 0, 0, 0)).code == 99  # unknown codes pass through


def test_doc_tables_match_the_code():
    for code in FlashCode:
        assert f"| {code.value} | `{code.name}` |" in DOC, code
    assert BEGIN.size == 40 and ACK.size == 22 and "22 bytes" in DOC and "40 to 104 bytes" in DOC
    for offset, size, name in ((0, 2, "code"), (2, 8, "next_offset"), (10, 8, "total_size"), (18, 4, "max_chunk")):
        assert f"| {offset} | {size} | `{name}` |" in DOC
    for offset, size, name in ((0, 8, "total_size"), (8, 32, "sha256"), (40, "0 to 64", "version")):
        assert f"| {offset} | {size} | `{name}` |" in DOC
    info_keys = ("active", "inactive", "engines", "sensor", "free_bytes", "upload", "max_bundle_bytes", "max_chunk")
    for key in (*info_keys, "busy", "serving"):
        assert f"| `{key}` |" in DOC, key
