"""Frames with fresh-looking sensor noise at memcpy speed: a few stored noisy realisations
of one scene, mixed by row blocks.

Drawing 30 M Gaussian values costs ~0.3 s, so the live camera cannot sample noise per
frame at 60 frames/s. Instead each scene is rendered ``k`` times with exact noise (at
open); a frame takes every block of ``rows_per_block`` rows from one of the ``k``
realisations, chosen at random per frame. Each frame is an exact single draw of the camera
model (every pixel is a correctly distributed, clipped, rounded sample, independent of its
neighbours), consecutive frames differ, and there are k^blocks distinct frames. The catch:
over time a pixel takes only ``k`` values, so an average of many frames keeps about
sigma / sqrt(k) of noise instead of shrinking as 1/sqrt(N).

Storage: realisation 0 as uint16 (minus ``OFFSET``, wrapping), the others as uint8
differences from it (+ ``OFFSET``); two realisations of two frames' noise differ by a few
sigma, far inside ±127 counts. A realisation whose difference does not fit is stored
whole. Every block is then one uint16 add: ~11 ms per Tivita frame (61 MB written).

Frame buffers are reused once nobody holds them any more (``frame``): a fresh 61 MB array
costs ~5 ms of page faults on every frame, a reused one none. A reused buffer remembers which
realisation each block holds, and only the blocks whose choice differs are written: with
``k`` realisations 1/k of the blocks on average (half at Tivita size, k = 2), at no change to
the frames. Frames are therefore read-only by contract: a consumer must not write into one.
"""

from __future__ import annotations

import sys

import numpy as np

OFFSET = 128  # uint8 differences are stored + OFFSET; the base - OFFSET (mod 2**16)
ROWS_PER_BLOCK = 8
#: Frame buffers kept for reuse: the frames a consumer holds at once (queued, being processed) and one more.
MAX_KEPT_BUFFERS = 4


class NoiseRealisations:
    """``k`` noisy raw frames of one scene, uint16, any shape (rows first).

    ``realisations`` are the frames as ``xenoedge.xeno.camera_model.render_raw`` (or
    ``mosaic_from_cube``) made them: (H, W) mosaic or (h, w, C) cube, uint16.
    """

    def __init__(self, base: np.ndarray, rows_per_block: int = ROWS_PER_BLOCK):
        """Start with realisation 0, ``base`` (taken over and changed in place)."""
        self.shape, self.k, self.rows_per_block = base.shape, 1, rows_per_block
        self.n_blocks = -(-base.shape[0] // rows_per_block)
        base -= np.uint16(OFFSET)  # wraps below OFFSET; adding OFFSET back restores it
        self._base = base
        self._others: list[np.ndarray] = []
        self._last: np.ndarray | None = None
        # kept frame buffers, each with the realisation each of its blocks holds (-1: none)
        self._buffers: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, other: np.ndarray) -> None:
        """Add a realisation: stored as uint8 differences from the base when they fit, else whole."""
        if other.shape != self.shape:
            raise ValueError(f"realisation of shape {other.shape}, expected {self.shape}")
        diff = np.empty(self.shape, dtype=np.uint8)
        for r0 in range(0, self.shape[0], self.rows_per_block):
            sl = slice(r0, r0 + self.rows_per_block)
            block = other[sl].astype(np.int32)
            block -= self._base[sl]  # the stored base is realisation 0 - OFFSET (mod 2**16) ...
            block %= 2**16  # ... so this is other - realisation 0 + OFFSET, in [0, 255] when it fits
            if block.max() > 255:
                self._others.append(other.copy())
                self.k += 1
                return
            diff[sl] = block
        self._others.append(diff)
        self.k += 1

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return self._base.nbytes + sum(o.nbytes for o in self._others)

    def choose(self, rng: np.random.Generator) -> np.ndarray:
        """(n_blocks,) realisation per row block, never the previous frame's whole choice."""
        choice = rng.integers(0, self.k, self.n_blocks)
        if self._last is not None and self.k > 1 and np.array_equal(choice, self._last):
            choice[0] = (choice[0] + 1) % self.k
        self._last = choice
        return choice

    def _free_buffer(self) -> tuple[np.ndarray, np.ndarray]:
        """A kept frame buffer that no one else references (no frame, view or engine binding holds
        it), else a new one, kept while fewer than ``MAX_KEPT_BUFFERS`` are; with the (n_blocks,)
        realisation each of its blocks holds (-1: unwritten)."""
        for kept in self._buffers:
            buffer = kept[0]
            if sys.getrefcount(buffer) <= 3:  # the pair, this name and getrefcount's argument
                return kept
        buffer, held = np.empty(self.shape, dtype=np.uint16), np.full(self.n_blocks, -1)
        if len(self._buffers) < MAX_KEPT_BUFFERS:
            self._buffers.append((buffer, held))
        return buffer, held

    def frame(self, choice: np.ndarray) -> np.ndarray:
        """A uint16 frame of ``shape`` assembled by ``choice`` (see ``choose``), in a buffer that no
        earlier frame still in use shares; blocks the buffer already holds are not rewritten."""
        out, held = self._free_buffer()
        rows = self.rows_per_block
        for block, k in enumerate(choice.tolist()):
            if held[block] == k:
                continue
            held[block] = k
            sl = slice(block * rows, (block + 1) * rows)
            if k == 0:
                np.add(self._base[sl], np.uint16(OFFSET), out=out[sl])
            elif self._others[k - 1].dtype == np.uint8:
                np.add(self._base[sl], self._others[k - 1][sl], out=out[sl])
            else:
                out[sl] = self._others[k - 1][sl]
        return out

    def next_frame(self, rng: np.random.Generator) -> np.ndarray:
        """``frame(choose(rng))``."""
        return self.frame(self.choose(rng))
