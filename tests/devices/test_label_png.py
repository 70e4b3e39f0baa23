"""Label PNGs: round trip, validation, colorize."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from xenoedge.devices.formats.label_png import colorize, read_label_png, write_label_png, write_rgb_png

from xenoedge.errors import FileFormatError, InvalidCubeError


def _labels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 6, (9, 7), dtype=np.uint8)


def test_round_trip_exact(tmp_path):
    labels = _labels()
    path = write_label_png(tmp_path / "m.png", labels)
    back = read_label_png(path, n_labels=6)
    assert back.dtype == np.uint8 and back.shape == (9, 7)
    assert back.tobytes() == labels.tobytes()
    # Independent check: OpenCV sees one 8-bit channel with the same ids.
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.ndim == 2 and np.array_equal(raw, labels)
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]


def test_ids_out_of_range_listed(tmp_path):
    labels = _labels()
    labels[0, :3] = [7, 9, 7]
    path = write_label_png(tmp_path / "ids.png", labels)
    with pytest.raises(FileFormatError, match=r"ids\.png.*label ids 7, 9 are not below n_labels=6"):
        read_label_png(path, n_labels=6)
    assert read_label_png(path).max() == 9


def test_many_bad_ids_are_summarised(tmp_path):
    labels = np.arange(200, dtype=np.uint8).reshape(10, 20)
    path = write_label_png(tmp_path / "many.png", labels)
    with pytest.raises(FileFormatError, match=r"\.\.\. \(196 in all\)"):
        read_label_png(path, n_labels=4)


def test_colour_png_rejected(tmp_path):
    path = tmp_path / "rgb.png"
    cv2.imwrite(str(path), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(FileFormatError, match=r"rgb\.png.*one channel.*3"):
        read_label_png(path)


def test_16_bit_png_rejected(tmp_path):
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), np.zeros((4, 4), np.uint16))
    with pytest.raises(FileFormatError, match=r"deep\.png.*8-bit.*uint16"):
        read_label_png(path)


def test_missing_corrupt_and_misnamed(tmp_path):
    with pytest.raises(FileFormatError, match=r"none\.png.*no such"):
        read_label_png(tmp_path / "none.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(FileFormatError, match=r"junk\.png.*cannot decode"):
        read_label_png(tmp_path / "junk.png")
    with pytest.raises(FileFormatError, match=r"m\.jpg"):
        write_label_png(tmp_path / "m.jpg", _labels())
    with pytest.raises(FileFormatError, match=r"m\.jpg"):
        read_label_png(tmp_path / "m.jpg")


@pytest.mark.parametrize("bad", [np.zeros((3, 3), np.int32), np.zeros((3, 3, 1), np.uint8), np.zeros((0, 3), np.uint8)])
def test_write_rejects_non_label_arrays(tmp_path, bad):
    with pytest.raises(InvalidCubeError, match=r"x\.png"):
        write_label_png(tmp_path / "x.png", bad)
    assert not (tmp_path / "x.png").exists()


def test_colorize_and_rgb_png(tmp_path):
    colors = np.array([[0, 0, 0], [255, 0, 0], [0, 128, 255]], np.uint8)
    labels = np.array([[0, 1], [2, 1]], np.uint8)
    rgb = colorize(labels, colors)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[1, 0], [0, 128, 255])
    path = write_rgb_png(tmp_path / "pic.png", rgb)
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(bgr[..., ::-1], rgb)  # stored as RGB colours, not swapped


def test_colorize_errors():
    colors = np.zeros((2, 3), np.uint8)
    with pytest.raises(InvalidCubeError, match="label ids 2, 5 have no colour"):
        colorize(np.array([[0, 2, 5]], np.uint8), colors)
    with pytest.raises(InvalidCubeError, match="colors must be"):
        colorize(np.zeros((2, 2), np.uint8), np.zeros((2, 4), np.uint8))
    with pytest.raises(InvalidCubeError, match="labels must be"):
        colorize(np.zeros((2, 2), np.int64), colors)
