"""The daemon's configuration: one dataclass, read from a TOML file, overridable from the CLI.

``DaemonConfig`` is flat; the TOML file groups the same keys into tables (``CONFIG_KEYS`` is
the one table that maps them, read by the loader and checked against ``docs/daemon.md``)::

    [camera]
    spec = "sim:crop"            # camera string (docs/cameras.md): sim:crop | replay:DIR | v4l2:... | file:...
    sensor = "mosaic-5x5-nir"    # optional; default: the bundle's sensor
    seed = 0
    exposure_ms = 10.0
    max_fps = 30                 # optional: pace a free-running source (simulator, replay)

    [bundle]
    path = "/var/lib/xenoedge/active.xeb"
    public_key = "/etc/xenoedge/release.pub"   # when set, only bundles it signed load and install
    allow_unsigned = false                      # development only: without a key, install unsigned bundles

    [engine]
    prefer = ["openvino", "onnxruntime"]        # target or runtime names tried first
    ort_providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    openvino_device = "CPU"                     # CPU | GPU | NPU | AUTO
    threads = 2
    warmup_runs = 3
    cache_dir = "/var/lib/xenoedge/cache"       # optional: compiled models (OpenVINO/TensorRT); default below
    target_order = "rank"                       # rank (the bundle's) | measured (timed on this device once)

    [references]
    path = "/var/lib/xenoedge/references.npz"
    capture = "auto"                            # auto | always | never
    capture_frames = 8

    [pipeline]
    queue_size = 2
    status_interval_s = 1.0
    score_ground_truth = false
    confidence = false                          # compute per-pixel confidence (costs a full-frame Softmax)

    [output]
    sink = "null"                               # null | png:DIR | whatever a sink factory registers

    [flashing]
    state_dir = "/var/lib/xenoedge"             # optional: A/B slots + uploads; the model comes from here
    probation_frames = 30                       # a new model must serve this many frames, else rollback
    max_bundle_bytes = 67108864                 # largest bundle an upload may announce
    upload_timeout_s = 60.0                     # idle upload another one may replace

Unknown tables or keys are refused with a suggestion (never substituted). Python 3.11+ reads
TOML with the standard ``tomllib``; on 3.10 the ``tomli`` package is used when installed.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xenoedge.edge.engine_base import TARGET_ORDERS

from xenoedge.errors import UnknownNameError, XenoedgeError

__all__ = ["CONFIG_KEYS", "ConfigError", "DaemonConfig", "load_config", "signature_fields", "signature_line"]

CAPTURE_MODES = ("auto", "always", "never")


class ConfigError(XenoedgeError):
    """A daemon configuration file or value that cannot be used."""


@dataclass(frozen=True)
class DaemonConfig:
    """Everything the daemon needs; defaults run the simulated crop camera with no link."""

    bundle: Path | None = None
    camera: str = "sim:crop"
    sensor: str | None = None
    seed: int = 0
    exposure_ms: float = 10.0
    max_fps: float | None = None
    public_key: Path | None = None
    #: Without ``public_key``, install bundles nobody signed (over the link, the first install of
    #: ``bundle``). Off: a device with no key refuses every install (docs/flashing.md).
    allow_unsigned: bool = False
    prefer: tuple[str, ...] = ()
    #: "rank": the bundle's target order (measured where it was built); "measured": time the
    #: targets on this device at the first start and open the fastest (cached in ``cache_dir``).
    target_order: str = "rank"
    ort_providers: tuple[str, ...] | None = None
    openvino_device: str | None = None
    threads: int | None = None
    warmup_runs: int = 3
    #: Compiled-model cache (OpenVINO CACHE_DIR, TensorRT engines): the first start compiles, later
    #: starts import. None: ``<state_dir>/cache``, else ``$XDG_CACHE_HOME/xenoedge/models``
    #: (``model_cache_dir``); docs/daemon.md, "Model cache".
    cache_dir: Path | None = None
    references: Path | None = None
    capture_references: str = "auto"
    capture_frames: int = 8
    queue_size: int = 2
    status_interval_s: float = 1.0
    score_ground_truth: bool = False
    #: Compute the model's per-pixel confidence (a Softmax at full frame size) for consumers that
    #: read it (the handheld scan's mean confidence); the serial/TCP sinks never send it.
    confidence: bool = False
    sink: str = "null"
    #: A serial sink whose port does not exist at start: wait for it (link state WAITING) instead
    #: of refusing to start (docs/daemon.md, "Link states").
    wait_for_port: bool = False
    state_dir: Path | None = None
    probation_frames: int = 30
    max_bundle_bytes: int = 64 * 2**20
    upload_timeout_s: float = 60.0
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ConfigError(f"queue_size must be >= 1, got {self.queue_size}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if self.capture_references not in CAPTURE_MODES:
            raise ConfigError(
                f"references.capture must be one of {', '.join(CAPTURE_MODES)}, got {self.capture_references!r}"
            )
        if self.capture_frames < 1:
            raise ConfigError(f"capture_frames must be >= 1, got {self.capture_frames}")
        if self.status_interval_s <= 0:
            raise ConfigError(f"status_interval_s must be > 0, got {self.status_interval_s}")
        if self.max_fps is not None and self.max_fps <= 0:
            raise ConfigError(f"max_fps must be > 0, got {self.max_fps}")
        if self.warmup_runs < 0:
            raise ConfigError(f"warmup_runs must be >= 0, got {self.warmup_runs}")
        if self.target_order not in TARGET_ORDERS:
            raise ConfigError(
                f"engine.target_order must be one of {', '.join(TARGET_ORDERS)}, got {self.target_order!r}"
            )
        if self.probation_frames < 1:
            raise ConfigError(f"flashing.probation_frames must be >= 1, got {self.probation_frames}")
        if self.max_bundle_bytes < 1:
            raise ConfigError(f"flashing.max_bundle_bytes must be >= 1, got {self.max_bundle_bytes}")
        if self.upload_timeout_s <= 0:
            raise ConfigError(f"flashing.upload_timeout_s must be > 0, got {self.upload_timeout_s}")
        if self.allow_unsigned and self.public_key is not None:
            raise ConfigError(
                "bundle.allow_unsigned = true and bundle.public_key exclude each other: with a key only bundles "
                "it signed install; remove allow_unsigned"
            )

    def model_cache_dir(self) -> Path:
        """Where compiled models are cached: ``cache_dir``, else ``<state_dir>/cache``, else the
        user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``) ``/xenoedge/models``."""
        if self.cache_dir is not None:
            return self.cache_dir
        if self.state_dir is not None:
            return self.state_dir / "cache"
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "xenoedge" / "models"

    def replace(self, **overrides: Any) -> DaemonConfig:
        """A copy with ``overrides`` (CLI options); None values are ignored, unknown names refused."""
        names = {f.name for f in dataclasses.fields(self)}
        for key in overrides:
            if key not in names:
                raise UnknownNameError("daemon option", key, sorted(names))
        given = {k: _coerce(k, v) for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **given)


#: TOML table -> key -> DaemonConfig field.
CONFIG_KEYS: dict[str, dict[str, str]] = {
    "camera": {
        "spec": "camera",
        "sensor": "sensor",
        "seed": "seed",
        "exposure_ms": "exposure_ms",
        "max_fps": "max_fps",
    },
    "bundle": {"path": "bundle", "public_key": "public_key", "allow_unsigned": "allow_unsigned"},
    "engine": {
        "prefer": "prefer",
        "ort_providers": "ort_providers",
        "openvino_device": "openvino_device",
        "threads": "threads",
        "warmup_runs": "warmup_runs",
        "cache_dir": "cache_dir",
        "target_order": "target_order",
    },
    "references": {"path": "references", "capture": "capture_references", "capture_frames": "capture_frames"},
    "pipeline": {
        "queue_size": "queue_size",
        "status_interval_s": "status_interval_s",
        "score_ground_truth": "score_ground_truth",
        "confidence": "confidence",
    },
    "output": {"sink": "sink", "wait_for_port": "wait_for_port"},
    "flashing": {
        "state_dir": "state_dir",
        "probation_frames": "probation_frames",
        "max_bundle_bytes": "max_bundle_bytes",
        "upload_timeout_s": "upload_timeout_s",
    },
}

_PATHS = {"bundle", "public_key", "references", "state_dir", "cache_dir"}
_TUPLES = {"prefer", "ort_providers"}
_TYPES: dict[str, tuple[type, ...]] = {
    "camera": (str,),
    "sensor": (str,),
    "seed": (int,),
    "exposure_ms": (int, float),
    "max_fps": (int, float),
    "openvino_device": (str,),
    "threads": (int,),
    "warmup_runs": (int,),
    "target_order": (str,),
    "capture_references": (str,),
    "capture_frames": (int,),
    "queue_size": (int,),
    "status_interval_s": (int, float),
    "score_ground_truth": (bool,),
    "confidence": (bool,),
    "allow_unsigned": (bool,),
    "sink": (str,),
    "wait_for_port": (bool,),
    "probation_frames": (int,),
    "max_bundle_bytes": (int,),
    "upload_timeout_s": (int, float),
}


def _coerce(name: str, value: Any, where: str = "") -> Any:
    label = where or name
    if name in _PATHS:
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigError(f"{label} must be a path string, got {value!r}")
        return Path(value)
    if name in _TUPLES:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{label} must be a list of strings, got {value!r}")
        return tuple(value)
    types = _TYPES.get(name)
    if types and (not isinstance(value, types) or (bool not in types and isinstance(value, bool))):
        raise ConfigError(f"{label} must be {' or '.join(t.__name__ for t in types)}, got {value!r}")
    return float(value) if types == (int, float) else value


def _public_key(config: DaemonConfig) -> Any:
    """The config's trusted key (None without one, or when its file cannot be read now: the daemon
    refused to start then; an announcement must not fail)."""
    if config.public_key is None:
        return None
    from xenoedge.export.bundle import load_public_key

    try:
        return load_public_key(config.public_key)
    except Exception:
        return None


def signature_fields(config: DaemonConfig) -> dict:
    """What HELLO and INFO say about the bundles this device installs (``allow_unsigned``,
    ``trusted_key_id``; see ``xenoedge.edge.flashing.install.signature_fields``)."""
    from xenoedge.edge.flashing.install import signature_fields as fields

    return fields(_public_key(config), config.allow_unsigned)


def signature_line(config: DaemonConfig) -> str:
    """The line the daemon logs at every start: which bundles it installs, and why."""
    from xenoedge.edge.flashing.install import signature_line as line

    key = _public_key(config)
    if config.public_key is not None and key is None:
        return f"bundle signatures: required, but the key {config.public_key} cannot be read; nothing installs"
    if config.state_dir is None:  # no slot store, no flashing service: nothing is ever installed
        checked = f"must be signed by key {signature_fields(config)['trusted_key_id']}" if key else "is not checked"
        return f"bundle signatures: bundle.path {checked}; no flashing.state_dir, so nothing can be flashed"
    return line(key, config.allow_unsigned, key_path=config.public_key)


def _toml_loads(text: str, path: Path) -> dict:
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise ConfigError(f"{path}: reading TOML needs Python 3.11 or the 'tomli' package") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def config_from_dict(data: dict, source: str = "config") -> DaemonConfig:
    """A ``DaemonConfig`` from the TOML tables (see ``CONFIG_KEYS``)."""
    values: dict[str, Any] = {}
    for table, entries in data.items():
        if table not in CONFIG_KEYS:
            raise ConfigError(f"{source}: {UnknownNameError('table', table, sorted(CONFIG_KEYS))}")
        if not isinstance(entries, dict):
            raise ConfigError(f"{source}: [{table}] must be a table")
        for key, value in entries.items():
            if key not in CONFIG_KEYS[table]:
                raise ConfigError(f"{source}: {UnknownNameError(f'key in [{table}]', key, sorted(CONFIG_KEYS[table]))}")
            name = CONFIG_KEYS[table][key]
            values[name] = _coerce(name, value, f"{source}: {table}.{key}")
    return DaemonConfig(**values)


def load_config(path: str | os.PathLike | None = None, **overrides: Any) -> DaemonConfig:
    """The config of TOML file ``path`` (None: all defaults) with CLI ``overrides`` applied.

    Relative paths in the file are taken relative to the file's folder.
    """
    if path is None:
        config = DaemonConfig()
    else:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
        config = config_from_dict(_toml_loads(text, path), str(path))
        rebased = {
            name: path.parent / getattr(config, name)
            for name in _PATHS
            if getattr(config, name) is not None and not getattr(config, name).is_absolute()
        }
        config = dataclasses.replace(config, **rebased)
    return config.replace(**overrides)
