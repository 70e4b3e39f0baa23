"""Handheld crop scanning: sessions of plots, triggered frames, per-frame and per-plot numbers.

``xenoedge scan`` (``cli/scan.py``) runs a ``ScanSession``: the device daemon's pipeline
(bundle, engine, self-test, references) on frames taken on a trigger, with a white-tile step at
the start, GPS positions from NMEA, and CSV/GeoJSON tables and pictures written atomically into
a session folder that survives a power cut. Documentation: docs/scan.md.
"""

from xenoedge.edge.scan.errors import ScanCalibrationError, ScanError, ScanOutputError
from xenoedge.edge.scan.session import ScanOptions, ScanResult, ScanSession, run_scan

__all__ = [
    "ScanCalibrationError",
    "ScanError",
    "ScanOptions",
    "ScanOutputError",
    "ScanResult",
    "ScanSession",
    "run_scan",
]
