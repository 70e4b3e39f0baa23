"""Sensor profiles inferred from raw counts, for captures from cameras not in the sensor table.

A Specim capture folder or a references file naming an unknown sensor says nothing about its
ADC; its bit depth is taken as the smallest of 8/10/12/14/16 bits that holds every count, and
saturation then sits at 1000/1023 of that full scale (``custom_sensor``).

>>> bit_depth_of(np.array([0, 1023]), np.array([12]))
10
>>> sensor_or_inferred("tivita", np.zeros((2, 3, 4), np.uint16)).name
'tivita'
>>> sensor_or_inferred("lab-camera", np.full((2, 3, 4), 4000, np.uint16)).saturation_counts
4003
"""

from __future__ import annotations

import numpy as np

from xenoedge.errors import CalibrationError
from xenoedge.sensors import SENSORS, SensorProfile, custom_sensor

#: The ADC bit depths a raw capture is assumed to have, smallest first.
BIT_DEPTHS = (8, 10, 12, 14, 16)


def bit_depth_of(*arrays: np.ndarray) -> int:
    """The smallest of ``BIT_DEPTHS`` whose full scale (2**bits - 1 counts) holds every count of
    ``arrays``; ``CalibrationError`` above 16 bits."""
    top = max(float(np.max(a)) for a in arrays)
    for bits in BIT_DEPTHS:
        if top <= (1 << bits) - 1:
            return bits
    raise CalibrationError(f"counts up to {top:g} exceed 16 bits")


def specim_sensor(
    name: str, cube: np.ndarray, dark: np.ndarray, white: np.ndarray, wavelengths_nm: np.ndarray
) -> SensorProfile:
    """The profile ``envi-NAME`` of a Specim capture: ``cube`` (lines, W, C) counts, its DARKREF and
    WHITEREF stacks (n, W, C) counts and (C,) band centres in nm; bit depth from all three."""
    lines, width, _ = cube.shape
    return custom_sensor(f"envi-{name}", wavelengths_nm, lines, width, bit_depth_of(cube, dark, white))


def sensor_or_inferred(sensor_name: str, raw: np.ndarray) -> SensorProfile:
    """The table's profile ``sensor_name``, or a custom one of that name shaped like ``raw``
    (H, W, C) counts: bands numbered 0..C-1 (no wavelengths known), bit depth from ``raw``."""
    if sensor_name in SENSORS:
        return SENSORS[sensor_name]
    h, w, _ = raw.shape
    return custom_sensor(sensor_name, np.arange(raw.shape[2], dtype=float), h, w, bit_depth_of(raw))
