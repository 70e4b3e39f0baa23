"""Training-time augmentation in torch: physiology-based (xeno-learning) and geometric.

``PhysiologyAugmentation`` is step 2 of DESIGN.md section 1: per image with probability
``p``, for each organ present that has maps, pick one of its maps at random, apply it to that
organ's pixels, blend with the original by a weight drawn from U(0, 1) (``blend_range``) and re-normalise (L1,
the same ``L1_EPS`` as ``xenoedge.calibration.normalise``). Pixels of other organs stay bit-identical.

``geometric_augment`` flips, rotates by multiples of 90° (180° only when H != W, so shapes
keep) and applies a small affine transform (rotation ±10°, scale 0.9-1.1), nearest-neighbour
for label maps. Every random draw comes from the ``torch.Generator`` passed in (CPU), so a
seeded generator gives the same batch every time.

Layouts: spectra ``x`` (B, C, H, W) float, L1-normalised over C; labels ``y`` (B, H, W) int64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from xenoedge.calibration.normalise import L1_EPS
from xenoedge.xeno.projections import ProjectionError, ProjectionSet

FILL_LABEL = 255  # label of pixels the affine transform brings in from outside (ignored by the loss)


class PhysiologyAugmentation:
    """Label-matched physiology-based augmentation with the maps of a ``ProjectionSet``.

    ``label_names[i]`` is the name of label id ``i``; a map of organ ``o`` acts on the pixels
    labelled ``label_names.index(o)``. ``p``: probability that an image is augmented at all.
    ``relabel_threshold`` (None: never): pixels blended with weight >= this take the map's
    target label (``ProjectionSet.target_labels``) in ``with_labels``; useful where labels name
    the state (crops), not where they name the organ (surgery, the default).
    ``target_labels`` (None: every label that has maps): apply maps only to pixels of these
    labels, as the paper's code does (``htc`` ``ProjectionTransform(target_labels=...)``: the
    human target gets malperfusion maps for kidney only). Not to be confused with
    ``ProjectionSet.target_labels``, the label the pathological pixels carry.
    ``blend_range`` (lo, hi): the blend weight is drawn from U(lo, hi); the paper's code draws it
    from U(0, 1) (``htc`` ``ProjectionTransform(interpolate=True)``), (1, 1) applies every map whole.
    """

    def __init__(
        self,
        projections: ProjectionSet,
        label_names: Sequence[str],
        *,
        p: float = 0.8,
        generator: torch.Generator | None = None,
        relabel_threshold: float | None = None,
        target_labels: Sequence[str] | None = None,
        blend_range: tuple[float, float] = (0.0, 1.0),
    ):
        if not 0.0 <= p <= 1.0:
            raise ProjectionError(f"augmentation probability must be in [0, 1], got {p}")
        lo, hi = (float(v) for v in blend_range)
        if not 0.0 <= lo <= hi <= 1.0:
            raise ProjectionError(f"blend range must be (lo, hi) with 0 <= lo <= hi <= 1, got {tuple(blend_range)}")
        self.blend_lo, self.blend_span = lo, hi - lo
        self.target_labels = None if target_labels is None else tuple(target_labels)
        if self.target_labels is not None:
            unknown = sorted(set(self.target_labels) - set(label_names))
            if unknown:
                raise ProjectionError(
                    f"target_labels name labels that are not in the label set: {', '.join(unknown)}; "
                    f"labels: {', '.join(label_names)}"
                )
            projections = projections.restricted_to(self.target_labels)
        self.projections = projections
        self.label_names = list(label_names)
        self.p = float(p)
        self.generator = generator
        self.relabel_threshold = relabel_threshold
        unknown = sorted({o for o in projections.organs if o not in self.label_names} | self._unknown_targets())
        if unknown:
            raise ProjectionError(
                f"projections name labels that are not in the label set: {', '.join(unknown)}; "
                f"labels: {', '.join(self.label_names)}"
            )
        self.n_channels = projections.n_channels
        #: label id -> indices of its maps, in label id order (the order random draws follow).
        self.maps_of_label: dict[int, torch.Tensor] = {
            self.label_names.index(organ): torch.as_tensor(projections.maps_for(organ))
            for organ in projections.organ_names()
        }
        self.maps_of_label = dict(sorted(self.maps_of_label.items()))
        self._target_ids = torch.as_tensor([self.label_names.index(t) for t in projections.target_labels])
        self._weights = torch.from_numpy(projections.weights.copy())  # (N, C, C)
        self._bias = torch.from_numpy(projections.bias.copy())  # (N, C)

    def _unknown_targets(self) -> set[str]:
        if self.relabel_threshold is None:
            return set()
        return {t for t in self.projections.target_labels if t not in self.label_names}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Augmented copy of ``x`` (B, C, H, W); ``y`` (B, H, W) int64 labels is not changed."""
        return self.with_labels(x, y)[0]

    def with_labels(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(augmented x (B, C, H, W), labels (B, H, W)); labels change only with ``relabel_threshold``."""
        if x.ndim != 4 or y.ndim != 3 or x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[1:]:
            raise ProjectionError(f"expected x (B, C, H, W) and y (B, H, W); got {tuple(x.shape)} and {tuple(y.shape)}")
        if x.shape[1] != self.n_channels:
            raise ProjectionError(
                f"spectra have {x.shape[1]} channels; the projections were learnt for "
                f"{self.projections.wavelength_range()}"
            )
        out = x.clone()
        labels = y.clone() if self.relabel_threshold is not None else y
        weights = self._weights.to(device=x.device, dtype=x.dtype)
        bias = self._bias.to(device=x.device, dtype=x.dtype)
        for b in range(x.shape[0]):
            if self.p < 1.0 and torch.rand((), generator=self.generator).item() >= self.p:
                continue
            present = set(torch.unique(y[b]).tolist())
            for label_id, maps in self.maps_of_label.items():
                if label_id not in present:
                    continue
                index = int(maps[torch.randint(len(maps), (), generator=self.generator)])
                blend = self.blend_lo + self.blend_span * float(torch.rand((), generator=self.generator))
                mask = y[b] == label_id  # (H, W)
                pixels = out[b][:, mask].T  # (P, C)
                mapped = pixels @ weights[index] + bias[index]
                mixed = blend * mapped + (1.0 - blend) * pixels
                mixed = mixed / (mixed.abs().sum(dim=1, keepdim=True) + L1_EPS)
                out[b][:, mask] = mixed.T
                if self.relabel_threshold is not None and blend >= self.relabel_threshold:
                    labels[b][mask] = self._target_ids[index].to(labels.device, labels.dtype)
        return out, labels


def organ_transplantation(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    p: float = 0.8,
    generator: torch.Generator | None = None,
    ignore_label: int = FILL_LABEL,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Organ transplantation (Seidlitz et al., the paper's code ``htc`` ``OrganTransplantation``).

    The first ``int(p * B)`` images of the batch are donors (the batch is already random); donor
    ``d`` gives one of its labels (drawn uniformly among the labels it shows, ``ignore_label``
    excluded) to image ``(d - 1) mod B``: the acceptor's spectra and labels at the donor's pixels
    of that label become the donor's. Donors give what they held before any transplantation.
    ``x`` (B, C, H, W), ``y`` (B, H, W) int64; returns new tensors (the inputs are not changed).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"organ transplantation probability must be in [0, 1], got {p}")
    if x.ndim != 4 or y.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"expected x (B, C, H, W) and y (B, H, W); got {tuple(x.shape)} and {tuple(y.shape)}")
    batch = x.shape[0]
    donors = int(p * batch)
    if batch < 2 or donors == 0:
        return x, y
    x_out, y_out = x.clone(), y.clone()
    for donor in range(donors):
        labels = torch.unique(y[donor])
        labels = labels[labels != ignore_label]
        if labels.numel() == 0:
            continue
        chosen = labels[torch.randint(labels.numel(), (), generator=generator)]
        mask = y[donor] == chosen
        acceptor = (donor - 1) % batch
        y_out[acceptor][mask] = chosen
        x_out[acceptor][:, mask] = x[donor][:, mask]
    return x_out, y_out


def _rand(generator: torch.Generator | None, *shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=generator)


def geometric_augment(
    x: torch.Tensor,
    y: torch.Tensor,
    s: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
    flip_p: float = 0.5,
    rotate: bool = True,
    affine_p: float = 0.5,
    max_rotation_deg: float = 10.0,
    scale_range: tuple[float, float] = (0.9, 1.1),
    fill_label: int = FILL_LABEL,
) -> tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random flips, 90° rotations and a small affine transform, the same for x, y and s per image.

    ``x`` (B, C, H, W) float spectra (bilinear under the affine transform, 0 outside),
    ``y`` (B, H, W) int labels and optional ``s`` (B, H, W) int map (e.g. states or a validity
    mask), both nearest-neighbour, ``fill_label`` outside. Rotations by 90°/270° only when
    H == W. Returns (x, y) or (x, y, s), new tensors.
    """
    if x.ndim != 4 or y.shape != (x.shape[0], *x.shape[2:]) or (s is not None and s.shape != y.shape):
        raise ValueError(
            f"expected x (B, C, H, W), y and s (B, H, W); got {tuple(x.shape)}, {tuple(y.shape)}, "
            f"{None if s is None else tuple(s.shape)}"
        )
    maps = [y] if s is None else [y, s]
    xs, ms = [], [[] for _ in maps]
    square = x.shape[2] == x.shape[3]
    for b in range(x.shape[0]):
        xb, mb = x[b], [m[b] for m in maps]
        flips = _rand(generator, 2) < flip_p
        if flips[0]:
            xb, mb = xb.flip(-1), [m.flip(-1) for m in mb]
        if flips[1]:
            xb, mb = xb.flip(-2), [m.flip(-2) for m in mb]
        if rotate:
            k = (
                int(torch.randint(4, (), generator=generator))
                if square
                else 2 * int(torch.randint(2, (), generator=generator))
            )
            if k:
                xb, mb = torch.rot90(xb, k, (-2, -1)), [torch.rot90(m, k, (-2, -1)) for m in mb]
        xs.append(xb)
        for store, m in zip(ms, mb, strict=True):
            store.append(m)
    x_out = torch.stack(xs)  # new tensors (never views of the inputs): written in place below
    m_out = [torch.stack(store) for store in ms]

    if affine_p > 0:
        n = x.shape[0]
        apply = _rand(generator, n) < affine_p
        angle = (_rand(generator, n) * 2 - 1) * math.radians(max_rotation_deg)
        scale = scale_range[0] + _rand(generator, n) * (scale_range[1] - scale_range[0])
        if apply.any():
            theta = torch.zeros(n, 2, 3)
            cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
            theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
            theta[~apply] = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
            theta = theta.to(device=x.device, dtype=x_out.dtype)
            grid = F.affine_grid(theta, list(x_out.shape), align_corners=False)
            idx = apply.nonzero().ravel().to(x.device)
            # Spectra brought in from outside repeat the border (labels there are ignored): zero
            # spectra would be a cluster far from any tissue and skew BatchNorm's running statistics.
            warped = F.grid_sample(x_out[idx], grid[idx], mode="bilinear", padding_mode="border", align_corners=False)
            x_out[idx] = warped.to(x_out.dtype)
            for m in m_out:
                # Shift by one so that 0 marks "outside"; labels up to 2^24 stay exact in float32.
                mf = (m[idx].to(grid.dtype) + 1).unsqueeze(1)
                wm = F.grid_sample(mf, grid[idx], mode="nearest", padding_mode="zeros", align_corners=False)
                wm = wm.squeeze(1).round().to(torch.int64) - 1
                wm[wm < 0] = fill_label
                m[idx] = wm.to(m.dtype)
    return (x_out, *m_out)
