"""A receiver written from docs/protocol.md alone (plain Python, no xenoedge.edge.protocol code) reads the vectors."""

import json
import struct
import zlib

from xenoedge.edge.protocol.vectors import load_vectors


def cobs_decode(frame: bytes) -> bytes:
    """Section 2: read a code c, copy c - 1 bytes, append 0 if c < 0xFF and more bytes follow."""
    out, i = bytearray(), 0
    while i < len(frame):
        c = frame[i]
        out += frame[i + 1 : i + c]
        i += c
        if c < 0xFF and i < len(frame):
            out.append(0)
    return bytes(out)


def crc32c(data: bytes) -> int:
    """Section 3, bitwise."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def leb128(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def read_mask(p: bytes) -> dict:
    frame_index, w, h, c, encoding, flags = struct.unpack_from("<IHHBBB", p)
    off, counts = 28, None
    if flags & 1:
        counts = list(struct.unpack_from(f"<{c}I", p, off))
        off += 4 * c
    data = p[off:]
    if encoding == 2:
        flat = list(data)
    else:
        if encoding == 1:
            data = zlib.decompress(data)
        (runs,) = struct.unpack_from("<I", data)
        values, i, flat = data[4 : 4 + runs], 4 + runs, []
        for v in values:
            n, i = leb128(data, i)
            flat += [v] * (n + 1)
    rows = [flat[y * w : (y + 1) * w] for y in range(h)]
    return {"frame_index": frame_index, "classes": rows, "model_id": p[12:28].hex(), "counts": counts}


def test_a_receiver_written_from_the_doc_reads_every_vector():
    vectors = load_vectors()
    assert f"{crc32c(b'123456789'):08x}" == vectors["crc32c_check"]["crc"]
    for v in vectors["vectors"]:
        frame = bytes.fromhex(v["frame"])
        assert frame[-1] == 0 and 0 not in frame[:-1]
        packet = cobs_decode(frame[:-1])
        magic, version, ptype, flags, seq, ts, n = struct.unpack_from("<2sBBBIQI", packet)
        assert (magic, version, flags, seq, ts, n) == (b"XE", 1, 0, v["sequence"], v["timestamp_us"], len(packet) - 25)
        assert int.from_bytes(packet[-4:], "little") == crc32c(packet[:-4])
        payload, f = packet[21:-4], v["fields"]
        if ptype == 1:
            assert json.loads(payload) == {**f["info"], "protocol_version": 1}
        elif ptype == 2:
            mask = read_mask(payload)
            assert mask["classes"] == f["classes"] and mask["frame_index"] == f["frame_index"]
            assert mask["model_id"] == f["model_id"]
            if f["with_counts"]:
                flat = [x for row in f["classes"] for x in row]
                assert mask["counts"] == [flat.count(k) for k in range(f["n_classes"])]
        elif ptype == 3:
            up, fps100, frames, dropped, model_id, *errors = struct.unpack("<IIQQ16sIIIII", payload)
            assert (up, fps100 / 100, frames, dropped, model_id.hex()) == (
                f["uptime_s"], f["fps"], f["frames"], f["dropped_frames"], f["model_id"])  # fmt: skip
            assert errors == [f[k] for k in ("camera_errors", "frame_errors", "engine_errors", "link_errors",
                                             "latency_us")]  # fmt: skip
        elif ptype == 4:
            assert (payload[0], payload[1:].decode()) == (f["level"], f["text"])
        elif ptype == 5:
            assert (int.from_bytes(payload[:2], "little"), payload[2:].decode()) == (f["code"], f["text"])
        else:
            assert read_flash(ptype, payload) == f, v["name"]


def read_flash(ptype: int, p: bytes) -> dict:
    """The flashing payloads (types 6 to 14) as the doc lays them out, in the vectors' field names."""
    if ptype == 6:
        return {"total_size": struct.unpack_from("<Q", p)[0], "sha256": p[8:40].hex(), "version": p[40:].decode()}
    if ptype == 7:
        return {"offset": struct.unpack_from("<Q", p)[0], "data": p[8:].hex()}
    if ptype == 8:
        return {"sha256": p.hex()}
    if ptype == 9:
        code, next_offset, total, max_chunk = struct.unpack("<HQQI", p)
        return {"code": code, "next_offset": next_offset, "total_size": total, "max_chunk": max_chunk}
    if ptype in (10, 14):
        return {"code": int.from_bytes(p[:2], "little"), "details": json.loads(p[2:])}
    if ptype == 12:
        return {"info": json.loads(p)}
    assert ptype in (11, 13) and p == b""
    return {}
