"""The engine base class and what every engine shares: options, errors, results, operator times.

An engine runs one target of an extracted bundle (``manifest["targets"][name]``) on the graph
contract of ``docs/export.md``: inputs ``raw`` (1, H, W, C) uint16 counts plus ``dark`` and
``gain`` (H, W, C) float32 for the raw variant, or ``reflectance`` (1, H, W, C) float32;
outputs ``classes`` (1, H, W) uint8 and optionally ``confidence`` (1, H, W) float32.

The per-frame path allocates and copies nothing frame-sized: the engine owns a preallocated input
buffer (``engine.input_buffer``, (1, H, W, C)) that the caller fills in place, or the runtime
reads the caller's frame array in place (``infer(frame)``; the daemon hands over each camera
frame so, saving a 61 MB copy per Tivita frame). Output buffers are preallocated too, and the
runtime writes into them (the subclasses bind them: ``xenoedge.edge.engine_ort``,
``xenoedge.edge.engine_openvino``). ``dark`` and ``gain`` are bound once per reference load
(``bind_references``).

Each engine reports what it runs with (``Engine.settings()``: runtime version, providers and
their options, threads, effective precision, cache) and, with ``EngineOptions.profile``, the
time per operator (``Engine.operator_profile()``), which ``edge-bench --profile`` sums by
operator type. Which engine opens a bundle: ``xenoedge.edge.engines``.

NumPy only: no runtime is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xenoedge.calibration.pooling import pooled_references, working_shape
from xenoedge.export.bundle.runtime import CLASSES_OUTPUT

from xenoedge.errors import XenoedgeError

__all__ = [
    "DARK_INPUT",
    "DEFAULT_ORT_PROVIDERS",
    "GAIN_INPUT",
    "OPENVINO_DEVICES",
    "RAW_INPUT",
    "REFLECTANCE_INPUT",
    "TARGET_ORDERS",
    "Engine",
    "EngineError",
    "EngineOptions",
    "Inference",
    "OperatorTime",
    "first_line",
]

RAW_INPUT, DARK_INPUT, GAIN_INPUT, REFLECTANCE_INPUT = "raw", "dark", "gain", "reflectance"

#: ONNX Runtime execution providers in order of preference; filtered by what is installed.
DEFAULT_ORT_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CPUExecutionProvider",
)
#: The OpenVINO devices ``EngineOptions.openvino_device`` may name.
OPENVINO_DEVICES = ("CPU", "GPU", "NPU", "AUTO")
_NUMPY_DTYPES = {"uint16": np.uint16, "uint8": np.uint8, "float16": np.float16, "float32": np.float32}


class EngineError(XenoedgeError):
    """A bundle target that cannot be loaded or run here, or an engine used wrongly."""


@dataclass(frozen=True)
class EngineOptions:
    """How engines are set up on this device.

    ``ort_providers``: ONNX Runtime providers in order of preference (those not installed are
    left out; CPU is always last). ``openvino_device``: ``CPU``, ``GPU``, ``NPU`` or ``AUTO``;
    None takes the target's ``device`` hint (default CPU). ``threads``: intra-op threads (None:
    the runtime's default). ``openvino_precision_hint``: ``"auto"`` sets f32 for fp32 targets
    on CPU (the plugin would otherwise infer in bf16 on AMX CPUs and miss the self-test),
    ``"f32"``/``"f16"``/``"bf16"`` force one, None leaves the plugin's default
    (``xenoedge.export.bundle.runtime.openvino_config``). ``confidence``: compute the ``confidence``
    output too (a consumer reads it, e.g. the scan's mean confidence); False computes only
    ``classes`` and ``Inference.confidence`` is None. ``cache_dir``: root of the compiled-model
    caches on the device's storage (None: no cache, every start compiles). ``profile``: record
    per-operator times (``Engine.operator_profile``; slows inference a little).
    ``openvino_properties``: (name, value) compile properties added to the engine's own
    configuration (edge-bench's ``PERFORMANCE_HINT``/``NUM_STREAMS``). ``target_order``:
    ``"rank"`` (the bundle's order, measured where it was built) or ``"measured"`` (time the
    targets on this device once and open the fastest: ``xenoedge.edge.target_timing``).
    """

    ort_providers: tuple[str, ...] = DEFAULT_ORT_PROVIDERS
    openvino_device: str | None = None
    threads: int | None = None
    openvino_precision_hint: str | None = "auto"
    confidence: bool = False
    cache_dir: Path | None = None
    profile: bool = False
    openvino_properties: tuple[tuple[str, str], ...] = ()
    target_order: str = "rank"


#: ``EngineOptions.target_order`` values.
TARGET_ORDERS = ("rank", "measured")


@dataclass(frozen=True)
class OperatorTime:
    """Time spent in one operator over the profiled runs: ``name`` (node), ``op_type``,
    ``precision`` (kernel/implementation as the runtime names it), ``ms`` (total), ``calls``."""

    name: str
    op_type: str
    precision: str
    ms: float
    calls: int


@dataclass
class Inference:
    """One frame's result: views of the engine's output buffers, overwritten by the next ``infer``.

    ``classes`` (H, W) uint8 class ids; ``confidence`` (H, W) float32 or None.
    """

    classes: np.ndarray
    confidence: np.ndarray | None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (the runtimes raise long multi-line ones), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _frame_shape(manifest: Mapping, frame_hw: tuple[int, int] | None) -> tuple[int, int, int, int]:
    """The (1, H, W, C) input shape: the manifest's, dynamic dimensions taken from ``frame_hw``."""
    shape = list(manifest["input"]["shape"])
    if shape[0] not in (None, 1):
        raise EngineError(f"bundle {manifest['name']}: batch {shape[0]} is not supported (the daemon feeds 1 frame)")
    shape[0] = 1
    for axis in (1, 2):
        if shape[axis] is None:
            if frame_hw is None:
                raise EngineError(f"bundle {manifest['name']} has a dynamic input shape; give the frame size")
            shape[axis] = int(frame_hw[axis - 1])
        elif frame_hw is not None and shape[axis] != frame_hw[axis - 1]:
            raise EngineError(
                f"bundle {manifest['name']} takes {shape[1]}x{shape[2]} frames, the camera delivers "
                f"{frame_hw[0]}x{frame_hw[1]}"
            )
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


class Engine:
    """A loaded bundle target with preallocated input/output buffers (see the module docstring).

    Attributes: ``name`` (e.g. ``"cpu-onnxruntime-fp32 on onnxruntime/CPUExecutionProvider"``),
    ``target``, ``runtime``, ``device``, ``variant`` (``raw``|``reflectance``), ``input_name``,
    ``input_shape`` (1, H, W, C), ``input_buffer`` (that shape, the input dtype).
    """

    runtime = ""
    #: What the loaded model actually computes at (``xenoedge.export.bundle.runtime.effective_precision``).
    effective_precision = ""
    #: Wall time of creating the session / compiling the model, ms (references and first run excluded).
    load_ms = 0.0
    #: ``"built"`` (compiled and stored in the cache), ``"loaded"`` (imported from it) or ``"off"``.
    cache_state = "off"
    cache_folder: Path | None = None

    def __init__(self, folder: Path, manifest: Mapping, target: str, device: str, frame_hw: tuple[int, int] | None):
        self.folder = Path(folder)
        self.manifest = manifest
        self.target = target
        self.device = device
        spec = manifest["targets"][target]
        self.precision = spec.get("precision", "")
        self.model_path = self.folder.joinpath(*spec["model"].split("/"))
        if not self.model_path.is_file():
            raise EngineError(f"{self.model_path}: model file of target {target} is missing")
        self.variant = manifest["input"].get("variant", "raw")
        self.input_name = REFLECTANCE_INPUT if self.variant == "reflectance" else RAW_INPUT
        dtype = manifest["input"].get("dtype", "uint16" if self.variant == "raw" else "float32")
        if dtype not in _NUMPY_DTYPES:
            raise EngineError(f"bundle {manifest['name']}: input dtype {dtype!r} is not supported")
        self.input_shape = _frame_shape(manifest, frame_hw)
        #: The graph pools the frame this many times in H and W before calibration (edge-first models).
        self.pool = int(manifest.get("preprocessing", {}).get("pool", 1))
        if self.pool < 1:
            raise EngineError(f"bundle {manifest['name']}: preprocessing.pool must be >= 1, got {self.pool}")
        self.input_buffer = np.zeros(self.input_shape, dtype=_NUMPY_DTYPES[dtype])
        _, h, w, _c = self.input_shape
        self._classes = np.zeros((1, h, w), dtype=np.uint8)
        self._confidence = np.zeros((1, h, w), dtype=np.float32)
        self._refs_bound = self.variant != "raw"
        self._result: Inference | None = None

    @property
    def name(self) -> str:
        return f"{self.target} on {self.runtime}/{self.device}"

    @property
    def cube_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one frame."""
        return self.input_shape[1:]  # type: ignore[return-value]

    @property
    def reference_shape(self) -> tuple[int, int, int]:
        """(h, w, C) of the graph's ``dark``/``gain`` inputs: the frame's, or the working size of a pooling bundle."""
        h, w, c = self.cube_shape
        return (*working_shape(h, w, self.pool), c)

    def _reference_view(self, what: str, array: np.ndarray) -> np.ndarray:
        """``array`` checked and broadcast to (H, W, C) as a read-only view (no copy)."""
        array = np.asarray(array, dtype=np.float32)
        try:
            full = np.broadcast_to(array, self.cube_shape)
        except ValueError:
            raise EngineError(f"{what} of shape {array.shape} does not fit frames {self.cube_shape}") from None
        if not np.all(np.isfinite(array)):
            raise EngineError(f"{what} holds NaN/inf values")
        return full

    def _reference_array(self, what: str, array: np.ndarray) -> np.ndarray:
        # a writable copy the runtime may share
        return np.array(self._reference_view(what, array), dtype=np.float32, order="C")

    def bind_references(self, dark: np.ndarray, gain: np.ndarray) -> None:
        """Bind ``dark`` (counts) and ``gain`` (1/counts), each broadcastable to (H, W, C), for all later frames.

        gain = 1 / max(white − dark, 1): ``xenoedge.calibration.reflectance.signal_range``. Only raw-variant
        bundles take references; for a reflectance bundle the caller calibrates. A bundle that
        pools the frame (``preprocessing.pool`` > 1) gets them pooled to its working size
        (``xenoedge.calibration.pooling.pooled_references``).
        """
        if self.variant != "raw":
            raise EngineError(f"{self.name}: a {self.variant}-input bundle takes no references")
        if self.pool > 1:  # pooled from (broadcast) views: no copy at the frame's size is made
            dark, gain = self._pooled(self._reference_view("dark", dark), self._reference_view("gain", gain))
        else:
            dark, gain = self._reference_array("dark", dark), self._reference_array("gain", gain)
        self._bind_references(dark, gain)
        self._refs_bound = True

    def infer(self, frame_input: np.ndarray | None = None) -> Inference:
        """Run one frame. ``frame_input`` (1, H, W, C) or (H, W, C): a C-contiguous, writable array
        of the input dtype is read in place by the runtime (no copy; the engine keeps no reference
        to it after the call); any other array is copied into ``input_buffer``. None runs what the
        buffer holds. Returns views (see ``Inference``)."""
        if not self._refs_bound:
            raise EngineError(f"{self.name}: bind_references(dark, gain) before the first frame")
        shared = None
        if frame_input is not None and frame_input is not self.input_buffer:
            target = self.input_buffer if frame_input.ndim == 4 else self.input_buffer[0]
            if frame_input.shape != target.shape:
                raise EngineError(f"{self.name}: input of shape {frame_input.shape}, expected {self.input_shape}")
            if self._can_read_in_place(frame_input):
                shared = frame_input.reshape(self.input_shape)
            else:
                np.copyto(target, frame_input, casting="same_kind")
        try:
            if shared is not None:
                self._bind_input(shared)
            self._run_bound()
        except XenoedgeError:
            raise
        except Exception as exc:  # the runtimes raise their own types
            raise EngineError(f"{self.name}: inference failed ({first_line(exc)})") from None
        finally:
            if shared is not None:  # hold no reference to the caller's frame after the call
                self._bind_input(self.input_buffer)
        if self._result is None:
            self._result = Inference(self._classes[0], self._confidence[0] if self._has_confidence else None)
        return self._result

    def warm_up(self, n: int = 3) -> None:
        """Run ``n`` inferences on the current buffers (first-run allocations, kernel selection)."""
        for _ in range(max(0, n)):
            self.infer()

    def graph_inputs(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``inputs`` (graph name -> array) as the graph takes them: references given at the frame's
        size pooled for a bundle that pools the frame, as ``bind_references`` does."""
        inputs = dict(inputs)
        frame_size = RAW_INPUT in inputs and np.shape(inputs[DARK_INPUT])[:2] == np.shape(inputs[RAW_INPUT])[1:3]
        if self.pool > 1 and frame_size:
            inputs[DARK_INPUT], inputs[GAIN_INPUT] = self._pooled(inputs[DARK_INPUT], inputs[GAIN_INPUT])
        return inputs

    def _pooled(self, dark: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame-size references pooled to the graph's working size (C-contiguous float32)."""
        try:
            return tuple(np.ascontiguousarray(a) for a in pooled_references(dark, gain, self.pool))  # type: ignore[return-value]
        except XenoedgeError as exc:
            raise EngineError(f"{self.name}: {exc}") from None

    def run_once(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """(H, W) uint8 classes for a full set of graph inputs, outside the bound buffers (allocates;
        for the self-test, whose inputs may have another shape). References at the frame's size are
        pooled for a bundle that pools the frame, as ``bind_references`` does."""
        inputs = self.graph_inputs(inputs)
        try:
            outputs = self._run_unbound({k: np.ascontiguousarray(v) for k, v in inputs.items()})
        except XenoedgeError:
            raise
        except Exception as exc:
            raise EngineError(f"{self.name}: self-test inference failed ({first_line(exc)})") from None
        classes = np.asarray(outputs[CLASSES_OUTPUT])
        return classes.reshape(classes.shape[-2:]).astype(np.uint8, copy=False)

    def settings(self) -> dict:
        """What this engine runs with, for reports: runtime and version, device/providers, their
        options, threads, effective precision, cache state and folder, load time."""
        return {
            "target": self.target,
            "runtime": self.runtime,
            "runtime_version": self._runtime_version(),
            "device": self.device,
            "precision": self.precision,
            "effective_precision": self.effective_precision,
            **self._runtime_settings(),
            "cache": self.cache_state,
            "cache_folder": str(self.cache_folder) if self.cache_folder else None,
            "load_ms": round(self.load_ms, 3),
        }

    def operator_profile(self) -> list[OperatorTime]:
        """Per-operator times of the runs since the engine was opened (``EngineOptions.profile``);
        empty when profiling is off. ONNX Runtime ends its profiler here (call it once)."""
        return []

    def close(self) -> None:
        """Release the runtime's session (idempotent)."""

    # -- for subclasses
    def _runtime_version(self) -> str:
        return ""

    def _runtime_settings(self) -> dict:
        return {}

    _has_confidence = False

    def _bind_references(self, dark: np.ndarray, gain: np.ndarray) -> None:
        raise NotImplementedError

    def _can_read_in_place(self, frame_input: np.ndarray) -> bool:
        """Whether the runtime can read ``frame_input`` without a copy (see ``infer``)."""
        flags = frame_input.flags
        return frame_input.dtype == self.input_buffer.dtype and flags.c_contiguous and flags.writeable

    def _bind_input(self, array: np.ndarray) -> None:
        """Make the runtime read the frame from ``array`` ((1, H, W, C), the input dtype, C-contiguous)."""
        raise NotImplementedError

    def _run_bound(self) -> None:
        raise NotImplementedError

    def _run_unbound(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        raise NotImplementedError
