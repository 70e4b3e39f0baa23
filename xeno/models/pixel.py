"""``pixel-mlp``: a per-pixel spectral classifier built from 1x1 convolutions.

Each pixel's spectrum is classified on its own: C -> 64 -> 64 -> n_classes, every hidden
layer 1x1 Conv (no bias) + BatchNorm + ReLU, then a 1x1 Conv with bias giving logits. This is
an MLP applied at every pixel, written as convolutions so that the exported graph is plain
Conv/BatchNormalization/Relu (BatchNorm folds into the convolution at export) and takes any
H x W. BatchNorm also takes care of the input scale: L1-normalised spectra are ~1/C per band.

For C = 100 and 10 classes it has ~11.5 k parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from xenoedge.xeno.models.base import XenoModel, conv_bn_act, int_list


class PixelMLP(XenoModel):
    """Per-pixel MLP of 1x1 convolutions: (B, C, H, W) L1-normalised spectra -> (B, n_classes, H, W) logits.

    >>> m = PixelMLP(100, 10)
    >>> m(torch.rand(2, 100, 5, 7)).shape
    torch.Size([2, 10, 5, 7])
    """

    registry_name = "pixel-mlp"

    def __init__(self, in_channels: int, n_classes: int, *, hidden: Sequence[int] = (64, 64)):
        hidden_list = int_list("hidden", hidden)
        super().__init__(in_channels, n_classes, required_multiple=1, options={"hidden": hidden_list})
        layers: list[nn.Module] = []
        width = in_channels
        for h in hidden_list:
            layers.append(conv_bn_act(width, h, 1))
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(width, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float32 -> (B, n_classes, H, W) logits."""
        x = self.prepare_input(x)
        return self.head(self.body(x))
