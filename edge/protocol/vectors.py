"""Test vectors of the wire protocol: input fields -> hex bytes, written to ``vectors.json``
and shown in docs/protocol.md (a test keeps code, file and doc in agreement).

Regenerate after a deliberate protocol change with ``python -m xenoedge.edge.protocol.vectors``
(it rewrites vectors.json and prints the markdown section for the doc).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from cobs import cobs
from xenoedge.edge.protocol import flash
from xenoedge.edge.protocol.crc import crc32c
from xenoedge.edge.protocol.masks import mask_payload
from xenoedge.edge.protocol.packets import (
    PacketType,
    build_packet,
    error_payload,
    hello_payload,
    log_payload,
    status_payload,
)

VECTORS_PATH = Path(__file__).with_name("vectors.json")
MODEL_ID = bytes(range(16))  # 000102...0f
_T0_US = 1_000_000


def _checkerboard(n: int) -> np.ndarray:
    return (np.add.outer(np.arange(n), np.arange(n)) % 2).astype(np.uint8)


def _payload(ptype: PacketType, fields: dict[str, Any]) -> bytes:
    """Build a payload from a vector's JSON fields."""
    if ptype == PacketType.HELLO:
        return hello_payload(fields["info"])
    if ptype == PacketType.STATUS:
        return status_payload(**{**fields, "model_id": bytes.fromhex(fields["model_id"])})
    if ptype == PacketType.LOG:
        return log_payload(fields["level"], fields["text"])
    if ptype == PacketType.ERROR:
        return error_payload(fields["code"], fields["text"])
    if ptype == PacketType.UPLOAD_BEGIN:
        return flash.upload_begin_payload(fields["total_size"], fields["sha256"], fields["version"])
    if ptype == PacketType.UPLOAD_CHUNK:
        return flash.upload_chunk_payload(fields["offset"], bytes.fromhex(fields["data"]))
    if ptype == PacketType.UPLOAD_END:
        return flash.upload_end_payload(fields["sha256"])
    if ptype == PacketType.UPLOAD_ACK:
        return flash.upload_ack_payload(
            fields["code"], fields["next_offset"], fields["total_size"], fields["max_chunk"]
        )
    if ptype in (PacketType.UPLOAD_RESULT, PacketType.ROLLBACK_RESULT):
        return flash.result_payload(fields["code"], fields["details"])
    if ptype == PacketType.INFO:
        return flash.info_payload(fields["info"])
    if ptype in (PacketType.INFO_REQUEST, PacketType.ROLLBACK_REQUEST):
        return b""
    return mask_payload(
        np.asarray(fields["classes"], dtype=np.uint8),
        frame_index=fields["frame_index"],
        model_id=bytes.fromhex(fields["model_id"]),
        n_classes=fields["n_classes"],
        with_counts=fields["with_counts"],
    )


def _cases() -> list[tuple[str, PacketType, dict[str, Any]]]:
    hello = {
        "device_id": "xe-0001",
        "camera_id": "sim-tivita-0",
        "sensor_signature": "tivita",
        "bundle_name": "default-surgical",
        "bundle_version": "1.0.0",
        "model_id": MODEL_ID.hex(),
        "labels": [{"id": 0, "name": "background", "color": [0, 0, 0]}],
    }
    status = {
        "uptime_s": 3600,
        "fps": 29.97,
        "frames": 107892,
        "dropped_frames": 12,
        "model_id": MODEL_ID.hex(),
        "camera_errors": 1,
        "frame_errors": 2,
        "engine_errors": 0,
        "link_errors": 3,
        "latency_us": 21500,
    }
    small = [[0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 2, 2, 2, 1, 1, 1], [0, 0, 0, 2, 2, 2, 2, 1], [0] * 8]
    big_run = [[0] * 200 for _ in range(2)]
    big_run[1][199] = 1
    mask = {"frame_index": 42, "model_id": MODEL_ID.hex(), "n_classes": 3}
    return [
        ("hello", PacketType.HELLO, {"info": hello}),
        ("status", PacketType.STATUS, status),
        ("log", PacketType.LOG, {"level": 20, "text": "camera opened: 480x640, 100 bands"}),
        ("error", PacketType.ERROR, {"code": 3, "text": "frame 17 has NaNs; skipped"}),
        ("mask_rle_counts", PacketType.MASK, {**mask, "classes": small, "with_counts": True}),
        ("mask_rle_varint", PacketType.MASK, {**mask, "classes": big_run, "with_counts": False}),
        ("mask_zlib", PacketType.MASK, {**mask, "classes": _checkerboard(16).tolist(), "with_counts": True}),
        ("mask_raw", PacketType.MASK, {**mask, "classes": [[0, 1, 2], [2, 1, 0]], "with_counts": False}),
        *_flash_cases(),
    ]


def _flash_cases() -> list[tuple[str, PacketType, dict[str, Any]]]:
    """Upload of a 10-byte "bundle" b"0123456789" in chunks of 6 and 4 bytes, info, rollback."""
    sha = "84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882"  # SHA-256 of b"0123456789"
    slot = {"name": "default-crop", "version": "1.1.0", "sha256": sha, "slot": "b"}
    info = {
        "active": slot,
        "inactive": {**slot, "slot": "a", "version": "1.0.0", "sha256": "ab" * 32},
        "engines": {"onnxruntime": ["CPUExecutionProvider"], "openvino": []},
        "sensor": {"name": "mosaic-5x5-nir", "signature": "mosaic-5x5-nir:25"},
        "free_bytes": 1073741824,
        "upload": None,
        "max_bundle_bytes": 67108864,
        "max_chunk": 16384,
    }
    ok = int(flash.FlashCode.OK)
    return [
        ("upload_begin", PacketType.UPLOAD_BEGIN, {"total_size": 10, "sha256": sha, "version": "1.1.0"}),
        (
            "upload_ack_begin",
            PacketType.UPLOAD_ACK,
            {"code": ok, "next_offset": 0, "total_size": 10, "max_chunk": 16384},
        ),
        ("upload_chunk", PacketType.UPLOAD_CHUNK, {"offset": 0, "data": b"012345".hex()}),
        (
            "upload_ack_chunk",
            PacketType.UPLOAD_ACK,
            {"code": ok, "next_offset": 6, "total_size": 10, "max_chunk": 16384},
        ),
        ("upload_chunk_last", PacketType.UPLOAD_CHUNK, {"offset": 6, "data": b"6789".hex()}),
        ("upload_end", PacketType.UPLOAD_END, {"sha256": sha}),
        (
            "upload_result",
            PacketType.UPLOAD_RESULT,
            {
                "code": ok,
                "details": {
                    "message": "installed default-crop 1.1.0 in slot b",
                    "previous": {**slot, "slot": "a", "version": "1.0.0", "sha256": "ab" * 32},
                    "installed": slot,
                    "selftest": {"agreement": 1.0, "min_agreement": 0.99, "passed": True},
                    "seconds": 1.25,
                },
            },
        ),
        ("info_request", PacketType.INFO_REQUEST, {}),
        ("info", PacketType.INFO, {"info": info}),
        ("rollback_request", PacketType.ROLLBACK_REQUEST, {}),
        (
            "rollback_result",
            PacketType.ROLLBACK_RESULT,
            {"code": int(flash.FlashCode.NO_ROLLBACK), "details": {"message": "no known-good slot to roll back to"}},
        ),
    ]


def make_vectors() -> dict[str, Any]:
    """Every vector: type, sequence, timestamp_us, fields, then payload, packet (unframed) and frame hex."""
    vectors = []
    for sequence, (name, ptype, fields) in enumerate(_cases()):
        payload = _payload(ptype, fields)
        timestamp_us = _T0_US + 33_333 * sequence
        packet = build_packet(ptype, payload, sequence=sequence, timestamp_us=timestamp_us)
        vectors.append(
            {
                "name": name,
                "type": ptype.name,
                "sequence": sequence,
                "timestamp_us": timestamp_us,
                "fields": fields,
                "payload": payload.hex(),
                "packet": packet.hex(),
                "frame": (cobs.encode(packet) + b"\x00").hex(),
            }
        )
    return {"crc32c_check": {"input": "123456789", "crc": f"{crc32c(b'123456789'):08x}"}, "vectors": vectors}


def load_vectors(path: Path = VECTORS_PATH) -> dict[str, Any]:
    return json.loads(path.read_text())


def vectors_markdown(vectors: dict[str, Any]) -> str:
    """The doc's vector section: one block per vector with payload, packet and frame hex."""
    check = vectors["crc32c_check"]
    lines = [f'CRC-32C check: `crc32c(b"{check["input"]}") = 0x{check["crc"]}`.', ""]
    for v in vectors["vectors"]:
        lines += [
            f"#### `{v['name']}`: {v['type']}, sequence {v['sequence']}, timestamp_us {v['timestamp_us']}",
            "",
            "```json",
            json.dumps(v["fields"], sort_keys=True),
            "```",
            "",
            "```text",
            f"payload {v['payload']}",
            f"packet  {v['packet']}",
            f"frame   {v['frame']}",
            "```",
            "",
        ]
    return "\n".join(lines)


def main() -> None:  # pragma: no cover - maintenance tool
    vectors = make_vectors()
    VECTORS_PATH.write_text(json.dumps(vectors, indent=1, sort_keys=True) + "\n")
    print(vectors_markdown(vectors))


if __name__ == "__main__":  # pragma: no cover
    main()
