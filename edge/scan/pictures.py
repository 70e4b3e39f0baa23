"""Pictures of a scan: each frame as pseudo-RGB with its mask overlaid, one summary per plot.

The frame picture is calibrated for real: the three bands ``xenoedge.xeno.previews.rgb_band_indices``
picks are taken from the (demosaiced) raw frame and turned into reflectance with the session's
dark and white references, then ``pseudo_rgb`` stretches them and ``label_overlay`` paints the
classes (soil left unpainted, class edges outlined), with a legend column on the right (class
names, colours and shares of the frame; the overlay stays at the top left, where the plot summary's
thumbnails crop it from). The plot summary is a banner (plot, frame
count, pooled leaf cover and shares, mean confidence, GPS coverage), a stacked bar of the
shares in the class colours, and the plot's most recent frames as thumbnails.
All pictures are (H, W, 3) uint8 RGB; ``xenoedge.devices.formats.label_png.png_bytes`` encodes one for an atomic write.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from xenoedge.calibration.mosaic import cube_from_mosaic
from xenoedge.calibration.references import References
from xenoedge.calibration.reflectance import reflectance_from_raw, signal_range
from xenoedge.edge.scan.measure import SHARE_NAMES, Counts, LeafClasses, percent_text

from xenoedge.sensors import SensorProfile

#: Thumbnails in a plot summary (the most recent frames), and per row.
SUMMARY_FRAMES, SUMMARY_COLUMNS = 12, 4
BANNER_PX, BAR_PX = 64, 18
FONT = cv2.FONT_HERSHEY_SIMPLEX


class FramePictures:
    """Pseudo-RGB + mask pictures of one camera's frames with one pair of references."""

    def __init__(
        self, sensor: SensorProfile, references: References, colors: np.ndarray, names: Sequence[str] | None = None
    ):
        from xenoedge.xeno.previews import rgb_band_indices

        self.sensor = sensor
        self.colors = np.asarray(colors, dtype=np.uint8)
        self.names = list(names) if names is not None else [f"class {i}" for i in range(len(self.colors))]
        self._bands = list(rgb_band_indices(sensor.wavelengths()))
        self._wavelengths = sensor.wavelengths()[self._bands]
        shape = sensor.cube_shape
        dark = np.broadcast_to(np.asarray(references.dark, dtype=np.float32), shape)[..., self._bands]
        white = np.broadcast_to(np.asarray(references.white, dtype=np.float32), shape)[..., self._bands]
        self._dark = np.ascontiguousarray(dark)
        self._white = np.ascontiguousarray(white)
        self._signal = signal_range(self._dark, self._white)
        where = {band: (r, c) for r, row in enumerate(sensor.mosaic or ()) for c, band in enumerate(row)}
        self._band_cells = [where.get(band) for band in self._bands]  # (row, col) in the mosaic pattern

    def rgb(self, data: np.ndarray) -> np.ndarray:
        """(h, w, 3) uint8 pseudo-RGB of a raw frame: an (H, W) mosaic or an (h, w, C) raw cube."""
        from xenoedge.xeno.previews import pseudo_rgb

        raw3 = self._mosaic_bands(data) if data.ndim == 2 else data[..., self._bands]
        reflectance = reflectance_from_raw(raw3, self._dark, self._white, signal=self._signal)
        return pseudo_rgb(reflectance, self._wavelengths)

    def _mosaic_bands(self, frame: np.ndarray) -> np.ndarray:
        """(h, w, 3) of the picture's bands straight from the mosaic (what ``cube_from_mosaic`` gives
        for them, without demosaicing the other bands)."""
        if frame.shape != (self.sensor.height, self.sensor.width):
            return cube_from_mosaic(frame, self.sensor)[..., self._bands]  # raises the driver's clear error
        h, w, _ = self.sensor.cube_shape
        p = self.sensor.pattern_size
        out = np.empty((h, w, 3), dtype=frame.dtype)
        for i, (r, c) in enumerate(self._band_cells):
            out[..., i] = frame[r : h * p : p, c : w * p : p]
        return out

    def overlay(self, data: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """(h, w + LEGEND_PX, 3) uint8: the pseudo-RGB frame with ``classes`` ((h, w) uint8) painted
        over it, and a legend of the class names, colours and shares of the frame on its right."""
        from xenoedge.xeno.previews import LEGEND_PX, class_shares, label_overlay, legend

        overlay = label_overlay(self.rgb(data), classes, self.colors)
        shares = class_shares(classes, len(self.colors))
        side = legend(self.names, self.colors, overlay.shape[0], shares=shares, heading="pseudo-RGB + classes")
        h = overlay.shape[0]
        out = np.empty((max(h, side.shape[0]), overlay.shape[1] + LEGEND_PX, 3), np.uint8)
        out[:] = side[:1, :1]
        out[:h, : overlay.shape[1]] = overlay
        out[: side.shape[0], overlay.shape[1] :] = side
        return out


def thumbnail(picture: np.ndarray) -> np.ndarray:
    """Half-size copy of a frame picture for plot summaries."""
    h, w = picture.shape[:2]
    return cv2.resize(picture, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)


def _text(image: np.ndarray, text: str, x: int, y: int, scale: float = 0.5) -> None:
    cv2.putText(image, text, (x, y), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def plot_summary(
    title: str,
    counts: Counts,
    n_frames: int,
    n_with_position: int,
    thumbnails: Sequence[tuple[int, np.ndarray]],
    leaf: LeafClasses,
    colors: np.ndarray,
    thumb_shape: tuple[int, int],
) -> np.ndarray:
    """The plot's summary picture. ``thumbnails``: (frame number, picture) of its latest frames,
    oldest first; ``thumb_shape`` (h, w) of one thumbnail (used for the layout without frames)."""
    th, tw = thumb_shape
    width = SUMMARY_COLUMNS * tw
    shown = list(thumbnails)[-SUMMARY_FRAMES:]
    rows = max(1, -(-len(shown) // SUMMARY_COLUMNS))
    image = np.full((BANNER_PX + BAR_PX + rows * th, width, 3), 32, dtype=np.uint8)
    summary = counts.summary()
    _text(image, f"{title}: {n_frames} frames, GPS position on {n_with_position} of them", 8, 22, 0.6)
    conf = summary["mean_confidence"]
    _text(
        image,
        f"leaf cover {percent_text(summary['leaf_cover'])}  |  "
        + "  ".join(f"{n} {percent_text(summary[n])}" for n in SHARE_NAMES)
        + f"  |  confidence {'-' if conf is None else f'{conf:.2f}'}",
        8,
        48,
        0.45,
    )
    x, cumulative = 0, 0.0
    for name, class_id in zip(SHARE_NAMES, leaf.ids, strict=True):
        cumulative += counts.share(name) or 0.0
        x_end = round(cumulative * width)
        image[BANNER_PX : BANNER_PX + BAR_PX, x:x_end] = colors[class_id]
        x = x_end
    for i, (number, thumb) in enumerate(shown):
        r, c = divmod(i, SUMMARY_COLUMNS)
        y0, x0 = BANNER_PX + BAR_PX + r * th, c * tw
        tile = thumb[:th, :tw]
        image[y0 : y0 + tile.shape[0], x0 : x0 + tile.shape[1]] = tile
        cv2.rectangle(image, (x0, y0), (x0 + tw - 1, y0 + th - 1), (32, 32, 32), 1)
        _text(image, f"#{number}", x0 + 4, y0 + 16, 0.45)
    return image
