"""Checkpoints: weights plus a JSON config, loaded without unpickling arbitrary objects.

A checkpoint is a folder::

    CKPT/
      config.json     format_version, model (name + constructor options), label set, wavelengths,
                      sensor, preprocessing, the training config and the data split
      model.pt        the model's state_dict (tensors only; read with torch.load(weights_only=True))
      optimizer.pt    optimizer state (tensors and numbers only), for resuming
      state.json      step, loss history, RNG states (for resuming)
      rng.pt          torch RNG state (a uint8 tensor)

Each file is written atomically; ``state.json`` is written last, so a checkpoint whose
``state.json`` names step N has complete weights for step N.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from xenoedge.atomic import atomic_write
from xenoedge.errors import XenoedgeError

FORMAT_VERSION = 1


class CheckpointError(XenoedgeError):
    """A checkpoint folder that is missing, incomplete, corrupt or of another format."""


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=2).encode()))


def _write_tensor_file(path: Path, obj: Any) -> None:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def save_checkpoint(folder: Path, *, model, optimizer, config: dict, state: dict, rng_state) -> Path:
    """Write (or overwrite) checkpoint ``folder``; ``state.json`` last."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / "config.json", {"format_version": FORMAT_VERSION, **config})
    _write_tensor_file(folder / "model.pt", model.state_dict())
    if optimizer is not None:
        _write_tensor_file(folder / "optimizer.pt", optimizer.state_dict())
    _write_tensor_file(folder / "rng.pt", rng_state)
    _write_json(folder / "state.json", state)
    return folder


def read_config(folder: Path) -> dict:
    """The checkpoint's config.json, checked for format."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder}: not a checkpoint (no config.json)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt JSON ({exc})") from None
    if config.get("format_version") != FORMAT_VERSION or "model" not in config:
        raise CheckpointError(f"{path}: not a xenoedge checkpoint of format {FORMAT_VERSION}")
    return config


def read_state(folder: Path) -> dict | None:
    path = Path(folder) / "state.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt JSON ({exc})") from None


def load_tensors(path: Path) -> Any:
    """torch.load with ``weights_only=True``: tensors, numbers, lists and dicts only."""
    import pickle

    import torch

    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt or not a weights-only file ({str(exc).splitlines()[0]})") from None


def load_model(folder: Path):
    """(model in eval mode, config) from a checkpoint folder."""
    from xenoedge.xeno.models import model_from_config

    folder = Path(folder)
    config = read_config(folder)
    model = model_from_config(config["model"])
    state_dict = load_tensors(folder / "model.pt")
    try:
        model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{folder / 'model.pt'}: weights do not fit {config['model']} ({exc})") from None
    model.eval()
    return model, config
