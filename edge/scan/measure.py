"""What a crop scan reports per frame and per plot: leaf cover and the shares of leaf area.

Leaf area is every pixel of the classes ``healthy_leaf``, ``stressed_leaf`` and ``lesion``
(names from the bundle's labels; soil and any other class are not leaf). Shares are of leaf
area, so healthy + stressed + lesion = 1 wherever there is leaf; ``leaf_cover`` is leaf pixels
over all pixels. A plot pools its frames' pixel counts (a frame with more leaf weighs more).
Mean confidence is the model's per-pixel confidence averaged over the whole frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from xenoedge.edge.scan.errors import ScanError

LEAF_CLASSES = ("healthy_leaf", "stressed_leaf", "lesion")
#: Short names used in records, tables and pictures, in the order of ``LEAF_CLASSES``.
SHARE_NAMES = ("healthy", "stressed", "lesion")


@dataclass(frozen=True)
class LeafClasses:
    """Class ids of healthy leaf, stressed leaf and lesion in a bundle's labels."""

    healthy: int
    stressed: int
    lesion: int
    n_classes: int

    @classmethod
    def from_labels(cls, labels: Sequence[Mapping], model_id: str = "the bundle") -> LeafClasses:
        """From the manifest's ``labels`` ([{id, name, color}]); ``ScanError`` when a class is missing."""
        ids = {str(label["name"]): int(label["id"]) for label in labels}
        missing = [name for name in LEAF_CLASSES if name not in ids]
        if missing:
            raise ScanError(
                f"{model_id} is not a crop model: its labels ({', '.join(ids)}) lack {', '.join(missing)}; "
                "a scan needs the classes " + ", ".join(LEAF_CLASSES)
            )
        return cls(*(ids[name] for name in LEAF_CLASSES), n_classes=max(ids.values()) + 1)

    @property
    def ids(self) -> tuple[int, int, int]:
        return (self.healthy, self.stressed, self.lesion)


@dataclass(frozen=True)
class Counts:
    """Pixel counts of one frame or a pooled plot; ``confidence_sum`` over ``confidence_pixels``."""

    pixels: int
    healthy: int
    stressed: int
    lesion: int
    confidence_sum: float = 0.0
    confidence_pixels: int = 0

    @property
    def leaf(self) -> int:
        return self.healthy + self.stressed + self.lesion

    @property
    def leaf_cover(self) -> float | None:
        return self.leaf / self.pixels if self.pixels else None

    def share(self, name: str) -> float | None:
        """``healthy``, ``stressed`` or ``lesion`` as a share of leaf area (None without leaf)."""
        return getattr(self, name) / self.leaf if self.leaf else None

    @property
    def mean_confidence(self) -> float | None:
        return self.confidence_sum / self.confidence_pixels if self.confidence_pixels else None

    def summary(self) -> dict[str, float | None]:
        """Leaf cover, the three shares and the mean confidence, rounded for people (6 digits)."""
        out = {"leaf_cover": self.leaf_cover, **{n: self.share(n) for n in SHARE_NAMES}}
        out["mean_confidence"] = self.mean_confidence
        return {k: (None if v is None else round(float(v), 6)) for k, v in out.items()}

    def as_dict(self) -> dict[str, float | int]:
        return {
            "pixels": self.pixels,
            "healthy": self.healthy,
            "stressed": self.stressed,
            "lesion": self.lesion,
            "confidence_sum": self.confidence_sum,
            "confidence_pixels": self.confidence_pixels,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Counts:
        return cls(
            int(d["pixels"]),
            int(d["healthy"]),
            int(d["stressed"]),
            int(d["lesion"]),
            float(d.get("confidence_sum", 0.0)),
            int(d.get("confidence_pixels", 0)),
        )


def percent_text(share: float | None) -> str:
    """A share (0..1) as people read it: ``"12.3%"``, or ``"-"`` when there is none."""
    return "-" if share is None else f"{100 * share:.1f}%"


def measure(classes: np.ndarray, confidence: np.ndarray | None, leaf: LeafClasses) -> Counts:
    """Counts of one (H, W) uint8 class mask and its optional (H, W) float32 confidence."""
    histogram = np.bincount(classes.ravel(), minlength=leaf.n_classes)
    conf_sum, conf_n = 0.0, 0
    if confidence is not None:
        conf_sum, conf_n = float(confidence.sum(dtype=np.float64)), int(confidence.size)
    return Counts(int(classes.size), *(int(histogram[i]) for i in leaf.ids), conf_sum, conf_n)


def pool(counts: Iterable[Counts]) -> Counts:
    """The sum of several frames' counts (a plot)."""
    fields = np.zeros(4, dtype=np.int64)
    conf_sum, conf_n = 0.0, 0
    for c in counts:
        fields += (c.pixels, c.healthy, c.stressed, c.lesion)
        conf_sum += c.confidence_sum
        conf_n += c.confidence_pixels
    return Counts(*(int(v) for v in fields), conf_sum, conf_n)
