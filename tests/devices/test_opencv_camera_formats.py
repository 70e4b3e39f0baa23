"""Raw V4L2 pixel formats: packed MIPI rows unpack to the counts a packer wrote, byte order, refusals.

The packers here follow the kernel's format descriptions bit by bit (one pixel at a time, in
plain Python), independently of the vectorised unpackers under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from xenoedge.devices.pixel_formats import (
    PIXEL_FORMATS,
    decode,
    format_by_code,
    format_by_name,
    fourcc_code,
    fourcc_text,
    unpack10,
    unpack12,
)

from xenoedge.errors import CameraError


def pack10(values: np.ndarray, pad: int = 0) -> bytes:
    """MIPI RAW10: per 4 pixels, 4 bytes of bits 9..2, then one byte of bits 1..0 (pixel k at bits 2k+1..2k)."""
    out = bytearray()
    for row in values.tolist():
        for i in range(0, len(row), 4):
            group = row[i : i + 4]
            out += bytes(v >> 2 for v in group)
            out.append(sum((v & 3) << (2 * k) for k, v in enumerate(group)))
        out += bytes(pad)
    return bytes(out)


def pack12(values: np.ndarray, pad: int = 0) -> bytes:
    """MIPI RAW12: per 2 pixels, 2 bytes of bits 11..4, then one byte: pixel 0 bits 3..0 low, pixel 1 high."""
    out = bytearray()
    for row in values.tolist():
        for i in range(0, len(row), 2):
            a, b = row[i], row[i + 1]
            out += bytes([a >> 4, b >> 4, (a & 0xF) | ((b & 0xF) << 4)])
        out += bytes(pad)
    return bytes(out)


def as_opencv_buffer(data: bytes) -> np.ndarray:
    """How OpenCV's V4L2 backend hands over a format it does not know: one row of bytes."""
    return np.frombuffer(data, dtype=np.uint8).reshape(1, -1)


@pytest.mark.parametrize("pad", [0, 12])  # drivers may pad each row (bytesperline > width * bytes per pixel)
def test_y10p_unpacks_to_the_packed_counts(pad):
    values = np.random.default_rng(1).integers(0, 1024, (6, 20), dtype=np.uint16)
    values[0, :4] = [0, 1023, 512, 3]  # edge bit patterns
    got = decode(as_opencv_buffer(pack10(values, pad)), PIXEL_FORMATS["Y10P"], 6, 20)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, values)


@pytest.mark.parametrize("pad", [0, 7])
def test_y12p_unpacks_to_the_packed_counts(pad):
    values = np.random.default_rng(2).integers(0, 4096, (5, 14), dtype=np.uint16)
    values[0, :2] = [4095, 1]
    np.testing.assert_array_equal(decode(as_opencv_buffer(pack12(values, pad)), PIXEL_FORMATS["Y12P"], 5, 14), values)


def test_packed_widths_and_short_buffers_are_refused():
    with pytest.raises(CameraError, match="multiple of 4"):
        unpack10(np.zeros((1, 100), np.uint8), 2, 10)
    with pytest.raises(CameraError, match="even width"):
        unpack12(np.zeros((1, 100), np.uint8), 2, 9)
    with pytest.raises(CameraError, match="too small for 4 rows of 25 bytes"):
        unpack10(np.zeros((1, 60), np.uint8), 4, 20)


def test_word_formats():
    counts = np.arange(12, dtype=np.uint16).reshape(3, 4) * 300
    np.testing.assert_array_equal(decode(counts, PIXEL_FORMATS["Y12"], 3, 4), counts)
    np.testing.assert_array_equal(decode(counts.byteswap(), PIXEL_FORMATS["Y16_BE"], 3, 4), counts)
    grey = (np.arange(12, dtype=np.uint8) * 20).reshape(3, 4)
    got = decode(grey, PIXEL_FORMATS["GREY"], 3, 4)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, grey)
    with pytest.raises(CameraError, match=r"a 3x4 Y16 frame should arrive as \(3, 4\) uint16 or as one row of bytes"):
        decode(grey, PIXEL_FORMATS["Y16"], 3, 4)


@pytest.mark.parametrize("pad", [0, 6])
def test_word_formats_as_one_row_of_bytes(pad):
    """Recent OpenCV hands every V4L2 format over as the raw buffer: (1, bytesused) uint8."""
    counts = np.random.default_rng(3).integers(0, 4096, (5, 8), dtype=np.uint16)
    padding = np.zeros((5, pad), np.uint8)

    def buffer(rows: np.ndarray) -> np.ndarray:
        return as_opencv_buffer(np.hstack([rows, padding]).tobytes())

    little = counts.astype("<u2").view(np.uint8).reshape(5, 16)
    big = counts.astype(">u2").view(np.uint8).reshape(5, 16)
    np.testing.assert_array_equal(decode(buffer(little), PIXEL_FORMATS["Y12"], 5, 8), counts)
    np.testing.assert_array_equal(decode(buffer(little), PIXEL_FORMATS["Y16"], 5, 8), counts)
    np.testing.assert_array_equal(decode(buffer(big), PIXEL_FORMATS["Y16_BE"], 5, 8), counts)
    grey = (counts >> 4).astype(np.uint8)
    np.testing.assert_array_equal(decode(buffer(grey), PIXEL_FORMATS["GREY"], 5, 8), grey)


def test_fourcc_codes_match_v4l2_and_opencv():
    import cv2

    assert fourcc_code("Y16") == cv2.VideoWriter_fourcc(*"Y16 ")
    assert fourcc_code("GREY") == 0x59455247  # v4l2_fourcc('G','R','E','Y')
    assert format_by_code(PIXEL_FORMATS["Y16_BE"].fourcc).name == "Y16_BE"
    assert format_by_code(cv2.VideoWriter_fourcc(*"YUYV")) is None
    assert fourcc_text(cv2.VideoWriter_fourcc(*"MJPG")) == "MJPG"
    assert format_by_name("y10p").bits == 10
    with pytest.raises(CameraError, match="unsupported pixel format 'RGB3'"):
        format_by_name("RGB3")
