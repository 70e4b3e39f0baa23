"""Small inference runners for exported graphs: ONNX Runtime and OpenVINO.

The accuracy gate runs every artifact through one of these; the device's inference engines
(``edge/``) reuse or mirror them. They import ``onnxruntime`` / ``openvino`` lazily, inside
the constructor, and never import torch, onnx or nncf.

Both runners speak the export graph contract (see ``export/onnx_export.py``):

- inputs by name: ``raw`` (1, H, W, C) uint16, ``dark`` (H, W, C) float32, ``gain`` (H, W, C)
  float32 for the raw variant; ``reflectance`` (1, H, W, C) float32 for the reflectance variant;
- outputs by name: ``classes`` (1, H, W) uint8 and optionally ``confidence`` (1, H, W) float32.

``predict`` returns the (H, W) uint8 class map. A graph without a ``classes`` output (a bare
model that returns ``logits`` (1, K, H, W)) is also accepted: ``predict`` takes the arg-max
over K, so the runners can compare plain model exports too.

OpenVINO precision: on CPUs with AVX512-BF16/AMX the CPU plugin *infers in bf16 by default*,
even for an FP32 IR. ``OpenVinoRunner(precision_hint="f32")`` (the default) sets
``INFERENCE_PRECISION_HINT=f32`` so that an FP32 artifact is measured as FP32; pass
``"f16"`` or ``None`` (the plugin's default) to measure what the device would do. The export
gate uses the device engines' own choice (``xenoedge.export.bundle.runtime.openvino_precision_hint``:
f32 for fp32 targets, the plugin default for int8/fp16). ``runner.effective_precision`` says
what the compiled model actually runs at (``xenoedge.export.bundle.runtime.effective_precision``).

``outputs``: the graph outputs to compute (None: all). ``("classes",)`` is what the daemon
computes when no consumer asks for ``confidence``: OpenVINO drops the other results before
compiling (``xenoedge.export.bundle.runtime.openvino_without_outputs``, as the engines do); ONNX
Runtime fetches only those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from xenoedge.export.errors import ExportError

__all__ = ["OpenVinoRunner", "OrtRunner", "classes_from_outputs"]

#: Output names of the export graph contract.
CLASSES_OUTPUT = "classes"
LOGITS_OUTPUT = "logits"

_PRECISION_HINTS = ("f32", "f16", "bf16")


def classes_from_outputs(outputs: Mapping[str, np.ndarray], *, source: object = "graph") -> np.ndarray:
    """The (H, W) uint8 class map from a graph's outputs.

    Takes ``classes`` (1, H, W) (or (H, W)) when present, otherwise the arg-max over axis 1 of
    a single (1, K, H, W) ``logits``-like output.

    >>> classes_from_outputs({"classes": np.zeros((1, 2, 3), np.uint8)}).shape
    (2, 3)
    >>> classes_from_outputs({"logits": np.array([[[[0.0]], [[1.0]]]])})
    array([[1]], dtype=uint8)
    """
    if CLASSES_OUTPUT in outputs:
        classes = np.asarray(outputs[CLASSES_OUTPUT])
        if classes.ndim == 3 and classes.shape[0] == 1:
            classes = classes[0]
        if classes.ndim != 2:
            raise ExportError(f"{source}: output 'classes' has shape {classes.shape}, expected (1, H, W)")
        return classes.astype(np.uint8, copy=False)
    four_d = [name for name, value in outputs.items() if np.ndim(value) == 4]
    if len(four_d) != 1:
        raise ExportError(
            f"{source}: no 'classes' output and not exactly one (1, K, H, W) output to take the arg-max of "
            f"(outputs: {', '.join(outputs) or 'none'})"
        )
    logits = np.asarray(outputs[four_d[0]])
    if logits.shape[0] != 1:
        raise ExportError(f"{source}: output {four_d[0]!r} has batch {logits.shape[0]}, expected 1")
    return logits[0].argmax(axis=0).astype(np.uint8)


def _check_inputs(inputs: Mapping[str, np.ndarray], expected: Sequence[str], source: object) -> None:
    missing = [name for name in expected if name not in inputs]
    extra = [name for name in inputs if name not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected {', '.join(extra)}")
        raise ExportError(
            f"{source}: inputs do not match the graph ({'; '.join(parts)}; graph takes {', '.join(expected)})"
        )


def _select_outputs(names: list[str], wanted: Sequence[str] | None, source: object) -> list[str]:
    if wanted is None:
        return names
    missing = [name for name in wanted if name not in names]
    if missing:
        raise ExportError(f"{source}: no output {', '.join(missing)} (outputs: {', '.join(names)})")
    return [name for name in names if name in wanted]


def _check_threads(threads: int | None) -> None:
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ExportError(f"threads must be a positive int or None, got {threads!r}")


class OrtRunner:
    """Run an ONNX file with ONNX Runtime.

    ``providers``: ONNX Runtime execution providers in order of preference;
    ``threads``: intra-op threads (None: ONNX Runtime's default, one per core).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int | None = None,
        outputs: Sequence[str] | None = None,
    ):
        import onnxruntime as ort
        from xenoedge.export.bundle.runtime import effective_precision, ort_thread_settings

        _check_threads(threads)
        self.path = Path(path)
        if not self.path.is_file():
            raise ExportError(f"{self.path}: no such ONNX file")
        options = ort.SessionOptions()
        for key, value in ort_thread_settings(threads).items():
            setattr(options, key, value)
        try:
            self._session = ort.InferenceSession(str(self.path), sess_options=options, providers=list(providers))
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise ExportError(f"{self.path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from None
        self.input_names: list[str] = [i.name for i in self._session.get_inputs()]
        self.output_names: list[str] = _select_outputs(
            [o.name for o in self._session.get_outputs()], outputs, self.path
        )
        self.effective_precision = effective_precision("onnxruntime", self._session)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The outputs by name for ``inputs`` (name -> array, dtypes and shapes as the graph declares)."""
        _check_inputs(inputs, self.input_names, self.path)
        try:
            values = self._session.run(self.output_names, {name: np.asarray(v) for name, v in inputs.items()})
        except Exception as exc:
            raise ExportError(f"{self.path}: ONNX Runtime failed ({str(exc).splitlines()[0]})") from None
        return dict(zip(self.output_names, values, strict=True))

    def predict(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """(H, W) uint8 class ids for ``inputs``."""
        return classes_from_outputs(self.run(inputs), source=self.path)


class OpenVinoRunner:
    """Compile an OpenVINO IR (``.xml`` beside its ``.bin``; an ``.onnx`` also works) and run it.

    ``precision_hint``: ``"f32"`` (default; see the module note on bf16), ``"f16"``, ``"bf16"``
    or None to leave the plugin's default; ``threads``: ``INFERENCE_NUM_THREADS`` (None: default).
    """

    def __init__(
        self,
        xml_path: str | Path,
        *,
        device: str = "CPU",
        precision_hint: str | None = "f32",
        threads: int | None = None,
        outputs: Sequence[str] | None = None,
    ):
        import openvino as ov
        from xenoedge.export.bundle.runtime import effective_precision, openvino_without_outputs

        _check_threads(threads)
        if precision_hint is not None and precision_hint not in _PRECISION_HINTS:
            raise ExportError(
                f"precision_hint must be one of {', '.join(_PRECISION_HINTS)} or None, got {precision_hint!r}"
            )
        self.path = Path(xml_path)
        if not self.path.is_file():
            raise ExportError(f"{self.path}: no such OpenVINO IR / ONNX file")
        config: dict[str, str] = {}
        if precision_hint is not None:
            config["INFERENCE_PRECISION_HINT"] = precision_hint
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = str(threads)
        self.device = device
        self.precision_hint = precision_hint
        try:
            core = ov.Core()
            model = core.read_model(str(self.path))
            names = [result.output(0).get_any_name() for result in model.get_results()]
            keep = _select_outputs(names, outputs, self.path)
            model = openvino_without_outputs(model, [name for name in names if name not in keep])
            self._compiled = core.compile_model(model, device, config)
        except ExportError:
            raise
        except Exception as exc:  # OpenVINO raises RuntimeError with long multi-line messages
            raise ExportError(
                f"{self.path}: OpenVINO cannot compile it for {device} ({str(exc).strip().splitlines()[0]})"
            ) from None
        self.input_names: list[str] = [port.get_any_name() for port in self._compiled.inputs]
        self.output_names: list[str] = [port.get_any_name() for port in self._compiled.outputs]
        self.effective_precision = effective_precision("openvino", self._compiled)
        self._request = self._compiled.create_infer_request()

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """All outputs by name for ``inputs`` (name -> array); outputs are copies, safe to keep."""
        _check_inputs(inputs, self.input_names, self.path)
        try:
            result = self._request.infer({name: np.asarray(v) for name, v in inputs.items()})
        except Exception as exc:
            raise ExportError(f"{self.path}: OpenVINO inference failed ({str(exc).strip().splitlines()[0]})") from None
        return {port.get_any_name(): np.array(value) for port, value in result.items()}

    def predict(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """(H, W) uint8 class ids for ``inputs``."""
        return classes_from_outputs(self.run(inputs), source=self.path)
