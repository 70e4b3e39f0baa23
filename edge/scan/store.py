"""The session folder on disk: layout, atomic writes, frame records, recovery after a power cut.

Layout (docs/scan.md)::

    SESSION/
      session.json               field, note, camera, bundle, plots, runs, calibrations
      references.npz             the field dark/white references (xenoedge.calibration.store format)
      frames.csv  frames.geojson per-frame table and points
      plots.csv   plots.geojson  per-plot table and points (mean position)
      plots/<plot>/NNNNNN.json   one frame's record: the commit point of that frame
      plots/<plot>/NNNNNN.png    pseudo-RGB with the mask overlaid
      plots/<plot>/NNNNNN_mask.png  class ids, 8-bit single channel (lossless)
      plots/<plot>/summary.png   the plot summary picture
      .lock                      held (flock) while a scan runs on the session

Every file is written through ``OutputWriter`` (``xenoedge.atomic.atomic_write``: temp file
beside it, fsync, rename, fsync of the folder). A frame is written mask, picture, then record;
the tables and summaries are rewritten from the records (at most once a second while frames
come fast, and at the end of a run). So a unit switched off mid-scan leaves every committed
frame whole and every file either old or new, never half; ``recover()`` on the next start
removes what the frame in flight left behind (temp files, a mask or picture without a record),
and the session rewrites the tables from the records.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from xenoedge.edge.scan.errors import ScanError, ScanOutputError

from xenoedge.atomic import atomic_write, fsync_dir

SESSION_FORMAT, SESSION_FORMAT_VERSION = "xenoedge-scan-session", 1
SESSION_FILE, REFERENCES_FILE, LOCK_FILE = "session.json", "references.npz", ".lock"
FRAMES_CSV, FRAMES_GEOJSON = "frames.csv", "frames.geojson"
PLOTS_CSV, PLOTS_GEOJSON = "plots.csv", "plots.geojson"
PLOTS_DIR, SUMMARY_PICTURE = "plots", "summary.png"
_PLOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_RECORD_NAME = re.compile(r"(\d{6,})\.json")
_FRAME_FILE = re.compile(r"(\d{6,})(_mask)?\.png")

#: ``write_data(file, data, path)`` puts ``data`` into the open temp file of ``path``.
WriteData = Callable[[BinaryIO, bytes, Path], None]


def check_plot_name(name: str) -> str:
    """``name`` if it can be a plot (and folder) name: letters, digits, ``.``, ``_``, ``-``; 1-64 long."""
    if not isinstance(name, str) or not _PLOT_NAME.fullmatch(name):
        raise ScanError(
            f"plot name {name!r}: use 1-64 letters, digits, '.', '_' or '-' (starting with one of the first two)"
        )
    return name


def frame_stem(number: int) -> str:
    """File name stem of frame ``number`` (session-wide, from 1)."""
    return f"{number:06d}"


def _plain_write(f: BinaryIO, data: bytes, path: Path) -> None:
    f.write(data)


class OutputWriter:
    """Writes session files atomically; an ``OSError`` becomes ``ScanOutputError`` naming the file.

    ``write_data`` is how bytes reach the open temp file: ``file.write`` by default. Tests pass
    a writer that fails with ``ENOSPC`` part-way, as a full disk does, because a small
    filesystem cannot be mounted here; everything around it (temp file, cleanup, rename) is the
    real ``atomic_write``.
    """

    def __init__(self, write_data: WriteData | None = None):
        self._write_data = write_data or _plain_write

    def write(self, path: Path, data: bytes) -> None:
        try:
            atomic_write(path, lambda f: self._write_data(f, data, path))
        except OSError as exc:
            raise output_error(path, exc) from None


def output_error(path: Path, exc: OSError) -> ScanOutputError:
    """A ``ScanOutputError`` naming ``path`` and saying what to do."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        hint = "the disk is full: free space, then resume the session"
    else:
        hint = "the session stopped; resume it once the storage works"
    return ScanOutputError(f"{path}: cannot write it ({reason}); {hint}", exc.errno)


def make_dirs(folder: Path) -> None:
    """Create ``folder`` and missing parents, fsyncing each new entry's parent, so a power cut
    cannot drop a new plot folder together with the frames committed in it."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            continue
        fsync_dir(path.parent)


class SessionStore:
    """One session folder (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, writer: OutputWriter | None = None):
        self.root = Path(root)
        self.writer = writer or OutputWriter()
        self._lock_fd: int | None = None

    # ---- paths ---------------------------------------------------------------------------
    @property
    def session_file(self) -> Path:
        return self.root / SESSION_FILE

    @property
    def references_file(self) -> Path:
        return self.root / REFERENCES_FILE

    def plot_dir(self, plot: str) -> Path:
        return self.root / PLOTS_DIR / check_plot_name(plot)

    def frame_files(self, plot: str, number: int) -> dict[str, Path]:
        """``record``, ``picture`` and ``mask`` paths of frame ``number`` of ``plot``."""
        folder, stem = self.plot_dir(plot), frame_stem(number)
        return {
            "record": folder / f"{stem}.json",
            "picture": folder / f"{stem}.png",
            "mask": folder / f"{stem}_mask.png",
        }

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # ---- session metadata ----------------------------------------------------------------
    def exists(self) -> bool:
        return self.session_file.is_file()

    def read_meta(self) -> dict:
        """session.json, checked to be a session of this format."""
        path = self.session_file
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ScanError(f"{self.root}: not a scan session (no {SESSION_FILE})") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ScanError(f"{path}: cannot read the session ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != SESSION_FORMAT:
            raise ScanError(f"{path}: not a xenoedge scan session (format {meta.get('format')!r})")
        if meta.get("format_version") != SESSION_FORMAT_VERSION:
            raise ScanError(f"{path}: session format version {meta.get('format_version')!r}; this xenoedge reads 1")
        return meta

    def write_meta(self, meta: dict) -> None:
        self.write_json(self.session_file, meta)

    def write_json(self, path: Path, value: Any) -> None:
        self.writer.write(path, (json.dumps(value, indent=1, allow_nan=False) + "\n").encode())

    # ---- lock ----------------------------------------------------------------------------
    def lock(self) -> None:
        """Hold the session's lock (``ScanError`` when another scan holds it); released by ``unlock``
        or when the process ends, however it ends."""
        import fcntl

        if self.root.exists() and not self.root.is_dir():
            raise ScanError(f"{self.root}: not a folder (--session names the session's folder)")
        try:
            make_dirs(self.root)
        except OSError as exc:
            raise output_error(self.root, exc) from None
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ScanError(f"{self.root}: another scan is running on this session") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the lock explicitly, not only by closing: a process forked meanwhile (a library's
        helper) shares the lock's open file, and a close alone would leave the session locked."""
        import fcntl

        if self._lock_fd is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None

    # ---- frames --------------------------------------------------------------------------
    def commit_frame(self, record: dict, picture_png: bytes, mask_png: bytes) -> None:
        """Write one frame: mask, picture, then its record (the commit point)."""
        files = self.frame_files(record["plot"], record["number"])
        make_dirs(files["record"].parent)
        self.writer.write(files["mask"], mask_png)
        self.writer.write(files["picture"], picture_png)
        self.write_json(files["record"], record)

    def _plot_dirs(self) -> Iterator[Path]:
        base = self.root / PLOTS_DIR
        if base.is_dir():
            yield from sorted(p for p in base.iterdir() if p.is_dir())

    def load_records(self) -> list[dict]:
        """Every committed frame record, by frame number."""
        records = []
        for folder in self._plot_dirs():
            for path in folder.iterdir():
                if _RECORD_NAME.fullmatch(path.name):
                    try:
                        record = json.loads(path.read_text(encoding="utf-8"))
                    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                        raise ScanError(f"{path}: frame record cannot be read ({exc})") from None
                    if record.get("plot") != folder.name or frame_stem(record.get("number", -1)) != path.stem:
                        raise ScanError(
                            f"{path}: frame record names plot {record.get('plot')!r} frame "
                            f"{record.get('number')!r}, not its own file"
                        )
                    records.append(record)
        return sorted(records, key=lambda r: r["number"])

    def recover(self) -> dict[str, int]:
        """Remove what an interrupted frame left behind; returns how many files of each kind.

        ``temp_files``: atomic-write temp files (``.NAME.*.tmp``) anywhere in the session;
        ``orphan_files``: a frame's mask or picture without its record.
        """
        removed = {"temp_files": 0, "orphan_files": 0}
        folders = [self.root, *self._plot_dirs()]
        for folder in folders:
            if not folder.is_dir():
                continue
            names = {p.name for p in folder.iterdir()}
            for name in sorted(names):
                path = folder / name
                if name.startswith(".") and ".tmp" in name and path.is_file():
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    removed["temp_files"] += 1
                    continue
                match = _FRAME_FILE.fullmatch(name)
                if folder != self.root and match and f"{match.group(1)}.json" not in names:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    removed["orphan_files"] += 1
        return removed
