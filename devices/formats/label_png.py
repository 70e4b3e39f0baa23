"""Label masks as PNG (OpenCV): (H, W) uint8 label ids, one channel, 0 = background.

Also ``colorize`` (ids -> RGB picture) and ``write_rgb_png`` to save such pictures.
Writes are atomic (encode in memory, temp file, fsync, rename).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from xenoedge.atomic import atomic_write
from xenoedge.errors import FileFormatError, InvalidCubeError

PNG_SUFFIX = ".png"
_MAX_LISTED = 10


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() != PNG_SUFFIX:
        raise FileFormatError(path, f"expected a {PNG_SUFFIX} file name")


def _list_ids(ids: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in ids[:_MAX_LISTED])
    return shown + (f" ... ({ids.size} in all)" if ids.size > _MAX_LISTED else "")


def _ids_out_of_range(labels: np.ndarray, n_labels: int) -> np.ndarray:
    """Sorted distinct ids >= n_labels (empty if none)."""
    return np.unique(labels[labels >= n_labels])


def png_bytes(image: np.ndarray, where: str | os.PathLike = "picture") -> bytes:
    """PNG file content of an (H, W, 3) uint8 RGB picture or an (H, W) uint8/uint16 single-channel
    image; ``where`` names it in the error when OpenCV cannot encode it."""
    image = np.ascontiguousarray(image[..., ::-1]) if image.ndim == 3 else image  # OpenCV wants BGR
    ok, encoded = cv2.imencode(PNG_SUFFIX, image)
    if not ok:
        raise FileFormatError(where, "OpenCV could not encode it as PNG")
    return encoded.tobytes()


def write_label_png(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Write (H, W) uint8 label ids as a single-channel 8-bit PNG, atomically."""
    path = Path(path)
    _check_suffix(path)
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype != np.uint8 or 0 in labels.shape:
        raise InvalidCubeError(
            f"{path}: labels must be a non-empty (H, W) uint8 array, got {labels.dtype} {labels.shape}"
        )
    encoded = png_bytes(labels, path)
    return atomic_write(path, lambda f: f.write(encoded))


def read_label_png(path: str | os.PathLike, *, n_labels: int | None = None) -> np.ndarray:
    """Read a label PNG: (H, W) uint8 ids; with ``n_labels``, every id must be < ``n_labels``.

    Raises ``FileFormatError`` naming the file when it is missing, undecodable, not a
    single-channel 8-bit image, or holds ids >= ``n_labels`` (listed in the message).
    """
    path = Path(path)
    _check_suffix(path)
    if not path.is_file():
        raise FileFormatError(path, "no such label file")
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise FileFormatError(path, "OpenCV cannot decode it as an image")
    if labels.ndim != 2:
        raise FileFormatError(path, f"a label mask has one channel, this image has {labels.shape[2]}")
    if labels.dtype != np.uint8:
        raise FileFormatError(path, f"a label mask is 8-bit (uint8), this image is {labels.dtype}")
    if n_labels is not None:
        bad = _ids_out_of_range(labels, n_labels)
        if bad.size:
            raise FileFormatError(path, f"label ids {_list_ids(bad)} are not below n_labels={n_labels}")
    return labels


def colorize(labels: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """(H, W) uint8 ids + (n, 3) uint8 RGB colours -> (H, W, 3) uint8 RGB picture."""
    labels, colors = np.asarray(labels), np.asarray(colors, dtype=np.uint8)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise InvalidCubeError(f"labels must be (H, W) uint8, got {labels.dtype} {labels.shape}")
    if colors.ndim != 2 or colors.shape[1] != 3:
        raise InvalidCubeError(f"colors must be (n, 3) RGB, got shape {colors.shape}")
    bad = _ids_out_of_range(labels, len(colors))
    if bad.size:
        raise InvalidCubeError(f"label ids {_list_ids(bad)} have no colour (only {len(colors)} given)")
    return colors[labels]


def write_rgb_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB picture (e.g. from ``colorize``) as PNG, atomically."""
    path = Path(path)
    _check_suffix(path)
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InvalidCubeError(f"{path}: expected (H, W, 3) uint8 RGB, got {rgb.dtype} {rgb.shape}")
    encoded = png_bytes(rgb, path)
    return atomic_write(path, lambda f: f.write(encoded))
