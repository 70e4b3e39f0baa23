"""Inference engines of the device daemon: one registry, ONNX Runtime and OpenVINO behind one class.

An engine runs one target of an extracted bundle (``manifest["targets"][name]``) on the graph
contract of ``docs/export.md``: inputs ``raw`` (1, H, W, C) uint16 counts plus ``dark`` and
``gain`` (H, W, C) float32 for the raw variant, or ``reflectance`` (1, H, W, C) float32;
outputs ``classes`` (1, H, W) uint8 and optionally ``confidence`` (1, H, W) float32.

The per-frame path allocates nothing: the engine owns a preallocated input buffer
(``engine.input_buffer``, (1, H, W, C)) that the caller fills in place (or that ``infer``
copies into), and output buffers that the runtime writes into (ONNX Runtime: IOBinding with
OrtValues sharing the NumPy memory; OpenVINO: tensors sharing memory set once on one
InferRequest). ``dark`` and ``gain`` are bound once per reference load (``bind_references``).

Which target runs (``open_engine``): the targets of the bundle whose runtime is installed and
has a usable device here, ordered by ``prefer`` (target names or runtime names, first match
wins), then by the target's ``rank`` (written by the export where it measured the targets side
by side: fastest first), then by ``DEFAULT_RUNTIME_ORDER`` and ``DEFAULT_PRECISION_ORDER``.
Every target in a bundle passed the export accuracy gate, so the order goes for speed.

Runtime settings (OpenVINO precision hint, threads, which outputs to compute) come from
``xenoedge.export.bundle.runtime``, the one definition the export's accuracy gate uses too. The
``confidence`` output is computed only when ``EngineOptions.confidence`` asks for it (the
handheld scan does; the serial sink does not): OpenVINO compiles the model without the
confidence result, ONNX Runtime loads the target's ``model_classes_only`` file when the bundle
has one (ONNX Runtime still runs a branch whose output is not fetched).

Compiled-model caches (``EngineOptions.cache_dir``, the daemon's ``cache_dir``, by default
``<state_dir>/cache``): OpenVINO's ``CACHE_DIR`` and TensorRT's engine and timing caches, one
folder per model file (``model_cache_folder``: named by the file's SHA-256, so a new bundle
never reads an old engine and an A/B rollback finds its own still there; the least recently
used folders beyond ``CACHE_KEEP`` are removed). The first start compiles and stores, later
starts import (``Engine.cache_state``: ``"built"``, ``"loaded"`` or ``"off"``; ``load_ms`` the
wall time of the load/compile); docs/targets.md lists the measured times.

Each engine reports what it runs with (``Engine.settings()``: runtime version, providers and
their options, threads, effective precision, cache) and, with ``EngineOptions.profile``, the
time per operator (``Engine.operator_profile()``: ONNX Runtime's profiler, OpenVINO's
performance counters), which ``edge-bench --profile`` sums by operator type.

``onnxruntime`` and ``openvino`` are imported lazily, inside the functions that need them:
this module never imports torch, onnx or nncf, and importing it costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from xenoedge.calibration.pooling import pooled_references, working_shape
from xenoedge.export.bundle.runtime import (
    CLASSES_OUTPUT,
    CONFIDENCE_OUTPUT,
    DEFAULT_PRECISION_ORDER,
    DEFAULT_RUNTIME_ORDER,
    effective_precision,
    openvino_config,
    ort_thread_settings,
    target_rank,
    tensorrt_provider_options,
)

from xenoedge.errors import XenoedgeError

__all__ = [
    "DEFAULT_ORT_PROVIDERS",
    "DEFAULT_PRECISION_ORDER",
    "DEFAULT_RUNTIME_ORDER",
    "ENGINES",
    "Engine",
    "EngineError",
    "EngineKind",
    "EngineOptions",
    "Inference",
    "OpenVinoEngine",
    "OperatorTime",
    "OrtEngine",
    "engine_candidates",
    "model_cache_folder",
    "open_engine",
]

log = logging.getLogger("xenoedge.engines")

RAW_INPUT, DARK_INPUT, GAIN_INPUT, REFLECTANCE_INPUT = "raw", "dark", "gain", "reflectance"

#: ONNX Runtime execution providers in order of preference; filtered by what is installed.
DEFAULT_ORT_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CPUExecutionProvider",
)
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
    configuration (edge-bench's ``PERFORMANCE_HINT``/``NUM_STREAMS``).
    """

    ort_providers: tuple[str, ...] = DEFAULT_ORT_PROVIDERS
    openvino_device: str | None = None
    threads: int | None = None
    openvino_precision_hint: str | None = "auto"
    confidence: bool = False
    cache_dir: Path | None = None
    profile: bool = False
    openvino_properties: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class OperatorTime:
    """Time spent in one operator over the profiled runs: ``name`` (node), ``op_type``,
    ``precision`` (kernel/implementation as the runtime names it), ``ms`` (total), ``calls``."""

    name: str
    op_type: str
    precision: str
    ms: float
    calls: int


#: Cache folders kept under ``cache_dir`` (least recently used removed beyond this): two A/B
#: slots and a few candidates on probation.
CACHE_KEEP = 4


def model_cache_folder(cache_dir: Path, model_path: Path, device: str) -> Path:
    """The cache folder of one model file on one device: ``cache_dir/<stem>-<device>-<sha256[:16]>``,
    created, and marked as just used; the least recently used folders beyond ``CACHE_KEEP`` go."""
    digest = hashlib.sha256()
    with open(model_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    safe_device = "".join(ch if ch.isalnum() else "_" for ch in device)
    folder = Path(cache_dir) / f"{model_path.stem}-{safe_device}-{digest.hexdigest()[:16]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.utime(folder)
        siblings = sorted((p for p in Path(cache_dir).iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for old in siblings[:-CACHE_KEEP]:
            if old != folder:
                _remove_tree(old)
    except OSError as exc:
        raise EngineError(f"{cache_dir}: cannot use it as the model cache ({exc.strerror or exc})") from None
    return folder


def _cache_folder_or_none(cache_dir: Path | None, model_path: Path, device: str) -> Path | None:
    """``model_cache_folder``, or None with a warning when the cache cannot be written: a model
    that compiles at every start is slower to start, not broken."""
    if cache_dir is None:
        return None
    try:
        return model_cache_folder(cache_dir, model_path, device)
    except EngineError as exc:
        log.warning("%s; compiling without a cache", exc)
        return None


def _remove_tree(folder: Path) -> None:
    for p in sorted(folder.rglob("*"), key=lambda q: len(q.parts), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    folder.rmdir()


@dataclass
class Inference:
    """One frame's result: views of the engine's output buffers, overwritten by the next ``infer``.

    ``classes`` (H, W) uint8 class ids; ``confidence`` (H, W) float32 or None.
    """

    classes: np.ndarray
    confidence: np.ndarray | None


def _first_line(exc: BaseException) -> str:
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
        """Run one frame. ``frame_input`` (1, H, W, C) or (H, W, C) is copied into ``input_buffer``
        unless it is that buffer; None runs what the buffer holds. Returns views (see ``Inference``)."""
        if not self._refs_bound:
            raise EngineError(f"{self.name}: bind_references(dark, gain) before the first frame")
        if frame_input is not None and frame_input is not self.input_buffer:
            target = self.input_buffer if frame_input.ndim == 4 else self.input_buffer[0]
            if frame_input.shape != target.shape:
                raise EngineError(f"{self.name}: input of shape {frame_input.shape}, expected {self.input_shape}")
            np.copyto(target, frame_input, casting="same_kind")
        try:
            self._run_bound()
        except XenoedgeError:
            raise
        except Exception as exc:  # the runtimes raise their own types
            raise EngineError(f"{self.name}: inference failed ({_first_line(exc)})") from None
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
            raise EngineError(f"{self.name}: self-test inference failed ({_first_line(exc)})") from None
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

    def _run_bound(self) -> None:
        raise NotImplementedError

    def _run_unbound(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        raise NotImplementedError


# ---- ONNX Runtime -------------------------------------------------------------------------


def _ort_available() -> tuple[str, ...]:
    try:
        import onnxruntime as ort
    except ImportError:
        return ()
    return tuple(ort.get_available_providers())


def _ort_provider_options(provider: str, precision: str, cache: Path | None) -> dict[str, str]:
    """Options of one ONNX Runtime provider for a target (TensorRT: ``tensorrt_provider_options``)."""
    if provider == "TensorrtExecutionProvider":
        return tensorrt_provider_options(precision, str(cache) if cache else None)
    return {}


def _ort_providers(runtime: str, options: EngineOptions) -> list[str]:
    """Providers to use for a target of ``runtime`` here, best first; empty: cannot run."""
    available = set(_ort_available())
    if not available:
        return []
    if runtime == "tensorrt":
        if "TensorrtExecutionProvider" not in available:
            return []
        wanted: Sequence[str] = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
    else:
        wanted = (*tuple(options.ort_providers), "CPUExecutionProvider")
    out: list[str] = []
    for p in wanted:
        if p in available and p not in out:
            out.append(p)
    return out


class OrtEngine(Engine):
    """ONNX Runtime with IOBinding: input, references and outputs bound once to NumPy memory."""

    runtime = "onnxruntime"

    def __init__(self, folder, manifest, target, *, providers: Sequence[str], options: EngineOptions, frame_hw=None):
        import onnxruntime as ort

        super().__init__(folder, manifest, target, providers[0], frame_hw)
        self.providers = list(providers)
        session_options = ort.SessionOptions()
        for key, value in ort_thread_settings(options.threads).items():
            setattr(session_options, key, value)
        if options.profile:
            session_options.enable_profiling = True
            session_options.profile_file_prefix = str(Path(os.environ.get("TMPDIR", "/tmp")) / "xenoedge-ort-profile")
        self._profiling = options.profile
        self._threads = options.threads
        classes_only = manifest["targets"][target].get("model_classes_only")
        if not options.confidence and isinstance(classes_only, str):
            path = self.folder.joinpath(*classes_only.split("/"))
            if path.is_file():
                self.model_path = path
        tensorrt = "TensorrtExecutionProvider" in self.providers
        if tensorrt:
            self.cache_folder = _cache_folder_or_none(options.cache_dir, self.model_path, "tensorrt")
        if self.cache_folder is not None:
            had_engine = any(self.cache_folder.glob("*.engine"))
            self.cache_state = "loaded" if had_engine else "built"
            if not had_engine:
                log.info("%s: building the TensorRT engine (first start; cached in %s)", target, self.cache_folder)
        elif tensorrt:
            log.info("%s: building the TensorRT engine (no cache_dir: every start builds it)", target)
        self.provider_options = [_ort_provider_options(p, self.precision, self.cache_folder) for p in self.providers]
        t0 = time.perf_counter()
        try:
            self._session = ort.InferenceSession(
                str(self.model_path), session_options, providers=self.providers, provider_options=self.provider_options
            )
        except Exception as exc:
            raise EngineError(f"{self.model_path}: ONNX Runtime cannot load it ({_first_line(exc)})") from None
        self.load_ms = (time.perf_counter() - t0) * 1e3
        if tensorrt:
            log.info("%s: TensorRT session ready in %.1f s (engine %s)", target, self.load_ms / 1e3, self.cache_state)
        self.device = self._session.get_providers()[0]
        self.effective_precision = effective_precision("onnxruntime", self._session)
        names_in = {i.name for i in self._session.get_inputs()}
        names_out = {o.name for o in self._session.get_outputs()}
        expected = {self.input_name} | ({DARK_INPUT, GAIN_INPUT} if self.variant == "raw" else set())
        if names_in != expected or CLASSES_OUTPUT not in names_out:
            raise EngineError(
                f"{self.model_path}: graph inputs {sorted(names_in)} / outputs {sorted(names_out)} do not follow the "
                f"contract (inputs {sorted(expected)}, output {CLASSES_OUTPUT!r})"
            )
        self._has_confidence = options.confidence and CONFIDENCE_OUTPUT in names_out
        self._ort = ort
        self._binding = self._session.io_binding()
        self._values = {self.input_name: ort.OrtValue.ortvalue_from_numpy(self.input_buffer)}
        self._binding.bind_ortvalue_input(self.input_name, self._values[self.input_name])
        wanted = {CLASSES_OUTPUT} | ({CONFIDENCE_OUTPUT} if self._has_confidence else set())
        for name, buf in ((CLASSES_OUTPUT, self._classes), (CONFIDENCE_OUTPUT, self._confidence)):
            if name in wanted:
                self._values[name] = ort.OrtValue.ortvalue_from_numpy(buf)
                self._binding.bind_ortvalue_output(name, self._values[name])

    def _bind_references(self, dark: np.ndarray, gain: np.ndarray) -> None:
        self._refs = (dark, gain)  # the OrtValues share this memory: keep it alive
        for name, array in ((DARK_INPUT, dark), (GAIN_INPUT, gain)):
            self._values[name] = self._ort.OrtValue.ortvalue_from_numpy(array)
            self._binding.bind_ortvalue_input(name, self._values[name])

    def _run_bound(self) -> None:
        self._session.run_with_iobinding(self._binding)

    def _run_unbound(self, inputs):
        return dict(zip([CLASSES_OUTPUT], self._session.run([CLASSES_OUTPUT], dict(inputs)), strict=True))

    def _runtime_version(self) -> str:
        return self._ort.__version__

    def _runtime_settings(self) -> dict:
        options = self._session.get_provider_options() if self._session is not None else {}
        return {
            "providers": list(self._session.get_providers()) if self._session is not None else self.providers,
            "provider_options": {p: dict(options.get(p, {})) for p in self.providers if p in options},
            "threads": self._threads,
        }

    def operator_profile(self) -> list[OperatorTime]:
        if not self._profiling or self._session is None:
            return []
        self._profiling = False
        path = Path(self._session.end_profiling())
        try:
            events = json.loads(path.read_text())
        finally:
            path.unlink(missing_ok=True)
        totals: dict[str, list] = {}
        for event in events:  # Chrome trace: one "Node" event per kernel run, "dur" in µs
            args = event.get("args", {})
            if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
                continue
            node = str(event["name"])[: -len("_kernel_time")]
            kernel = "/".join(dict.fromkeys(t for d in args.get("input_type_shape", []) for t in d))  # input types
            kernel = f"{kernel or '?'} {str(args.get('provider', '')).removesuffix('ExecutionProvider')}".strip()
            entry = totals.setdefault(node, [args.get("op_name", "?"), kernel, 0.0, 0])
            entry[2] += float(event.get("dur", 0)) / 1e3
            entry[3] += 1
        return [OperatorTime(n, op, prov, round(ms, 4), calls) for n, (op, prov, ms, calls) in totals.items()]

    def close(self) -> None:
        if self._profiling and self._session is not None:
            Path(self._session.end_profiling()).unlink(missing_ok=True)
            self._profiling = False
        self._binding = self._session = None  # type: ignore[assignment]


# ---- OpenVINO -----------------------------------------------------------------------------


def _openvino_available() -> tuple[str, ...]:
    try:
        import openvino as ov
    except ImportError:
        return ()
    try:
        return tuple(ov.Core().available_devices)
    except Exception:  # a broken plugin install: treat as absent
        return ()


def _openvino_devices(spec: Mapping, options: EngineOptions) -> list[str]:
    """The OpenVINO device to use for a target here (one entry), or empty: cannot run."""
    available = _openvino_available()
    if not available:
        return []
    device = (options.openvino_device or spec.get("device") or "CPU").upper()
    if device == "AUTO":
        return ["AUTO"]
    if any(d == device or d.startswith(device + ".") for d in available):
        return [device]
    return []


class OpenVinoEngine(Engine):
    """OpenVINO: one InferRequest; input, references and outputs set once as tensors sharing NumPy memory."""

    runtime = "openvino"

    def __init__(self, folder, manifest, target, *, device: str, options: EngineOptions, frame_hw=None):
        import openvino as ov

        super().__init__(folder, manifest, target, device, frame_hw)
        self.cache_folder = _cache_folder_or_none(options.cache_dir, self.model_path, f"openvino-{device}")
        try:
            config = openvino_config(
                self.precision,
                device,
                hint=options.openvino_precision_hint,
                threads=options.threads,
                cache_dir=str(self.cache_folder) if self.cache_folder else None,
            )
        except ValueError as exc:
            raise EngineError(f"{self.name}: {exc}") from None
        if options.profile:
            config["PERF_COUNT"] = "YES"
        config.update({name: str(value) for name, value in options.openvino_properties})
        #: The configuration the model was compiled with.
        self.properties = dict(config)
        self._profiling = options.profile
        self._ov = ov
        try:
            core = ov.Core()
            model = core.read_model(str(self.model_path))
            if any(port.get_partial_shape().is_dynamic for port in model.inputs):
                _, h, w, c = self.input_shape
                shapes = {self.input_name: [1, h, w, c]}
                if self.variant == "raw":
                    shapes.update({DARK_INPUT: list(self.reference_shape), GAIN_INPUT: list(self.reference_shape)})
                model.reshape(shapes)
            results = model.get_results()
            if not options.confidence and any(
                CONFIDENCE_OUTPUT in r.output(0).get_names() for r in results
            ):  # drop the confidence branch (Softmax + ReduceMax at full frame size) before compiling
                keep = [r for r in results if CONFIDENCE_OUTPUT not in r.output(0).get_names()]
                model = ov.Model(keep, model.get_parameters(), model.friendly_name)
            t0 = time.perf_counter()
            self._compiled = core.compile_model(model, device, config)
            self.load_ms = (time.perf_counter() - t0) * 1e3
        except Exception as exc:
            raise EngineError(
                f"{self.model_path}: OpenVINO cannot compile it for {device} ({_first_line(exc)})"
            ) from None
        names_in = {p.get_any_name() for p in self._compiled.inputs}
        names_out = {p.get_any_name() for p in self._compiled.outputs}
        expected = {self.input_name} | ({DARK_INPUT, GAIN_INPUT} if self.variant == "raw" else set())
        if names_in != expected or CLASSES_OUTPUT not in names_out:
            raise EngineError(
                f"{self.model_path}: graph inputs {sorted(names_in)} / outputs {sorted(names_out)} do not follow the "
                f"contract (inputs {sorted(expected)}, output {CLASSES_OUTPUT!r})"
            )
        self._has_confidence = CONFIDENCE_OUTPUT in names_out
        self.effective_precision = effective_precision("openvino", self._compiled)
        if self.cache_folder is not None:
            self.cache_state = "loaded" if self._property("LOADED_FROM_CACHE") is True else "built"
            log.info(
                "%s: OpenVINO %s %s in %.0f ms (cache %s)",
                target,
                device,
                "imported the compiled model" if self.cache_state == "loaded" else "compiled the model",
                self.load_ms,
                self.cache_folder,
            )
        self._request = self._compiled.create_infer_request()
        self._tensors = {self.input_name: ov.Tensor(self.input_buffer, shared_memory=True)}
        for name, buf in ((CLASSES_OUTPUT, self._classes), (CONFIDENCE_OUTPUT, self._confidence)):
            if name in names_out:
                self._tensors[name] = ov.Tensor(buf, shared_memory=True)
        for name, tensor in self._tensors.items():
            self._request.set_tensor(name, tensor)

    def _bind_references(self, dark: np.ndarray, gain: np.ndarray) -> None:
        self._refs = (dark, gain)
        for name, array in ((DARK_INPUT, dark), (GAIN_INPUT, gain)):
            self._tensors[name] = self._ov.Tensor(array, shared_memory=True)
            self._request.set_tensor(name, self._tensors[name])

    def _run_bound(self) -> None:
        self._request.infer()

    def _run_unbound(self, inputs):
        result = self._compiled(dict(inputs))
        return {port.get_any_name(): np.asarray(value) for port, value in result.items()}

    @property
    def compiled(self):
        """The OpenVINO CompiledModel (e.g. for an AsyncInferQueue)."""
        return self._compiled

    def _property(self, name: str):
        try:
            return self._compiled.get_property(name)
        except Exception:  # a plugin without that property
            return None

    def _runtime_version(self) -> str:
        return self._ov.get_version()

    def _runtime_settings(self) -> dict:
        def text(value):
            return None if value is None else str(value)

        return {
            "threads": self._property("INFERENCE_NUM_THREADS"),
            "performance_hint": text(self._property("PERFORMANCE_HINT")),
            "streams": text(self._property("NUM_STREAMS")),
            "execution_devices": [str(d) for d in (self._property("EXECUTION_DEVICES") or [])],
        }

    def operator_profile(self) -> list[OperatorTime]:
        if not self._profiling or self._request is None:
            return []
        out = []  # OpenVINO's performance counters hold the last inference only: calls = 1
        for info in self._request.profiling_info:
            ms = info.real_time.total_seconds() * 1e3
            if info.status.name == "EXECUTED" or ms > 0:
                out.append(OperatorTime(info.node_name, info.node_type, info.exec_type, round(ms, 4), 1))
        return out

    def close(self) -> None:
        self._request = self._compiled = None  # type: ignore[assignment]


# ---- the registry -------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineKind:
    """One manifest runtime: how to find its usable devices here and how to open it.

    ``devices(target_spec, options)`` lists the providers/devices usable here, best first
    (empty: the runtime cannot run that target here); ``open(folder, manifest, target,
    devices, options, frame_hw)`` loads it.
    """

    runtime: str
    devices: Callable[[Mapping, EngineOptions], list[str]]
    open: Callable[..., Engine]
    installed: Callable[[], tuple[str, ...]] = field(default=lambda: ())


ENGINES: dict[str, EngineKind] = {
    "onnxruntime": EngineKind(
        "onnxruntime",
        lambda spec, o: _ort_providers("onnxruntime", o),
        lambda folder, m, t, devices, o, hw: OrtEngine(folder, m, t, providers=devices, options=o, frame_hw=hw),
        _ort_available,
    ),
    "tensorrt": EngineKind(
        "tensorrt",
        lambda spec, o: _ort_providers("tensorrt", o),
        lambda folder, m, t, devices, o, hw: OrtEngine(folder, m, t, providers=devices, options=o, frame_hw=hw),
        _ort_available,
    ),
    "openvino": EngineKind(
        "openvino",
        _openvino_devices,
        lambda folder, m, t, devices, o, hw: OpenVinoEngine(folder, m, t, device=devices[0], options=o, frame_hw=hw),
        _openvino_available,
    ),
}


def _rank(name: str, spec: Mapping, prefer: Sequence[str]) -> tuple:
    return target_rank(name, spec, tuple(prefer))


def engine_candidates(
    manifest: Mapping, *, prefer: Sequence[str] = (), options: EngineOptions | None = None
) -> list[tuple[str, list[str]]]:
    """(target name, usable providers/devices) of every target runnable here, in the order
    ``open_engine`` tries them. Raises ``EngineError`` listing what the bundle has and what this
    device has when none can run."""
    options = options or EngineOptions()
    targets = manifest["targets"]
    ordered = sorted(targets, key=lambda n: _rank(n, targets[n], prefer))
    out = []
    for name in ordered:
        kind = ENGINES.get(targets[name].get("runtime", ""))
        if kind is None:
            continue
        devices = kind.devices(targets[name], options)
        if devices:
            out.append((name, devices))
    if not out:
        raise EngineError(_nothing_runs(manifest, options))
    return out


def _nothing_runs(manifest: Mapping, options: EngineOptions) -> str:
    has = ", ".join(
        f"{n} ({t.get('runtime')}{', ' + t['device'] if t.get('device') else ''})"
        for n, t in manifest["targets"].items()
    )
    ort = ", ".join(_ort_available()) or "not installed"
    ov = ", ".join(_openvino_available()) or "not installed"
    wanted = f"; OpenVINO device asked for: {options.openvino_device}" if options.openvino_device else ""
    return (
        f"no target of bundle {manifest['name']} {manifest['version']} can run on this device: the bundle has {has}; "
        f"this device has onnxruntime providers: {ort}; openvino devices: {ov}{wanted}"
    )


def open_engine(
    bundle_folder: str | Path,
    manifest: Mapping,
    *,
    prefer: Sequence[str] | None = None,
    threads: int | None = None,
    options: EngineOptions | None = None,
    frame_hw: tuple[int, int] | None = None,
) -> Engine:
    """Load the first runnable target of an extracted bundle (order: module docstring).

    ``prefer``: target or runtime names tried first, in order; ``threads`` overrides
    ``options.threads``; ``frame_hw`` the camera's (H, W) (fills dynamic dimensions and must
    equal static ones). A target that is runnable here but fails to load is skipped for the next
    one; when all fail the error names each failure.
    """
    options = options or EngineOptions()
    if threads is not None:
        options = replace(options, threads=threads)
    failures = []
    for name, devices in engine_candidates(manifest, prefer=tuple(prefer or ()), options=options):
        kind = ENGINES[manifest["targets"][name]["runtime"]]
        try:
            return kind.open(Path(bundle_folder), manifest, name, devices, options, frame_hw)
        except EngineError as exc:
            if "camera delivers" in str(exc) or "dynamic input shape" in str(exc):
                raise
            failures.append(f"{name}: {exc}")
    raise EngineError(f"no target of bundle {manifest['name']} could be loaded: " + "; ".join(failures))
