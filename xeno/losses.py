"""Segmentation loss: cross-entropy + soft Dice, as in the xeno-learning paper.

Pixels labelled ``IGNORE_INDEX`` (padding) count in neither term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = 255


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 − mean over classes present in the batch of the soft Dice; logits (B, K, H, W), target (B, H, W)."""
    n_classes = logits.shape[1]
    valid = (target != IGNORE_INDEX).unsqueeze(1)
    probs = logits.softmax(dim=1) * valid
    onehot = F.one_hot(target.clamp(0, n_classes - 1), n_classes).permute(0, 3, 1, 2).to(probs.dtype) * valid
    dims = (0, 2, 3)
    intersection = (probs * onehot).sum(dims)
    denominator = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * intersection + eps) / (denominator + eps)
    present = onehot.sum(dims) > 0
    return 1.0 - dice[present].mean() if present.any() else logits.sum() * 0.0


def ce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (ignoring padding) plus soft Dice."""
    ce = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
    return ce + soft_dice_loss(logits, target)
