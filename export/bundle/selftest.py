"""The on-device self-test data of a bundle: a golden input and the class mask it must give.

``selftest/input.npz`` holds one array per graph input, named like the input (for a raw model:
``raw`` uint16 NHWC counts, ``dark`` and ``gain`` references), each of a shape that tiles to
the graph input's (``tile_to``: a patch of the golden frame, per-band references); ``selftest/expected.npz`` holds
``classes``, the expected uint8 class ids (N, H, W). A device runs the model on the inputs and
passes when the fraction of equal pixels is at least the manifest's ``selftest.min_agreement``.

>>> import numpy as np
>>> agreement(np.array([[1, 2], [3, 4]], np.uint8), np.array([[1, 2], [3, 0]], np.uint8))
0.75
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xenoedge.export.bundle.errors import BundleError
from xenoedge.export.bundle.manifest import SELFTEST_EXPECTED, SELFTEST_INPUT

EXPECTED_KEY = "classes"
#: Most bytes the arrays of one self-test npz may take once decompressed (a zip bomb stops here).
MAX_SELFTEST_ARRAY_BYTES = 256 << 20


class SelftestError(BundleError):
    """Self-test data that cannot be read, or a model output that fails the self-test."""


@dataclass(frozen=True)
class Selftest:
    """Golden inputs (graph input name -> array), expected class ids (N, H, W) uint8, threshold."""

    inputs: dict[str, np.ndarray]
    expected: np.ndarray
    min_agreement: float


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def selftest_files(inputs: dict[str, np.ndarray], expected_classes: np.ndarray) -> dict[str, bytes]:
    """The two self-test members for :func:`xenoedge.export.bundle.write_bundle`'s ``files``.

    ``inputs``: graph input name -> array as the engine takes it; ``expected_classes``: uint8 ids.
    """
    if not inputs:
        raise SelftestError("self-test needs at least one input array")
    expected = np.asarray(expected_classes)
    if expected.dtype != np.uint8:
        raise SelftestError(f"expected classes must be uint8, got {expected.dtype}")
    return {
        SELFTEST_INPUT: _npz_bytes({k: np.asarray(v) for k, v in inputs.items()}),
        SELFTEST_EXPECTED: _npz_bytes({EXPECTED_KEY: expected}),
    }


def _check_npz_sizes(path: Path, limit: int) -> None:
    """Refuse an npz whose arrays would decompress past ``limit`` bytes, before loading any:
    the zip directory's sizes and each ``.npy`` header's shape x itemsize are both checked."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            total += info.file_size
            if total > limit:
                raise SelftestError(f"{path}: arrays decompress to over {limit} bytes (zip bomb?)")
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            if dtype.hasobject:
                raise SelftestError(f"{path}: {info.filename} holds Python objects; only plain arrays are read")
            need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if need > info.file_size:
                raise SelftestError(f"{path}: {info.filename} declares {need} bytes of data but holds {info.file_size}")


def _load_npz(path: Path, limit: int = MAX_SELFTEST_ARRAY_BYTES) -> dict[str, np.ndarray]:
    try:
        _check_npz_sizes(path, limit)
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise SelftestError(f"{path}: not a readable npz ({exc})") from None


def load_selftest(folder: str | os.PathLike, manifest: dict) -> Selftest:
    """Read the self-test of an extracted bundle folder (pickles refused)."""
    folder = Path(folder)
    spec = manifest["selftest"]
    inputs = _load_npz(folder.joinpath(*spec["input"].split("/")))
    expected = _load_npz(folder.joinpath(*spec["expected"].split("/")))
    if EXPECTED_KEY not in expected or expected[EXPECTED_KEY].dtype != np.uint8:
        raise SelftestError(f"{spec['expected']}: needs a uint8 array {EXPECTED_KEY!r}")
    return Selftest(inputs, expected[EXPECTED_KEY], float(spec["min_agreement"]))


def agreement(predicted: np.ndarray, expected: np.ndarray) -> float:
    """Fraction of pixels whose class ids are equal (shapes must match after squeezing)."""
    predicted, expected = np.squeeze(np.asarray(predicted)), np.squeeze(np.asarray(expected))
    if predicted.shape != expected.shape:
        raise SelftestError(f"self-test output shape {predicted.shape} differs from expected {expected.shape}")
    return float(np.mean(predicted == expected))


def check_selftest(predicted: np.ndarray, selftest: Selftest) -> float:
    """The agreement; raises :class:`SelftestError` when it is below ``selftest.min_agreement``."""
    value = agreement(predicted, selftest.expected)
    if value < selftest.min_agreement:
        raise SelftestError(f"self-test failed: {value:.4f} of pixels agree, at least {selftest.min_agreement} needed")
    return value


def tile_to(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` repeated (``np.tile``) to ``shape``: how a device expands self-test inputs.

    Self-test inputs are stored small (a patch of the golden frame, per-band references of
    shape (1, 1, C)) and tiled to the graph input's shape, so a Tivita bundle's self-test is a
    few hundred KB rather than the 61 MB of one raw frame. Each dimension of ``shape`` must be a
    multiple of the array's.
    """
    array = np.asarray(array)
    if array.ndim != len(shape) or any(s % a for s, a in zip(shape, array.shape, strict=True)):
        raise SelftestError(f"self-test array of shape {array.shape} does not tile to {tuple(shape)}")
    return np.tile(array, [s // a for s, a in zip(shape, array.shape, strict=True)])
