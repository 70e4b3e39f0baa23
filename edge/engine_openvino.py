"""The OpenVINO engine: one InferRequest, tensors sharing the engine's NumPy memory set once.

The model is compiled without its ``confidence`` result unless ``EngineOptions.confidence``
asks for it (``xenoedge.export.bundle.runtime.openvino_without_outputs``, the one definition
the export's runners use too), with the settings of ``xenoedge.export.bundle.runtime.openvino_config``
and OpenVINO's ``CACHE_DIR`` in ``xenoedge.edge.engine_cache``'s folder. Per-operator times
come from OpenVINO's performance counters.

``openvino`` is imported lazily, inside the functions that need it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

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
    openvino_config,
    openvino_without_outputs,
)

__all__ = ["OpenVinoEngine", "openvino_available", "openvino_devices"]

log = logging.getLogger("xenoedge.engines")


def openvino_available() -> tuple[str, ...]:
    """OpenVINO's devices available here (empty: openvino is not installed or its plugins are broken)."""
    try:
        import openvino as ov
    except ImportError:
        return ()
    try:
        return tuple(ov.Core().available_devices)
    except Exception:  # a broken plugin install: treat as absent
        return ()


def openvino_devices(spec: Mapping, options: EngineOptions) -> list[str]:
    """The OpenVINO device to use for a target here (one entry), or empty: cannot run."""
    available = openvino_available()
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
        self.cache_folder = cache_folder_or_none(options.cache_dir, self.model_path, f"openvino-{device}")
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
            # the confidence branch (Softmax + ReduceMax at full frame size) only when a consumer reads it
            model = openvino_without_outputs(model, () if options.confidence else (CONFIDENCE_OUTPUT,))
            t0 = time.perf_counter()
            self._compiled = core.compile_model(model, device, config)
            self.load_ms = (time.perf_counter() - t0) * 1e3
        except Exception as exc:
            raise EngineError(
                f"{self.model_path}: OpenVINO cannot compile it for {device} ({first_line(exc)})"
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

    def _bind_input(self, array: np.ndarray) -> None:
        self._tensors[self.input_name] = self._ov.Tensor(array, shared_memory=True)
        self._request.set_tensor(self.input_name, self._tensors[self.input_name])

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
