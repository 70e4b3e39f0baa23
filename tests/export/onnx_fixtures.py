"""Shared fixtures of the ONNX export tests: tiny trained checkpoints and simulated raw frames.

Imported by ``test_onnx_export.py``, ``test_quantize.py`` and ``test_fp16.py``; the
checkpoints are session-scoped so the three files train once (~5 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

HEIGHT, WIDTH = 32, 40
EXPOSURE_MS = 10.0
MODELS = ("pixel-mlp", "unet-small", "unet-edge")
# unet-small: 10 steps leave logit margins too thin for INT8
STEPS = {"pixel-mlp": 30, "unet-small": 80, "unet-edge": 150}
#: Frame pooling of each model's graph (its dark/gain inputs are at the pooled size).
POOL = {"unet-edge": 2}
OPTIONS = {"unet-edge": {"pool": 2, "widths": [8, 16], "bottleneck": 16, "reduced_channels": 8}}


@dataclass
class Camera:
    """A simulated Tivita-like camera at HEIGHT x WIDTH: references and a frame maker."""

    dark: np.ndarray  # (H, W, C) float32 counts
    white: np.ndarray  # (H, W, C) float32 counts
    gain: np.ndarray  # (H, W, C) float32 1/counts
    model: object
    sensor: object

    def frame(self, seed: int, pool: int = 1) -> dict[str, np.ndarray]:
        """Graph inputs of one raw frame: raw (1, H, W, C) uint16 counts, dark and gain (H, W, C) float32
        (at (H/pool, W/pool, C) for a graph that pools the frame)."""
        from xenoedge.calibration.pooling import pooled_references
        from xenoedge.xeno.camera_model import expected_counts, noise_sigma, sample_raw
        from xenoedge.xeno.scene import SceneConfig, simulate_scene

        height, width = self.dark.shape[:2]
        config = SceneConfig(height=height, width=width)
        scene = simulate_scene(config, seed, self.sensor.wavelengths(), self.sensor.fwhm())
        mean = expected_counts(self.model, scene.reflectance, EXPOSURE_MS)
        raw = sample_raw(self.model, mean, noise_sigma(self.model, mean), np.random.default_rng(seed), mosaic=False)
        dark, gain = pooled_references(self.dark, self.gain, pool)
        return {"raw": raw[None], "dark": dark, "gain": gain}

    def frame_for(self, name: str, seed: int) -> dict[str, np.ndarray]:
        """``frame(seed)`` with references at the size model ``name``'s graph takes."""
        return self.frame(seed, POOL.get(name, 1))


def make_camera(height: int = HEIGHT, width: int = WIDTH) -> Camera:
    from xenoedge.export.onnx_export import reference_gain
    from xenoedge.xeno.camera_model import make_camera_model, reference_counts

    from xenoedge.sensors import get_sensor

    sensor = get_sensor("tivita")
    model = make_camera_model(sensor, height, width, seed=7)
    dark = reference_counts(model, "dark", EXPOSURE_MS)
    white = reference_counts(model, "white", EXPOSURE_MS)
    return Camera(dark, white, reference_gain(dark, white), model, sensor)


@pytest.fixture(scope="session")
def camera() -> Camera:
    return make_camera()


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """{model name: checkpoint folder} of tiny models trained on a tiny simulated data set."""
    from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset
    from xenoedge.xeno.train import TrainConfig, train

    root = tmp_path_factory.mktemp("onnx-ckpt")
    spec = DatasetSpec(
        species=("human",),
        states=("physiological",),
        subjects_per_species=2,
        images_per_subject=2,
        height=HEIGHT,
        width=WIDTH,
        seed=1,
    )
    write_dataset(root / "data", spec)
    out = {}
    for name in MODELS:
        config = TrainConfig(
            data=str(root / "data"),
            model=name,
            model_options=OPTIONS.get(name, {}),
            steps=STEPS[name],
            batch_size=2,
            crop=16,
            threads=1,
            val_fraction=0.5,
            checkpoint_every=1000,
        )
        out[name] = train(config, root / name)
    return out


@pytest.fixture(scope="session")
def fp32_graphs(checkpoints, tmp_path_factory) -> dict[str, Path]:
    """{model name: static raw-variant FP32 graph at HEIGHT x WIDTH}, with checkpoint metadata."""
    from xenoedge.export.onnx_export import export_onnx, metadata_from_config
    from xenoedge.xeno.checkpoint import load_model

    root = tmp_path_factory.mktemp("onnx-fp32")
    out = {}
    for name, folder in checkpoints.items():
        model, config = load_model(folder)
        out[name] = export_onnx(
            model,
            height=HEIGHT,
            width=WIDTH,
            n_bands=model.in_channels,
            path=root / f"{name}.onnx",
            metadata=metadata_from_config(config),
        )
    return out


def session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{output name: array} of one ONNX Runtime run (CPU EP)."""
    sess = session(path)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds), strict=True))


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of equal pixels."""
    return float(np.mean(a == b))
