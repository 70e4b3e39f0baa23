"""MASK payloads: a (H, W) uint8 class map, run-length encoded, deflated when that is smaller.

Payload layout (little-endian, offsets in bytes)::

    0   4  frame_index u32
    4   2  width u16 (W >= 1)
    6   2  height u16 (H >= 1)
    8   1  class_count u8 (every pixel value < class_count)
    9   1  encoding u8 (0 RLE, 1 RLE + zlib, 2 raw)
    10  1  mask_flags u8 (bit 0: per-class pixel counts follow; other bits 0)
    11  1  reserved u8 (0)
    12  16 model_id (first 16 bytes of the bundle's SHA-256)
    28  4*class_count  counts u32[class_count] (only with mask_flags bit 0): pixels per class
    ..  .. data (to the end of the payload)

RLE data (encoding 0), over the row-major (C order) pixels: ``run_count`` u32, then
``run_count`` value bytes (u8 each), then ``run_count`` lengths, each ``run_length - 1`` as an
unsigned LEB128 varint (7 bits per byte, least significant group first, bit 7 set on every byte
but the last, 1 to 5 bytes). Runs may cross rows; the lengths sum to W*H.
Encoding 1 is the RLE data compressed as a zlib stream (RFC 1950); encoding 2 is the W*H
pixel bytes. The encoder uses the smallest of the three (ties: the lower number).

>>> import numpy as np
>>> classes = np.array([[0, 0, 1], [1, 1, 2]], dtype=np.uint8)
>>> rle_encode(classes).hex()
'03000000000102010200'
>>> msg = decode_mask(mask_payload(classes, frame_index=3, model_id=bytes(16), n_classes=3))
>>> msg.frame_index, msg.classes.tolist(), msg.counts.tolist(), msg.encoding.name
(3, [[0, 0, 1], [1, 1, 2]], [2, 3, 1], 'RAW')
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from xenoedge.edge.protocol.packets import (
    PacketType,
    ProtocolError,
    as_bytes,
    check_uint,
    checked_model_id,
    register_payload_decoder,
)

MASK_HEADER = struct.Struct("<IHHBBBx16s")  # 28 bytes
MASK_HEADER_SIZE = MASK_HEADER.size
FLAG_COUNTS = 0x01
MAX_VARINT_BYTES = 5  # run lengths up to 2**35 > 65535 * 65535
MAX_MASK_PIXELS = 16 * 2**20  # decoder's default limit on W*H (a 4096 x 4096 mask)
ZLIB_LEVEL = 6


class MaskEncoding(IntEnum):
    """The u8 ``encoding`` field of a MASK payload."""

    RLE = 0
    RLE_ZLIB = 1
    RAW = 2


@dataclass(frozen=True)
class MaskMessage:
    """A decoded MASK payload; ``classes`` is (H, W) uint8, ``counts`` (class_count,) int64 or None."""

    frame_index: int
    classes: np.ndarray
    model_id: bytes
    class_count: int
    counts: np.ndarray | None
    encoding: MaskEncoding

    @property
    def height(self) -> int:
        return int(self.classes.shape[0])

    @property
    def width(self) -> int:
        return int(self.classes.shape[1])


def _runs(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths) of the runs of equal values in a flat uint8 array; int64 each."""
    starts = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1))  # a compare: no subtraction
    return starts, np.diff(np.concatenate((starts, [flat.size])))


def rle_encode(classes: np.ndarray) -> bytes:
    """RLE data of a (H, W) uint8 class map (see the module doc); vectorised, no per-pixel loop."""
    flat = np.ascontiguousarray(classes, dtype=np.uint8).ravel()
    return _rle_from_runs(flat, *_runs(flat))


def _rle_from_runs(flat: np.ndarray, starts: np.ndarray, run_lengths: np.ndarray) -> bytes:
    lengths = run_lengths.astype(np.uint64) - 1  # run_length - 1
    n_bytes = np.ones(lengths.size, dtype=np.int64)
    for k in range(1, MAX_VARINT_BYTES):
        n_bytes += lengths >= np.uint64(1 << (7 * k))
    offsets = np.concatenate(([0], np.cumsum(n_bytes)[:-1]))
    varints = np.empty(int(n_bytes.sum()), dtype=np.uint8)
    for k in range(MAX_VARINT_BYTES):
        sel = n_bytes > k
        group = (lengths[sel] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = np.where(n_bytes[sel] > k + 1, 0x80, 0).astype(np.uint64)
        varints[offsets[sel] + k] = (group | more).astype(np.uint8)
    return struct.pack("<I", starts.size) + flat[starts].tobytes() + varints.tobytes()


def rle_decode(data: bytes, n_pixels: int) -> np.ndarray:
    """Inverse of ``rle_encode``: the flat (n_pixels,) uint8 pixels; ``ProtocolError`` if malformed."""
    if len(data) < 4:
        raise ProtocolError("RLE data shorter than its 4-byte run_count")
    n_runs = struct.unpack_from("<I", data)[0]
    if n_runs < 1 or n_runs > n_pixels or len(data) < 4 + 2 * n_runs:
        raise ProtocolError(f"RLE run_count {n_runs} does not fit {n_pixels} pixels and {len(data)} bytes")
    buf = np.frombuffer(data, dtype=np.uint8)
    values = buf[4 : 4 + n_runs]
    varints = buf[4 + n_runs :]
    ends = np.flatnonzero(varints < 0x80)  # last byte of each varint
    if ends.size != n_runs or ends[-1] != varints.size - 1:
        raise ProtocolError(f"RLE data holds {ends.size} complete run lengths, expected {n_runs} and nothing after")
    starts = np.concatenate(([0], ends[:-1] + 1))
    n_bytes = ends - starts + 1
    if n_bytes.max() > MAX_VARINT_BYTES:
        raise ProtocolError(f"RLE run length varint longer than {MAX_VARINT_BYTES} bytes")
    lengths = np.ones(n_runs, dtype=np.uint64)
    for k in range(MAX_VARINT_BYTES):
        sel = n_bytes > k
        lengths[sel] += (varints[starts[sel] + k].astype(np.uint64) & np.uint64(0x7F)) << np.uint64(7 * k)
    if int(lengths.sum()) != n_pixels:  # <= 2**24 runs of < 2**35: no overflow
        raise ProtocolError(f"RLE runs cover {int(lengths.sum())} pixels, expected {n_pixels}")
    return np.repeat(values, lengths.astype(np.int64))


def _check_classes(classes: np.ndarray, n_classes: int) -> np.ndarray:
    classes = np.asarray(classes)
    if classes.ndim != 2 or classes.dtype != np.uint8:
        raise ProtocolError(f"classes must be a (H, W) uint8 array, got {classes.dtype} {classes.shape}")
    h, w = classes.shape
    if not (1 <= h <= 0xFFFF and 1 <= w <= 0xFFFF):
        raise ProtocolError(f"mask size {h}x{w} is outside 1..65535")
    check_uint("n_classes", n_classes, 255)
    if n_classes < 1:
        raise ProtocolError("n_classes must be at least 1")
    if int(classes.max()) >= n_classes:
        raise ProtocolError(f"class value {int(classes.max())} is not below n_classes={n_classes}")
    return classes


def mask_payload(
    classes: np.ndarray,
    *,
    frame_index: int,
    model_id: bytes,
    n_classes: int,
    with_counts: bool = True,
    encoding: MaskEncoding | None = None,
) -> bytes:
    """MASK payload of a (H, W) uint8 class map (values < n_classes <= 255).

    ``encoding=None`` picks the smallest of RLE, RLE + zlib (level 6) and raw (ties: lower
    number); pass one to force it. Size: 28 + (4 * n_classes if with_counts) + data bytes.
    """
    classes = _check_classes(classes, n_classes)
    h, w = classes.shape
    flat = np.ascontiguousarray(classes).ravel()
    starts, run_lengths = _runs(flat)
    rle = _rle_from_runs(flat, starts, run_lengths)
    candidates = {MaskEncoding.RLE: rle}
    if encoding in (None, MaskEncoding.RLE_ZLIB):
        candidates[MaskEncoding.RLE_ZLIB] = zlib.compress(rle, ZLIB_LEVEL)
    if encoding in (None, MaskEncoding.RAW):
        candidates[MaskEncoding.RAW] = np.ascontiguousarray(classes).tobytes()
    if encoding is None:
        chosen = min(candidates, key=lambda e: (len(candidates[e]), int(e)))
    else:
        chosen = MaskEncoding(encoding)
    flags = FLAG_COUNTS if with_counts else 0
    header = MASK_HEADER.pack(
        check_uint("frame_index", frame_index, 2**32 - 1),
        w,
        h,
        n_classes,
        int(chosen),
        flags,
        checked_model_id(model_id),
    )
    counts = b""
    if with_counts:  # from the runs: a few thousand of them instead of every pixel
        counts = np.bincount(flat[starts], weights=run_lengths, minlength=n_classes).astype("<u4").tobytes()
    return header + counts + candidates[chosen]


def _inflate(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ProtocolError(f"MASK zlib data is corrupt: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise ProtocolError(f"MASK zlib data inflates beyond {limit} bytes")
    if not inflater.eof or inflater.unused_data:
        raise ProtocolError("MASK zlib stream is truncated or followed by extra bytes")
    return out


def decode_mask(payload: bytes, *, max_pixels: int = MAX_MASK_PIXELS) -> MaskMessage:
    """Inverse of ``mask_payload``. Raises ``ProtocolError`` (only) for any malformed payload,
    including masks of more than ``max_pixels`` pixels (a guard against memory exhaustion)."""
    payload = as_bytes("payload", payload)
    if len(payload) < MASK_HEADER_SIZE:
        raise ProtocolError(f"MASK payload of {len(payload)} bytes is shorter than its {MASK_HEADER_SIZE}-byte header")
    frame_index, w, h, class_count, encoding, flags, model_id = MASK_HEADER.unpack_from(payload)
    n_pixels = w * h
    if w < 1 or h < 1 or class_count < 1:
        raise ProtocolError(f"MASK of {w}x{h} pixels and {class_count} classes")
    if n_pixels > max_pixels:
        raise ProtocolError(f"MASK of {w}x{h} pixels exceeds max_pixels={max_pixels}")
    if flags & ~FLAG_COUNTS:
        raise ProtocolError(f"MASK flags 0x{flags:02x} has unknown bits")
    offset = MASK_HEADER_SIZE
    counts = None
    if flags & FLAG_COUNTS:
        end = offset + 4 * class_count
        if len(payload) < end:
            raise ProtocolError("MASK payload ends inside its per-class counts")
        counts = np.frombuffer(payload, dtype="<u4", count=class_count, offset=offset).astype(np.int64)
        offset = end
    data = payload[offset:]
    try:
        kind = MaskEncoding(encoding)
    except ValueError:
        raise ProtocolError(f"unknown MASK encoding {encoding}") from None
    if kind == MaskEncoding.RAW:
        if len(data) != n_pixels:
            raise ProtocolError(f"raw MASK data of {len(data)} bytes, expected {n_pixels}")
        flat = np.frombuffer(data, dtype=np.uint8)
    else:
        if kind == MaskEncoding.RLE_ZLIB:
            data = _inflate(data, 4 + (1 + MAX_VARINT_BYTES) * n_pixels)
        flat = rle_decode(data, n_pixels)
    if int(flat.max()) >= class_count:
        raise ProtocolError(f"MASK pixel value {int(flat.max())} is not below class_count={class_count}")
    classes = flat.reshape(h, w).copy()
    if counts is not None and not np.array_equal(counts, np.bincount(flat, minlength=class_count)):
        raise ProtocolError("MASK per-class counts do not match the pixels")
    return MaskMessage(frame_index, classes, model_id, class_count, counts, kind)


register_payload_decoder(PacketType.MASK, decode_mask)
