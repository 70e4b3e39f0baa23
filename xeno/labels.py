"""Label sets as data: an ordered list of {id, name, color}; id 0 is background.

The surgical set follows the organ classes of the xeno-learning paper. The crop set
labels what an agronomist wants to see in a handheld scan: soil/background, healthy
leaf tissue, stressed leaf tissue (drought or nitrogen deficiency) and disease lesions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xenoedge.errors import UnknownNameError


@dataclass(frozen=True)
class Label:
    id: int
    name: str
    color: tuple[int, int, int]  # RGB, 0-255


@dataclass(frozen=True)
class LabelSet:
    name: str
    labels: tuple[Label, ...]

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]

    def id_of(self, name: str) -> int:
        for label in self.labels:
            if label.name == name:
                return label.id
        raise UnknownNameError(f"label in set {self.name!r}", name, self.names)

    def colors(self) -> np.ndarray:
        """(n_labels, 3) uint8 RGB colour per id, for overlays."""
        return np.asarray([label.color for label in self.labels], dtype=np.uint8)

    def to_json(self) -> list[dict]:
        return [{"id": lb.id, "name": lb.name, "color": list(lb.color)} for lb in self.labels]


def _label_set(name: str, entries: list[tuple[str, tuple[int, int, int]]]) -> LabelSet:
    return LabelSet(name, tuple(Label(i, n, c) for i, (n, c) in enumerate(entries)))


SURGICAL = _label_set(
    "surgical",
    [
        ("background", (0, 0, 0)),
        ("stomach", (255, 127, 14)),
        ("small_bowel", (188, 189, 34)),
        ("colon", (140, 86, 75)),
        ("liver", (148, 0, 60)),
        ("pancreas", (255, 187, 120)),
        ("kidney", (214, 39, 40)),
        ("spleen", (148, 103, 189)),
        ("omentum", (255, 230, 100)),
        ("lung", (227, 119, 194)),
        ("skin", (152, 223, 138)),
        ("peritoneum", (31, 119, 180)),
    ],
)

CROP = _label_set(
    "crop",
    [
        ("soil", (0, 0, 0)),
        ("healthy_leaf", (44, 160, 44)),
        ("stressed_leaf", (255, 200, 0)),
        ("lesion", (160, 40, 40)),
    ],
)

LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (SURGICAL, CROP)}


def get_label_set(name: str) -> LabelSet:
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise UnknownNameError("label set", name, sorted(LABEL_SETS)) from None
