"""Target profiles as data: one table, :data:`TARGETS`, read by export, ``edge-bench`` and the docs.

A target is a kind of device (``cpu``, ``jetson-orin``, ``intel-npu``). Its row says which
runtimes run there, which precisions are allowed, which artifacts export must produce for a
precision (kind, file names), whether input shapes must be static, which ONNX ops and graph
input/output dtypes the runtime accepts, whether INT8 must be symmetric, and how an engine is
built on the device. Everything else here only reads the table:

- :func:`get_target` — a row by name (:class:`UnknownNameError` lists the targets);
- :func:`check_model_for_target` — refuses an ONNX graph that breaks a row's constraints,
  naming every violation at once;
- :func:`artifacts_for` — what export must write for (target, precision);
- :func:`targets_markdown` — the table in ``docs/targets.md``;
- :func:`trtexec_command`, :func:`trt_engine_cache_path` — the Jetson engine build.

``onnx`` is imported only inside :func:`check_model_for_target`.

Why one file (~650 lines): about 200 lines are the table itself; the rest are the checks that read
it, each short, and they belong beside the rows they interpret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from xenoedge.export.errors import ExportError, UnknownNameError

__all__ = [
    "PRECISIONS",
    "TARGETS",
    "TENSORRT_OPS",
    "ArtifactRule",
    "ArtifactSpec",
    "Target",
    "artifacts_for",
    "check_artifact_for_target",
    "check_ir_for_target",
    "check_model_for_target",
    "get_target",
    "lint_onnx",
    "refuse_dynamic_for_target",
    "targets_markdown",
    "trt_engine_cache_path",
    "trt_timing_cache_path",
    "trtexec_command",
]

#: Every precision an artifact may have, in order of falling accuracy.
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class ArtifactRule:
    """One kind of artifact a target carries, for the precisions in ``precisions``.

    ``files``: name templates inside the target's folder of the bundle; ``{graph}`` becomes
    the precision stored in the file (``graph_precision[precision]``, default the precision
    itself). TensorRT FP16 ships an FP16-typed graph (the calibration arithmetic kept FP32) and
    builds a strongly typed engine from it.
    """

    kind: str  # "onnx" | "openvino"
    runtime: str  # "onnxruntime" | "openvino" | "tensorrt"
    precisions: tuple[str, ...]
    files: tuple[str, ...]
    graph_precision: Mapping[str, str] | None = None

    def graph_for(self, precision: str) -> str:
        return (self.graph_precision or {}).get(precision, precision)


@dataclass(frozen=True)
class ArtifactSpec:
    """What export must produce for one artifact of (target, precision).

    ``files`` are relative to the target's folder in the bundle (the first is the one a
    runtime opens); ``graph_precision`` is the number format inside the file (``"int8"`` =
    QDQ ONNX or NNCF-quantised IR); ``build_command`` is the on-device engine build, if any.
    """

    target: str
    kind: str
    runtime: str
    precision: str
    graph_precision: str
    files: tuple[str, ...]
    build_command: str | None = None


@dataclass(frozen=True)
class Target:
    """One row of :data:`TARGETS`."""

    name: str
    description: str
    runtimes: tuple[str, ...]
    precisions: tuple[str, ...]
    default_precision: str
    artifacts: tuple[ArtifactRule, ...]
    requires_static_shapes: bool
    allowed_ops: frozenset[str] | None  # None: any op the runtime loads
    allowed_io_dtypes: frozenset[str] | None  # ONNX element type names of graph inputs/outputs; None: any
    symmetric_int8: bool  # INT8 QDQ zero points must be 0 (and signed int8)
    build_command: str | None  # template; see trtexec_command
    engine_cache: str | None  # template; see trt_engine_cache_path
    notes: str
    #: ONNX Runtime execution providers the device opens the target's ONNX artifacts with, in order.
    ort_providers: tuple[str, ...] = ("CPUExecutionProvider",)
    #: OpenVINO device name the target's IR is compiled for.
    openvino_device: str = "CPU"
    #: NNCF ``TargetDevice`` member name for OpenVINO INT8 (``quantize_ir_int8(target_device=...)``).
    nncf_target_device: str = "ANY"
    #: INT8 QDQ placement for ONNX artifacts (``xenoedge.export.quantize.PLACEMENTS``).
    int8_placement: str = "onnxruntime"
    timing_cache: str | None = None  # template; see trt_timing_cache_path


#: ONNX ops TensorRT 10's ONNX parser takes (onnx-tensorrt ``docs/operators.md``, the table ONNX
#: Runtime's TensorRT execution provider defers to) that xenoedge graphs use or may plausibly use:
#: model layers, folded preprocessing, QDQ and bookkeeping. This list is the check where TensorRT
#: itself is not installed (the exporting host); where it is, ``check_model_for_target`` asks
#: TensorRT's own parser through polygraphy (``polygraphy inspect capability``) instead.
# fmt: off
TENSORRT_OPS = frozenset(
    {
        # model layers
        "Conv", "ConvTranspose", "BatchNormalization", "InstanceNormalization", "LayerNormalization",
        "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Softplus", "Erf",
        "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Exp", "Log", "Abs", "Neg",
        "Max", "Min", "Sum", "Mean", "MatMul", "Gemm",
        "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Resize", "Pad",
        "Concat", "Split", "Slice", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
        "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2",
        "Softmax", "ArgMax", "ArgMin", "TopK",
        # folded preprocessing
        "Cast", "Clip", "Where", "Equal", "Greater", "Less", "Not", "And", "Or",
        # quantisation and bookkeeping
        "QuantizeLinear", "DequantizeLinear", "Constant", "Identity", "Dropout", "Shape", "Gather",
        "Expand", "ConstantOfShape",
    }
)
# fmt: on

#: Graph input/output element types TensorRT 10 accepts (UINT8 only at inputs/outputs; no UINT16).
TENSORRT_IO_DTYPES = frozenset({"FLOAT", "FLOAT16", "BFLOAT16", "INT32", "INT64", "INT8", "UINT8", "BOOL"})

#: ONNX Runtime providers on a Jetson: TensorRT first, CUDA for what TensorRT does not take, CPU last.
JETSON_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target(
            name="cpu",
            description="x86-64 or ARM CPU: ONNX Runtime and OpenVINO",
            runtimes=("onnxruntime", "openvino"),
            precisions=("fp32", "fp16", "int8"),
            default_precision="int8",
            artifacts=(
                ArtifactRule("onnx", "onnxruntime", ("fp32", "int8"), ("model.{graph}.onnx",)),
                ArtifactRule(
                    "openvino", "openvino", ("fp32", "fp16", "int8"), ("model.{graph}.xml", "model.{graph}.bin")
                ),
            ),
            requires_static_shapes=False,
            allowed_ops=None,
            allowed_io_dtypes=None,
            symmetric_int8=False,
            build_command=None,
            engine_cache=None,
            notes=(
                "FP16 exists only as OpenVINO IR (ONNX Runtime's CPU provider has few FP16 kernels). "
                "OpenVINO's CPU plugin infers in bf16 on CPUs with AVX512-BF16/AMX unless "
                "INFERENCE_PRECISION_HINT=f32 is set; FP32 artifacts are measured and run with it."
            ),
        ),
        Target(
            name="jetson-orin",
            description="NVIDIA Jetson Orin: TensorRT engine built on the device from a QDQ ONNX",
            runtimes=("tensorrt",),
            precisions=("fp32", "fp16", "int8"),
            default_precision="int8",
            artifacts=(
                ArtifactRule(
                    "onnx",
                    "tensorrt",
                    ("fp32", "fp16", "int8"),
                    ("model.{graph}.onnx",),
                ),
            ),
            requires_static_shapes=True,
            allowed_ops=TENSORRT_OPS,
            allowed_io_dtypes=TENSORRT_IO_DTYPES,
            symmetric_int8=True,
            build_command=(
                "trtexec --onnx={onnx} --saveEngine={engine} --timingCacheFile={timing_cache} --stronglyTyped"
            ),
            engine_cache="cache/{trt_version}-{gpu}/{model_sha256_16}.{precision}.engine",
            timing_cache="cache/{trt_version}-{gpu}/timing.cache",
            notes=(
                "Engines are built on the device, never shipped: an engine is valid only for the TensorRT "
                "version and GPU it was built with. The network is strongly typed (--stronglyTyped, no "
                "--int8/--fp16 flags): the types written in the graph are the types TensorRT runs. INT8 is "
                "explicit quantisation: symmetric signed INT8 Q/DQ on the inputs of the weighted layers only "
                "(Conv, ConvTranspose, MatMul, Gemm), 8-bit per-channel weights, float biases. FP16 ships an "
                "FP16-typed graph whose calibration arithmetic (reflectance clip, L1 normalisation) stays "
                "FP32. TensorRT takes no UINT16 tensors: raw camera counts must be bound as another type "
                "(e.g. the reflectance or an int32/float raw input)."
            ),
            ort_providers=JETSON_PROVIDERS,
            int8_placement="tensorrt",
        ),
        Target(
            name="intel-npu",
            description="Intel Core Ultra NPU: OpenVINO IR, static shapes",
            runtimes=("openvino",),
            precisions=("fp16", "int8"),
            default_precision="int8",
            artifacts=(
                ArtifactRule("openvino", "openvino", ("fp16", "int8"), ("model.{graph}.xml", "model.{graph}.bin")),
            ),
            requires_static_shapes=True,
            allowed_ops=None,
            allowed_io_dtypes=None,
            symmetric_int8=False,
            build_command=None,
            engine_cache=None,
            notes=(
                "The NPU compiles only static shapes and computes in FP16/INT8 (no FP32): export refuses "
                "--dynamic before any work. INT8 comes from NNCF (target_device NPU). The NPU plugin "
                "compiles the IR at load; OpenVINO's model cache (CACHE_DIR) keeps the compiled blob on the "
                "device."
            ),
            openvino_device="NPU",
            nncf_target_device="NPU",
        ),
    )
}


def get_target(name: str) -> Target:
    """The row of :data:`TARGETS` called ``name``.

    >>> get_target("intel-npu").requires_static_shapes
    True
    """
    try:
        return TARGETS[name]
    except KeyError:
        raise UnknownNameError("target", name, list(TARGETS)) from None


def _as_target(target: str | Target) -> Target:
    return target if isinstance(target, Target) else get_target(target)


def _check_precision(target: Target, precision: str) -> str | None:
    if precision in target.precisions:
        return None
    known = "" if precision in PRECISIONS else f" (precisions are {', '.join(PRECISIONS)})"
    return f"precision {precision!r} is not allowed on {target.name} (allowed: {', '.join(target.precisions)}){known}"


def artifacts_for(target: str | Target, precision: str) -> list[ArtifactSpec]:
    """The artifacts export must produce for ``target`` at ``precision``.

    >>> [(a.kind, a.files) for a in artifacts_for("cpu", "int8")]
    [('onnx', ('model.int8.onnx',)), ('openvino', ('model.int8.xml', 'model.int8.bin'))]
    >>> artifacts_for("jetson-orin", "fp16")[0].files
    ('model.fp16.onnx',)
    """
    row = _as_target(target)
    problem = _check_precision(row, precision)
    if problem:
        raise ExportError(problem)
    out = []
    for rule in row.artifacts:
        if precision not in rule.precisions:
            continue
        graph = rule.graph_for(precision)
        files = tuple(template.format(graph=graph) for template in rule.files)
        command = None
        if row.build_command:
            command = trtexec_command(
                files[0], "<engine cache path>", precision, timing_cache="<timing cache path>", target=row
            )
        out.append(ArtifactSpec(row.name, rule.kind, rule.runtime, precision, graph, files, command))
    return out


def trtexec_command(
    onnx: str | Path,
    engine: str | Path,
    precision: str,
    *,
    timing_cache: str | Path = "<timing cache path>",
    target: str | Target = "jetson-orin",
) -> str:
    """The documented on-device engine build for a TensorRT target.

    NVIDIA's guidance for explicitly quantised (Q/DQ) networks: build them strongly typed, with no
    precision flags: every tensor runs in the type the graph gives it (INT8 where the Q/DQ nodes
    say so, FP16 where the FP16 graph is FP16, FP32 for the calibration arithmetic). The same
    command serves every precision; the graph decides. ``--timingCacheFile`` keeps the tactic
    timings, so a rebuild (a new bundle, same TensorRT and GPU) takes a fraction of the first.

    >>> trtexec_command("model.int8.onnx", "x.int8.engine", "int8", timing_cache="timing.cache")
    'trtexec --onnx=model.int8.onnx --saveEngine=x.int8.engine --timingCacheFile=timing.cache --stronglyTyped'
    """
    row = _as_target(target)
    if row.build_command is None:
        raise ExportError(f"target {row.name} builds no engine on the device")
    problem = _check_precision(row, precision)
    if problem:
        raise ExportError(problem)
    return row.build_command.format(onnx=onnx, engine=engine, timing_cache=timing_cache)


def trt_engine_cache_path(
    trt_version: str, gpu: str, model_sha256: str, precision: str, *, target: str | Target = "jetson-orin"
) -> str:
    """Cache path of a built engine: keyed by TensorRT version, GPU, model hash and precision.

    A different TensorRT version, GPU or ONNX file (its SHA-256, first 16 hex digits) means
    another path, so a stale engine is never loaded. Unsafe characters become ``_``.

    >>> trt_engine_cache_path("10.3.0", "Orin (nvgpu)", "ab" * 32, "int8")
    'cache/10.3.0-Orin__nvgpu_/abababababababab.int8.engine'
    """
    import re

    row = _as_target(target)
    if row.engine_cache is None:
        raise ExportError(f"target {row.name} caches no engines")
    digest = model_sha256.lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ExportError(f"model_sha256 must be 64 hex digits, got {model_sha256!r}")
    problem = _check_precision(row, precision)
    if problem:
        raise ExportError(problem)

    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]", "_", text.strip()) or "unknown"

    return row.engine_cache.format(
        trt_version=safe(trt_version), gpu=safe(gpu), model_sha256_16=digest[:16], precision=precision
    )


def _safe_key(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]", "_", text.strip()) or "unknown"


def trt_timing_cache_path(trt_version: str, gpu: str, *, target: str | Target = "jetson-orin") -> str:
    """TensorRT timing cache of the device: one per TensorRT version and GPU, shared by every model.

    >>> trt_timing_cache_path("10.3.0", "Orin (nvgpu)")
    'cache/10.3.0-Orin__nvgpu_/timing.cache'
    """
    row = _as_target(target)
    if row.timing_cache is None:
        raise ExportError(f"target {row.name} keeps no TensorRT timing cache")
    return row.timing_cache.format(trt_version=_safe_key(trt_version), gpu=_safe_key(gpu))


# --- checks ----------------------------------------------------------------------------------


def _dim_text(dim) -> str:
    if dim.HasField("dim_value") and dim.dim_value > 0:
        return str(dim.dim_value)
    return dim.dim_param or "?"


def _dynamic_inputs(graph) -> list[str]:
    """'name (1, H, W, 100)' for every graph input with a symbolic or unknown dimension."""
    initializers = {init.name for init in graph.initializer}
    out = []
    for value in graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        if not value.type.tensor_type.HasField("shape") or any(
            not (d.HasField("dim_value") and d.dim_value > 0) for d in dims
        ):
            shape = ", ".join(_dim_text(d) for d in dims) if value.type.tensor_type.HasField("shape") else "unknown"
            out.append(f"{value.name} ({shape})")
    return out


def _all_nodes(graph):
    """Nodes of ``graph`` and of every subgraph (If/Loop bodies)."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from _all_nodes(attribute.g)
            for sub in attribute.graphs:
                yield from _all_nodes(sub)


def _asymmetric_qdq(model) -> list[str]:
    """Q/DQ nodes whose zero point is non-zero or not signed INT8."""
    from onnx import TensorProto, numpy_helper

    constants = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output:
            for attribute in node.attribute:
                if attribute.name == "value":
                    constants[node.output[0]] = attribute.t
    problems = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if len(node.input) < 3 or not node.input[2]:
            problems.append(f"{node.name or node.op_type} (no zero point: defaults to UINT8)")
            continue
        zero_point = constants.get(node.input[2])
        if zero_point is None:
            problems.append(f"{node.name or node.op_type} (zero point {node.input[2]!r} is not a constant)")
            continue
        if zero_point.data_type != TensorProto.INT8:
            type_name = TensorProto.DataType.Name(zero_point.data_type)
            problems.append(f"{node.name or node.op_type} (zero point type {type_name}, not INT8)")
            continue
        values = numpy_helper.to_array(zero_point)
        if values.any():
            problems.append(f"{node.name or node.op_type} (zero point {values.ravel()[:4].tolist()} != 0)")
    return problems


def _io_dtype_problems(graph, allowed: frozenset[str]) -> list[str]:
    from onnx import TensorProto

    initializers = {init.name for init in graph.initializer}
    out = []
    for kind, values in (("input", graph.input), ("output", graph.output)):
        for value in values:
            if value.name in initializers:
                continue
            name = TensorProto.DataType.Name(value.type.tensor_type.elem_type)
            if name not in allowed:
                out.append(f"{kind} {value.name!r} is {name}")
    return out


def _tensorrt_parser_problems(path: Path) -> list[str] | None:
    """TensorRT's own ONNX parser on ``path``, through polygraphy (``polygraphy inspect capability``'s
    whole-graph parse): its errors ([] when it parses), or None where TensorRT or polygraphy is
    not installed or cannot start (no GPU driver): the caller falls back to ``TENSORRT_OPS``."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None or importlib.util.find_spec("polygraphy") is None:
        return None
    try:
        from polygraphy.tools.inspect.subtool.capability import parse

        parsed, parser = parse(str(path))
    except Exception:  # no CUDA driver, an old TensorRT without the API ...: use the list
        return None
    if parsed:
        return []
    out = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        out.append(f"{error.node_name() or error.node()}: {error.desc()}")
    return out or ["no reason given"]


def lint_onnx(path: str | Path, *, timeout: float = 600) -> dict | None:
    """``polygraphy check lint`` on an ONNX graph: ONNX's checker plus ONNX Runtime node by node.

    Returns polygraphy's JSON report (``summary``: passing / failing nodes; ``lint_entries``), or
    None where polygraphy (with onnx-graphsurgeon, which lint needs) is not installed. Raises
    :class:`ExportError` naming the failing nodes when the graph does not pass.
    """
    import importlib.util
    import json
    import shutil
    import subprocess
    import sys
    import tempfile

    if importlib.util.find_spec("polygraphy") is None or importlib.util.find_spec("onnx_graphsurgeon") is None:
        return None
    tool = Path(sys.executable).with_name("polygraphy")
    command = str(tool) if tool.is_file() else shutil.which("polygraphy")
    if command is None:
        return None
    with tempfile.TemporaryDirectory(prefix="xenoedge-lint-") as tmp:
        report_path = Path(tmp) / "lint.json"
        result = subprocess.run(
            [command, "check", "lint", str(path), "-o", str(report_path), "--silent"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    if result.returncode != 0:
        failing = report.get("summary", {}).get("failing") or []
        entries = [str(entry.get("message", "")) for entry in report.get("lint_entries", [])][:3]
        detail = (
            "; ".join(e.strip().splitlines()[0] for e in entries if e.strip())
            or ((result.stderr or result.stdout).strip().splitlines() or ["no output"])[-1]
        )
        raise ExportError(
            f"{path}: polygraphy check lint failed (failing nodes: {', '.join(failing) or 'none named'}): {detail}"
        )
    return report


def check_model_for_target(onnx_path: str | Path, target: str | Target, precision: str) -> None:
    """Raise :class:`ExportError` naming every constraint of ``target`` that the ONNX graph breaks.

    Checks, as the row asks: the precision is allowed; graph inputs have static shapes; every
    op (subgraphs included) is in the allowed set (listed by name); graph input/output dtypes
    are accepted; for INT8 on a symmetric-INT8 target, the graph holds QDQ nodes and all their
    zero points are INT8 zeros.
    """
    import onnx

    row = _as_target(target)
    path = Path(onnx_path)
    if not path.is_file():
        raise ExportError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError/ValueError/... on a corrupt file
        raise ExportError(
            f"{path}: not a readable ONNX model ({str(exc).splitlines()[0] if str(exc) else exc})"
        ) from None

    problems = []
    precision_problem = _check_precision(row, precision)
    if precision_problem:
        problems.append(precision_problem)
    if row.requires_static_shapes:
        dynamic = _dynamic_inputs(model.graph)
        if dynamic:
            problems.append(f"{row.name} needs static input shapes; dynamic: {', '.join(dynamic)}")
    parser_problems = _tensorrt_parser_problems(path) if "tensorrt" in row.runtimes else None
    if parser_problems:
        problems.append(f"TensorRT's ONNX parser refuses the graph: {'; '.join(parser_problems)}")
    if row.allowed_ops is not None and parser_problems is None:  # no TensorRT here: the operator list
        ops = {
            node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
            for node in _all_nodes(model.graph)
        }
        outside = sorted(ops - row.allowed_ops)
        if outside:
            problems.append(f"ops not supported on {row.name}: {', '.join(outside)}")
    if row.allowed_io_dtypes is not None:
        bad = _io_dtype_problems(model.graph, row.allowed_io_dtypes)
        if bad:
            problems.append(f"tensor types not supported on {row.name}: {', '.join(bad)}")
    if precision == "int8" and row.symmetric_int8:
        has_qdq = any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in model.graph.node)
        if not has_qdq:
            problems.append(f"int8 on {row.name} needs a QDQ graph (no QuantizeLinear/DequantizeLinear nodes)")
        else:
            asymmetric = _asymmetric_qdq(model)
            if asymmetric:
                shown = ", ".join(asymmetric[:5]) + (f" and {len(asymmetric) - 5} more" if len(asymmetric) > 5 else "")
                problems.append(f"{row.name} needs symmetric signed INT8 QDQ; asymmetric: {shown}")
    if problems:
        raise ExportError(f"{path}: cannot target {row.name} at {precision}:\n  - " + "\n  - ".join(problems))


def refuse_dynamic_for_target(target: str | Target, *, dynamic: bool, inputs: Sequence[str]) -> None:
    """Refuse ``dynamic`` shapes for a target that needs static ones, before any work is done.

    ``inputs``: the graph inputs whose H and W ``--dynamic`` would leave open (``raw`` or
    ``reflectance``). The same rule is checked again on every artifact written
    (:func:`check_artifact_for_target`), ONNX and OpenVINO IR alike.

    >>> refuse_dynamic_for_target("cpu", dynamic=True, inputs=["raw"])
    >>> refuse_dynamic_for_target("intel-npu", dynamic=True, inputs=["raw"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xenoedge.export.errors.ExportError: target intel-npu needs static input shapes, ... open; ...
    """
    row = _as_target(target)
    if not (dynamic and row.requires_static_shapes):
        return
    named = ", ".join(f"{name!r} (1, height, width, C)" for name in inputs)
    plural = "s" * (len(inputs) > 1)
    raise ExportError(
        f"target {row.name} needs static input shapes, but --dynamic would leave H and W of input{plural} "
        f"{named} open; export without --dynamic at the device's frame size (--shape HxW)"
    )


def check_ir_for_target(xml_path: str | Path, target: str | Target, precision: str) -> None:
    """Raise :class:`ExportError` naming every constraint of ``target`` an OpenVINO IR breaks.

    Checks the precision and, for targets that need them, static input shapes (every input of
    the IR, read back with OpenVINO, ``PartialShape.is_static``).
    """
    import openvino as ov

    row = _as_target(target)
    path = Path(xml_path)
    if not path.is_file():
        raise ExportError(f"{path}: no such OpenVINO IR")
    try:
        model = ov.Core().read_model(str(path))
    except Exception as exc:  # OpenVINO raises RuntimeError with long messages
        raise ExportError(f"{path}: not a readable OpenVINO IR ({str(exc).strip().splitlines()[0]})") from None
    problems = []
    precision_problem = _check_precision(row, precision)
    if precision_problem:
        problems.append(precision_problem)
    if row.requires_static_shapes:
        dynamic = [
            f"{port.get_any_name()} ({', '.join(str(d) if d.is_static else '?' for d in port.get_partial_shape())})"
            for port in model.inputs
            if not port.get_partial_shape().is_static
        ]
        if dynamic:
            problems.append(f"{row.name} needs static input shapes; dynamic: {', '.join(dynamic)}")
    if problems:
        raise ExportError(f"{path}: cannot target {row.name} at {precision}:\n  - " + "\n  - ".join(problems))


def check_artifact_for_target(path: str | Path, target: str | Target, precision: str) -> None:
    """:func:`check_model_for_target` for ``.onnx`` files, :func:`check_ir_for_target` for ``.xml`` IRs."""
    if Path(path).suffix.lower() == ".xml":
        check_ir_for_target(path, target, precision)
    else:
        check_model_for_target(path, target, precision)


# --- docs ------------------------------------------------------------------------------------


def targets_markdown() -> str:
    """The target table of ``docs/targets.md``, generated from :data:`TARGETS`."""
    lines = [
        "| target | runtimes | precisions (default) | artifacts | static shapes | ops | I/O dtypes | INT8 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in TARGETS.values():
        precisions = ", ".join(f"**{p}**" if p == row.default_precision else p for p in row.precisions)
        artifacts = "<br>".join(
            f"{rule.kind} ({rule.runtime}): "
            + ", ".join(f"{p}: `{rule.files[0].format(graph=rule.graph_for(p))}`" for p in rule.precisions)
            for rule in row.artifacts
        )
        ops = "any" if row.allowed_ops is None else f"{len(row.allowed_ops)} listed (TensorRT subset)"
        dtypes = "any" if row.allowed_io_dtypes is None else ", ".join(sorted(row.allowed_io_dtypes))
        int8 = "symmetric QDQ, zero points 0" if row.symmetric_int8 else "as quantised"
        static = "required" if row.requires_static_shapes else "no"
        lines.append(
            f"| `{row.name}` | {', '.join(row.runtimes)} | {precisions} | {artifacts} | {static} | {ops} | {dtypes} "
            f"| {int8} |"
        )
    lines.append("")
    for row in TARGETS.values():
        lines.append(f"- **`{row.name}`** — {row.description}. {row.notes}")
    return "\n".join(lines) + "\n"
