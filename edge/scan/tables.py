"""The session's tables: per-frame and per-plot CSV and GeoJSON, built from the frame records.

CSV: one header line, comma-separated, shares as fractions (0..1) with 6 digits, empty cells
for missing values (no leaf, no GPS). GeoJSON (RFC 7946): a FeatureCollection of Points
(longitude, latitude[, altitude]) in WGS84; a frame without a position has ``"geometry": null``
and ``"gps": "missing"`` (or ``"off"`` when no GPS was attached), as a plot whose frames have
none. A plot's point is the mean of its frames' positions.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

from xenoedge.edge.scan.measure import SHARE_NAMES, Counts, pool

FRAME_COLUMNS = (
    "number",
    "plot",
    "time_utc",
    "camera_frame",
    "leaf_cover",
    *SHARE_NAMES,
    "mean_confidence",
    "gps",
    "latitude",
    "longitude",
    "altitude_m",
    "gps_quality",
    "satellites",
    "hdop",
    "picture",
    "mask",
    "latency_ms",
    "run",
)
PLOT_COLUMNS = (
    "plot",
    "frames",
    "first_utc",
    "last_utc",
    "leaf_cover",
    *SHARE_NAMES,
    "mean_confidence",
    "frames_with_position",
    "latitude",
    "longitude",
    "summary_picture",
)


@dataclass
class PlotSummary:
    """One plot's pooled figures (see ``xenoedge.edge.scan.measure``) and where it was."""

    plot: str
    frames: int
    counts: Counts
    first_utc: str
    last_utc: str
    frames_with_position: int
    latitude: float | None
    longitude: float | None

    def row(self, summary_picture: str) -> dict:
        return {
            "plot": self.plot,
            "frames": self.frames,
            "first_utc": self.first_utc,
            "last_utc": self.last_utc,
            **self.counts.summary(),
            "frames_with_position": self.frames_with_position,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "summary_picture": summary_picture,
        }


def summarise_plots(records: Sequence[dict]) -> list[PlotSummary]:
    """Per plot, in the order plots first appear."""
    by_plot: dict[str, list[dict]] = {}
    for record in records:
        by_plot.setdefault(record["plot"], []).append(record)
    out = []
    for plot, rows in by_plot.items():
        positions = [r["position"] for r in rows if r.get("position")]
        lat = sum(p["latitude"] for p in positions) / len(positions) if positions else None
        lon = sum(p["longitude"] for p in positions) / len(positions) if positions else None
        out.append(
            PlotSummary(
                plot=plot,
                frames=len(rows),
                counts=pool(Counts.from_dict(r["counts"]) for r in rows),
                first_utc=min(r["time_utc"] for r in rows),
                last_utc=max(r["time_utc"] for r in rows),
                frames_with_position=len(positions),
                latitude=None if lat is None else round(lat, 8),
                longitude=None if lon is None else round(lon, 8),
            )
        )
    return out


def frame_row(record: dict) -> dict:
    """One frame record as a flat table row (``FRAME_COLUMNS``)."""
    position = record.get("position") or {}
    return {
        "number": record["number"],
        "plot": record["plot"],
        "time_utc": record["time_utc"],
        "camera_frame": record.get("camera_frame"),
        **record["summary"],
        "gps": record.get("gps", "off"),
        "latitude": position.get("latitude"),
        "longitude": position.get("longitude"),
        "altitude_m": position.get("altitude_m"),
        "gps_quality": position.get("quality"),
        "satellites": position.get("satellites"),
        "hdop": position.get("hdop"),
        "picture": record["files"]["picture"],
        "mask": record["files"]["mask"],
        "latency_ms": record.get("latency_ms"),
        "run": record.get("run"),
    }


def csv_bytes(columns: Sequence[str], rows: Sequence[dict]) -> bytes:
    """CSV text of ``rows`` (None -> empty cell)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buffer.getvalue().encode("utf-8")


def _point(latitude: float | None, longitude: float | None, altitude: float | None = None) -> dict | None:
    if latitude is None or longitude is None:
        return None
    coordinates = [longitude, latitude] + ([altitude] if altitude is not None else [])
    return {"type": "Point", "coordinates": coordinates}


def geojson_bytes(features: Sequence[dict]) -> bytes:
    collection = {"type": "FeatureCollection", "features": list(features)}
    return (json.dumps(collection, indent=1, allow_nan=False) + "\n").encode("utf-8")


def point_feature(row: dict) -> dict:
    """A GeoJSON Feature of a frame or plot table row: its point (None without a position), the row as properties."""
    geometry = _point(row["latitude"], row["longitude"], row.get("altitude_m"))
    return {"type": "Feature", "geometry": geometry, "properties": row}
