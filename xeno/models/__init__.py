"""Segmentation models: one registry table read by training, export and the docs.

Every model maps L1-normalised spectra (B, C, H, W) float32 to logits (B, n_classes, H, W),
class 0 being background. ``MODELS`` names them; :func:`build_model` builds one by name;
:func:`model_config` / :func:`model_from_config` turn a model into a JSON-safe dict and back
(names and option values are checked against the table; nothing is evaluated or unpickled).

>>> sorted(MODELS)
['pixel-mlp', 'unet-edge', 'unet-effb5', 'unet-small']
>>> m = build_model("pixel-mlp", 100, 10)
>>> count_parameters(m)
11402
>>> model_config(m)
{'name': 'pixel-mlp', 'in_channels': 100, 'n_classes': 10, 'options': {'hidden': [64, 64]}}
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from xenoedge.xeno.models.base import ModelConfigError, ModelInputError, XenoModel, pad_to_multiple
from xenoedge.xeno.models.edge_unet import EdgeUNet
from xenoedge.xeno.models.pixel import PixelMLP
from xenoedge.xeno.models.reference import UNetEfficientNetB5
from xenoedge.xeno.models.unet import UNetSmall

from xenoedge.errors import UnknownNameError

__all__ = [
    "MODELS",
    "ModelConfigError",
    "ModelInputError",
    "ModelSpec",
    "XenoModel",
    "build_model",
    "count_parameters",
    "model_config",
    "model_from_config",
    "pad_to_multiple",
]


@dataclass(frozen=True)
class ModelSpec:
    """One row of the model table.

    ``builder(in_channels, n_classes, **options)`` returns the model; ``options`` are the
    keyword options it accepts (read from its signature). ``edge`` marks models sized for
    devices (< 1 M parameters, export-friendly); the others are for comparison.
    (H and W must be multiples of the built model's ``required_multiple``.)
    """

    name: str
    builder: Callable[..., XenoModel]
    description: str
    edge: bool
    options: tuple[str, ...] = field(default=())


def _spec(cls: type[XenoModel], description: str, *, edge: bool) -> ModelSpec:
    params = inspect.signature(cls.__init__).parameters.values()
    options = tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)
    return ModelSpec(cls.registry_name, cls, description, edge, options)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            PixelMLP,
            "per-pixel spectral MLP of 1x1 convolutions (C -> 64 -> 64 -> K, BN + ReLU); any H x W",
            edge=True,
        ),
        _spec(
            UNetSmall,
            "1x1 spectral reduction to 16 channels, then a 3-level U-Net (16/32/64, 128 bottleneck, bilinear x2)",
            edge=True,
        ),
        _spec(
            EdgeUNet,
            "edge-first: pool the frame p x p (default 4), 1x1 spectral reduction, U-Net (24/32/48, 64) at the "
            "working size, logits bilinear back to the frame; any H x W",
            edge=True,
        ),
        _spec(
            UNetEfficientNetB5,
            "paper's reference: U-Net with EfficientNet-B5 encoder, mirrors smp.Unet('efficientnet-b5'); ~30 M",
            edge=False,
        ),
    )
}


def get_spec(name: str) -> ModelSpec:
    """The table row for ``name``; :class:`UnknownNameError` listing the models otherwise."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise UnknownNameError("model", str(name), sorted(MODELS)) from None


def build_model(name: str, in_channels: int, n_classes: int, **options: Any) -> XenoModel:
    """Build model ``name`` for ``in_channels`` bands and ``n_classes`` classes (background included).

    Options are the builder's keyword options (see ``MODELS[name].options``); an unknown one
    raises :class:`UnknownNameError`, a bad value :class:`ModelConfigError`.
    """
    spec = get_spec(name)
    for key in options:
        if key not in spec.options:
            raise UnknownNameError(f"option of model {name!r}", key, spec.options)
    return spec.builder(in_channels, n_classes, **options)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``); BN running stats excluded."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


CONFIG_KEYS = ("name", "in_channels", "n_classes", "options")


def model_config(model: nn.Module) -> dict[str, Any]:
    """JSON-safe description that :func:`model_from_config` rebuilds the same architecture from."""
    if not isinstance(model, XenoModel) or model.registry_name not in MODELS:
        raise ModelConfigError(f"{type(model).__name__} is not a registered xenoedge model; known: {sorted(MODELS)}")
    config = {
        "name": model.registry_name,
        "in_channels": model.in_channels,
        "n_classes": model.n_classes,
        "options": json.loads(json.dumps(model.options)),
    }
    return config


def model_from_config(config: Mapping[str, Any]) -> XenoModel:
    """Rebuild a model (fresh weights) from :func:`model_config`'s dict, e.g. read from a checkpoint's JSON.

    Only the keys ``name``, ``in_channels``, ``n_classes``, ``options`` are accepted; option
    names are checked against the table and values must be plain JSON (numbers, strings,
    booleans, lists of those).
    """
    if not isinstance(config, Mapping):
        raise ModelConfigError(f"model config must be a JSON object, got {type(config).__name__}")
    extra = sorted(set(config) - set(CONFIG_KEYS))
    missing = [k for k in CONFIG_KEYS[:3] if k not in config]
    if extra or missing:
        raise ModelConfigError(f"model config: unexpected keys {extra}, missing keys {missing}; expected {CONFIG_KEYS}")
    options = config.get("options", {})
    if not isinstance(options, Mapping):
        raise ModelConfigError(f"model config: 'options' must be an object, got {type(options).__name__}")
    for key, value in options.items():
        if not _plain_json(value):
            raise ModelConfigError(f"model config: option {key!r} must be a number, string or list, got {value!r}")
    return build_model(config["name"], config["in_channels"], config["n_classes"], **dict(options))


def _plain_json(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(isinstance(v, (bool, int, float, str)) for v in value)
    return False
