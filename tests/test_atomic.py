"""xenoedge.atomic: atomic writes, and deferred_fsync's one flush per file at the end of a block."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from xenoedge.devices.formats import write_cube, write_label_png

from xenoedge.atomic import atomic_write, deferred_fsync


@pytest.fixture
def fsynced(monkeypatch) -> list[Path]:
    """The real os.fsync, recording the path behind every descriptor it flushes."""
    flushed: list[Path] = []
    real = os.fsync

    def recording(fd: int) -> None:
        flushed.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return flushed


def test_atomic_write_flushes_the_file_and_its_folder(tmp_path, fsynced):
    path = atomic_write(tmp_path / "a.bin", lambda f: f.write(b"abc"))
    assert path.read_bytes() == b"abc"
    assert tmp_path in fsynced and len(fsynced) == 2  # the temp file (before its rename), then the folder


def test_deferred_fsync_renames_at_once_and_flushes_each_file_and_folder_once_at_the_end(tmp_path, fsynced):
    (tmp_path / "cubes").mkdir()
    (tmp_path / "labels").mkdir()
    with deferred_fsync():
        for i in range(3):
            write_cube(tmp_path / "cubes" / f"{i}.npz", np.full((2, 3, 4), 0.5, np.float32), np.arange(4.0) + 500)
            write_label_png(tmp_path / "labels" / f"{i}.png", np.zeros((2, 3), np.uint8))
            assert (tmp_path / "cubes" / f"{i}.npz").is_file()  # in place already
        assert fsynced == []
    written = sorted([*(tmp_path / "cubes").iterdir(), *(tmp_path / "labels").iterdir()])
    assert sorted(p for p in fsynced if p.is_file()) == written
    assert sorted(p for p in fsynced if p.is_dir()) == [tmp_path / "cubes", tmp_path / "labels"]
    # outside the block writes are durable one by one again
    atomic_write(tmp_path / "index.json", lambda f: f.write(b"{}"))
    assert fsynced[-1] == tmp_path


def test_deferred_fsync_flushes_nothing_when_the_block_fails(tmp_path, fsynced):
    with pytest.raises(RuntimeError, match="simulator stopped"), deferred_fsync():
        atomic_write(tmp_path / "a.bin", lambda f: f.write(b"abc"))
        raise RuntimeError("simulator stopped")
    assert (tmp_path / "a.bin").read_bytes() == b"abc"  # the rename happened: never half a file
    assert fsynced == []
