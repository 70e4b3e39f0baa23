"""Pictures a person can check: pseudo-RGB, label overlays, median spectra plots."""

from __future__ import annotations

import numpy as np

# Bands shown as R, G, B when the sensor covers the visible range (nm).
TRUE_COLOUR_NM = (610.0, 545.0, 505.0)


def rgb_band_indices(wavelengths_nm: np.ndarray) -> tuple[int, int, int]:
    """Band indices shown as R, G, B: near-true colour when the sensor reaches down to
    ~510 nm, else a false-colour composite from three bands spread over its range."""
    wl = np.asarray(wavelengths_nm, dtype=np.float64)
    if wl.min() <= 515.0 and wl.max() >= 600.0:
        targets = TRUE_COLOUR_NM
    else:
        targets = tuple(np.quantile(wl, [0.85, 0.45, 0.05]))
    return tuple(int(np.argmin(np.abs(wl - t))) for t in targets)  # type: ignore[return-value]


def pseudo_rgb(cube: np.ndarray, wavelengths_nm: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an (H, W, C) reflectance cube, stretched to its 99th percentile."""
    rgb = cube[..., list(rgb_band_indices(wavelengths_nm))].astype(np.float32)
    scale = max(float(np.percentile(rgb, 99)), 1e-6)
    return (np.clip(rgb / scale, 0.0, 1.0) ** (1 / 1.6) * 255).astype(np.uint8)


def saturation_picture(rgb: np.ndarray, saturated: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: ``rgb`` (H, W, 3) uint8 in grey, the ``saturated`` (H, W) bool pixels red.

    >>> saturation_picture(np.full((1, 2, 3), 90, np.uint8), np.array([[False, True]])).tolist()
    [[[90, 90, 90], [255, 0, 0]]]
    """
    grey = rgb.mean(axis=2, keepdims=True).astype(np.uint8).repeat(3, axis=2)
    grey[saturated] = (255, 0, 0)
    return grey


def paint(labels: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: each id of ``labels`` ((H, W) uint8) in its colour (``colors``: (n, 3) uint8
    RGB; ids >= n black). A lookup table in OpenCV: ~0.5 ms at 480x640, a tenth of NumPy indexing."""
    import cv2

    table = np.zeros((256, 1, 3), np.uint8)
    colors = np.asarray(colors, dtype=np.uint8)[:256]
    table[: len(colors), 0] = colors
    return cv2.LUT(cv2.merge([labels, labels, labels]), table)


def label_overlay(
    rgb: np.ndarray,
    labels: np.ndarray,
    colors: np.ndarray,
    alpha: float = 0.45,
    *,
    outline: bool = True,
    rim_px: int = 0,
) -> np.ndarray:
    """(H, W, 3) uint8: ``rgb`` blended with label colours (id 0 left unpainted) and, with
    ``outline``, the edges between classes in white; OpenCV throughout (~1.5 ms at 480x640).
    Speckled model masks read better without outlines (each speckle would be ringed in white).

    ``rim_px`` > 0 draws each region's border, ``rim_px`` pixels wide on each side of an edge, in
    the class's own unblended colour: a blend over red tissue turns an olive class orange, and the
    rim is what a reader matches against the legend's swatches."""
    import cv2

    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    painted = paint(labels, colors)
    blend = cv2.addWeighted(rgb, 1 - alpha, painted, alpha, 0)
    out = rgb.copy()
    cv2.copyTo(blend, labels, out)  # where the id is not 0
    if rim_px > 0:
        kernel = np.ones((2 * rim_px + 1, 2 * rim_px + 1), np.uint8)
        rim = cv2.morphologyEx(labels, cv2.MORPH_GRADIENT, kernel)  # non-zero near an edge between ids
        rim[labels == 0] = 0
        cv2.copyTo(painted, rim, out)
    if not outline:
        return out
    edges = cv2.morphologyEx(labels, cv2.MORPH_GRADIENT, np.ones((2, 2), np.uint8))
    cv2.bitwise_or(out, (255, 255, 255, 0), dst=out, mask=edges)
    return out


MASK_RIM_PX = 2  # class-coloured rim in mask pictures (label_overlay's rim_px)


# --- Pictures a person reads: panels with titles, a main title, a legend of classes. ---------
# OpenCV and NumPy only: the device daemon and the host receiver draw with these (no matplotlib).

FONT_SCALE = 0.45  # cv2.FONT_HERSHEY_SIMPLEX: ~10 px high capitals
LINE_PX = 18  # one text line (legend row, panel title bar)
TITLE_PX = 26  # the picture's title bar
PAD_PX = 6
LEGEND_PX = 170  # width of the legend column
MIN_PANEL_PX = 200  # panels lower than this are enlarged (nearest neighbour, integer factor)
BACKGROUND = 32  # dark grey behind titles and legend
TEXT = (255, 255, 255)
PANEL_TOP_PX = TITLE_PX + LINE_PX + 4  # first row of a panel's image in a ``compose`` picture


def put_text(image: np.ndarray, text: str, x: int, y: int, scale: float = FONT_SCALE, color=TEXT) -> None:
    """White anti-aliased text with its baseline at (x, y), in place."""
    import cv2

    cv2.putText(image, text, (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def fit_text(text: str, width_px: int, scale: float = FONT_SCALE) -> str:
    """``text`` shortened with '..' so that it fits ``width_px`` at ``scale``."""
    import cv2

    def width(t: str) -> int:
        return cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]

    if width(text) <= width_px:
        return text
    while len(text) > 1 and width(text + "..") > width_px:
        text = text[:-1]
    return text + ".."


def legend(
    names: list[str],
    colors: np.ndarray,
    height: int,
    *,
    shares: np.ndarray | None = None,
    heading: str = "classes",
    width: int = LEGEND_PX,
) -> np.ndarray:
    """(max(height, needed), width, 3) uint8 legend column: a heading, then one row per class: its
    colour swatch (outlined, so that black shows) and name, with its share of pixels when
    ``shares`` ((n,) fractions) is given."""
    import cv2

    n = len(names)
    image = np.full((max(height, TITLE_PX + n * LINE_PX + PAD_PX), width, 3), BACKGROUND, np.uint8)
    put_text(image, fit_text(heading, width - 2 * PAD_PX), PAD_PX, 17)
    for i, name in enumerate(names):
        y0 = TITLE_PX + i * LINE_PX
        color = tuple(int(c) for c in np.asarray(colors[i]).reshape(3))
        cv2.rectangle(image, (PAD_PX, y0 + 2), (PAD_PX + 13, y0 + 15), color, -1)
        cv2.rectangle(image, (PAD_PX, y0 + 2), (PAD_PX + 13, y0 + 15), (160, 160, 160), 1)
        text = name if shares is None else f"{name} {100 * float(shares[i]):.0f}%"
        put_text(image, fit_text(text, width - 3 * PAD_PX - 14), 2 * PAD_PX + 14, y0 + 13)
    return image


def titled(image: np.ndarray, title: str) -> np.ndarray:
    """``image`` with a title bar above it."""
    out = np.full((image.shape[0] + PANEL_TOP_PX - TITLE_PX, image.shape[1], 3), BACKGROUND, np.uint8)
    out[PANEL_TOP_PX - TITLE_PX :] = image
    put_text(out, fit_text(title, image.shape[1] - 2 * PAD_PX), PAD_PX, LINE_PX - 2)
    return out


def enlarged(image: np.ndarray, min_height: int = MIN_PANEL_PX) -> np.ndarray:
    """``image`` enlarged by the smallest integer factor that makes it at least ``min_height`` high."""
    factor = -(-min_height // max(1, image.shape[0]))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1) if factor > 1 else image


def compose(
    panels: list[tuple[str, np.ndarray]],
    title: str,
    *,
    side: np.ndarray | None = None,
    min_panel_height: int = MIN_PANEL_PX,
) -> np.ndarray:
    """One picture: ``title`` across the top, then the (title, (h, w, 3) uint8) ``panels`` side by
    side, each under its own title bar, then ``side`` (e.g. a ``legend``) on the right. Panels of
    one picture have the same size; small ones are enlarged to ``min_panel_height``."""
    shown = [titled(enlarged(p, min_panel_height), t) for t, p in panels]
    columns = [*shown, side] if side is not None else shown
    height = max(c.shape[0] for c in columns)
    width = sum(c.shape[1] for c in columns) + PAD_PX * (len(columns) - 1)
    out = np.full((TITLE_PX + height, width, 3), BACKGROUND, np.uint8)
    x = 0
    for column in columns:
        out[TITLE_PX : TITLE_PX + column.shape[0], x : x + column.shape[1]] = column
        x += column.shape[1] + PAD_PX
    put_text(out, fit_text(title, width - 2 * PAD_PX, 0.55), PAD_PX, 19, 0.55)
    return out


def class_shares(classes: np.ndarray, n: int) -> np.ndarray:
    """(n,) fraction of pixels of each class id below ``n``."""
    counts = np.bincount(classes.ravel(), minlength=n)[:n]
    return counts / max(1, classes.size)


def mask_picture(
    classes: np.ndarray,
    colors: np.ndarray,
    names: list[str],
    title: str,
    *,
    rgb: np.ndarray | None = None,
    truth: np.ndarray | None = None,
) -> np.ndarray:
    """The picture of a mask ((H, W) uint8 class ids) a person reads: with the frame (``rgb``,
    (H, W, 3) uint8 pseudo-RGB) the panels are the frame and the mask over it (and the ground
    truth over it when ``truth`` is given), else the mask in the class colours; on the right a
    legend of class names, colours and their share of the mask's pixels."""
    colors = np.asarray(colors, dtype=np.uint8)
    n = len(colors)
    if rgb is None:
        panels = [("mask", paint(classes, colors))]
    else:
        panels = [("frame (pseudo-RGB)", rgb)]
        if truth is not None:
            panels.append(("ground truth", label_overlay(rgb, truth, colors, 0.55, outline=False, rim_px=MASK_RIM_PX)))
        overlay = label_overlay(rgb, classes, colors, 0.55, outline=False, rim_px=MASK_RIM_PX)
        panels.append(("mask over frame" if truth is None else "prediction", overlay))
    shares = class_shares(classes, n)
    side = legend(names, colors, 0, shares=shares, heading=f"class  (% of {'mask' if truth is None else 'prediction'})")
    return compose(panels, title, side=side)
