"""Runtime settings shared by the export accuracy gate and the device's inference engines.

One definition of how a bundle target is compiled and run, so that what the gate measured is
what the daemon runs (``xenoedge.export.export`` gates through ``xenoedge.export.runners``; the daemon runs
``xenoedge.edge.engines``; both take their settings from here). Standard library only at import
time (``openvino_without_outputs`` imports openvino when it drops a result): the device imports
this module, and ``export/`` must not import ``edge/``.

OpenVINO precision (the ``"auto"`` hint, the engines' default): an fp32 target on CPU is
compiled with ``INFERENCE_PRECISION_HINT=f32`` (the CPU plugin would otherwise infer in bf16 on
CPUs with AVX512-BF16/AMX); int8 and fp16 targets keep the plugin's default, which is bf16 for
the float parts on such CPUs and f32 elsewhere. ``effective_precision`` reads back what the
compiled model actually uses; the export records it per target in the manifest
(``targets.<name>.effective_precision``).

Outputs: the graphs have ``classes`` and ``confidence``. Engines ask only for what a consumer
needs (``outputs_needed``): ``confidence`` costs a full-frame Softmax + ReduceMax that the
serial sink never sends; OpenVINO drops that branch from the model before compiling it
(``openvino_without_outputs``, for the engines and the runners alike), ONNX Runtime is given only
``classes`` to fetch (docs/export.md, "Confidence").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

__all__ = [
    "CLASSES_OUTPUT",
    "CONFIDENCE_OUTPUT",
    "DEFAULT_PRECISION_ORDER",
    "DEFAULT_RUNTIME_ORDER",
    "OPENVINO_PRECISION_HINTS",
    "effective_precision",
    "openvino_config",
    "openvino_precision_hint",
    "openvino_without_outputs",
    "ort_thread_settings",
    "outputs_needed",
    "target_rank",
    "tensorrt_provider_options",
]

CLASSES_OUTPUT = "classes"
CONFIDENCE_OUTPUT = "confidence"
#: Runtimes in the order the device tries them when neither ``prefer`` nor a target ``rank`` decides.
DEFAULT_RUNTIME_ORDER = ("tensorrt", "openvino", "onnxruntime")
#: Precisions in the order the device tries them, after ``rank`` and runtime (all passed the gate).
DEFAULT_PRECISION_ORDER = ("int8", "fp16", "fp32")
OPENVINO_PRECISION_HINTS = ("f32", "f16", "bf16")
_OV_TYPE_NAMES = {"float32": "f32", "float16": "f16", "bfloat16": "bf16", "f32": "f32", "f16": "f16", "bf16": "bf16"}


def openvino_precision_hint(precision: str, device: str, hint: str | None = "auto") -> str | None:
    """The ``INFERENCE_PRECISION_HINT`` to compile a target of ``precision`` on ``device`` with.

    ``hint``: ``"auto"`` (f32 for fp32 targets on CPU, else the plugin's default, None), one of
    ``OPENVINO_PRECISION_HINTS`` to force it, or None for the plugin's default.

    >>> openvino_precision_hint("fp32", "CPU"), openvino_precision_hint("int8", "CPU")
    ('f32', None)
    """
    if hint == "auto":
        return "f32" if (precision == "fp32" and device.upper() == "CPU") else None
    if hint is not None and hint not in OPENVINO_PRECISION_HINTS:
        raise ValueError(
            f"OpenVINO precision hint must be 'auto', None or one of {OPENVINO_PRECISION_HINTS}, got {hint!r}"
        )
    return hint


def openvino_config(
    precision: str,
    device: str = "CPU",
    *,
    hint: str | None = "auto",
    threads: int | None = None,
    cache_dir: str | None = None,
) -> dict[str, str]:
    """The ``compile_model`` config for a target: precision hint (see above), thread count and
    OpenVINO's model cache (``CACHE_DIR``: a compiled blob is stored there on the first compile
    and imported on the next, keyed by OpenVINO on the model, device and config).

    >>> openvino_config("fp32", threads=2)
    {'INFERENCE_PRECISION_HINT': 'f32', 'INFERENCE_NUM_THREADS': '2'}
    >>> openvino_config("int8", cache_dir="/var/lib/xenoedge/cache/m-1")
    {'CACHE_DIR': '/var/lib/xenoedge/cache/m-1'}
    """
    config: dict[str, str] = {}
    resolved = openvino_precision_hint(precision, device, hint)
    if resolved is not None:
        config["INFERENCE_PRECISION_HINT"] = resolved
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = str(threads)
    if cache_dir is not None:
        config["CACHE_DIR"] = str(cache_dir)
    return config


def tensorrt_provider_options(precision: str, cache_dir: str | None = None) -> dict[str, str]:
    """ONNX Runtime TensorRT provider options for a TensorRT target of ``precision``.

    No precision flags, for every precision: the exported graphs are explicitly typed (the FP16
    target is an FP16 graph whose calibration stays FP32; the INT8 target carries its Q/DQ
    nodes), and NVIDIA's explicit-quantisation guidance builds such graphs strongly typed, with no
    builder precision flags. ONNX Runtime's TensorRT provider obeys the precision the ONNX file
    gives unless ``trt_fp16_enable``/``trt_int8_enable`` override it (microsoft/onnxruntime#18707),
    and ``trt_fp16_enable`` would let TensorRT run the FP32 calibration arithmetic in FP16.
    ``precision`` is accepted so that callers need not know this. ``cache_dir``: TensorRT engine
    and timing caches there, so that only the first start builds the engine (minutes on a
    Jetson); the caller keys the folder by the model file, so a new bundle never reads an old
    engine.

    >>> tensorrt_provider_options("fp16")
    {}
    >>> sorted(tensorrt_provider_options("int8", "/c"))  # doctest: +NORMALIZE_WHITESPACE
    ['trt_engine_cache_enable', 'trt_engine_cache_path', 'trt_timing_cache_enable', 'trt_timing_cache_path']
    """
    del precision  # the graph's own types decide (see above)
    options: dict[str, str] = {}
    if cache_dir is not None:
        options.update(
            trt_engine_cache_enable="True",
            trt_engine_cache_path=str(cache_dir),
            trt_timing_cache_enable="True",
            trt_timing_cache_path=str(cache_dir),
        )
    return options


def ort_thread_settings(threads: int | None) -> dict[str, int]:
    """``SessionOptions`` attributes for ``threads`` intra-op threads (empty: ONNX Runtime's default)."""
    return {} if threads is None else {"intra_op_num_threads": threads, "inter_op_num_threads": 1}


def outputs_needed(available: set[str] | frozenset[str], confidence: bool) -> list[str]:
    """Graph outputs to compute: ``classes``, plus ``confidence`` only when asked for and present."""
    wanted = [CLASSES_OUTPUT]
    if confidence and CONFIDENCE_OUTPUT in available:
        wanted.append(CONFIDENCE_OUTPUT)
    return wanted


def openvino_without_outputs(model, drop: Collection[str]):
    """``model`` (an ``openvino.Model``) without the results named in ``drop``, to compile.

    A result goes when any of its tensor names is in ``drop``; its branch (for ``confidence``: a
    full-frame Softmax + ReduceMax) is then not compiled. Returns ``model`` itself when no result
    is named; openvino is imported only to build the smaller model.
    """
    results = model.get_results()
    keep = [result for result in results if not set(result.output(0).get_names()) & set(drop)]
    if len(keep) == len(results):
        return model
    import openvino as ov

    return ov.Model(keep, model.get_parameters(), model.friendly_name)


def effective_precision(runtime: str, handle: object) -> str:
    """The precision a loaded model actually runs at, for the manifest and the daemon's status.

    OpenVINO (``handle`` a CompiledModel): its ``INFERENCE_PRECISION_HINT`` property (``f32``,
    ``bf16``, ``f16``); ONNX Runtime (``handle`` an InferenceSession): ``"graph"`` plus the
    provider, as the CPU provider runs each node at the type the graph stores.
    """
    if runtime == "openvino":
        try:
            value = handle.get_property("INFERENCE_PRECISION_HINT")  # type: ignore[attr-defined]
        except Exception:  # a device plugin without the property
            return "unknown"
        name = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
        return _OV_TYPE_NAMES.get(str(name).lower(), str(name))
    providers = handle.get_providers()  # type: ignore[attr-defined]
    return f"graph ({providers[0]})" if providers else "graph"


def target_rank(name: str, spec: Mapping, prefer: tuple[str, ...] = ()) -> tuple:
    """Sort key of a bundle target for the device: ``prefer`` (target or runtime names), then the
    target's measured ``rank`` (written by the export when it measured the targets side by side;
    lower first), then ``DEFAULT_RUNTIME_ORDER`` and ``DEFAULT_PRECISION_ORDER``."""
    runtime, precision = spec.get("runtime", ""), spec.get("precision", "")
    preferred = next((i for i, p in enumerate(prefer) if p in (name, runtime)), len(prefer))
    rank = spec.get("rank")
    measured = rank if isinstance(rank, int) and not isinstance(rank, bool) else 1 << 20
    runtime_rank = DEFAULT_RUNTIME_ORDER.index(runtime) if runtime in DEFAULT_RUNTIME_ORDER else 99
    precision_rank = DEFAULT_PRECISION_ORDER.index(precision) if precision in DEFAULT_PRECISION_ORDER else 99
    return (preferred, measured, runtime_rank, precision_rank, name)
