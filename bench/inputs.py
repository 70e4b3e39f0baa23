"""What ``edge-bench`` measures: a bundle, an ONNX file, an OpenVINO IR or a training checkpoint.

``open_source(arg, tmp, ...)`` turns the command's MODEL_OR_BUNDLE into a ``Source``: an
extracted folder plus a manifest in the bundle format (``docs/bundle.md``), so that every model
runs through the daemon's own engines (``xenoedge.edge.engines``):

- a bundle (``.xeb``, or a packaged name ``surgical`` / ``crop``): extracted, its manifest as is;
- an ONNX file: one target per runtime that can read it (``onnxruntime-<precision>``, and
  ``openvino-<precision>``: OpenVINO reads ONNX directly);
- an OpenVINO IR (``.xml`` with its ``.bin``): one ``openvino-<precision>`` target;
- a checkpoint folder (``config.json`` + ``model.pt``, e.g. ``xeno/default_models/crop``): the
  PyTorch eager FP32 baseline, plus (when torch, onnx and onnxslim are installed) its FP32
  graph exported here with ``xenoedge.export.onnx_export`` for ``onnxruntime-fp32`` / ``openvino-fp32``.

Input layout of a file is read from its graph and must follow the export contract
(``export/onnx_export.py``): ``raw`` (1, H, W, C) uint16 + ``dark`` / ``gain`` (H, W, C)
float32, or ``reflectance`` (1, H, W, C) float32.

``-shape`` (``parse_shape``): ``HxW``, ``1xHxWxC`` (NHWC, the graph's layout) or ``1xCxHxW``
(benchmark_app's NCHW habit); C must be the model's band count. A static model accepts its own
size only; the error lists what it accepts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from xenoedge.bench.common import BenchError
from xenoedge.bench.torch_baseline import is_checkpoint

from xenoedge.errors import XenoedgeError

__all__ = ["BenchInputError", "Source", "default_checkpoint", "open_source", "parse_shape", "synthetic_inputs"]

_DTYPES = {"tensor(uint16)": "uint16", "tensor(float)": "float32", "u16": "uint16", "f32": "float32"}


class BenchInputError(BenchError):
    """A model file or shape edge-bench cannot use; the message says what it accepts."""


@dataclass
class Source:
    """One model to measure. ``manifest``: bundle-format manifest (``input``, ``targets``); ``folder``:
    where the targets' ``model`` paths are relative to; ``checkpoint``: for the torch baseline;
    ``bundle``: the ``.xeb`` file (pipeline mode); ``kind``: bundle|onnx|ir|checkpoint."""

    kind: str
    name: str
    folder: Path
    manifest: dict
    checkpoint: Path | None = None
    bundle: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        version = self.manifest.get("version")
        return f"{self.name}@{version}" if version else self.name


# ---- shapes -----------------------------------------------------------------------------------


def parse_shape(text: str, bands: int) -> tuple[int, int]:
    """(H, W) from ``HxW``, ``1xHxWxC`` or ``1xCxHxW`` (separators ``x`` or ``,``; brackets allowed).

    >>> parse_shape("120x160", 100), parse_shape("1x100x120x160", 100), parse_shape("[1,120,160,25]", 25)
    ((120, 160), (120, 160), (120, 160))
    """
    parts = [p for p in re.split(r"[x,\s]+", text.strip().strip("[]()").lower()) if p]
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        raise BenchInputError(f"-shape {text!r}: not a shape; give HxW, 1xHxWxC or 1xCxHxW") from None
    if len(dims) == 2:
        h, w = dims
    elif len(dims) == 4 and dims[0] == 1 and dims[3] == bands:
        h, w = dims[1], dims[2]
    elif len(dims) == 4 and dims[0] == 1 and dims[1] == bands:
        h, w = dims[2], dims[3]
    else:
        raise BenchInputError(
            f"-shape {text!r}: give HxW, 1xHxWx{bands} (NHWC) or 1x{bands}xHxW (NCHW); the model takes {bands} bands"
        )
    if h < 1 or w < 1:
        raise BenchInputError(f"-shape {text!r}: H and W must be positive")
    return h, w


def _accepts(manifest: Mapping, multiple: int = 1) -> str:
    _, h, w, c = manifest["input"]["shape"]
    hs = "H" if h is None else str(h)
    ws = "W" if w is None else str(w)
    free = " (any H, W" + (f" that are multiples of {multiple}" if multiple > 1 else "") + ")" if None in (h, w) else ""
    only = " only" if None not in (h, w) else ""
    return f"1x{hs}x{ws}x{c} (NHWC: {manifest['input'].get('variant', 'raw')} input){free}{only}"


def frame_hw(source: Source, shape: str | None, multiple: int = 1) -> tuple[int, int] | None:
    """The (H, W) to measure: ``shape`` checked against the model, or the model's own (None: dynamic
    and no ``-shape``, which is an error unless a self-test size is known)."""
    _, h, w, c = source.manifest["input"]["shape"]
    if shape is None:
        if None in (h, w):
            st = source.manifest.get("_selftest_hw")
            if st is not None:
                return tuple(st)
            raise BenchInputError(
                f"{source.label} has a dynamic input shape {_accepts(source.manifest)}; give -shape HxW"
            )
        return int(h), int(w)
    want = parse_shape(shape, int(c))
    bad_static = (h is not None and want[0] != h) or (w is not None and want[1] != w)
    if bad_static or want[0] % multiple or want[1] % multiple:
        raise BenchInputError(
            f"{source.label} does not accept -shape {shape} (1x{want[0]}x{want[1]}x{c}); "
            f"it accepts {_accepts(source.manifest, multiple)}"
        )
    return want


# ---- model files ------------------------------------------------------------------------------


def _precision_from_name(path: Path) -> str | None:
    for p in ("int8", "fp16", "fp32"):
        if p in path.name.lower():
            return p
    return None


def _onnx_precision(path: Path) -> str:
    named = _precision_from_name(path)
    if named:
        return named
    try:
        import onnx
    except ImportError:
        return "fp32"
    model = onnx.load(str(path), load_external_data=False)
    ops = {n.op_type for n in model.graph.node}
    if {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger"} & ops:
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


def _ir_precision(model, path: Path) -> str:
    named = _precision_from_name(path)
    if named:
        return named
    types = {op.get_type_name() for op in model.get_ops()}
    if "FakeQuantize" in types:
        return "int8"
    if any(
        op.get_type_name() == "Constant" and str(op.get_element_type()) == "<Type: 'float16'>" for op in model.get_ops()
    ):
        return "fp16"
    return "fp32"


def _contract_input(path: Path, inputs: Mapping[str, tuple[list, str]]) -> dict:
    """The manifest ``input`` of a graph with ``inputs`` name -> (shape with None for dynamic, dtype)."""
    names = set(inputs)
    if names == {"raw", "dark", "gain"}:
        variant, main = "raw", "raw"
    elif names == {"reflectance"}:
        variant, main = "reflectance", "reflectance"
    else:
        raise BenchInputError(
            f"{path}: graph inputs {sorted(names)} do not follow the export contract (raw, dark, gain; or "
            "reflectance: docs/export_onnx.md)"
        )
    shape, dtype = inputs[main]
    if len(shape) != 4 or shape[3] is None:
        raise BenchInputError(f"{path}: input {main!r} has shape {shape}, expected (1, H, W, C) with a fixed C")
    return {"shape": [1, *shape[1:]], "dtype": dtype, "variant": variant, "layout": "NHWC"}


def _graph_pool(inputs: Mapping[str, tuple[list, str]]) -> int:
    """How many times an edge-first graph pools the frame: frame height over its ``dark`` input's (1 otherwise)."""
    if "dark" not in inputs:
        return 1
    frame_h, ref_h = inputs["raw"][0][1], inputs["dark"][0][0]
    if not frame_h or not ref_h or ref_h >= frame_h:
        return 1
    return -(-frame_h // ref_h)


def _onnx_inputs(path: Path) -> dict[str, tuple[list, str]]:
    try:
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return {
            i.name: ([d if isinstance(d, int) else None for d in i.shape], _DTYPES.get(i.type, i.type))
            for i in session.get_inputs()
        }
    except ImportError:
        pass
    except Exception as exc:
        raise BenchInputError(f"{path}: ONNX Runtime cannot read it ({str(exc).splitlines()[0]})") from None
    return _ov_inputs(path)[0]


def _ov_inputs(path: Path):
    try:
        import openvino as ov
    except ImportError:
        raise BenchInputError(
            f"{path}: reading it needs openvino (or onnxruntime for .onnx), neither is installed"
        ) from None
    try:
        model = ov.Core().read_model(str(path))
    except Exception as exc:
        raise BenchInputError(f"{path}: OpenVINO cannot read it ({str(exc).splitlines()[0]})") from None
    out = {}
    for port in model.inputs:
        ps = port.get_partial_shape()
        dims = [d.get_length() if d.is_static else None for d in ps]
        et = port.get_element_type().get_type_name()
        out[port.get_any_name()] = (dims, _DTYPES.get(et, et))
    return out, model


def _file_source(path: Path) -> Source:
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        inputs = _onnx_inputs(path)
        precision = _onnx_precision(path)
        targets = {
            f"onnxruntime-{precision}": {"runtime": "onnxruntime", "precision": precision, "model": path.name},
            f"openvino-{precision}": {
                "runtime": "openvino",
                "precision": precision,
                "model": path.name,
                "device": "CPU",
            },
        }
        kind = "onnx"
    else:
        if not path.with_suffix(".bin").is_file():
            raise BenchInputError(f"{path}: OpenVINO IR without its weights {path.with_suffix('.bin').name}")
        inputs, model = _ov_inputs(path)
        precision = _ir_precision(model, path)
        targets = {f"openvino-{precision}": {"runtime": "openvino", "precision": precision, "model": path.name,
                                             "device": "CPU"}}  # fmt: skip
        kind = "ir"
    manifest = {"name": path.stem, "version": None, "input": _contract_input(path, inputs), "targets": targets,
                "labels": [], "preprocessing": {"pool": _graph_pool(inputs)}}  # fmt: skip
    return Source(kind, path.stem, path.parent, manifest)


# ---- checkpoints --------------------------------------------------------------------------------


def default_checkpoint(bundle_name: str) -> Path | None:
    """The packaged training checkpoint of a packaged bundle (``xeno/default_models/NAME``), if present."""
    import importlib.util

    spec = importlib.util.find_spec("xeno")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "default_models" / bundle_name
    return folder if is_checkpoint(folder) else None


def _checkpoint_source(path: Path, tmp: Path, shape: str | None, want_graphs: bool) -> Source:
    """The torch baseline; with ``want_graphs`` also its FP32 ONNX export (ORT and OpenVINO targets)."""
    import json

    config = json.loads((path / "config.json").read_text())
    bands = int(config["model"]["in_channels"])
    try:  # by name, else by the checkpoint's wavelengths: its frame size is the sensor's cube
        from xenoedge.export.export import sensor_for

        profile = sensor_for(config)
        sensor, hw = profile.name, profile.cube_shape[:2]
    except (XenoedgeError, KeyError):
        sensor, hw = None, None
    manifest = {"name": path.name, "version": None, "targets": {}, "labels": config.get("labels", []),
                "input": {"shape": [1, None, None, bands], "dtype": "uint16", "variant": "raw", "layout": "NHWC"},
                "sensor": {"name": sensor} if sensor else {}}  # fmt: skip
    source = Source("checkpoint", path.name, tmp, manifest, checkpoint=path)
    if hw is not None:
        manifest["_selftest_hw"] = list(hw)
    if not want_graphs:
        return source
    try:
        h, w = frame_hw(source, shape)
    except BenchInputError:
        return source
    try:
        from xenoedge.export.onnx_export import export_onnx, metadata_from_config, model_pool
        from xenoedge.xeno.checkpoint import load_model

        model, cfg = load_model(path)
        export_onnx(model, height=h, width=w, n_bands=bands, path=tmp / "model.fp32.onnx",
                    metadata=metadata_from_config(cfg))  # fmt: skip
    except ImportError as exc:
        source.notes.append(f"no ONNX Runtime / OpenVINO FP32 graphs of {path.name}: {exc.name} is not installed")
        return source
    # an edge-first model's graph pools the frame: the engines bind dark/gain at its working size
    manifest["preprocessing"] = {"pool": model_pool(model)}
    manifest["targets"] = {
        "onnxruntime-fp32": {"runtime": "onnxruntime", "precision": "fp32", "model": "model.fp32.onnx"},
        "openvino-fp32": {"runtime": "openvino", "precision": "fp32", "model": "model.fp32.onnx", "device": "CPU"},
    }
    manifest["input"]["shape"] = [1, h, w, bands]
    return source


# ---- the entry point ---------------------------------------------------------------------------


def open_source(arg: str, tmp: Path, *, shape: str | None = None, want_graphs: bool = True) -> Source:
    """Resolve MODEL_OR_BUNDLE (see the module docstring); ``tmp``: a folder for extracted files."""
    from xenoedge.edge.builtin_bundles import DEFAULT_BUNDLES, default_bundle
    from xenoedge.export.bundle import extract_bundle, read_manifest

    path = Path(arg)
    if arg in DEFAULT_BUNDLES or path.suffix.lower() == ".xeb":
        bundle = default_bundle(arg) if arg in DEFAULT_BUNDLES else path
        if not bundle.is_file():
            raise BenchInputError(f"{arg}: no such bundle file")
        folder = extract_bundle(bundle, tmp / "bundle")
        manifest = read_manifest(folder)
        return Source("bundle", manifest["name"], folder, manifest, bundle=bundle)
    if path.suffix.lower() in (".onnx", ".xml"):
        if not path.is_file():
            raise BenchInputError(f"{arg}: no such model file")
        return _file_source(path)
    if is_checkpoint(path):
        return _checkpoint_source(path, tmp, shape, want_graphs)
    raise BenchInputError(
        f"{arg}: not a bundle (.xeb, or a packaged name: {', '.join(DEFAULT_BUNDLES)}), an ONNX file (.onnx), an "
        "OpenVINO IR (.xml) or a checkpoint folder (config.json + model.pt)"
    )


def _fit_wrap(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` repeated along each axis and cut to ``shape`` (any size, unlike ``tile_to``)."""
    reps = [-(-s // a) for s, a in zip(shape, array.shape, strict=True)]
    return np.ascontiguousarray(np.tile(array, reps)[tuple(slice(0, s) for s in shape)])


def bundle_inputs(selftest, input_shape: tuple[int, ...], variant: str) -> dict[str, np.ndarray]:
    """The bundle's self-test inputs repeated to one frame of ``input_shape`` (1, H, W, C)."""
    main = "raw" if variant == "raw" else "reflectance"
    out = {main: _fit_wrap(selftest.inputs[main], input_shape)}
    if variant == "raw":
        for k in ("dark", "gain"):
            out[k] = _fit_wrap(selftest.inputs[k], input_shape[1:])
    return out


def synthetic_inputs(input_shape: tuple[int, ...], variant: str, seed: int = 0) -> dict[str, np.ndarray]:
    """A seeded frame for a model without a self-test: raw counts uniform in [dark, white] with dark
    64 and white 4000 counts per band (12-bit sensor), or reflectance uniform in [0, 1]."""
    rng = np.random.default_rng(seed)
    _, h, w, c = input_shape
    if variant != "raw":
        return {"reflectance": rng.uniform(0.0, 1.0, size=input_shape).astype(np.float32)}
    dark, white = 64.0, 4000.0
    raw = rng.integers(int(dark), int(white), size=input_shape, dtype=np.uint16)
    return {
        "raw": raw,
        "dark": np.full((h, w, c), dark, np.float32),
        "gain": np.full((h, w, c), 1.0 / (white - dark), np.float32),
    }
