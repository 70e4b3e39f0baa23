"""Spectral segmentation data sets: the simulator's folder layout and a real-data layout.

Layouts (full description: ``docs/datasets.md``):

- **simulator** (``xenoedge simulate``): ``index.json`` + ``cubes/``, ``labels/``, ``states/``, ``meta/``.
- **real**: ``metadata.csv`` (columns ``image_id, species, subject, cube, labels`` and optionally
  ``states``, ``region_states``, ``meta``; more columns go into the record's meta) beside a
  ``dataset.json`` (``{"label_set": "surgical", "states": [...], "wavelengths_nm": [...]}``;
  ``wavelengths_nm`` only for ``.npy`` cubes, which store none). Cube paths are relative to the
  folder: Tivita ``*_SpecCube.dat``, ENVI ``*.hdr``, ``.npz`` or ``.npy`` reflectance.

``SpectralDataset.load`` gives a ``Sample``: the cube checked (no NaN, no strongly negative
reflectance), optionally resampled to a sensor profile's bands and L1-normalised per pixel
(``xenoedge.calibration.normalise.l1_normalise``), plus labels and states. Preprocessed arrays are kept
in a bounded in-memory LRU cache and, with ``cache_dir``, in ``.npy`` files reopened with mmap.
Splits go by subject, a subject being a ``(species, subject)`` pair: ``split_by_subject``.

numpy only: torch lives in ``xenoedge.xeno.torch_data``.

Why one file (~800 lines): both layouts, the cube checks on load and the record selection and
splits share ``ImageRecord`` and the label-set/state name checks, and ``SpectralDataset``'s
methods call the selection functions; splitting them apart would make an import circle or spread
one contract over several files.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from xenoedge.calibration.normalise import L1_EPS, l1_normalise
from xenoedge.calibration.reflectance import check_reflectance
from xenoedge.calibration.resample import resample_cube, resampling_matrix
from xenoedge.xeno.labels import LabelSet, get_label_set
from xenoedge.xeno.scene import NO_STATE

from xenoedge.errors import FileFormatError, InvalidCubeError, UnknownNameError, XenoedgeError
from xenoedge.sensors import SensorProfile

INDEX_FILE = "index.json"
METADATA_FILE = "metadata.csv"
DATASET_FILE = "dataset.json"
REQUIRED_COLUMNS = ("image_id", "species", "subject", "cube", "labels")
OPTIONAL_COLUMNS = ("states", "region_states", "meta")
DEFAULT_MEMORY_BUDGET_BYTES = 1_500_000_000
#: Bump when preprocessing changes, so old disk-cache files are not reused.
PREPROCESSING_VERSION = 1
NO_REGION_STATE = "none"  # region state of background regions in the simulator's metadata
_MAX_LISTED = 8


class DatasetError(XenoedgeError):
    """A data set that is inconsistent as a whole (mixed bands, duplicate ids, impossible split)."""


@dataclass(frozen=True)
class ImageRecord:
    """One image of a data set: where its files are and what it shows.

    ``subject`` is an int where the data set numbers subjects (the simulator does), else a str;
    a subject is identified by ``(species, subject)``. ``meta`` holds ``region_states``, a list
    of ``[label name, state name]`` pairs present in the image (background regions: state
    ``"none"``), plus whatever else the layout records (seed, meta file path, extra CSV columns).
    """

    image_id: str
    species: str
    subject: int | str
    cube_path: Path
    labels_path: Path
    states_path: Path | None
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def subject_key(self) -> tuple[str, str]:
        """(species, subject as str): the unit of splitting."""
        return (self.species, str(self.subject))

    @property
    def region_states(self) -> list[tuple[str, str]]:
        """(label name, state name) pairs present in the image."""
        return [(str(a), str(b)) for a, b in self.meta.get("region_states", [])]


@dataclass(frozen=True)
class Sample:
    """One preprocessed image. Arrays are read-only (they may be shared with the cache).

    ``cube`` (H, W, C) float32 L1-normalised reflectance (each pixel's bands sum to 1),
    at ``SpectralDataset.wavelengths_out_nm``; ``labels`` (H, W) uint8 label ids;
    ``states`` (H, W) uint8 index into ``SpectralDataset.states``, ``NO_STATE`` (255) where
    none applies, all 0 when the data set has no state maps.
    """

    cube: np.ndarray
    labels: np.ndarray
    states: np.ndarray
    record: ImageRecord


@dataclass
class CacheStats:
    """Counters: ``cube_reads`` = cube files read and preprocessed; hits per cache level."""

    cube_reads: int = 0
    memory_hits: int = 0
    disk_hits: int = 0
    disk_writes: int = 0


@dataclass(frozen=True)
class Split:
    """Records on each side of a split by subject."""

    train: tuple[ImageRecord, ...]
    val: tuple[ImageRecord, ...]
    test: tuple[ImageRecord, ...]


# ---------------------------------------------------------------- cube probing


def _list(items: Sequence[object]) -> str:
    shown = ", ".join(str(i) for i in items[:_MAX_LISTED])
    return shown + (f" ... ({len(items)} in all)" if len(items) > _MAX_LISTED else "")


def probe_cube(path: Path) -> tuple[int, np.ndarray | None]:
    """(band count, (C,) float32 wavelengths in nm or None) of a cube file without reading its values."""
    from xenoedge.devices.formats import cube_format, tivita_wavelengths

    fmt = cube_format(path)
    try:
        if fmt.name == "tivita":
            with path.open("rb") as f:
                head = f.read(12)
            if len(head) < 12:
                raise FileFormatError(path, "truncated: shorter than the 12-byte shape header")
            n_bands = int(np.frombuffer(head, dtype=">i4")[2])
            return n_bands, tivita_wavelengths().astype(np.float32)
        if fmt.name == "envi":
            from xenoedge.devices.formats import envi

            envi._check_header_path(path)
            header = envi._read_header(path)
            n_bands = envi._header_int(path, header, "bands")
            return n_bands, envi._wavelengths_nm(path, header, n_bands)
        if fmt.name == "npy":
            return int(np.load(path, mmap_mode="r", allow_pickle=False).shape[-1]), None
        with np.load(path, allow_pickle=False) as archive:
            if "wavelengths_nm" not in archive.files:
                raise FileFormatError(path, "missing key wavelengths_nm")
            wl = np.asarray(archive["wavelengths_nm"], dtype=np.float32).ravel()
            return wl.size, wl
    except FileFormatError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise FileFormatError(path, f"cannot read the cube's header ({e})") from None


def _probe_unchanged(path: Path) -> tuple[int, np.ndarray | None]:
    """``probe_cube``, remembered in this process while the file keeps its size and mtime: the
    xeno experiment opens the same data sets for every training run and scoring (~2,000 headers)."""
    stat = path.stat()
    return _probe_remembered(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=1 << 16)
def _probe_remembered(path: str, size: int, mtime_ns: int) -> tuple[int, np.ndarray | None]:
    n_bands, wavelengths = probe_cube(Path(path))
    if wavelengths is not None:
        wavelengths.flags.writeable = False  # shared by every later caller
    return n_bands, wavelengths


# ---------------------------------------------------------------- layouts


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileFormatError(path, "no such file") from None
    except (OSError, ValueError) as e:
        raise FileFormatError(path, f"not readable JSON ({e})") from None


def _subject(value: object) -> int | str:
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        return text


def _label_set_from(path: Path, value: object) -> LabelSet:
    if isinstance(value, str):
        return get_label_set(value)
    if isinstance(value, list) and value and isinstance(value[0], dict) and "name" in value[0]:
        names = [entry.get("name") for entry in value]
        for known in _known_label_sets():
            if known.names == names:
                return known
        from xenoedge.xeno.labels import Label

        try:
            labels = tuple(Label(int(e["id"]), str(e["name"]), tuple(e.get("color", (0, 0, 0)))) for e in value)
        except (KeyError, TypeError, ValueError) as e:
            raise FileFormatError(path, f"label set entries need id, name, color ({e})") from None
        if [lb.id for lb in labels] != list(range(len(labels))):
            raise FileFormatError(path, "label ids must be 0, 1, 2 ... in order")
        return LabelSet(path.parent.name, labels)
    raise FileFormatError(path, "'label_set' must be a label set name or a list of {id, name, color}")


def _known_label_sets() -> list[LabelSet]:
    from xenoedge.xeno.labels import LABEL_SETS

    return list(LABEL_SETS.values())


def _read_simulator_layout(root: Path) -> tuple[list[ImageRecord], LabelSet, tuple[str, ...]]:
    index_path = root / INDEX_FILE
    index = _read_json(index_path)
    try:
        label_set = _label_set_from(index_path, index["label_set"])
        states = tuple(str(s) for s in index.get("states", ()))
        records = []
        for entry in index["images"]:
            meta = {k: v for k, v in entry.items() if k not in ("image_id", "species", "subject", "cube", "labels")}
            states_rel = entry.get("states")
            records.append(
                ImageRecord(
                    image_id=str(entry["image_id"]),
                    species=str(entry["species"]),
                    subject=_subject(entry["subject"]),
                    cube_path=root / entry["cube"],
                    labels_path=root / entry["labels"],
                    states_path=root / states_rel if states_rel else None,
                    meta=meta,
                )
            )
    except (KeyError, TypeError) as e:
        raise FileFormatError(index_path, f"not a simulator index: missing or malformed field {e}") from None
    return records, label_set, states


def _parse_region_states(path: Path, image_id: str, text: str) -> list[list[str]]:
    pairs = []
    for item in filter(None, (p.strip() for p in text.split(";"))):
        label, sep, state = item.partition(":")
        if not sep:
            raise FileFormatError(path, f"image {image_id!r}: region_states item {item!r} is not 'label:state'")
        pairs.append([label.strip(), state.strip()])
    return pairs


def _read_real_layout(root: Path) -> tuple[list[ImageRecord], LabelSet, tuple[str, ...], dict]:
    csv_path, info_path = root / METADATA_FILE, root / DATASET_FILE
    info = _read_json(info_path)
    if "label_set" not in info:
        raise FileFormatError(info_path, "missing 'label_set' (a label set name such as 'surgical', or a list)")
    label_set = _label_set_from(info_path, info["label_set"])
    states = tuple(str(s) for s in info.get("states", ()))
    try:
        with csv_path.open(newline="") as f:
            rows = list(csv.DictReader(f))
            columns = [c.strip() for c in (rows[0].keys() if rows else [])]
    except FileNotFoundError:
        raise FileFormatError(csv_path, "no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise FileFormatError(csv_path, f"not a readable CSV table ({e})") from None
    if not rows:
        raise FileFormatError(csv_path, "the table lists no images")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise FileFormatError(csv_path, f"missing column(s) {', '.join(missing)}; it has: {', '.join(columns)}")
    records = []
    for line, raw in enumerate(rows, start=2):
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        image_id = row["image_id"]
        for column in REQUIRED_COLUMNS:
            if not row[column]:
                raise FileFormatError(csv_path, f"line {line}: empty {column!r}")
        meta: dict = {k: v for k, v in row.items() if k not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}
        if row.get("region_states"):
            meta["region_states"] = _parse_region_states(csv_path, image_id, row["region_states"])
        if row.get("meta"):
            meta.update(_read_json(root / row["meta"]))
            meta["meta"] = row["meta"]
        records.append(
            ImageRecord(
                image_id=image_id,
                species=row["species"],
                subject=_subject(row["subject"]),
                cube_path=root / row["cube"],
                labels_path=root / row["labels"],
                states_path=root / row["states"] if row.get("states") else None,
                meta=meta,
            )
        )
    return records, label_set, states, info


def _check_files(root: Path, records: list[ImageRecord]) -> None:
    ids = [r.image_id for r in records]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise DatasetError(f"{root}: duplicate image ids {_list(duplicates)}")
    missing: list[tuple[Path, str, str]] = []
    for r in records:
        for what, path in (("cube", r.cube_path), ("label mask", r.labels_path), ("state mask", r.states_path)):
            if path is not None and not path.is_file():
                missing.append((path, what, r.image_id))
    if missing:
        path, what, image_id = missing[0]
        more = f"; {len(missing) - 1} more file(s) missing: {_list([str(m[0]) for m in missing[1:]])}"
        raise FileFormatError(path, f"{what} of image {image_id!r} is missing" + (more if len(missing) > 1 else ""))


def _region_states_from_masks(record: ImageRecord, label_set: LabelSet, states: tuple[str, ...]) -> list[list[str]]:
    from xenoedge.devices.formats import read_label_png

    labels = read_label_png(record.labels_path, n_labels=len(label_set.labels))
    if record.states_path is None or not states:
        return [[label_set.names[i], states[0] if states else NO_REGION_STATE] for i in np.unique(labels)]
    state_map = read_label_png(record.states_path)
    pairs = np.unique(labels.astype(np.int32) * 256 + state_map)
    return [[label_set.names[p // 256], states[p % 256] if p % 256 < len(states) else NO_REGION_STATE] for p in pairs]


# ---------------------------------------------------------------- the data set


class SpectralDataset:
    """A folder of spectral images with label masks; use ``SpectralDataset.open``.

    Indexable by position or image id via ``load``; ``len(dataset)`` images.
    """

    def __init__(
        self,
        root: Path,
        layout: str,
        records: list[ImageRecord],
        label_set: LabelSet,
        states: tuple[str, ...],
        wavelengths_nm: np.ndarray,
        sensor: SensorProfile | None,
        cache_dir: Path | None,
        memory_budget_bytes: int,
    ):
        self.root, self.layout = root, layout
        self._records = tuple(records)
        self._by_id = {r.image_id: i for i, r in enumerate(records)}
        self.label_set, self.states = label_set, states
        self.wavelengths_nm = wavelengths_nm
        self.sensor = sensor
        self.cache_dir = cache_dir
        self.memory_budget_bytes = memory_budget_bytes
        self.stats = CacheStats()
        self._memory: OrderedDict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()
        self._memory_bytes = 0
        self._resample = sensor is not None and not (
            sensor.n_bands == wavelengths_nm.size and np.allclose(sensor.wavelengths(), wavelengths_nm, atol=1e-3)
        )
        self.settings_hash = hashlib.sha256(
            json.dumps(
                {
                    "version": PREPROCESSING_VERSION,
                    "sensor": sensor.signature if self._resample else None,
                    "source_nm": [round(float(v), 4) for v in wavelengths_nm],
                    "l1_eps": L1_EPS,
                }
            ).encode()
        ).hexdigest()[:16]

    @classmethod
    def open(
        cls,
        root: str | os.PathLike,
        *,
        sensor: SensorProfile | None = None,
        cache_dir: str | os.PathLike | None = None,
        memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
    ) -> SpectralDataset:
        """Open a data set folder (``index.json`` or ``metadata.csv`` + ``dataset.json``).

        Checks up front: every listed file exists, all cubes have the same bands (read from
        file headers only) and, with ``sensor``, that its bands lie inside the stored range.
        ``cache_dir``: folder for preprocessed ``.npy`` cubes (created). ``memory_budget_bytes``
        bounds the in-memory cache (0 disables it).
        """
        root = Path(root)
        info: dict = {}
        if (root / INDEX_FILE).is_file():
            layout = "simulator"
            records, label_set, states = _read_simulator_layout(root)
        elif (root / METADATA_FILE).is_file():
            layout = "real"
            records, label_set, states, info = _read_real_layout(root)
        else:
            raise FileFormatError(
                root,
                f"not a data set folder: no {INDEX_FILE} (simulator layout) and no {METADATA_FILE} "
                f"(real-data layout, with {DATASET_FILE}); see docs/datasets.md",
            )
        if not records:
            raise DatasetError(f"{root}: the data set lists no images")
        _check_files(root, records)
        wavelengths = cls._common_wavelengths(root, records, info)
        if layout == "real":
            records = [
                r
                if "region_states" in r.meta
                else ImageRecord(
                    r.image_id,
                    r.species,
                    r.subject,
                    r.cube_path,
                    r.labels_path,
                    r.states_path,
                    {**r.meta, "region_states": _region_states_from_masks(r, label_set, states)},
                )
                for r in records
            ]
        if sensor is not None:
            try:
                resampling_matrix(wavelengths, sensor)
            except InvalidCubeError as e:
                raise InvalidCubeError(
                    f"{root}: cannot resample the data set ({wavelengths[0]:.0f}-{wavelengths[-1]:.0f} nm, "
                    f"{wavelengths.size} bands) to sensor {sensor.name!r}: {e}"
                ) from e
        cache = Path(cache_dir) if cache_dir is not None else None
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
        return cls(root, layout, records, label_set, states, wavelengths, sensor, cache, memory_budget_bytes)

    @staticmethod
    def _common_wavelengths(root: Path, records: list[ImageRecord], info: dict) -> np.ndarray:
        probes = {r.image_id: _probe_unchanged(r.cube_path) for r in records}
        counts: dict[int, list[str]] = {}
        for image_id, (n, _) in probes.items():
            counts.setdefault(n, []).append(image_id)
        if len(counts) > 1:
            listed = "; ".join(f"{n} bands: {_list(ids)}" for n, ids in sorted(counts.items()))
            raise DatasetError(f"{root}: cubes of mixed band counts ({listed}); one data set has one band set")
        n_bands = next(iter(counts))
        stored = [(i, wl) for i, (_, wl) in probes.items() if wl is not None]
        if stored:
            first_id, wavelengths = stored[0]
            differ = [i for i, wl in stored if not np.allclose(wl, wavelengths, atol=1e-2)]
            if differ:
                raise DatasetError(f"{root}: cubes {_list(differ)} have other wavelengths than {first_id!r}")
            return wavelengths.astype(np.float32)
        declared = info.get("wavelengths_nm")
        if declared is None:
            raise FileFormatError(root / DATASET_FILE, "the cubes store no wavelengths: add 'wavelengths_nm'")
        wavelengths = np.asarray(declared, dtype=np.float32).ravel()
        if wavelengths.size != n_bands:
            raise DatasetError(f"{root}: {DATASET_FILE} lists {wavelengths.size} wavelengths, the cubes hold {n_bands}")
        return wavelengths

    # ------------------------------------------------------------ access

    @property
    def records(self) -> tuple[ImageRecord, ...]:
        return self._records

    @property
    def wavelengths_out_nm(self) -> np.ndarray:
        """(C,) float32 nm of the bands ``load`` returns (the sensor's when resampling)."""
        return self.sensor.wavelengths() if self._resample and self.sensor else self.wavelengths_nm

    @property
    def n_bands(self) -> int:
        return int(self.wavelengths_out_nm.size)

    def __len__(self) -> int:
        return len(self._records)

    def index_of(self, image_id: str) -> int:
        """Position of ``image_id``; ``UnknownNameError`` (with a suggestion) if absent."""
        try:
            return self._by_id[image_id]
        except KeyError:
            raise UnknownNameError(f"image id in {self.root}", image_id, list(self._by_id)) from None

    def record(self, key: int | str) -> ImageRecord:
        if isinstance(key, str):
            return self._records[self.index_of(key)]
        if not -len(self._records) <= key < len(self._records):
            raise IndexError(f"image index {key} out of range for {len(self._records)} images")
        return self._records[key]

    def image_meta(self, key: int | str) -> dict:
        """The full per-image metadata: ``meta/<id>.json`` (simulator) or the record's meta."""
        record = self.record(key)
        meta_rel = record.meta.get("meta")
        if self.layout == "simulator" and meta_rel:
            return _read_json(self.root / meta_rel)
        return dict(record.meta)

    def records_with_state(self, state: str, label: str | None = None) -> tuple[ImageRecord, ...]:
        """Records with a region of ``state`` (and of organ ``label``); names are checked."""
        return records_with_state(self._records, state, label, states=self.states, label_set=self.label_set)

    def records_with_only_state(self, state: str) -> tuple[ImageRecord, ...]:
        """Records whose labelled regions are all in ``state`` (e.g. physiological-only images)."""
        return records_with_only_state(self._records, state, states=self.states)

    def load(self, key: int | str) -> Sample:
        """The preprocessed image at position ``key`` or with image id ``key``."""
        record = self.record(key)
        cached = self._memory.get(record.image_id)
        if cached is not None:
            self._memory.move_to_end(record.image_id)
            self.stats.memory_hits += 1
            return Sample(*cached, record)
        cube = self._cube(record)
        labels, states = self._masks(record, cube.shape[:2])
        for array in (cube, labels, states):
            if array.flags.writeable:
                array.flags.writeable = False
        self._remember(record.image_id, (cube, labels, states))
        return Sample(cube, labels, states, record)

    # ------------------------------------------------------------ preprocessing and caches

    def _cache_path(self, record: ImageRecord) -> Path | None:
        if self.cache_dir is None:
            return None
        stat = record.cube_path.stat()
        key = hashlib.sha256(f"{self.settings_hash}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in record.image_id)
        return self.cache_dir / f"{safe_id}-{key}.npy"

    def _cube(self, record: ImageRecord) -> np.ndarray:
        path = self._cache_path(record)
        if path is not None and path.is_file():
            try:
                cube = np.load(path, mmap_mode="r", allow_pickle=False)
                self.stats.disk_hits += 1
                return cube
            except (OSError, ValueError):
                path.unlink(missing_ok=True)  # a damaged cache file is rebuilt
        cube = self.preprocess(record)
        self.stats.cube_reads += 1
        if path is not None:
            from xenoedge.atomic import atomic_write

            atomic_write(path, lambda f: np.save(f, cube, allow_pickle=False))
            self.stats.disk_writes += 1
        return cube

    def preprocess(self, record: ImageRecord) -> np.ndarray:
        """Read ``record``'s cube and return it (H, W, C_out) float32, checked, resampled, L1-normalised."""
        from xenoedge.devices.formats import read_cube

        what = f"{record.cube_path} (image {record.image_id!r})"
        cube, _ = read_cube(record.cube_path)
        if cube.ndim != 3 or cube.shape[2] != self.wavelengths_nm.size:
            raise InvalidCubeError(f"{what}: shape {cube.shape}, expected (H, W, {self.wavelengths_nm.size})")
        if not np.issubdtype(cube.dtype, np.floating):
            raise InvalidCubeError(
                f"{what}: {cube.dtype} values look like raw counts; a data set holds calibrated reflectance"
            )
        cube = cube.astype(np.float32, copy=False)
        check_reflectance(cube, what)
        if self._resample and self.sensor is not None:
            cube = resample_cube(cube, self.wavelengths_nm, self.sensor)
        return l1_normalise(cube, out=cube if cube.flags.writeable and cube.dtype == np.float32 else None)

    def _masks(self, record: ImageRecord, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        from xenoedge.devices.formats import read_label_png

        n_labels = len(self.label_set.labels)
        try:
            labels = read_label_png(record.labels_path, n_labels=n_labels)
        except FileFormatError as e:
            raise FileFormatError(
                e.path, f"{e.problem} (image {record.image_id!r}, label set {self.label_set.name!r})"
            ) from None
        if labels.shape != shape:
            raise FileFormatError(
                record.labels_path, f"mask is {labels.shape}, the cube of image {record.image_id!r} is {shape}"
            )
        if record.states_path is None:
            return labels, np.zeros(shape, dtype=np.uint8)
        states = read_label_png(record.states_path)
        if states.shape != shape:
            raise FileFormatError(
                record.states_path, f"state mask is {states.shape}, the cube of image {record.image_id!r} is {shape}"
            )
        bad = np.unique(states[(states >= len(self.states)) & (states != NO_STATE)])
        if bad.size:
            raise FileFormatError(
                record.states_path,
                f"state ids {_list(bad.tolist())} of image {record.image_id!r} are neither below "
                f"{len(self.states)} (states: {', '.join(self.states)}) nor {NO_STATE} (none)",
            )
        return labels, states

    def _remember(self, image_id: str, arrays: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        size = sum(a.nbytes for a in arrays)
        if size > self.memory_budget_bytes:
            return
        self._memory[image_id] = arrays
        self._memory_bytes += size
        while self._memory_bytes > self.memory_budget_bytes:
            _, old = self._memory.popitem(last=False)
            self._memory_bytes -= sum(a.nbytes for a in old)

    @property
    def memory_cache_bytes(self) -> int:
        """Bytes held by the in-memory cache (mmap'd disk-cache arrays count at full size)."""
        return self._memory_bytes

    def clear_memory_cache(self) -> None:
        self._memory.clear()
        self._memory_bytes = 0

    def __repr__(self) -> str:
        return (
            f"SpectralDataset({str(self.root)!r}, layout={self.layout}, images={len(self)}, "
            f"bands={self.n_bands}, label_set={self.label_set.name})"
        )


# ---------------------------------------------------------------- selection and splits


def _as_set(value: str | int | Iterable | None) -> set[str] | None:
    if value is None:
        return None
    if isinstance(value, (str, int)):
        return {str(value)}
    return {str(v) for v in value}


def select(
    records: Iterable[ImageRecord],
    *,
    species: str | Iterable[str] | None = None,
    image_ids: Iterable[str] | None = None,
    subjects: Iterable[tuple[str, int | str]] | None = None,
) -> tuple[ImageRecord, ...]:
    """Records matching every given filter, in input order.

    ``species``: one name or several; ``image_ids``: every id must exist (``UnknownNameError``);
    ``subjects``: (species, subject) pairs.
    """
    records = tuple(records)
    wanted_species = _as_set(species)
    if wanted_species is not None:
        known = sorted({r.species for r in records})
        for name in sorted(wanted_species):
            if name not in known:
                raise UnknownNameError("species in these records", name, known)
    wanted_ids = _as_set(image_ids)
    if wanted_ids is not None:
        known_ids = [r.image_id for r in records]
        for image_id in sorted(wanted_ids - set(known_ids)):
            raise UnknownNameError("image id", image_id, known_ids)
    wanted_subjects = None if subjects is None else {(s, str(n)) for s, n in subjects}
    return tuple(
        r
        for r in records
        if (wanted_species is None or r.species in wanted_species)
        and (wanted_ids is None or r.image_id in wanted_ids)
        and (wanted_subjects is None or r.subject_key in wanted_subjects)
    )


def _check_name(kind: str, name: str | None, known: Sequence[str] | None) -> None:
    if name is not None and known is not None and name not in known:
        raise UnknownNameError(kind, name, list(known))


def records_with_state(
    records: Iterable[ImageRecord],
    state: str,
    label: str | None = None,
    *,
    states: Sequence[str] | None = None,
    label_set: LabelSet | None = None,
) -> tuple[ImageRecord, ...]:
    """Records with at least one region in ``state`` (of organ ``label`` if given).

    With ``states``/``label_set`` the names are checked (``UnknownNameError``), so a typo is
    not mistaken for "no such images".
    """
    _check_name("state", state, states)
    _check_name("label", label, label_set.names if label_set else None)
    return tuple(r for r in records if any(s == state and (label is None or lb == label) for lb, s in r.region_states))


def records_with_only_state(
    records: Iterable[ImageRecord], state: str, *, states: Sequence[str] | None = None
) -> tuple[ImageRecord, ...]:
    """Records whose regions with a state (background: ``"none"``) are all in ``state``."""
    _check_name("state", state, states)
    out = []
    for r in records:
        present = {s for _, s in r.region_states if s != NO_REGION_STATE}
        if present == {state}:
            out.append(r)
    return tuple(out)


def _side_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(n_val, n_test) subjects of ``n``: rounded fractions, at least 1 on a requested side when
    there are enough subjects, and always at least 1 subject left for training."""
    n_test = round(test_fraction * n)
    n_val = round(val_fraction * n)
    if test_fraction > 0 and n_test == 0 and n >= 2:
        n_test = 1
    if val_fraction > 0 and n_val == 0 and n - n_test >= 2:
        n_val = 1
    while n_val + n_test > n - 1 and (n_val or n_test):
        if n_val:
            n_val -= 1
        else:
            n_test -= 1
    return n_val, n_test


def split_by_subject(
    records: Iterable[ImageRecord],
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    stratify_species: bool = True,
) -> Split:
    """Split records into train/val/test by subject; a subject never lands on two sides.

    A subject is a (species, subject) pair. With ``stratify_species`` (default) each species'
    subjects are split on their own (seeded per species, so adding a species leaves the others'
    split unchanged); else all subjects are shuffled together. Per group: ``round(fraction * n)``
    subjects go to val and test, at least one each when the fraction is > 0 and the group has
    enough subjects (test first, then val), and training always keeps at least one.
    Deterministic from ``seed`` and independent of record order; sides keep input order.
    """
    from xenoedge.xeno.seeds import stable_seed

    records = tuple(records)
    for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise DatasetError(f"{name} must be in [0, 1), got {fraction}")
    if val_fraction + test_fraction >= 1.0:
        raise DatasetError(f"val_fraction + test_fraction must be < 1, got {val_fraction + test_fraction}")
    groups: dict[str, list[tuple[str, str]]] = {}
    for key in sorted({r.subject_key for r in records}):
        groups.setdefault(key[0] if stratify_species else "", []).append(key)
    side: dict[tuple[str, str], str] = {}
    for group, keys in sorted(groups.items()):
        rng = np.random.default_rng(stable_seed("split", seed, group) % 2**63)
        order = [keys[i] for i in rng.permutation(len(keys))]
        n_val, n_test = _side_counts(len(order), val_fraction, test_fraction)
        for i, key in enumerate(order):
            side[key] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return Split(
        train=tuple(r for r in records if side[r.subject_key] == "train"),
        val=tuple(r for r in records if side[r.subject_key] == "val"),
        test=tuple(r for r in records if side[r.subject_key] == "test"),
    )


def subject_folds(
    records: Iterable[ImageRecord], k: int, *, seed: int = 0, stratify_species: bool = True
) -> list[tuple[tuple[str, str], ...]]:
    """``k`` disjoint folds of subject keys that together hold every subject exactly once.

    Per species (``stratify_species``) the subjects are shuffled (seeded per species, as in
    ``split_by_subject``) and dealt round-robin, so fold sizes differ by at most one per
    species. Raises ``DatasetError`` when a species has fewer than ``k`` subjects.
    """
    from xenoedge.xeno.seeds import stable_seed

    if k < 2:
        raise DatasetError(f"cross-validation needs at least 2 folds, got {k}")
    groups: dict[str, list[tuple[str, str]]] = {}
    for key in sorted({r.subject_key for r in records}):
        groups.setdefault(key[0] if stratify_species else "", []).append(key)
    folds: list[list[tuple[str, str]]] = [[] for _ in range(k)]
    for group, keys in sorted(groups.items()):
        if len(keys) < k:
            raise DatasetError(f"{group or 'the data set'} has {len(keys)} subjects, fewer than {k} folds")
        rng = np.random.default_rng(stable_seed("folds", seed, group) % 2**63)
        for i, j in enumerate(rng.permutation(len(keys))):
            folds[i % k].append(keys[j])
    return [tuple(sorted(f)) for f in folds]


def fold_split(records: Iterable[ImageRecord], k: int, fold: int, *, val_subjects: int = 1, seed: int = 0) -> Split:
    """Subject-level k-fold cross-validation: fold ``fold`` (0..k-1) of ``subject_folds`` is the
    test side; ``val_subjects`` subjects per species of the next fold ((fold + 1) mod k) are the
    validation side (for checkpoint choice and stopping); the rest trains. Sides keep input order.
    """
    records = tuple(records)
    if not 0 <= fold < k:
        raise DatasetError(f"fold {fold} is not in 0..{k - 1}")
    folds = subject_folds(records, k, seed=seed)
    test = set(folds[fold])
    val: set[tuple[str, str]] = set()
    following = folds[(fold + 1) % k]
    for species in sorted({key[0] for key in following}):
        val.update([key for key in following if key[0] == species][:val_subjects])
    return Split(
        train=tuple(r for r in records if r.subject_key not in test | val),
        val=tuple(r for r in records if r.subject_key in val),
        test=tuple(r for r in records if r.subject_key in test),
    )


__all__ = [
    "DEFAULT_MEMORY_BUDGET_BYTES",
    "NO_STATE",
    "CacheStats",
    "DatasetError",
    "ImageRecord",
    "Sample",
    "SpectralDataset",
    "Split",
    "fold_split",
    "probe_cube",
    "records_with_only_state",
    "records_with_state",
    "select",
    "split_by_subject",
    "subject_folds",
]
