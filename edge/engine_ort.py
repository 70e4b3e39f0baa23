"""The ONNX Runtime engine (runtimes ``onnxruntime`` and ``tensorrt``): IOBinding on NumPy memory.

Input, references and outputs are bound once as OrtValues sharing the engine's NumPy buffers
(``xenoedge.edge.engine_base``). The ``confidence`` output is fetched only when
``EngineOptions.confidence`` asks for it, and the target's ``model_classes_only`` file is
loaded instead when the bundle has one (ONNX Runtime still runs a branch whose output is not
fetched). TensorRT keeps its engine and timing caches in ``xenoedge.edge.engine_cache``'s
folder. Per-operator times come from ONNX Runtime's profiler.

``onnxruntime`` is imported lazily, inside the functions that need it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from xenoedge.edge.engine_base import (
    DARK_INPUT,
    GAIN_INPUT,
    Engine,
    EngineError,
    EngineOptions,
    OperatorTime,
    first_line,
)
from xenoedge.edge.engine_cache import cache_folder_or_none
from xenoedge.export.bundle.runtime import (
    CLASSES_OUTPUT,
    CONFIDENCE_OUTPUT,
    effective_precision,
    ort_thread_settings,
    tensorrt_provider_options,
)

__all__ = ["OrtEngine", "ort_available", "ort_providers"]

log = logging.getLogger("xenoedge.engines")


def ort_available() -> tuple[str, ...]:
    """ONNX Runtime's execution providers available here (empty: onnxruntime is not installed)."""
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


def ort_providers(runtime: str, options: EngineOptions) -> list[str]:
    """Providers to use for a target of ``runtime`` here, best first; empty: cannot run."""
    available = set(ort_available())
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
            self.cache_folder = cache_folder_or_none(options.cache_dir, self.model_path, "tensorrt")
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
            raise EngineError(f"{self.model_path}: ONNX Runtime cannot load it ({first_line(exc)})") from None
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

    def _bind_input(self, array: np.ndarray) -> None:
        self._values[self.input_name] = self._ort.OrtValue.ortvalue_from_numpy(array)  # shares array's memory
        self._binding.bind_ortvalue_input(self.input_name, self._values[self.input_name])

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
