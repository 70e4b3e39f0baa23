"""What every xenoedge segmentation model shares: its stored configuration, input checks, padding.

A model takes L1-normalised reflectance spectra as a float32 tensor (B, C, H, W) and returns
per-class logits (B, n_classes, H, W) at the input's resolution. Class 0 is background.

Every model records the arguments it was built with (``in_channels``, ``n_classes`` and its
JSON-safe ``options``) so that a checkpoint's JSON config can rebuild it without unpickling
anything (see :func:`xenoedge.xeno.models.model_config`).

Models with pooling need ``H`` and ``W`` to be multiples of ``required_multiple``;
:func:`pad_to_multiple` pads a frame (edge replication) so that they are, and the caller crops
the logits back with ``logits[..., :h, :w]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from xenoedge.errors import XenoedgeError

#: Frame pooling factors a model may take (``input_pool``); the export graph implements each.
POOL_FACTORS = (1, 2, 4, 8)


class ModelConfigError(XenoedgeError, ValueError):
    """A model configuration that cannot be built: bad option names, types or values."""


class ModelInputError(XenoedgeError, ValueError):
    """A tensor that a model cannot take: wrong rank, band count, or spatial size."""


class XenoModel(nn.Module):
    """Base class: records the constructor arguments and checks inputs (outside export tracing).

    Subclasses set ``registry_name`` (their key in :data:`xenoedge.xeno.models.MODELS`) and
    ``required_multiple`` (1 for per-pixel models), and call ``super().__init__`` with the
    options they were built with, already in JSON-safe form (ints, floats, strings, lists).
    """

    registry_name: ClassVar[str] = ""

    def __init__(self, in_channels: int, n_classes: int, required_multiple: int, options: dict[str, Any]):
        super().__init__()
        if not isinstance(in_channels, int) or isinstance(in_channels, bool) or in_channels < 1:
            raise ModelConfigError(f"in_channels must be a positive int, got {in_channels!r}")
        if not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 2:
            raise ModelConfigError(f"n_classes must be an int >= 2 (background included), got {n_classes!r}")
        self.in_channels = in_channels
        self.n_classes = n_classes
        #: H and W of the input must be multiples of this (1 = any size).
        self.required_multiple = required_multiple
        #: Constructor options, JSON-safe; with the name and channel counts they rebuild the model.
        self.options: dict[str, Any] = dict(options)
        #: L1-normalised spectra sum to 1, so each band is ~1/C: far below BatchNorm's eps for the
        #: first layer's variance, which leaves its running statistics useless at inference.
        #: Multiplying by C (a constant Mul in the exported graph) brings bands to ~1.
        self.input_scale = float(in_channels)

    #: Frames are pooled this many times in H and W before the network (edge-first models, or a
    #: reference trained at the working size); 1 = the network sees the full frame.
    input_pool: int = 1

    def forward_working(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) spectra already pooled ``input_pool`` times -> (B, K, h, w) logits.

        Training (``xenoedge.xeno.train``) and the export graph run this; ``forward`` wraps it in
        :func:`pooled_forward`. Models that do not pool have nothing to wrap: this is ``forward``.
        """
        return self(x)

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Check ``x`` (see ``check_input``) and scale L1 spectra by ``input_scale``."""
        self.check_input(x)
        return x * self.input_scale

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`ModelInputError` for an input this model cannot take.

        Skipped while tracing for export so that the exported graph holds no checks.
        """
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
            return
        if x.ndim != 4:
            raise ModelInputError(f"{self.registry_name}: expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ModelInputError(
                f"{self.registry_name}: built for {self.in_channels} bands, got {x.shape[1]} (shape {tuple(x.shape)})"
            )
        m = self.required_multiple
        if x.shape[2] % m or x.shape[3] % m:
            raise ModelInputError(
                f"{self.registry_name}: H and W must be multiples of {m}, got {x.shape[2]}x{x.shape[3]}; "
                f"pad with xenoedge.xeno.models.pad_to_multiple(x, {m}) and crop the logits"
            )


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (B, C, H, W) at the bottom and right by edge replication so H and W divide by ``multiple``.

    Replication keeps padded pixels valid spectra (zeros would not be L1-normalised). Crop the
    model's logits back with ``logits[..., :h, :w]`` where ``h, w = x.shape[-2:]``.

    >>> pad_to_multiple(torch.zeros(1, 3, 61, 64), 8).shape
    torch.Size([1, 3, 64, 64])
    """
    if multiple < 1:
        raise ModelConfigError(f"multiple must be >= 1, got {multiple}")
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def checked_pool(pool: object) -> int:
    """``pool`` as an int from :data:`POOL_FACTORS`; :class:`ModelConfigError` otherwise."""
    if not isinstance(pool, int) or isinstance(pool, bool) or pool not in POOL_FACTORS:
        raise ModelConfigError(f"pool must be one of {POOL_FACTORS}, got {pool!r}")
    return pool


def pad_forward_crop(network, x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``network`` on ``x`` (B, C, h, w) replicate-padded to a multiple of ``multiple``; logits cropped to h x w."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (multiple - h % multiple) % multiple, (multiple - w % multiple) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    logits = network(x)
    return logits[..., :h, :w] if (pad_h or pad_w) else logits


def pooled_forward(model: XenoModel, x: torch.Tensor) -> torch.Tensor:
    """Full-size (B, C, H, W) L1 spectra -> (B, K, H, W) logits through ``model.forward_working``.

    H and W are replicate-padded to multiples of ``p = model.input_pool``, average-pooled p x p
    (the mean of L1 spectra is L1-normalised), run at the working size, and the logits upsampled
    bilinearly (``align_corners=False``: the export's Resize, half-pixel) and cropped to H x W.
    """
    p = model.input_pool

    def pool_work_upsample(padded: torch.Tensor) -> torch.Tensor:
        logits = model.forward_working(F.avg_pool2d(padded, p))
        return F.interpolate(logits, scale_factor=float(p), mode="bilinear", align_corners=False)

    return pad_forward_crop(pool_work_upsample, x, p)


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    groups: int = 1,
    act: type[nn.Module] | None = nn.ReLU,
    bn_eps: float = 1e-5,
    bn_momentum: float = 0.1,
) -> nn.Sequential:
    """Conv (no bias, padding ``k // 2``) + BatchNorm (+ activation): (B, Cin, H, W) -> (B, Cout, H/s, W/s)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum),
    ]
    if act is not None:
        layers.append(act(inplace=True) if act in (nn.ReLU, nn.SiLU) else act())
    return nn.Sequential(*layers)


def int_list(name: str, value: Any, *, length: int | None = None) -> list[int]:
    """Validate a list of positive ints given as an option (tuple or JSON list)."""
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
    ):
        raise ModelConfigError(f"{name} must be a list of positive ints, got {value!r}")
    if length is not None and len(value) != length:
        raise ModelConfigError(f"{name} must have {length} entries, got {len(value)}")
    if not value:
        raise ModelConfigError(f"{name} must not be empty")
    return [int(v) for v in value]
