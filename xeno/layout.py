"""Scene geometry: which region covers which pixel.

A layout is an (H, W) int32 region map plus a list of ``RegionSpec`` saying what each
region is (a tissue of some organ, a leaf, soil, a drape, an instrument). Sizes are
relative to the shorter image side, so a 120x160 training scene looks like a shrunken
480x640 one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from xenoedge.xeno.fields import smooth_field

# Organ groups seen together in open abdominal or thoracic surgery (first = the target organ).
SURGICAL_ARRANGEMENTS: tuple[tuple[str, ...], ...] = (
    ("liver", "stomach", "omentum", "colon"),
    ("stomach", "omentum", "small_bowel", "colon"),
    ("small_bowel", "colon", "peritoneum", "omentum"),
    ("kidney", "peritoneum", "colon", "small_bowel"),
    ("spleen", "stomach", "colon", "omentum"),
    ("pancreas", "stomach", "small_bowel", "liver"),
    ("colon", "small_bowel", "omentum", "peritoneum"),
    ("lung", "peritoneum"),
)


# Where each organ lies in the abdomen, as (cranio-caudal, patient's right-left) in [0, 1]
# (0, 0 = cranial, patient's right): liver right upper, spleen left upper, stomach between
# them, pancreas behind and below the stomach, kidney retroperitoneal and lateral, bowel
# and omentum below, parietal peritoneum at the lateral wall; lung above the diaphragm.
# A scene places the organs it shows in this order, then turns and shifts the whole group
# (the camera looks from any side), so neighbours follow anatomy.
ANATOMY_POSITION: dict[str, tuple[float, float]] = {
    "lung": (0.0, 0.5),
    "liver": (0.2, 0.25),
    "stomach": (0.3, 0.6),
    "spleen": (0.25, 0.9),
    "pancreas": (0.45, 0.55),
    "kidney": (0.5, 0.15),
    "omentum": (0.55, 0.5),
    "small_bowel": (0.7, 0.5),
    "colon": (0.7, 0.2),
    "peritoneum": (0.6, 0.95),
    "skin": (0.5, 0.5),
}

# Relative area an organ takes in the field (the weight of its warped Voronoi cell): the
# liver and lung fill a view, pancreas and kidney are small and partly hidden.
ORGAN_SIZE: dict[str, float] = {
    "liver": 1.45,
    "lung": 1.4,
    "stomach": 1.2,
    "small_bowel": 1.15,
    "omentum": 1.1,
    "colon": 1.0,
    "peritoneum": 1.0,
    "spleen": 0.85,
    "kidney": 0.8,
    "pancreas": 0.7,
    "skin": 1.0,
}


@dataclass
class RegionSpec:
    """One region of a layout.

    ``label``: name in the label set; ``kind``: tissue, leaf, lesion, soil or material;
    ``what``: organ, crop or material name; ``state``: physiological/pathological state.
    """

    label: str
    kind: str
    what: str
    state: str = "none"  # "none" for soil and materials; set for tissue by the scene


@dataclass
class Layout:
    region_map: np.ndarray  # (H, W) int32 index into regions
    regions: list[RegionSpec]


def _warped_voronoi(
    height: int, width: int, seeds_yx: np.ndarray, weights: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(H, W) int32 index of the nearest seed, with coordinates warped by smooth fields.

    The warp turns straight Voronoi edges into smooth irregular boundaries; the weights
    (multiplicative) let some regions grow larger than others.
    """
    side = min(height, width)
    amp = 0.12 * side
    wy = smooth_field(height, width, 0.5 * side, rng) * amp
    wx = smooth_field(height, width, 0.5 * side, rng) * amp
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy += wy
    xx += wx
    best = np.full((height, width), np.inf, dtype=np.float32)
    index = np.zeros((height, width), dtype=np.int32)
    for i, ((sy, sx), weight) in enumerate(zip(seeds_yx, weights, strict=True)):
        d = np.hypot(yy - sy, xx - sx) / weight
        closer = d < best
        best[closer] = d[closer]
        index[closer] = i
    return index


def _anatomical_seeds(organs: list[str], height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) cell centres (y, x) in pixels: the organs' ``ANATOMY_POSITION`` centred, spread to
    fill the field, turned by a random angle, with a little jitter."""
    pos = np.array([ANATOMY_POSITION.get(o, (0.5, 0.5)) for o in organs], dtype=np.float64)
    pos -= pos.mean(axis=0)
    extent = np.abs(pos).max()
    pos = pos / extent * 0.32 if extent > 0 else pos
    angle = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pos = pos @ rot.T + rng.normal(0.0, 0.06, pos.shape) + 0.5 + rng.uniform(-0.08, 0.08, 2)
    pos = np.clip(pos, 0.08, 0.92)
    return np.column_stack([pos[:, 0] * height, pos[:, 1] * width])


def _draw_instrument(region_map: np.ndarray, region_id: int, rng: np.random.Generator) -> None:
    """A straight steel instrument entering from an image border, drawn in place."""
    h, w = region_map.shape
    side = min(h, w)
    edge = rng.integers(4)
    t = rng.uniform(0.15, 0.85)
    start = [(t * w, 0), (w - 1, t * h), (t * w, h - 1), (0, t * h)][edge]
    angle = rng.uniform(0, 2 * np.pi)
    centre = np.array([w / 2, h / 2]) + rng.uniform(-0.25, 0.25, 2) * [w, h]
    direction = centre - np.array(start)
    direction /= np.linalg.norm(direction) + 1e-9
    direction = direction * np.cos(0.3 * np.sin(angle)) + np.array([-direction[1], direction[0]]) * 0.3 * np.sin(angle)
    length = rng.uniform(0.35, 0.7) * side
    end = np.array(start) + direction * length
    thickness = max(2, int(rng.uniform(0.025, 0.05) * side))
    p0 = (round(start[0]), round(start[1]))
    p1 = (round(end[0]), round(end[1]))
    cv2.line(region_map, p0, p1, int(region_id), thickness=thickness, lineType=cv2.LINE_8)


def surgical_layout(
    height: int, width: int, rng: np.random.Generator, arrangement: tuple[str, ...] | None = None
) -> Layout:
    """Organs in an operating field, surrounded by skin and drapes, with 0-2 instruments.

    Region 0 is the drape (background); organs fill a warped window whose coverage varies
    from scene to scene.
    """
    side = min(height, width)
    if arrangement is None:
        arrangement = SURGICAL_ARRANGEMENTS[rng.integers(len(SURGICAL_ARRANGEMENTS))]
    n_organs = int(rng.integers(min(2, len(arrangement)), len(arrangement) + 1))
    organs = [arrangement[0], *(str(o) for o in rng.permutation(arrangement[1:])[: n_organs - 1])]

    regions = [RegionSpec("background", "material", "drape")]
    # Operating window: radial distance plus a smooth field, thresholded.
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = height * rng.uniform(0.4, 0.6), width * rng.uniform(0.4, 0.6)
    r = np.hypot((yy - cy) / (0.5 * height), (xx - cx) / (0.5 * width))
    r += 0.25 * smooth_field(height, width, 0.6 * side, rng)
    window_radius = rng.uniform(1.0, 1.6)
    with_skin = "lung" in organs or rng.random() < 0.35
    region_map = np.zeros((height, width), dtype=np.int32)
    if with_skin:
        regions.append(RegionSpec("skin", "tissue", "skin"))
        region_map[r < window_radius + 0.18] = len(regions) - 1

    # Organs: warped Voronoi cells around their anatomical places (the group turned by a
    # random angle and jittered), sized by anatomy; the target organ (first) somewhat larger.
    seeds = _anatomical_seeds(organs, height, width, rng)
    weights = rng.uniform(0.85, 1.15, n_organs) * np.array([ORGAN_SIZE.get(o, 1.0) for o in organs])
    weights[0] *= 1.3
    cells = _warped_voronoi(height, width, seeds, weights, rng)
    inside = r < window_radius
    first_organ = len(regions)
    for organ in organs:
        regions.append(RegionSpec(organ, "tissue", organ))
    region_map[inside] = first_organ + cells[inside]

    for _ in range(int(rng.integers(0, 3))):
        regions.append(RegionSpec("background", "material", str(rng.choice(["metal", "metal", "gauze"]))))
        _draw_instrument(region_map, len(regions) - 1, rng)
    return Layout(region_map, regions)


def _leaf_polygon(centre: np.ndarray, length: float, width_ratio: float, angle: float, n: int = 40) -> np.ndarray:
    """(2n, 1, 2) int32 outline of a pointed leaf blade, for cv2.fillPoly."""
    t = np.linspace(0.0, 1.0, n)
    half_width = 0.5 * width_ratio * length * np.sin(np.pi * t) ** 0.8
    x = (t - 0.5) * length
    upper = np.column_stack([x, half_width])
    lower = np.column_stack([x[::-1], -half_width[::-1]])
    outline = np.vstack([upper, lower])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = outline @ rot.T + centre
    return np.round(pts).astype(np.int32).reshape(-1, 1, 2)


# Leaf blade width / length: grasses are narrow, tomato leaflets broad.
LEAF_SHAPES: dict[str, tuple[float, float]] = {
    "wheat": (0.08, 0.14),
    "maize": (0.10, 0.18),
    "tomato": (0.35, 0.55),
}


def crop_layout(
    height: int,
    width: int,
    crop: str,
    rng: np.random.Generator,
    leaf_states: tuple[str, ...],
    stress_probability: float,
) -> Layout:
    """Leaves of one plant over soil; diseased leaves carry lesion spots.

    ``leaf_states`` lists the non-healthy states to draw from; each leaf is healthy with
    probability 1 − ``stress_probability``.
    """
    side = min(height, width)
    regions = [RegionSpec("soil", "soil", "soil")]
    region_map = np.zeros((height, width), dtype=np.int32)
    lo, hi = LEAF_SHAPES.get(crop, (0.2, 0.4))
    n_leaves = int(rng.integers(4, 9))
    lesion_spots = smooth_field(height, width, 0.03 * side, rng)
    for _ in range(n_leaves):
        state = "healthy"
        if leaf_states and rng.random() < stress_probability:
            state = str(rng.choice(leaf_states))
        centre = rng.uniform([0.1 * width, 0.1 * height], [0.9 * width, 0.9 * height])
        length = rng.uniform(0.45, 0.9) * side
        polygon = _leaf_polygon(centre, length, rng.uniform(lo, hi), rng.uniform(0, np.pi))
        leaf_mask = np.zeros((height, width), dtype=np.uint8)
        cv2.fillPoly(leaf_mask, [polygon], 1)
        leaf = leaf_mask.astype(bool)
        if state == "lesion":
            regions.append(RegionSpec("healthy_leaf", "leaf", crop, "healthy"))
            region_map[leaf] = len(regions) - 1
            regions.append(RegionSpec("lesion", "lesion", crop, "lesion"))
            region_map[leaf & (lesion_spots > 1.3)] = len(regions) - 1
        else:
            label = "healthy_leaf" if state == "healthy" else "stressed_leaf"
            regions.append(RegionSpec(label, "leaf", crop, state))
            region_map[leaf] = len(regions) - 1
    return Layout(region_map, regions)
