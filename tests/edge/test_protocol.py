"""Wire protocol: CRC, packets, payload round trips, masks, the stream decoder, test vectors."""

import numpy as np
import pytest
from cobs import cobs
from xenoedge.edge.protocol import (
    MAX_PAYLOAD_BYTES,
    OVERHEAD,
    ErrorCode,
    MaskEncoding,
    PacketEncoder,
    PacketType,
    ProtocolError,
    StreamDecoder,
    build_packet,
    crc32c,
    decode_error,
    decode_hello,
    decode_log,
    decode_mask,
    decode_status,
    encode_packet,
    error_payload,
    hello_payload,
    log_payload,
    mask_payload,
    model_id_from_sha256,
    parse_packet,
    rle_decode,
    rle_encode,
    status_payload,
)
from xenoedge.edge.protocol.crc import crc32c_python
from xenoedge.edge.protocol.vectors import _payload, load_vectors, make_vectors

MODEL_ID = bytes(range(16))
HELLO = {
    "device_id": "d",
    "camera_id": "c",
    "sensor_signature": "tivita",
    "bundle_name": "b",
    "bundle_version": "1.2.3",
    "model_id": MODEL_ID.hex(),
}


def unframe(frame: bytes):
    assert frame.endswith(b"\x00") and frame.count(0) == 1
    return parse_packet(cobs.decode(frame[:-1]))


def test_crc32c_check_value_and_both_implementations_agree():
    assert crc32c(b"123456789") == 0xE3069283 == crc32c_python(b"123456789")
    data = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    assert crc32c(data) == crc32c_python(data)
    assert crc32c(data[1000:], crc32c(data[:1000])) == crc32c(data)


def test_packet_layout_is_the_documented_one():
    packet = build_packet(PacketType.LOG, b"\x14ok", sequence=0x01020304, timestamp_us=0x1122334455667788)
    assert packet[:2] == b"XE" and packet[2] == 1 and packet[3] == 4 and packet[4] == 0
    assert packet[5:9] == bytes([4, 3, 2, 1])
    assert packet[9:17] == bytes.fromhex("8877665544332211")
    assert packet[17:21] == (3).to_bytes(4, "little") and packet[21:24] == b"\x14ok"
    assert packet[24:] == crc32c(packet[:24]).to_bytes(4, "little") and len(packet) == OVERHEAD + 3


@pytest.mark.parametrize(
    ("ptype", "payload", "decode", "expected"),
    [
        (PacketType.LOG, log_payload(30, "température ok"), decode_log, (30, "température ok")),
        (PacketType.ERROR, error_payload(ErrorCode.BAD_FRAME, "NaN"), decode_error, (3, "NaN")),
    ],
)
def test_text_round_trips(ptype, payload, decode, expected):
    packet = unframe(encode_packet(ptype, payload, sequence=5, timestamp_us=99))
    assert (packet.type, packet.sequence, packet.timestamp_us) == (ptype, 5, 99)
    assert tuple(vars(decode(packet.payload)).values()) == expected
    assert tuple(vars(packet.message()).values()) == expected


def test_text_is_cut_at_4096_bytes_on_a_character_boundary():
    text = decode_log(log_payload(20, "é" * 3000)).text
    assert len(text.encode()) <= 4096 and set(text) == {"é"}


def test_hello_round_trip_and_checks():
    payload = hello_payload({**HELLO, "labels": [{"id": 0, "name": "bg", "color": [0, 0, 0]}]})
    info = unframe(encode_packet(PacketType.HELLO, payload, sequence=0, timestamp_us=0)).hello()
    assert info == {**HELLO, "protocol_version": 1, "labels": [{"id": 0, "name": "bg", "color": [0, 0, 0]}]}
    assert decode_hello(hello_payload({**HELLO, "model_id": MODEL_ID}))["model_id"] == MODEL_ID.hex()
    with pytest.raises(ProtocolError, match="lacks camera_id"):
        hello_payload({k: v for k, v in HELLO.items() if k != "camera_id"})
    with pytest.raises(ProtocolError, match="model_id"):
        hello_payload({**HELLO, "model_id": "xyz"})
    for bad in (b"\xff", b"[1]", b"{}", b'{"protocol_version": "1"}'):
        with pytest.raises(ProtocolError):
            decode_hello(bad)


def test_status_round_trip_saturation_and_checks():
    payload = status_payload(
        uptime_s=12.4, fps=29.97, frames=2**40, dropped_frames=3, model_id=MODEL_ID, link_errors=2**40, latency_us=900
    )
    assert len(payload) == 60
    status = decode_status(payload)
    assert (status.uptime_s, status.fps, status.frames, status.dropped_frames) == (12, 29.97, 2**40, 3)
    assert status.model_id == MODEL_ID and status.link_errors == 2**32 - 1 and status.latency_us == 900
    assert decode_status(status_payload(uptime_s=0, fps=np.float32(1.5), frames=np.int64(2), dropped_frames=0,
                                        model_id=MODEL_ID)).frames == 2  # fmt: skip
    for bad in ({"fps": -1.0}, {"fps": float("nan")}, {"model_id": b"short"}, {"frames": "3"}):
        kwargs = {"uptime_s": 0, "fps": 1.0, "frames": 0, "dropped_frames": 0, "model_id": MODEL_ID, **bad}
        with pytest.raises(ProtocolError):
            status_payload(**kwargs)
    with pytest.raises(ProtocolError):
        decode_status(payload[:59])


def test_packet_builder_refuses_misuse():
    for kwargs in ({"sequence": -1, "timestamp_us": 0}, {"sequence": 2**32, "timestamp_us": 0},
                   {"sequence": 0, "timestamp_us": -5}, {"sequence": 0.5, "timestamp_us": 0}):  # fmt: skip
        with pytest.raises(ProtocolError):
            encode_packet(PacketType.LOG, b"\x14", **kwargs)
    with pytest.raises(ProtocolError):
        encode_packet(PacketType.LOG, "text", sequence=0, timestamp_us=0)
    with pytest.raises(ProtocolError):
        build_packet(PacketType.MASK, bytes(MAX_PAYLOAD_BYTES + 1), sequence=0, timestamp_us=0)
    with pytest.raises(ProtocolError):
        unframe(encode_packet(PacketType.LOG, b"\x14", sequence=0, timestamp_us=0)).mask()


def test_model_id_is_the_first_16_bytes_of_the_sha256():
    import hashlib

    digest = hashlib.sha256(b"bundle")
    assert model_id_from_sha256(digest.hexdigest()) == model_id_from_sha256(digest.digest()) == digest.digest()[:16]
    for bad in ("zz" * 32, "ab", b"x" * 31):
        with pytest.raises(ProtocolError):
            model_id_from_sha256(bad)


def test_packet_encoder_numbers_and_stamps_with_the_injected_clock():
    clock = iter([10, 20, 30])
    enc = PacketEncoder(clock_us=lambda: next(clock), start_sequence=2**32 - 2)
    packets = [unframe(enc.encode(PacketType.LOG, log_payload(20, "x"))) for _ in range(3)]
    assert [(p.sequence, p.timestamp_us) for p in packets] == [(2**32 - 2, 10), (2**32 - 1, 20), (0, 30)]


# ---------------------------------------------------------------- masks


def test_rle_is_exact_on_edge_cases():
    for classes in (
        np.zeros((1, 1), np.uint8),
        np.full((3, 5), 255, np.uint8),
        np.arange(256, dtype=np.uint8).reshape(16, 16),
        np.zeros((300, 700), np.uint8),  # one run of 210000: 3-byte varint
    ):
        data = rle_encode(classes)
        np.testing.assert_array_equal(rle_decode(data, classes.size).reshape(classes.shape), classes)
    assert rle_encode(np.zeros((1, 129), np.uint8)).hex() == "01000000" + "00" + "8001"  # 128 = 0x80 0x01


@pytest.mark.parametrize("encoding", list(MaskEncoding))
@pytest.mark.parametrize("with_counts", [True, False])
def test_mask_round_trip_every_encoding(encoding, with_counts):
    rng = np.random.default_rng(1)
    classes = np.repeat(rng.integers(0, 7, (30, 1), dtype=np.uint8), 41, axis=1)
    payload = mask_payload(
        classes, frame_index=77, model_id=MODEL_ID, n_classes=7, with_counts=with_counts, encoding=encoding
    )
    msg = unframe(encode_packet(PacketType.MASK, payload, sequence=1, timestamp_us=2)).mask()
    np.testing.assert_array_equal(msg.classes, classes)
    assert (msg.frame_index, msg.model_id, msg.class_count, msg.encoding) == (77, MODEL_ID, 7, encoding)
    assert (msg.width, msg.height) == (41, 30)
    if with_counts:
        np.testing.assert_array_equal(msg.counts, np.bincount(classes.ravel(), minlength=7))
    else:
        assert msg.counts is None


def test_mask_encoder_picks_the_smallest():
    smooth = np.zeros((10, 100), np.uint8)  # RLE: 6 bytes, zlib adds >= 8, raw 1000
    smooth[5:] = 1
    noise = np.random.default_rng(0).integers(0, 200, (32, 32), dtype=np.uint8)  # incompressible
    checker = (np.add.outer(np.arange(64), np.arange(64)) % 2).astype(np.uint8)
    picked = {
        name: decode_mask(mask_payload(c, frame_index=0, model_id=MODEL_ID, n_classes=200)).encoding
        for name, c in {"smooth": smooth, "noise": noise, "checker": checker}.items()
    }
    assert picked == {"smooth": MaskEncoding.RLE, "noise": MaskEncoding.RAW, "checker": MaskEncoding.RLE_ZLIB}


def test_mask_payload_refuses_misuse():
    ok = np.zeros((2, 2), np.uint8)
    for classes, n in ((ok.astype(np.int32), 2), (ok[None], 2), (np.zeros((0, 3), np.uint8), 2), (ok + 2, 2),
                       (ok, 0), (ok, 256), (np.zeros((1, 70000), np.uint8), 2)):  # fmt: skip
        with pytest.raises(ProtocolError):
            mask_payload(classes, frame_index=0, model_id=MODEL_ID, n_classes=n)
    with pytest.raises(ProtocolError):
        mask_payload(ok, frame_index=0, model_id=b"x", n_classes=2)


def test_decode_mask_refuses_malformed_payloads():
    classes = np.array([[0, 1], [1, 2]], np.uint8)
    good = bytearray(mask_payload(classes, frame_index=0, model_id=MODEL_ID, n_classes=3, encoding=MaskEncoding.RLE))
    bad = []
    for offset, value in ((4, 0), (8, 2), (9, 7), (10, 0x80), (28, 9)):  # width 0, too few classes, encoding, flags
        b = bytearray(good)
        b[offset] = value
        bad.append(bytes(b))
    bad += [bytes(good[:20]), bytes(good[:-1]), bytes(good) + b"\x00", b""]
    huge = bytearray(good)
    huge[4:8] = b"\xff\xff\xff\xff"  # 65535 x 65535 pixels
    bad.append(bytes(huge))
    bomb = mask_payload(np.zeros((64, 64), np.uint8), frame_index=0, model_id=MODEL_ID, n_classes=1,
                        with_counts=False, encoding=MaskEncoding.RLE_ZLIB)  # fmt: skip
    bomb = bytearray(bomb)
    bomb[4:6] = (8).to_bytes(2, "little")  # claims 8 x 64 but inflates to runs of 4096 pixels
    bad.append(bytes(bomb))
    for payload in bad:
        with pytest.raises(ProtocolError):
            decode_mask(payload)


# ---------------------------------------------------------------- stream decoder


def _frames(n: int, seed: int = 0) -> tuple[list[bytes], list[bytes]]:
    """n frames of mixed types and their payloads."""
    rng = np.random.default_rng(seed)
    frames, payloads = [], []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            classes = np.repeat(rng.integers(0, 5, (20, 1), dtype=np.uint8), 30, axis=1)
            ptype, payload = PacketType.MASK, mask_payload(classes, frame_index=i, model_id=MODEL_ID, n_classes=5)
        elif kind == 1:
            ptype, payload = PacketType.LOG, log_payload(20, f"frame {i} " + "x" * int(rng.integers(0, 300)))
        else:
            ptype, payload = (
                PacketType.STATUS,
                status_payload(uptime_s=i, fps=30.0, frames=i, dropped_frames=0, model_id=MODEL_ID),
            )
        frames.append(encode_packet(ptype, payload, sequence=i, timestamp_us=1000 * i))
        payloads.append(payload)
    return frames, payloads


def test_stream_decoder_any_chunking():
    frames, payloads = _frames(30)
    stream = b"".join(frames)
    for size in (1, 7, 1000, len(stream)):
        dec = StreamDecoder()
        got = [p for i in range(0, len(stream), size) for p in dec.feed(stream[i : i + size])]
        assert [p.payload for p in got] == payloads
        assert (dec.stats.packets, dec.stats.crc_errors, dec.stats.framing_errors) == (30, 0, 0)
        assert dec.stats.bytes == len(stream) and dec.buffered == 0


def test_stream_decoder_counts_crc_errors_and_sequence_gaps():
    frames, _ = _frames(10)
    packet = bytearray(cobs.decode(frames[3][:-1]))
    packet[30] ^= 0x01
    frames[3] = cobs.encode(bytes(packet)) + b"\x00"
    dec = StreamDecoder()
    got = dec.feed(b"".join(frames[:5] + frames[7:]))
    assert [p.sequence for p in got] == [0, 1, 2, 4, 7, 8, 9]
    s = dec.stats
    assert (s.crc_errors, s.framing_errors, s.sequence_gaps, s.missing_packets) == (1, 0, 2, 3)
    dec.feed(frames[0])  # a restarted sender
    assert dec.stats.sequence_resets == 1


def test_stream_decoder_recovers_around_a_lost_or_damaged_delimiter():
    frames, payloads = _frames(6)
    merged = frames[0] + frames[1][:-1] + frames[2][:-1] + b"\x5a" + frames[3] + b"garbage" + frames[4] + frames[5]
    dec = StreamDecoder()
    assert [p.payload for p in dec.feed(merged)] == payloads


def test_stream_decoder_skips_unknown_versions_and_types_and_bounds_memory():
    good = encode_packet(PacketType.LOG, b"\x14", sequence=0, timestamp_us=0)
    raw = bytearray(build_packet(PacketType.LOG, b"\x14", sequence=1, timestamp_us=0))
    for offset, value in ((2, 2), (3, 99)):
        b = bytearray(raw)
        b[offset] = value
        b[-4:] = crc32c(bytes(b[:-4])).to_bytes(4, "little")
        dec = StreamDecoder()
        assert len(dec.feed(cobs.encode(bytes(b)) + b"\x00" + good)) == 1 and dec.stats.unsupported == 1
    dec = StreamDecoder(max_payload=100)
    assert dec.feed(b"\x01" * 1000) == [] and dec.buffered == 0 and dec.stats.framing_errors == 1
    assert len(dec.feed(b"\x00" + good)) == 1
    with pytest.raises(ProtocolError):
        dec.feed("text")
    with pytest.raises(ProtocolError):
        StreamDecoder(max_payload=-1)


def test_salvage_of_a_hostile_frame_takes_linear_time():
    import time

    dec = StreamDecoder()
    t0 = time.perf_counter()
    assert dec.feed(b"\x03XE" * 200_000 + b"\x00") == []  # a packet start every 3 bytes
    assert time.perf_counter() - t0 < 10 and dec.stats.framing_errors == 1


def test_stream_decoder_finish_accepts_a_packet_lacking_only_its_delimiter():
    frames, payloads = _frames(2)
    dec = StreamDecoder()
    assert len(dec.feed(frames[0] + frames[1][:-1])) == 1
    assert [p.payload for p in dec.finish()] == payloads[1:]
    assert dec.feed(frames[0][:10]) == [] and dec.finish() == [] and dec.stats.framing_errors == 1


def test_1000_packets_with_1_percent_of_bytes_corrupted_yield_every_undamaged_one():
    frames, payloads = _frames(1000, seed=3)
    stream = np.frombuffer(b"".join(frames), dtype=np.uint8).copy()
    rng = np.random.default_rng(4)
    hit = rng.choice(len(stream), size=len(stream) // 100, replace=False)
    stream[hit] ^= rng.integers(1, 256, hit.size, dtype=np.uint8)  # every hit byte changes
    bounds = np.cumsum([0] + [len(f) for f in frames])
    damaged = np.zeros(len(stream), bool)
    damaged[hit] = True
    intact = [i for i in range(1000) if not damaged[bounds[i] : bounds[i + 1] - 1].any()]  # delimiter may be hit
    dec = StreamDecoder()
    got = dec.feed(stream.tobytes()) + dec.finish()
    by_sequence = {p.sequence: p.payload for p in got}
    assert set(intact) <= set(by_sequence), sorted(set(intact) - set(by_sequence))
    assert all(by_sequence[s] == payloads[s] for s in by_sequence)  # nothing damaged slipped through
    assert dec.stats.crc_errors + dec.stats.framing_errors > 0
    print(f"\n1% corruption: {len(intact)} intact of 1000, {len(got)} decoded, stats {dec.stats.as_dict()}")


# ---------------------------------------------------------------- vectors


def test_vectors_file_matches_the_code():
    stored, fresh = load_vectors(), make_vectors()
    assert stored["crc32c_check"] == fresh["crc32c_check"] == {"input": "123456789", "crc": "e3069283"}
    assert [v["name"] for v in stored["vectors"]] == [v["name"] for v in fresh["vectors"]]
    for old, new in zip(stored["vectors"], fresh["vectors"], strict=True):
        ptype = PacketType[old["type"]]
        frame = bytes.fromhex(old["frame"])
        packet = unframe(frame)
        assert bytes.fromhex(old["packet"]) == cobs.decode(frame[:-1])
        assert (packet.type, packet.sequence, packet.timestamp_us) == (ptype, old["sequence"], old["timestamp_us"])
        assert packet.payload == bytes.fromhex(old["payload"])
        if ptype == PacketType.MASK:
            msg = packet.mask()
            assert msg.classes.tolist() == old["fields"]["classes"] and msg.frame_index == old["fields"]["frame_index"]
            if msg.encoding == MaskEncoding.RLE_ZLIB:  # deflate bytes may differ between zlib builds
                assert decode_mask(_payload(ptype, old["fields"])).classes.tolist() == old["fields"]["classes"]
                continue
        assert new == old
