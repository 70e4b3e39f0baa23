"""Mask pictures a person reads: each region's rim in its class's own colour, the inside blended."""

from __future__ import annotations

import numpy as np
from xenoedge.xeno.previews import LEGEND_PX, MASK_RIM_PX, label_overlay, mask_picture

COLORS = np.array([[0, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)


def three_stripes() -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros((20, 30), np.uint8)
    labels[:, 10:20] = 1
    labels[:, 20:] = 2
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 200  # red tissue: a blend would shift every class colour towards red
    return rgb, labels


def test_rims_are_pure_class_colours_of_rim_px_on_each_side_and_the_inside_is_blended():
    rgb, labels = three_stripes()
    out = label_overlay(rgb, labels, COLORS, 0.55, outline=False, rim_px=2)
    row = out[7]
    assert (row[:10] == rgb[7, :10]).all()  # id 0 stays the frame, rim or not
    assert (row[10:12] == COLORS[1]).all() and (row[18:20] == COLORS[1]).all()  # 2 px inside each edge
    assert (row[20:22] == COLORS[2]).all()
    inside = row[12:18]
    assert (inside == inside[0]).all() and not (inside[0] == COLORS[1]).all()  # blended with the frame
    assert inside[0][0] > 0 and inside[0][1] > 0
    plain = label_overlay(rgb, labels, COLORS, 0.55, outline=False)
    assert (plain[7, 10:12] == inside[0]).all()  # without a rim the edge is blended like the inside


def test_mask_picture_shows_rims_in_the_legend_colours():
    rgb, labels = three_stripes()
    picture = mask_picture(labels, COLORS, ["background", "a", "b"], "t", rgb=rgb)
    panels = picture[:, :-LEGEND_PX].reshape(-1, 3)  # the frame and the mask over it, not the legend
    for color in COLORS[1:]:
        assert (panels == color).all(axis=1).sum() > 0, f"no rim in {color}"
    assert MASK_RIM_PX >= 1
