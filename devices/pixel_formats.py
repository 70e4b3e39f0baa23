"""Raw mono pixel formats a V4L2 sensor may stream, and how each becomes (H, W) uint16 counts.

With ``CAP_PROP_CONVERT_RGB`` off, OpenCV's V4L2 backend hands over the driver's buffer. How
depends on the OpenCV version (modules/videoio/src/cap_v4l.cpp): older 4.x releases give
``GREY`` as (H, W) uint8 and ``Y10``/``Y12``/``Y16``/``Y16_BE`` as (H, W) uint16 and any other
format as one row of bytes; recent ones give every format as one row of ``bytesused`` bytes,
``(1, bytesused)`` uint8. ``decode`` takes both: 10/12-bit values sit in the low bits of 16-bit
little-endian words, ``Y16_BE`` is byte-swapped, and the MIPI-packed ``Y10P``/``Y12P`` are
unpacked here. Rows may be padded by the driver (bytesperline > width x bytes per pixel).
Colour formats (YUYV, MJPEG, RGB) are refused: a mosaic frame must reach us without colour
conversion.

Fourcc codes are V4L2's (= ``cv2.VideoWriter_fourcc``); ``Y16_BE`` sets bit 31.

>>> PIXEL_FORMATS["Y10P"].bits
10
>>> fourcc_text(fourcc_code("Y16"))
'Y16 '
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xenoedge.errors import CameraError

BIG_ENDIAN_FLAG = 1 << 31


@dataclass(frozen=True)
class PixelFormat:
    """One raw mono format. ``layout``: how OpenCV hands the buffer over (see module docstring)."""

    name: str
    fourcc: int
    bits: int
    layout: str  # "u8" | "u16le" | "u16be" | "packed10" | "packed12"
    description: str


def fourcc_code(text: str) -> int:
    """V4L2/OpenCV code of a 1-4 character fourcc (padded with spaces): ``"Y16"`` -> ``'Y16 '``."""
    padded = text.ljust(4)
    if len(padded) != 4 or not padded.isascii():
        raise ValueError(f"a fourcc has at most 4 ASCII characters, got {text!r}")
    return sum(ord(ch) << (8 * i) for i, ch in enumerate(padded))


def fourcc_text(code: int) -> str:
    """The 4 characters of a fourcc code (the big-endian flag dropped); ``'?'`` for non-printables."""
    code = int(code) & ~BIG_ENDIAN_FLAG & 0xFFFFFFFF
    chars = [chr((code >> (8 * i)) & 0xFF) for i in range(4)]
    return "".join(ch if ch.isprintable() else "?" for ch in chars)


PIXEL_FORMATS: dict[str, PixelFormat] = {
    f.name: f
    for f in (
        PixelFormat("GREY", fourcc_code("GREY"), 8, "u8", "8-bit mono"),
        PixelFormat("Y10", fourcc_code("Y10"), 10, "u16le", "10-bit mono in 16-bit little-endian words"),
        PixelFormat("Y12", fourcc_code("Y12"), 12, "u16le", "12-bit mono in 16-bit little-endian words"),
        PixelFormat("Y16", fourcc_code("Y16"), 16, "u16le", "16-bit mono, little-endian"),
        PixelFormat("Y16_BE", fourcc_code("Y16") | BIG_ENDIAN_FLAG, 16, "u16be", "16-bit mono, big-endian"),
        PixelFormat("Y10P", fourcc_code("Y10P"), 10, "packed10", "10-bit mono, MIPI packed: 4 pixels in 5 bytes"),
        PixelFormat("Y12P", fourcc_code("Y12P"), 12, "packed12", "12-bit mono, MIPI packed: 2 pixels in 3 bytes"),
    )
}
_BY_CODE = {f.fourcc: f for f in PIXEL_FORMATS.values()}


def supported_names() -> str:
    return ", ".join(PIXEL_FORMATS)


def format_by_name(name: str) -> PixelFormat:
    """The format called ``name`` (case-insensitive, e.g. ``y16``); raises ``CameraError`` listing them."""
    fmt = PIXEL_FORMATS.get(name.strip().upper())
    if fmt is None:
        raise CameraError(f"unsupported pixel format {name!r}; supported raw mono formats: {supported_names()}")
    return fmt


def format_by_code(code: int) -> PixelFormat | None:
    """The format with V4L2 fourcc ``code``, or None for one xenoedge does not read (a colour format)."""
    return _BY_CODE.get(int(code) & 0xFFFFFFFF)


def _packed_rows(buffer: np.ndarray, height: int, row_bytes: int, what: str) -> np.ndarray:
    data = np.ascontiguousarray(buffer).reshape(-1).view(np.uint8)
    if data.size < height * row_bytes:
        raise CameraError(f"{what}: buffer of {data.size} bytes is too small for {height} rows of {row_bytes} bytes")
    stride = data.size // height  # the driver may pad rows (bytesperline > row_bytes)
    return data[: height * stride].reshape(height, stride)[:, :row_bytes]


def unpack10(buffer: np.ndarray, height: int, width: int, what: str = "frame") -> np.ndarray:
    """(H, W) uint16 from MIPI RAW10 rows: bytes 0-3 hold bits 9:2 of 4 pixels, byte 4 their bits 1:0
    (pixel k in bits 2k+1:2k). ``width`` must be a multiple of 4."""
    if width % 4:
        raise CameraError(f"{what}: Y10P needs a width that is a multiple of 4, got {width}")
    rows = _packed_rows(buffer, height, width * 5 // 4, what).reshape(height, width // 4, 5).astype(np.uint16)
    out = rows[:, :, :4] << 2
    for k in range(4):
        out[:, :, k] |= (rows[:, :, 4] >> (2 * k)) & 0x3
    return out.reshape(height, width)


def unpack12(buffer: np.ndarray, height: int, width: int, what: str = "frame") -> np.ndarray:
    """(H, W) uint16 from MIPI RAW12 rows: bytes 0-1 hold bits 11:4 of 2 pixels, byte 2 their bits 3:0
    (pixel 0 in bits 3:0, pixel 1 in bits 7:4). ``width`` must be even."""
    if width % 2:
        raise CameraError(f"{what}: Y12P needs an even width, got {width}")
    rows = _packed_rows(buffer, height, width * 3 // 2, what).reshape(height, width // 2, 3).astype(np.uint16)
    out = rows[:, :, :2] << 4
    out[:, :, 0] |= rows[:, :, 2] & 0xF
    out[:, :, 1] |= rows[:, :, 2] >> 4
    return out.reshape(height, width)


def _is_byte_row(frame: np.ndarray, height: int) -> bool:
    """True for OpenCV's raw-buffer form: one row of bytes holding a whole ``height``-row frame."""
    return frame.dtype == np.uint8 and frame.ndim == 2 and frame.shape[0] == 1 and height > 1


def decode(frame: np.ndarray, fmt: PixelFormat, height: int, width: int, what: str = "frame") -> np.ndarray:
    """(H, W) uint16 counts from what OpenCV returned for a ``fmt`` frame of ``height`` x ``width``."""
    if fmt.layout == "packed10":
        return unpack10(frame, height, width, what)
    if fmt.layout == "packed12":
        return unpack12(frame, height, width, what)
    if _is_byte_row(frame, height):
        bytes_per_pixel = 1 if fmt.layout == "u8" else 2
        rows = np.ascontiguousarray(_packed_rows(frame, height, width * bytes_per_pixel, what))
        if fmt.layout == "u8":
            return rows.astype(np.uint16)
        return rows.view("<u2" if fmt.layout == "u16le" else ">u2").astype(np.uint16)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    expected = np.uint8 if fmt.layout == "u8" else np.uint16
    if frame.ndim != 2 or frame.dtype != expected or frame.shape != (height, width):
        raise CameraError(
            f"{what}: a {height}x{width} {fmt.name} frame should arrive as ({height}, {width}) "
            f"{np.dtype(expected).name} or as one row of bytes, OpenCV returned {frame.dtype} {frame.shape}"
        )
    if fmt.layout == "u8":
        return frame.astype(np.uint16)
    if fmt.layout == "u16be":
        return frame.byteswap()
    return frame


__all__ = [
    "PIXEL_FORMATS",
    "PixelFormat",
    "decode",
    "format_by_code",
    "format_by_name",
    "fourcc_code",
    "fourcc_text",
    "unpack10",
    "unpack12",
]
