"""``unet-edge``: the edge-first spatial model: pool first, a small U-Net at the working size, upsample last.

Layout (defaults; C bands in, K classes out, an H x W frame, pool p = 4)::

    pool        replicate-pad H, W to multiples of p, AvgPool p x p       H/p x W/p   (working size)
    spectral    1x1 Conv C->16 + BN + ReLU                                 H/p x W/p
    enc1        3x3 Conv 16->24 + BN + ReLU                                H/p         -> skip 1
    enc2        MaxPool 2, 2 x (3x3 Conv + BN + ReLU) 24->32               H/2p        -> skip 2
    enc3        MaxPool 2, 2 x (3x3 ...) 32->48                            H/4p        -> skip 3
    bottleneck  MaxPool 2, 2 x (3x3 ...) 48->64                            H/8p
    dec3        Upsample x2, concat skip 3, 2 x (3x3 ...) 112->48          H/4p
    dec2        Upsample x2, concat skip 2, 2 x (3x3 ...) 80->32           H/2p
    dec1        Upsample x2, concat skip 1, 3x3 ... 56->24                 H/p
    head        1x1 Conv 24->K (bias)                                      H/p x W/p logits
    upsample    bilinear x p (align_corners=False), crop to H x W          H x W logits

Everything between ``pool`` and ``upsample`` is :attr:`EdgeUNet.core`: it takes L1 spectra at
the working size (any size: it replicate-pads to a multiple of 8 inside and crops back) and
returns logits at that size. The export (``export/onnx_export.py``) does not trace the torch
pooling: the graph pools the *raw* uint16 frame (two ReduceSum nodes), calibrates with
``dark``/``gain`` bound at the working size, L1-normalises, runs the core, and upsamples the
logits to the full frame before the arg-max. In PyTorch (training, evaluation) the model takes
full-size L1 spectra and pools them itself; docs/models.md measures the difference between the
two orders (calibrate then pool, pool then calibrate).

The average of L1-normalised spectra is L1-normalised, so pooling keeps the input contract.
H and W may be any size (``required_multiple`` is 1); ~0.2 M parameters for C = 100.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from xenoedge.xeno.models.base import (
    POOL_FACTORS,
    ModelConfigError,
    XenoModel,
    checked_pool,
    conv_bn_act,
    int_list,
    pad_forward_crop,
    pooled_forward,
)

__all__ = ["POOL_FACTORS", "EdgeUNet", "EdgeUNetCore"]


def _level(in_channels: int, out_channels: int, convs: int) -> nn.Sequential:
    """``convs`` x (3x3 Conv + BN + ReLU): (B, Cin, h, w) -> (B, Cout, h, w)."""
    layers = [conv_bn_act(in_channels, out_channels, 3)]
    layers += [conv_bn_act(out_channels, out_channels, 3) for _ in range(convs - 1)]
    return nn.Sequential(*layers)


class EdgeUNetCore(nn.Module):
    """The U-Net at the working size: (B, C, h, w) L1 spectra x ``input_scale`` -> (B, K, h, w) logits.

    ``h`` and ``w`` may be anything: the input is replicate-padded to a multiple of
    ``2 ** len(widths)`` and the logits cropped back.
    """

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        *,
        input_scale: float,
        reduced_channels: int,
        widths: Sequence[int],
        bottleneck: int,
        outer_convs: int,
    ):
        super().__init__()
        self.input_scale = float(input_scale)
        self.multiple = 2 ** len(widths)
        self.spectral = conv_bn_act(in_channels, reduced_channels, 1)
        self.encoders = nn.ModuleList()
        width = reduced_channels
        for i, w in enumerate(widths):
            self.encoders.append(_level(width, w, outer_convs if i == 0 else 2))
            width = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _level(width, bottleneck, 2)
        self.decoders = nn.ModuleList()
        width = bottleneck
        for i, w in enumerate(reversed(widths)):
            self.decoders.append(_level(width + w, w, outer_convs if i == len(widths) - 1 else 2))
            width = w
        self.head = nn.Conv2d(width, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) L1 spectra -> (B, K, h, w) logits."""
        return pad_forward_crop(self._unet, x * self.input_scale, self.multiple)

    def _unet(self, x: torch.Tensor) -> torch.Tensor:
        x = self.spectral(x)
        skips: list[torch.Tensor] = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x if i == 0 else self.pool(x))
            skips.append(x)
        x = self.bottleneck(self.pool(x))
        for decoder, skip in zip(self.decoders, reversed(skips), strict=True):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = decoder(torch.cat([x, skip], dim=1))
        return self.head(x)


class EdgeUNet(XenoModel):
    """Pool by ``pool``, U-Net at the working size, bilinear logits back: (B, C, H, W) -> (B, K, H, W).

    >>> m = EdgeUNet(100, 10).eval()
    >>> m(torch.rand(1, 100, 60, 84)).shape
    torch.Size([1, 10, 60, 84])
    >>> m.core(torch.rand(1, 100, 15, 21)).shape
    torch.Size([1, 10, 15, 21])
    """

    registry_name = "unet-edge"

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        *,
        pool: int = 4,
        reduced_channels: int = 16,
        widths: Sequence[int] = (24, 32, 48),
        bottleneck: int = 64,
        outer_convs: int = 1,
    ):
        pool = checked_pool(pool)
        (reduced,) = int_list("reduced_channels", [reduced_channels])
        widths_list = int_list("widths", widths)
        (bottom,) = int_list("bottleneck", [bottleneck])
        if outer_convs not in (1, 2):
            raise ModelConfigError(f"outer_convs must be 1 or 2, got {outer_convs!r}")
        options = {
            "pool": pool,
            "reduced_channels": reduced,
            "widths": widths_list,
            "bottleneck": bottom,
            "outer_convs": outer_convs,
        }
        super().__init__(in_channels, n_classes, required_multiple=1, options=options)
        #: Pooling factor from the frame to the working size (the export pools the raw frame by it).
        self.input_pool = pool
        self.core = EdgeUNetCore(
            in_channels,
            n_classes,
            input_scale=self.input_scale,
            reduced_channels=reduced,
            widths=widths_list,
            bottleneck=bottom,
            outer_convs=outer_convs,
        )

    def forward_working(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) L1 spectra at the working size -> (B, n_classes, h, w) logits."""
        return self.core(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) full-size L1 spectra -> (B, n_classes, H, W) logits."""
        self.check_input(x)
        return self.core(x) if self.input_pool == 1 else pooled_forward(self, x)
