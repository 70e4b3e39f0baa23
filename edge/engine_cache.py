"""Compiled-model caches of the engines: one folder per model file and device, least recently used go.

``EngineOptions.cache_dir`` (the daemon's ``cache_dir``, by default ``<state_dir>/cache``) holds
OpenVINO's ``CACHE_DIR`` and TensorRT's engine and timing caches, one folder per model file
(``model_cache_folder``: named by the file's SHA-256, so a new bundle never reads an old engine
and an A/B rollback finds its own still there; the least recently used folders beyond
``CACHE_KEEP`` are removed). The first start compiles and stores, later starts import
(``Engine.cache_state``); docs/targets.md lists the measured times.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from xenoedge.edge.engine_base import EngineError

__all__ = ["CACHE_KEEP", "cache_folder_or_none", "model_cache_folder"]

log = logging.getLogger("xenoedge.engines")

#: Cache folders kept under ``cache_dir`` (least recently used removed beyond this): two A/B
#: slots and a few candidates on probation.
CACHE_KEEP = 4


def model_cache_folder(cache_dir: Path, model_path: Path, device: str) -> Path:
    """The cache folder of one model file on one device: ``cache_dir/<stem>-<device>-<sha256[:16]>``,
    created, and marked as just used; the least recently used folders beyond ``CACHE_KEEP`` go."""
    digest = hashlib.sha256()
    with open(model_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    safe_device = "".join(ch if ch.isalnum() else "_" for ch in device)
    folder = Path(cache_dir) / f"{model_path.stem}-{safe_device}-{digest.hexdigest()[:16]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.utime(folder)
        siblings = sorted((p for p in Path(cache_dir).iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for old in siblings[:-CACHE_KEEP]:
            if old != folder:
                _remove_tree(old)
    except OSError as exc:
        raise EngineError(f"{cache_dir}: cannot use it as the model cache ({exc.strerror or exc})") from None
    return folder


def cache_folder_or_none(cache_dir: Path | None, model_path: Path, device: str) -> Path | None:
    """``model_cache_folder``, or None with a warning when the cache cannot be written: a model
    that compiles at every start is slower to start, not broken."""
    if cache_dir is None:
        return None
    try:
        return model_cache_folder(cache_dir, model_path, device)
    except EngineError as exc:
        log.warning("%s; compiling without a cache", exc)
        return None


def _remove_tree(folder: Path) -> None:
    for p in sorted(folder.rglob("*"), key=lambda q: len(q.parts), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    folder.rmdir()
