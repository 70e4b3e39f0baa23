"""``unet-small``: spectral reduction to 16 channels, then a three-level U-Net.

Layout (defaults; C bands in, K classes out, sizes for an H x W input)::

    spectral   1x1 Conv C->16 + BN + ReLU                      H   x W
    enc1       2 x (3x3 Conv + BN + ReLU) 16->16                H   x W      -> skip 1
    enc2       MaxPool2d(2), 2 x (3x3 ...) 16->32               H/2 x W/2    -> skip 2
    enc3       MaxPool2d(2), 2 x (3x3 ...) 32->64               H/4 x W/4    -> skip 3
    bottleneck MaxPool2d(2), 2 x (3x3 ...) 64->128              H/8 x W/8
    dec3       Upsample x2, concat skip 3, 2 x (3x3 ...) 192->64 H/4 x W/4
    dec2       Upsample x2, concat skip 2, 2 x (3x3 ...) 96->32  H/2 x W/2
    dec1       Upsample x2, concat skip 1, 2 x (3x3 ...) 48->16  H   x W
    head       1x1 Conv 16->K (bias)                            H   x W

Upsampling is ``nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)``, which
exports as one ONNX ``Resize`` (linear, half_pixel) that ONNX Runtime, OpenVINO and TensorRT all
run. **H and W must be multiples of 8** (three poolings), as ``model.required_multiple`` says;
pad other sizes with :func:`pad_to_multiple` and crop the logits. ~0.49 M parameters for
C = 100.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from xenoedge.xeno.models.base import ModelConfigError, XenoModel, conv_bn_act, int_list, pad_to_multiple

__all__ = ["UNetSmall", "pad_to_multiple"]

UPSAMPLE_MODES = ("bilinear", "nearest")


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 Conv + BN + ReLU: (B, Cin, H, W) -> (B, Cout, H, W)."""
    return nn.Sequential(conv_bn_act(in_channels, out_channels, 3), conv_bn_act(out_channels, out_channels, 3))


def upsample_x2(mode: str) -> nn.Upsample:
    """x2 upsampling with every setting explicit (exports as one ONNX Resize)."""
    if mode == "bilinear":
        return nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False)
    return nn.Upsample(scale_factor=2.0, mode="nearest")


class UNetSmall(XenoModel):
    """Spectral 1x1 reduction + small U-Net: (B, C, H, W) -> (B, n_classes, H, W) logits; H, W multiples of 8.

    >>> m = UNetSmall(100, 10).eval()
    >>> m(torch.rand(1, 100, 24, 32)).shape
    torch.Size([1, 10, 24, 32])
    """

    registry_name = "unet-small"

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        *,
        reduced_channels: int = 16,
        widths: Sequence[int] = (16, 32, 64),
        bottleneck: int = 128,
        upsample: str = "bilinear",
    ):
        (reduced,) = int_list("reduced_channels", [reduced_channels])
        widths_list = int_list("widths", widths)
        (bottom,) = int_list("bottleneck", [bottleneck])
        if upsample not in UPSAMPLE_MODES:
            raise ModelConfigError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        options = {"reduced_channels": reduced, "widths": widths_list, "bottleneck": bottom, "upsample": upsample}
        super().__init__(in_channels, n_classes, required_multiple=2 ** len(widths_list), options=options)

        self.spectral = conv_bn_act(in_channels, reduced, 1)
        self.encoders = nn.ModuleList()
        width = reduced
        for w in widths_list:
            self.encoders.append(double_conv(width, w))
            width = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = double_conv(width, bottom)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        width = bottom
        for w in reversed(widths_list):
            self.ups.append(upsample_x2(upsample))
            self.decoders.append(double_conv(width + w, w))
            width = w
        self.head = nn.Conv2d(width, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float32, H and W multiples of ``required_multiple`` -> (B, n_classes, H, W) logits."""
        x = self.prepare_input(x)
        x = self.spectral(x)
        skips: list[torch.Tensor] = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x if i == 0 else self.pool(x))
            skips.append(x)
        x = self.bottleneck(self.pool(x))
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            x = decoder(torch.cat([up(x), skip], dim=1))
        return self.head(x)
