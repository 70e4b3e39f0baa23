"""docs/protocol.md states the layout, constants and test vectors the code has (STYLE.md: docs match code)."""

import re
from pathlib import Path

import numpy as np
from cobs import cobs
from xenoedge.edge.protocol import (
    HEADER_SIZE,
    MAX_MASK_PIXELS,
    MAX_PAYLOAD_BYTES,
    OVERHEAD,
    ErrorCode,
    MaskEncoding,
    PacketType,
    build_packet,
    rle_encode,
    status_payload,
)
from xenoedge.edge.protocol.masks import MASK_HEADER_SIZE, MAX_VARINT_BYTES
from xenoedge.edge.protocol.packets import HELLO_KEYS, MAX_TEXT_BYTES, STATUS, STATUS_DELIVERY, decode_status
from xenoedge.edge.protocol.vectors import load_vectors, vectors_markdown

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def _table_rows(heading: str) -> list[list[str]]:
    """Rows (cells stripped) of the first table after ``heading``."""
    section = DOC[DOC.index(heading) :]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]  # drop header and ---


def test_doc_shows_the_vectors_of_the_json_file():
    assert vectors_markdown(load_vectors()) in DOC


def test_packet_header_table_matches_the_bytes():
    rows = _table_rows("## 3. Packet")
    packet = build_packet(PacketType.ERROR, b"\x01\x00x", sequence=7, timestamp_us=9)
    fields = {r[2].strip("`"): (int(r[0]), r[1]) for r in rows if r[0].isdigit()}
    assert fields == {
        "magic": (0, "2"), "version": (2, "1"), "type": (3, "1"), "flags": (4, "1"),
        "sequence": (5, "4"), "timestamp_us": (9, "8"), "payload_length": (17, "4"), "payload": (21, "N"),
    }  # fmt: skip
    assert packet[fields["sequence"][0]] == 7 and packet[fields["timestamp_us"][0]] == 9
    assert packet[17] == 3 and HEADER_SIZE == 21 and OVERHEAD == 25
    assert f"at most {MAX_PAYLOAD_BYTES} (16 MiB)" in DOC


def test_types_codes_and_encodings_are_documented():
    for t in PacketType:
        assert f"| {t.value} | `{t.name}` |" in DOC, t
    for c in ErrorCode:
        assert f"| {c.value} | `{c.name}` |" in DOC, c
    assert "`0` RLE, `1` RLE + zlib, `2` raw" in DOC and [e.value for e in MaskEncoding] == [0, 1, 2]
    for key in HELLO_KEYS:
        assert f"| `{key}` |" in DOC, key


def test_mask_and_status_tables_match_the_structs():
    mask_rows = _table_rows("### MASK (type 2)")
    assert [int(r[0]) for r in mask_rows[:8]] == [0, 4, 6, 8, 9, 10, 11, 12] and MASK_HEADER_SIZE == 28
    status_rows = _table_rows("### STATUS (type 3)")
    offsets = [int(r[0]) for r in status_rows]
    sizes = [int(r[1]) for r in status_rows]
    assert offsets == list(np.cumsum([0, *sizes[:-1]])) and offsets[-1] + sizes[-1] == STATUS.size == 60
    payload = status_payload(uptime_s=1, fps=29.97, frames=2, dropped_frames=3, model_id=bytes(16), latency_us=5)
    assert int.from_bytes(payload[4:8], "little") == 2997 and "(2997 = 29.97 fps)" in DOC
    assert int.from_bytes(payload[56:60], "little") == 5
    delivery_rows = _table_rows("#### STATUS delivery fields")
    offsets = [int(r[0]) for r in delivery_rows]
    sizes = [int(r[1]) for r in delivery_rows]
    assert offsets == list(np.cumsum([60, *sizes[:-1]])) and offsets[-1] + sizes[-1] == 60 + STATUS_DELIVERY.size
    assert [r[2].strip("`") for r in delivery_rows] == ["masks_delivered", "masks_lost", "link_down_s", "link_state"]
    long = status_payload(
        uptime_s=1, fps=1.0, frames=2, dropped_frames=3, model_id=bytes(16), masks_delivered=7, masks_lost=4,
        link_down_s=2.4, link_state="down",
    )  # fmt: skip
    assert len(long) == 81 and long[:60] == status_payload(uptime_s=1, fps=1.0, frames=2, dropped_frames=3,
                                                            model_id=bytes(16))  # fmt: skip
    status = decode_status(long)
    assert (status.masks_delivered, status.masks_lost, status.link_down_s, status.link_state) == (7, 4, 2, "down")
    assert "`2` down" in DOC and decode_status(long[:60]).masks_delivered is None


def test_worked_examples_and_limits_in_the_doc():
    assert cobs.encode(bytes.fromhex("11220033")).hex(" ") == "03 11 22 02 33" and "`03 11 22 02 33 00`" in DOC
    long_piece = cobs.encode(b"\x01" * 254 + b"\x00a")
    assert long_piece[0] == 0xFF and long_piece[255:].hex(" ") == "01 02 61" and "`01 02 61`" in DOC
    assert cobs.encode(b"\x01" * 254) == b"\xff" + b"\x01" * 254  # no empty chunk after the last 0xFF chunk
    for pixels, text in ((1, "00"), (128, "7f"), (129, "80 01"), (307200, "ff df 12")):
        assert rle_encode(np.zeros((1, pixels), np.uint8))[5:].hex(" ") == text
        assert f"`{text}`" in DOC
    assert f"| {MAX_MASK_PIXELS} (receiver default" in DOC and f"| {MAX_TEXT_BYTES} UTF-8 bytes |" in DOC
    assert f"| {MAX_VARINT_BYTES} bytes |" in DOC
    for parameter in ("`0x1EDC6F41`", "`0x82F63B78`", "`0xFFFFFFFF`", "`0xE3069283`"):
        assert parameter in DOC


def test_fuzz_command_and_figures_are_in_the_doc():
    match = re.search(r"(\d+) mutated inputs .* (\d+) failures", DOC)
    assert match and int(match.group(1)) >= 10**6 and match.group(2) == "0"
    assert "python benchmarks/fuzz_decoder.py --inputs 1000000" in DOC
