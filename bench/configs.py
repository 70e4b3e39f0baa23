"""What ``edge-bench`` is asked to measure and which configurations that selects.

``BenchSettings`` (every option; checked by ``check_settings``), ``BenchConfig`` (one configuration:
target, runtime, precision, devices, and what its rounds collect), ``select_configs`` (a model's
targets that the settings ask for and this machine can run, notes on those skipped),
``compared_configs`` (``--compare``'s sources) and ``pick_baseline`` (what the ratios refer to).

Imports no runtime at module level (``xenoedge.edge.engines`` is asked inside the functions).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xenoedge.bench.common import BenchError

__all__ = [
    "BACKENDS",
    "DEFAULT_ROUNDS",
    "HINTS",
    "MODES",
    "PRECISIONS",
    "RUNTIME_ALIASES",
    "SCENARIOS",
    "BenchConfig",
    "BenchSettings",
    "check_settings",
    "compared_configs",
    "pick_baseline",
    "select_configs",
]

#: --backend value -> runtimes it selects (``torch``: the PyTorch baseline of a checkpoint).
BACKENDS: dict[str, tuple[str, ...]] = {
    "ort": ("onnxruntime", "tensorrt"),
    "openvino": ("openvino",),
    "torch": ("torch",),
    "all": ("onnxruntime", "tensorrt", "openvino", "torch"),
}
RUNTIME_ALIASES = {"ort": "onnxruntime", "onnxruntime": "onnxruntime", "openvino": "openvino", "ov": "openvino",
                   "tensorrt": "tensorrt", "trt": "tensorrt", "torch": "torch"}  # fmt: skip
MODES = ("engine", "pipeline")
SCENARIOS = ("singlestream", "offline")
HINTS = ("latency", "throughput")
PRECISIONS = ("fp32", "fp16", "int8")
_ORT_CPU = ("CPUExecutionProvider", "OpenVINOExecutionProvider")
DEFAULT_ROUNDS = 10


@dataclass
class BenchSettings:
    """What to measure. ``niter``/``time_s``: minimum iterations / seconds per configuration (both
    given: both minima, like trtexec; neither: ``DEFAULT_TIME_S``). ``warmup``: untimed runs first.
    ``backend`` / ``precision``: one value, ``all`` (backend) or a comma-separated list."""

    model: str
    device: str | None = None
    backend: str = "all"
    mode: str = "engine"
    niter: int | None = None
    time_s: float | None = None
    warmup: int = 5
    threads: int | None = None
    percentile: float = 50.0
    rounds: int = DEFAULT_ROUNDS
    seed: int = 0
    precision: str | None = None
    shape: str | None = None
    scenario: str | None = None
    hint: str | None = None
    nireq: int | None = None
    nstreams: int | None = None
    baseline: str | None = None
    checkpoint: str | None = None
    camera: str | None = None
    link: str = "null"
    baud: int | None = None
    references: str | None = None
    dataset: str | None = None
    dataset_frames: int = 8
    rss_alone: bool = False
    compare: str | None = None  # other bundles/graphs measured in the same rounds (engine mode)
    profile: bool = False  # per-operator times by op type (engine mode, single stream)
    cache_dir: str | None = (
        None  # OpenVINO CACHE_DIR / TensorRT engine cache root (xenoedge.edge.engines.model_cache_folder)
    )
    max_drop: float = 0.01  # pass/fail: largest mean-DSC drop vs the baseline (--dataset), as the export's gate


@dataclass
class BenchConfig:
    """One configuration measured: a bundle target (``LABEL:TARGET`` for ``--compare``) or ``torch-fp32``,
    its runtime, precision and devices; the open engine and what its timed rounds collect (``result``:
    that configuration's part of the report)."""

    target: str
    runtime: str
    precision: str
    devices: list[str]
    checkpoint: Path | None = None
    engine: object = None
    offline: object = None
    lat_ns: list[int] = field(default_factory=list)
    wall_ns: int = 0
    cpu_s: float = 0.0
    rss_before: float | None = None  # MB, before loading: rss_growth_mb
    result: dict = field(default_factory=dict)
    source: object = None  # a --compare source; None: the main one


# ---- settings and selection -------------------------------------------------------------------


def _split(value: str | None, known: Sequence[str], what: str) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip().lower() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in known]
    if bad or not items:
        raise BenchError(f"unknown {what} {value!r}; available: {', '.join(known)}")
    return items


def check_settings(settings: BenchSettings) -> str:
    """Raises ``BenchError`` for a bad value (listing what is available); returns the scenario."""
    _split(settings.backend, list(BACKENDS), "backend")
    _split(settings.precision, PRECISIONS, "precision")
    if settings.mode not in MODES:
        raise BenchError(f"unknown mode {settings.mode!r}; available: {', '.join(MODES)}")
    if settings.scenario is not None and settings.scenario not in SCENARIOS:
        raise BenchError(f"unknown scenario {settings.scenario!r}; available: {', '.join(SCENARIOS)}")
    if settings.hint is not None and settings.hint not in HINTS:
        raise BenchError(f"unknown -hint {settings.hint!r}; available: {', '.join(HINTS)}")
    for name, value in (("-niter", settings.niter), ("-nireq", settings.nireq), ("-nstreams", settings.nstreams),
                        ("--threads", settings.threads), ("--baud", settings.baud)):  # fmt: skip
        if value is not None and value < 1:
            raise BenchError(f"{name} must be >= 1, got {value}")
    if settings.time_s is not None and settings.time_s <= 0:
        raise BenchError(f"-t must be > 0, got {settings.time_s}")
    if not 0 <= settings.max_drop <= 1:
        raise BenchError(f"--max-drop must be in [0, 1] (DSC; 0.01 = one point), got {settings.max_drop}")
    if not 0 <= settings.percentile <= 100:
        raise BenchError(f"--percentile must be in [0, 100], got {settings.percentile}")
    if settings.warmup < 0:
        raise BenchError(f"--warmup must be >= 0, got {settings.warmup}")
    scenario = settings.scenario
    if scenario is None:
        scenario = "offline" if settings.hint == "throughput" or (settings.nireq or 1) > 1 else "singlestream"
    if settings.mode == "pipeline" and scenario == "offline":
        raise BenchError("--scenario offline is for --mode engine; the daemon (pipeline mode) is one stream")
    return scenario


def _options(device: str | None, threads: int | None, manifest: Mapping):
    """EngineOptions and the target/runtime filter that ``-d`` asks for."""
    from xenoedge.edge.engines import DEFAULT_ORT_PROVIDERS, OPENVINO_DEVICES, EngineOptions

    targets = manifest["targets"]
    only_target = only_runtime = None
    ov_device, providers = None, DEFAULT_ORT_PROVIDERS
    if device is None:
        pass
    elif device in targets:
        only_target = device
    elif device.lower() in RUNTIME_ALIASES:
        only_runtime = RUNTIME_ALIASES[device.lower()]
    elif device.upper() in OPENVINO_DEVICES:
        ov_device = device.upper()
        if ov_device == "CPU":
            providers = ("CPUExecutionProvider",)
    else:
        raise BenchError(
            f"unknown device {device!r}; available: devices {', '.join(OPENVINO_DEVICES)}; runtimes "
            f"{', '.join(sorted(set(RUNTIME_ALIASES.values())))}; targets of {manifest['name']}: "
            f"{', '.join(targets) or 'none'}"
        )
    options = EngineOptions(ort_providers=providers, openvino_device=ov_device, threads=threads)
    return options, only_target, only_runtime


def _torch_config(source, settings: BenchSettings, options, notes: list[str]) -> BenchConfig | None:
    """The PyTorch baseline configuration, or None with a note when it cannot run here."""
    from xenoedge.bench.inputs import default_checkpoint
    from xenoedge.bench.torch_baseline import is_checkpoint, torch_available

    if settings.checkpoint is not None:
        checkpoint = Path(settings.checkpoint)
        if not is_checkpoint(checkpoint):
            raise BenchError(f"--checkpoint {checkpoint}: not a checkpoint folder (config.json + model.pt)")
    else:
        checkpoint = source.checkpoint or (default_checkpoint(source.name) if source.kind == "bundle" else None)
    if checkpoint is None:
        notes.append(f"no PyTorch baseline: {source.label} has no checkpoint; give --checkpoint FOLDER")
        return None
    if not torch_available():
        notes.append("skipped torch-fp32: torch is not installed (pip install torch); ratios use another baseline")
        return None
    if options.openvino_device in ("GPU", "NPU"):
        notes.append(f"skipped torch-fp32: -d {options.openvino_device} asked, the PyTorch baseline runs on the CPU")
        return None
    return BenchConfig("torch-fp32", "torch", "fp32", ["cpu"], checkpoint=checkpoint)


def select_configs(source, settings: BenchSettings) -> tuple[list[BenchConfig], list[str], object]:
    """The configurations to measure, notes on those skipped (runtime not installed / no device), options."""
    from xenoedge.edge.engines import ENGINES

    manifest = source.manifest
    backends = _split(settings.backend, list(BACKENDS), "backend") or ["all"]
    runtimes = {r for b in backends for r in BACKENDS[b]}
    precisions = _split(settings.precision, PRECISIONS, "precision")
    options, only_target, only_runtime = _options(settings.device, settings.threads, manifest)
    options = dataclasses.replace(
        options,
        profile=settings.profile and settings.mode == "engine",
        cache_dir=Path(settings.cache_dir) if settings.cache_dir else None,
    )
    targets = manifest["targets"]
    notes = list(source.notes)
    wanted = [
        name
        for name, spec in targets.items()
        if spec.get("runtime") in runtimes
        and (only_target is None or name == only_target)
        and (only_runtime is None or spec.get("runtime") == only_runtime)
        and (precisions is None or spec.get("precision") in precisions)
    ]
    want_torch = "torch" in runtimes and only_target is None and only_runtime in (None, "torch")
    torch_cfg = _torch_config(source, settings, options, notes) if want_torch else None
    if torch_cfg is not None and precisions is not None and "fp32" not in precisions and "torch" not in backends:
        notes.append("torch-fp32 measured as the baseline although --precision leaves fp32 out")
    if not wanted and torch_cfg is None:
        has = ", ".join(f"{n} ({t.get('runtime')}, {t.get('precision')})" for n, t in targets.items()) or "none"
        asked = f"backend {settings.backend}" + (f", device {settings.device}" if settings.device else "")
        asked += f", precision {settings.precision}" if settings.precision else ""
        extra = "; " + "; ".join(notes) if notes else ""
        raise BenchError(f"{source.label} has no target for {asked}; its targets: {has}{extra}")
    configs = []
    for name in wanted:
        spec = targets[name]
        kind = ENGINES.get(spec.get("runtime", ""))
        if kind is None:
            notes.append(f"skipped {name}: runtime {spec.get('runtime')!r} is not supported by xenoedge.edge.engines")
            continue
        devices = kind.devices(spec, options)
        if not devices:
            installed = kind.installed()
            why = "is not installed" if not installed else f"has no usable device here (has {', '.join(installed)})"
            notes.append(f"skipped {name}: {spec['runtime']} {why}")
            continue
        if options.openvino_device in ("GPU", "NPU") and kind.runtime != "openvino" and devices[0] in _ORT_CPU:
            notes.append(
                f"skipped {name}: -d {options.openvino_device} asked, {kind.runtime} has only {devices[0]} here"
            )
            continue
        configs.append(BenchConfig(name, spec["runtime"], spec.get("precision", ""), devices))
    if torch_cfg is not None:
        configs.insert(0, torch_cfg)
    return configs, notes, options


def compared_configs(settings: BenchSettings, tmp: Path, source, notes: list[str]) -> list[BenchConfig]:
    """The targets of ``--compare`` sources (an earlier bundle kept in benchmarks/, another graph), named
    ``LABEL:TARGET`` and measured in the same alternating rounds as the main source's (engine mode).

    They take the same frames: the same (1, H, W, C) input and the frame-size references (each engine
    pools them when its graph pools the frame).
    """
    from xenoedge.bench.inputs import open_source

    if not settings.compare:
        return []
    if settings.mode != "engine" or settings.rss_alone:
        raise BenchError("--compare is measured in engine mode, without --rss-alone")
    out = []
    channels = source.manifest["input"]["shape"][3]
    for i, arg in enumerate(a.strip() for a in settings.compare.split(",") if a.strip()):
        other = open_source(arg, tmp / f"compare-{i}", shape=settings.shape, want_graphs=False)
        if other.kind == "checkpoint":
            raise BenchError(f"--compare {arg}: give a bundle, ONNX file or OpenVINO IR (checkpoints: --checkpoint)")
        if other.manifest["input"]["shape"][3] != channels:
            raise BenchError(f"--compare {arg}: takes {other.manifest['input']['shape'][3]} bands, not {channels}")
        picked, more_notes, _ = select_configs(other, dataclasses.replace(settings, backend="ort,openvino"))
        notes += [f"{arg}: {note}" for note in more_notes if note not in notes]
        label = f"{Path(arg).parent.name}/{Path(arg).stem}" if Path(arg).suffix else arg  # e.g. pixel-mlp-2026-11/crop
        for cfg in picked:
            cfg.source, cfg.target = other, f"{label}:{cfg.target}"
            out.append(cfg)
    return out


# ---- baseline ---------------------------------------------------------------------------------


def pick_baseline(configs: list[BenchConfig], wanted: str | None, notes: list[str]) -> BenchConfig:
    """``--baseline`` (a configuration name or a runtime), else torch FP32, else ORT FP32, else the first."""
    if wanted:
        runtime = RUNTIME_ALIASES.get(wanted.lower())
        for cfg in configs:
            if cfg.target == wanted or cfg.runtime == runtime:
                return cfg
        raise BenchError(f"--baseline {wanted!r} is not measured in this run; configurations: "
                         + ", ".join(c.target for c in configs))  # fmt: skip
    for test in (lambda c: c.runtime == "torch", lambda c: c.runtime == "onnxruntime" and c.precision == "fp32",
                 lambda c: c.precision == "fp32"):  # fmt: skip
        for cfg in configs:
            if test(cfg):
                return cfg
    notes.append(f"no FP32 configuration in this run: ratios are to {configs[0].target}")
    return configs[0]
