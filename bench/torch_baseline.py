"""The PyTorch eager FP32 baseline of ``edge-bench``: a training checkpoint behind the engine interface.

``TorchEngine`` runs a checkpoint (``xeno/checkpoint.py``) on the export graph contract
(``export/onnx_export.py``), so it is measured exactly like a bundle target: the caller fills
``input_buffer`` ((1, H, W, C) uint16 raw counts, or float32 reflectance) and binds ``dark``
/ ``gain`` once; ``infer()`` runs, in eager PyTorch under ``torch.inference_mode``:
Cast → Sub(dark) → Mul(gain) → Clip[0, MAX_REFLECTANCE] → L1 over C → NCHW (padded to the
model's multiple) → model → ArgMax → uint8, the graph's own pre/post-processing.

torch is imported inside the constructor only: importing this module costs nothing and the
device install (no torch) can import ``xenoedge.bench.main``. ``torch_available()`` says whether the
baseline can run here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from xenoedge.calibration.normalise import L1_EPS
from xenoedge.calibration.reflectance import MAX_REFLECTANCE
from xenoedge.edge.engines import EngineError, Inference

__all__ = ["TorchEngine", "is_checkpoint", "torch_available"]


def torch_available() -> bool:
    """True when ``import torch`` works here."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def is_checkpoint(path: Path) -> bool:
    """A checkpoint folder: ``config.json`` and ``model.pt`` side by side."""
    return path.is_dir() and (path / "config.json").is_file() and (path / "model.pt").is_file()


class TorchEngine:
    """A checkpoint in eager PyTorch FP32 with the bundle engines' interface (``xenoedge.edge.engines.Engine``).

    ``input_shape`` (1, H, W, C); ``variant`` ``raw`` or ``reflectance``; ``threads``: torch
    intra-op threads (None: torch's default).
    """

    runtime = "torch"
    precision = "fp32"

    def __init__(
        self, checkpoint: Path, input_shape: tuple[int, int, int, int], variant: str = "raw", threads: int | None = None
    ):
        import torch
        from xenoedge.xeno.checkpoint import load_model

        self._torch = torch
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.model, self.config = load_model(Path(checkpoint))
        self.model = self.model.float().eval()
        _, h, w, c = input_shape
        in_channels = getattr(self.model, "in_channels", c)
        if in_channels != c:
            raise EngineError(f"checkpoint {checkpoint} takes {in_channels} bands, the input has {c}")
        self.multiple = int(getattr(self.model, "required_multiple", 1))
        self.target = f"torch-fp32 ({Path(checkpoint).name})"
        self.device = "cpu"
        self.name = f"{self.target} on torch/cpu"
        self.variant = variant
        self.input_name = "raw" if variant == "raw" else "reflectance"
        self.input_shape = (1, h, w, c)
        self.input_buffer = np.zeros(self.input_shape, dtype=np.uint16 if variant == "raw" else np.float32)
        self._input = torch.from_numpy(self.input_buffer)  # shares memory with the buffer
        self._dark = self._gain = None
        self._classes = np.zeros((h, w), dtype=np.uint8)
        self._result = Inference(self._classes, None)

    @property
    def cube_shape(self) -> tuple[int, int, int]:
        return self.input_shape[1:]  # type: ignore[return-value]

    def bind_references(self, dark: np.ndarray, gain: np.ndarray) -> None:
        """``dark`` counts and ``gain`` 1/counts, each broadcastable to (H, W, C)."""
        shape = self.cube_shape
        self._dark = self._torch.from_numpy(np.array(np.broadcast_to(dark, shape), dtype=np.float32))
        self._gain = self._torch.from_numpy(np.array(np.broadcast_to(gain, shape), dtype=np.float32))

    def _forward(self, frame) -> np.ndarray:
        torch = self._torch
        x = frame[0].to(torch.float32)
        if self.variant == "raw":
            if self._dark is None:
                raise EngineError(f"{self.name}: bind_references(dark, gain) before the first frame")
            x = (x - self._dark) * self._gain
        x = x.clamp(0.0, MAX_REFLECTANCE)
        x = x / (x.abs().sum(dim=-1, keepdim=True) + L1_EPS)
        x = x.permute(2, 0, 1)[None]
        h, w = x.shape[2:]
        pad_h, pad_w = (-h) % self.multiple, (-w) % self.multiple
        if pad_h or pad_w:
            x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        logits = self.model(x)
        return logits[0, :, :h, :w].argmax(dim=0).to(torch.uint8).numpy()

    def infer(self, frame_input: np.ndarray | None = None) -> Inference:
        """One frame from ``input_buffer`` (or ``frame_input`` copied into it); (H, W) uint8 classes."""
        if frame_input is not None and frame_input is not self.input_buffer:
            np.copyto(self.input_buffer.reshape(frame_input.shape), frame_input, casting="same_kind")
        with self._torch.inference_mode():
            self._classes[...] = self._forward(self._input)
        return self._result

    def warm_up(self, n: int = 3) -> None:
        for _ in range(max(0, n)):
            self.infer()

    def run_once(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        raise EngineError("TorchEngine runs the bound buffers only")

    def close(self) -> None:
        self.model = None
