"""Small real bundles for tests (bundles, flashing, daemon): two targets, a self-test, fake model bytes.

The model files are random bytes, not runnable models; the self-test arrays have the right
shapes and dtypes. Not imported by ``xenoedge.export.bundle`` itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from xenoedge.export.bundle.archive import write_bundle
from xenoedge.export.bundle.selftest import selftest_files

from xenoedge.sensors import get_sensor

DEMO_SENSOR = "mosaic-5x5-nir"
DEMO_CREATED_AT = "2025-01-31T12:00:00Z"
DEMO_LABELS = [
    {"id": 0, "name": "soil", "color": [0, 0, 0]},
    {"id": 1, "name": "healthy_leaf", "color": [44, 160, 44]},
    {"id": 2, "name": "stressed_leaf", "color": [255, 200, 0]},
    {"id": 3, "name": "lesion", "color": [160, 40, 40]},
]


def demo_manifest(*, height: int = 4, width: int = 6, **overrides) -> dict:
    """A schema-1 manifest without file entries (``write_bundle`` fills them in)."""
    sensor = get_sensor(DEMO_SENSOR)
    manifest = {
        "name": "crop-mosaic",
        "version": "1.2.0",
        "created_at": DEMO_CREATED_AT,
        "description": "demo bundle with fake model bytes",
        "sensor": {"name": sensor.name, "signature": sensor.signature},
        "input": {
            "layout": "NHWC",
            "dtype": "uint16",
            "shape": [1, height, width, sensor.n_bands],
            "variant": "raw",
            "wavelengths_nm": list(sensor.wavelengths_nm),
        },
        "preprocessing": {"dark_input": "dark", "gain_input": "gain", "clip_max": 2.0, "l1_eps": 1e-6},
        "labels": [dict(label) for label in DEMO_LABELS],
        "targets": {
            "cpu-ort-int8": {"runtime": "onnxruntime", "precision": "int8", "providers": ["CPUExecutionProvider"]},
            "intel-npu": {"runtime": "openvino", "precision": "fp16", "device": "NPU"},
        },
        "accuracy": {
            "cpu-ort-int8": {
                "pixel_agreement": 0.995,
                "dsc": {"soil": 0.99, "lesion": None},
                "dsc_drop": 0.004,
                "max_drop": 0.01,
                "passed": True,
            }
        },
        "provenance": {"checkpoint": "model.pt", "species": ["wheat"], "seed": 0, "code": {"xenoedge": "demo"}},
        "selftest": {"min_agreement": 0.99},
    }
    manifest.update(overrides)
    return manifest


def demo_files(*, height: int = 4, width: int = 6, seed: int = 0) -> dict[str, bytes]:
    """Fake model files for both demo targets plus a real self-test (input.npz, expected.npz)."""
    rng = np.random.default_rng(seed)
    bands = get_sensor(DEMO_SENSOR).n_bands
    files = {
        "models/cpu-ort-int8/model.onnx": rng.integers(0, 256, 3000, dtype=np.uint8).tobytes(),
        "models/intel-npu/model.xml": b"<net name='demo'/>\n" * 40,
        "models/intel-npu/model.bin": rng.integers(0, 256, 1500, dtype=np.uint8).tobytes(),
    }
    inputs = {
        "raw": rng.integers(0, 1023, (1, height, width, bands), dtype=np.uint16),
        "dark": np.full((bands,), 60, np.float32),
        "gain": np.full((bands,), 1 / 900, np.float32),
    }
    return files | selftest_files(inputs, rng.integers(0, 4, (1, height, width), dtype=np.uint8))


def write_demo_bundle(
    path: str | os.PathLike, *, signing_key: Ed25519PrivateKey | None = None, **manifest_overrides
) -> Path:
    """Write the demo bundle to ``path``; ``manifest_overrides`` replace top-level manifest fields."""
    return write_bundle(path, demo_manifest(**manifest_overrides), demo_files(), signing_key=signing_key)
