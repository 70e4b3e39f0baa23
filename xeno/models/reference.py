"""``unet-effb5``: the paper's reference network, a U-Net with an EfficientNet-B5 encoder.

This mirrors ``segmentation_models_pytorch.Unet("efficientnet-b5", encoder_weights=None,
in_channels=100, classes=K)``. smp itself is not used: it imports torchvision, and the CPU
torch build we pin cannot be installed beside PyPI's torchvision (``operator torchvision::nms
does not exist``); smp would also pull timm and the ``efficientnet_pytorch`` package for one
architecture that fits in this file. No pretrained weights exist for 100 bands anyway.

Encoder (EfficientNet-B5 as in Tan & Le 2019 and lukemelas' ``efficientnet_pytorch``, which smp
wraps): width 1.6, depth 2.2, channels rounded to multiples of 8 (``round_filters``), repeats
rounded up (``round_repeats``). Stem 3x3/2 Conv C->48 + BN + swish, then 39 MBConv blocks in
7 stages (output channels 24, 40, 64, 128, 176, 304, 512; repeats 3, 5, 5, 7, 7, 9, 3; kernels
3, 3, 5, 3, 5, 5, 3; strides 1, 2, 2, 2, 1, 2, 1; expansion 1 then 6; squeeze-excitation with
ratio 0.25 of the block's input channels; swish), BatchNorm eps 1e-3 / momentum 0.01 (TF's
0.99), stochastic depth ("drop connect") 0.2 scaled by block index, active in training only.
Features for the decoder as smp takes them: stride 2 = stem output (48 ch), stride 4 = after
block 8 (40), stride 8 = after block 13 (64), stride 16 = after block 27 (176), stride 32 =
after block 39 (512).

Decoder (smp ``UnetDecoder``, no centre block, no attention): five blocks with 256, 128, 64,
32, 16 channels; each does nearest x2 upsampling, concatenates the skip of that stride (none
in the last block), then two 3x3 Conv (no bias) + BN + ReLU. Head: 3x3 Conv 16->K with bias.
H and W must be multiples of 32 (``required_multiple``).

Differences from smp, on purpose:

- Convolutions use symmetric ``k // 2`` padding. lukemelas' code uses TensorFlow "same"
  padding computed for a 456 x 456 image, which for stride-2 layers pads one pixel more at
  the bottom/right; output sizes are the same for inputs divisible by 32. Without pretrained
  weights the half-pixel alignment does not matter, and the graph avoids extra ``Pad`` nodes.
- The encoder's unused classification head (1x1 Conv 512->2048 + BN, 1,052,672 parameters)
  is left out. smp keeps it in the module although its forward never calls it, so
  ``count_parameters`` of the smp model is larger by that amount (see
  :data:`SMP_UNUSED_HEAD_PARAMETERS`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from xenoedge.xeno.models.base import (
    ModelConfigError,
    XenoModel,
    checked_pool,
    conv_bn_act,
    int_list,
    pad_forward_crop,
    pooled_forward,
)

WIDTH_COEFFICIENT = 1.6
DEPTH_COEFFICIENT = 2.2
DEPTH_DIVISOR = 8
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # PyTorch convention; TensorFlow's 0.99

#: Parameters of the EfficientNet-B5 conv head (1x1 512->2048 + BN) that smp keeps but never runs.
SMP_UNUSED_HEAD_PARAMETERS = 512 * 2048 + 2 * 2048


@dataclass(frozen=True)
class StageArgs:
    """One EfficientNet-B0 stage before scaling (lukemelas' ``BlockArgs``)."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    in_filters: int
    out_filters: int
    se_ratio: float = 0.25


#: EfficientNet-B0 stages ('r1_k3_s11_e1_i32_o16_se0.25', ...), scaled to B5 below.
B0_STAGES = (
    StageArgs(1, 3, 1, 1, 32, 16),
    StageArgs(2, 3, 2, 6, 16, 24),
    StageArgs(2, 5, 2, 6, 24, 40),
    StageArgs(3, 3, 2, 6, 40, 80),
    StageArgs(3, 5, 1, 6, 80, 112),
    StageArgs(4, 5, 2, 6, 112, 192),
    StageArgs(1, 3, 1, 6, 192, 320),
)
B0_STEM = 32

#: Block counts after which smp takes the stride 4, 8, 16 and 32 features of EfficientNet-B5.
B5_STAGE_IDXS = (8, 13, 27, 39)


def round_filters(filters: int, width: float = WIDTH_COEFFICIENT, divisor: int = DEPTH_DIVISOR) -> int:
    """Scale a channel count by the width coefficient, to a multiple of ``divisor`` (never < 90 %).

    >>> [round_filters(f) for f in (32, 16, 24, 40, 80, 112, 192, 320)]
    [48, 24, 40, 64, 128, 176, 304, 512]
    """
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


def round_repeats(repeats: int, depth: float = DEPTH_COEFFICIENT) -> int:
    """Scale a stage's block count by the depth coefficient, rounding up.

    >>> [round_repeats(r) for r in (1, 2, 2, 3, 3, 4, 1)]
    [3, 5, 5, 7, 7, 9, 3]
    """
    return math.ceil(depth * repeats)


class SqueezeExcite(nn.Module):
    """Channel gate: GlobalAveragePool -> 1x1 Conv -> swish -> 1x1 Conv -> sigmoid, times x. (B, C, H, W) -> same."""

    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.act = nn.SiLU(inplace=True)
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-excitation: (B, Cin, H, W) -> (B, Cout, H/s, W/s).

    1x1 expansion (if ratio > 1) + BN + swish, kxk depthwise (stride s) + BN + swish, SE,
    1x1 projection + BN; residual with stochastic depth when s = 1 and Cin = Cout.
    """

    def __init__(
        self, in_ch: int, out_ch: int, *, kernel: int, stride: int, expand: int, se_ratio: float, drop_rate: float
    ):
        super().__init__()
        mid = in_ch * expand
        bn = {"bn_eps": BN_EPS, "bn_momentum": BN_MOMENTUM}
        self.expand = conv_bn_act(in_ch, mid, 1, act=nn.SiLU, **bn) if expand != 1 else nn.Identity()
        self.depthwise = conv_bn_act(mid, mid, kernel, stride=stride, groups=mid, act=nn.SiLU, **bn)
        self.se = SqueezeExcite(mid, max(1, int(in_ch * se_ratio)))
        self.project = conv_bn_act(mid, out_ch, 1, act=None, **bn)
        self.residual = stride == 1 and in_ch == out_ch
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        if not self.residual:
            return y
        if self.training and self.drop_rate > 0:
            keep = 1.0 - self.drop_rate
            mask = torch.floor(keep + torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device))
            y = y / keep * mask
        return x + y


class EfficientNetB5Encoder(nn.Module):
    """EfficientNet-B5 feature extractor: (B, C, H, W) -> features at strides 1, 2, 4, 8, 16, 32.

    Channels of the returned list: (C, 48, 40, 64, 176, 512), as smp's ``out_channels``.
    """

    def __init__(self, in_channels: int, *, drop_connect_rate: float = 0.2):
        super().__init__()
        stem = round_filters(B0_STEM)
        self.stem = conv_bn_act(in_channels, stem, 3, stride=2, act=nn.SiLU, bn_eps=BN_EPS, bn_momentum=BN_MOMENTUM)
        specs: list[tuple[int, int, StageArgs]] = []
        width = stem
        for stage in B0_STAGES:
            out = round_filters(stage.out_filters)
            for i in range(round_repeats(stage.repeats)):
                specs.append((width if i == 0 else out, out, stage if i == 0 else _with_stride(stage, 1)))
            width = out
        n = len(specs)
        self.blocks = nn.ModuleList(
            MBConv(
                cin,
                cout,
                kernel=s.kernel,
                stride=s.stride,
                expand=s.expand,
                se_ratio=s.se_ratio,
                drop_rate=drop_connect_rate * i / n,
            )
            for i, (cin, cout, s) in enumerate(specs)
        )
        self.out_channels = (in_channels, stem, *(specs[i - 1][1] for i in B5_STAGE_IDXS))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [x]
        x = self.stem(x)
        features.append(x)
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            if i in B5_STAGE_IDXS:
                features.append(x)
        return features


def _with_stride(stage: StageArgs, stride: int) -> StageArgs:
    return StageArgs(stage.repeats, stage.kernel, stride, stage.expand, stage.in_filters, stage.out_filters)


class DecoderBlock(nn.Module):
    """smp decoder block: nearest x2, concat skip, 2 x (3x3 Conv + BN + ReLU); (B, Cin, h, w) -> (B, Cout, 2h, 2w)."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.conv1 = conv_bn_act(in_ch + skip_ch, out_ch, 3)
        self.conv2 = conv_bn_act(out_ch, out_ch, 3)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = self.up(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNetEfficientNetB5(XenoModel):
    """U-Net + EfficientNet-B5 (the paper's reference): (B, C, H, W) -> (B, n_classes, H, W); H, W multiples of 32.

    >>> m = UNetEfficientNetB5(100, 5).eval()
    >>> m(torch.rand(1, 100, 32, 64)).shape
    torch.Size([1, 5, 32, 64])
    """

    registry_name = "unet-effb5"

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        *,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        drop_connect_rate: float = 0.2,
        pool: int = 1,
    ):
        dec = int_list("decoder_channels", decoder_channels, length=5)
        if not isinstance(drop_connect_rate, (int, float)) or not 0.0 <= drop_connect_rate < 1.0:
            raise ModelConfigError(f"drop_connect_rate must be in [0, 1), got {drop_connect_rate!r}")
        pool = checked_pool(pool)
        options = {"decoder_channels": dec, "drop_connect_rate": float(drop_connect_rate)}
        if pool != 1:  # recorded only when used, so configs of full-size references stay as they were
            options["pool"] = pool
        super().__init__(in_channels, n_classes, required_multiple=32 if pool == 1 else 1, options=options)
        self.input_pool = pool
        self.encoder = EfficientNetB5Encoder(in_channels, drop_connect_rate=float(drop_connect_rate))
        enc = self.encoder.out_channels[1:]  # drop the input itself, as smp does
        skips = [*reversed(enc[:-1]), 0]  # 176, 64, 40, 48, none
        ins = [enc[-1], *dec[:-1]]
        self.decoder = nn.ModuleList(DecoderBlock(i, s, o) for i, s, o in zip(ins, skips, dec, strict=True))
        self.head = nn.Conv2d(dec[-1], n_classes, 3, padding=1)
        self._init_decoder()

    def _init_decoder(self) -> None:
        """smp's initialisation: Kaiming-uniform decoder convs, BN 1/0, Xavier-uniform head, zero biases."""
        for m in self.decoder.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float32 -> (B, n_classes, H, W) logits; H, W multiples of 32 unless ``pool`` > 1.

        With ``pool`` = p > 1 the frame is pooled p x p first and the logits upsampled back
        (:func:`pooled_forward`), as the edge-first models do: the reference at a working size a
        CPU can train (docs/models.md).
        """
        if self.input_pool > 1:
            self.check_input(x)
            return pooled_forward(self, x)
        return self._network(self.prepare_input(x))

    def forward_working(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) L1 spectra at the working size (any size: padded to 32 inside) -> logits."""
        if self.input_pool == 1:
            return self(x)
        return pad_forward_crop(self._network, x * self.input_scale, 32)

    def _network(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)[1:]
        y = features[-1]
        skips: list[torch.Tensor | None] = [*reversed(features[:-1]), None]
        for block, skip in zip(self.decoder, skips, strict=True):
            y = block(y, skip)
        return self.head(y)
