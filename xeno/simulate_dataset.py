"""``xenoedge simulate``: write a simulated data set folder with pictures a person can check.

Layout (documented in docs/simulator.md)::

    OUT/
      index.json            data set spec, label set, wavelengths, one entry per image
      cubes/<id>.npz        (H, W, C) float32 reflectance (+ wavelengths_nm); or
                            <id>_SpecCube.dat (Tivita) / <id>.hdr + .img (ENVI)
      labels/<id>.png       (H, W) uint8 label ids
      states/<id>.png       (H, W) uint8 state index (index.json "states"), 255 = none
      meta/<id>.json        species, subject, seed, regions with state, strength, parameters
      preview/<id>.png      pseudo-RGB | label overlay
      median_spectra.png    median reflectance per label x species x state

Reflectance is what the camera pipeline yields: the simulated raw counts (with exact
shot and read noise, clipping at the sensor's maximum) calibrated with the camera's
dark and white references, so calibration artefacts are part of the data.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from xenoedge.calibration.reflectance import reflectance_from_raw
from xenoedge.xeno import camera_model
from xenoedge.xeno.previews import label_overlay, pseudo_rgb
from xenoedge.xeno.scene import SceneConfig, get_domain, simulate_scene
from xenoedge.xeno.seeds import stable_seed

from xenoedge.errors import UnknownNameError, XenoedgeError
from xenoedge.sensors import get_sensor

CUBE_SUFFIXES = {"npz": ".npz", "tivita": "_SpecCube.dat", "envi": ".hdr"}
SPECTRA_SAMPLES_PER_REGION = 400


@dataclass(frozen=True)
class DatasetSpec:
    """What ``write_dataset`` simulates; every image is reproducible from ``seed``."""

    domain: str = "surgical"
    species: tuple[str, ...] = ("human", "pig", "rat")
    states: tuple[str, ...] | None = None
    subjects_per_species: int = 2
    images_per_subject: int = 2
    sensor: str = "tivita"
    height: int | None = None  # None: the sensor's cube size
    width: int | None = None
    pathological_probability: float = 0.5
    exposure_ms: float = 10.0
    cube_format: str = "npz"
    seed: int = 0
    # How far each species' states depart from the shared relative change (docs/simulator.md,
    # "State deviation"): one value for every species, or {species: value} (species left out keep
    # theirs); None: the species' default (``xenoedge.xeno.species.STATE_DEVIATION``).
    state_deviation: float | dict[str, float] | None = None


#: Bytes on disk per image besides its cube: label, state and preview PNGs and the metadata JSON.
IMAGE_EXTRA_BYTES = 32_000


def _image_size(spec: DatasetSpec, sensor) -> tuple[int, int]:
    """(height, width) of each image: the spec's, else the sensor's cube size."""
    return spec.height or sensor.cube_shape[0], spec.width or sensor.cube_shape[1]


def _image_count(spec: DatasetSpec) -> int:
    return len(spec.species) * spec.subjects_per_species * spec.images_per_subject


def dataset_bytes(spec: DatasetSpec) -> int:
    """About how many bytes ``write_dataset(out, spec)`` writes: float32 cubes plus the per-image extras."""
    sensor = get_sensor(spec.sensor)
    h, w = _image_size(spec, sensor)
    return _image_count(spec) * (h * w * sensor.n_bands * 4 + IMAGE_EXTRA_BYTES)


def check_free_space(folder: Path, needed_bytes: int, what: str) -> None:
    """``XenoedgeError`` unless the file system of ``folder`` (or its nearest existing parent) has
    ``needed_bytes`` free: refused before writing, not with a full disk halfway through."""
    import shutil

    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < needed_bytes:
        raise XenoedgeError(
            f"{folder}: {what} needs about {needed_bytes / 1e9:.2f} GB, only {free / 1e9:.2f} GB are free there; "
            "free some space or write somewhere else"
        )


def image_seed(seed: int, species: str, subject: int, number: int) -> int:
    """Seed of one image, from the data set seed and the image's place in the set."""
    return stable_seed("image", seed, species, subject, number) % 2**31


def _write_json(path: Path, data: object) -> None:
    from xenoedge.atomic import atomic_write

    atomic_write(path, lambda f: f.write(json.dumps(data, indent=2).encode()))


def write_dataset(out: Path, spec: DatasetSpec, progress: Callable[[int, int], None] | None = None) -> dict:
    """Simulate ``spec`` into folder ``out``; returns the index (also written as index.json)."""
    from xenoedge.devices.formats import write_cube, write_label_png, write_rgb_png

    from xenoedge.atomic import deferred_fsync

    domain = get_domain(spec.domain)
    sensor = get_sensor(spec.sensor)
    if spec.cube_format not in CUBE_SUFFIXES:
        raise XenoedgeError(f"unknown cube format {spec.cube_format!r}; choose one of {', '.join(CUBE_SUFFIXES)}")
    if spec.cube_format == "tivita" and sensor.name != "tivita":
        raise XenoedgeError(f"the Tivita cube format holds only the tivita sensor's bands, not {sensor.name!r}")
    for species in spec.species:
        if species not in domain.species:
            raise UnknownNameError(f"{domain.name} species", species, domain.species)
    for state in spec.states or ():
        if state not in domain.states:
            raise UnknownNameError(f"{domain.name} state", state, domain.states)
    h, w = _image_size(spec, sensor)
    check_free_space(out, dataset_bytes(spec), f"simulating {out.name}")
    wavelengths = sensor.wavelengths()
    for folder in ("cubes", "labels", "states", "meta", "preview"):
        (out / folder).mkdir(parents=True, exist_ok=True)

    model = camera_model.make_camera_model(sensor, h, w, spec.seed)
    dark = camera_model.reference_counts(model, "dark", spec.exposure_ms)
    white = camera_model.reference_counts(model, "white", spec.exposure_ms)
    noise_rng = np.random.default_rng([spec.seed, 0x0153])
    samples: dict[tuple[str, str, str], list[np.ndarray]] = defaultdict(list)
    entries = []
    total = _image_count(spec)
    # Each image's files are renamed into place at once but flushed together at the end (~10 files
    # per image); index.json, written after the block, is what marks the data set complete.
    with deferred_fsync():
        for species in spec.species:
            deviation = spec.state_deviation
            if isinstance(deviation, dict):
                deviation = deviation.get(species)  # None: this species' default
            for subject in range(spec.subjects_per_species):
                for number in range(spec.images_per_subject):
                    image_id = f"{species}_s{subject:03d}_{number:03d}"
                    seed = image_seed(spec.seed, species, subject, number)
                    config = SceneConfig(
                        domain=spec.domain,
                        species=species,
                        subject=subject,
                        height=h,
                        width=w,
                        states=spec.states,
                        pathological_probability=spec.pathological_probability,
                        state_deviation=deviation,
                    )
                    scene = simulate_scene(config, seed, wavelengths, sensor.fwhm())
                    mean = camera_model.expected_counts(model, scene.reflectance, spec.exposure_ms)
                    raw = camera_model.sample_raw(
                        model, mean, camera_model.noise_sigma(model, mean), noise_rng, mosaic=False
                    )
                    cube = reflectance_from_raw(raw, dark, white)
                    saturated = int(np.count_nonzero((raw >= sensor.saturation_counts).any(axis=2)))

                    cube_path = out / "cubes" / f"{image_id}{CUBE_SUFFIXES[spec.cube_format]}"
                    write_cube(cube_path, cube, None if spec.cube_format == "tivita" else wavelengths)
                    write_label_png(out / "labels" / f"{image_id}.png", scene.labels)
                    write_label_png(out / "states" / f"{image_id}.png", scene.states)
                    rgb = pseudo_rgb(cube, wavelengths)
                    write_rgb_png(
                        out / "preview" / f"{image_id}.png",
                        np.hstack([rgb, label_overlay(rgb, scene.labels, domain.labels.colors())]),
                    )
                    meta = {
                        **scene.meta,
                        "image_id": image_id,
                        "sensor": sensor.name,
                        "saturated_pixels": saturated,
                    }
                    _write_json(out / "meta" / f"{image_id}.json", meta)
                    _collect_spectra(samples, cube, scene, domain.labels.names, np.random.default_rng(seed))
                    entries.append(
                        {
                            "image_id": image_id,
                            "species": species,
                            "subject": subject,
                            "seed": seed,
                            "cube": str(cube_path.relative_to(out)),
                            "labels": f"labels/{image_id}.png",
                            "states": f"states/{image_id}.png",
                            "meta": f"meta/{image_id}.json",
                            "region_states": sorted({(r["label"], r["state"]) for r in scene.meta["regions"]}),
                        }
                    )
                    if progress:
                        progress(len(entries), total)
        medians = {key: np.median(np.concatenate(v), axis=0) for key, v in samples.items()}
        plot_median_spectra(out / "median_spectra.png", medians, wavelengths, domain.labels.names)

    index = {
        "format_version": 1,
        "spec": asdict(spec),
        "state_ranges": state_ranges_json(),
        "sensor": sensor.name,
        "sensor_signature": sensor.signature,
        "height": h,
        "width": w,
        "wavelengths_nm": wavelengths.tolist(),
        "label_set": domain.labels.to_json(),
        "states": list(domain.states),
        "images": entries,
    }
    _write_json(out / "index.json", index)
    return index


def state_ranges_json() -> dict:
    """The pathological state strengths in force (``xenoedge.xeno.species.STATE_RANGES``) as the
    index stores them, so that data simulated at other strengths can be told apart."""
    from xenoedge.xeno.species import STATE_RANGES

    return json.loads(json.dumps(STATE_RANGES))


def _collect_spectra(samples: dict, cube: np.ndarray, scene, label_names: list[str], rng) -> None:
    """Add up to SPECTRA_SAMPLES_PER_REGION pixel spectra per (label, species, state)."""
    states = scene.meta["states"]
    for region in scene.meta["regions"]:
        if region["label"] in ("background", "soil") or region["state"] not in states:
            continue
        mask = (scene.labels == label_names.index(region["label"])) & (scene.states == states.index(region["state"]))
        ys, xs = np.nonzero(mask)
        if ys.size == 0:
            continue
        pick = rng.choice(ys.size, min(ys.size, SPECTRA_SAMPLES_PER_REGION), replace=False)
        samples[(region["label"], scene.meta["species"], region["state"])].append(cube[ys[pick], xs[pick]])


def plot_median_spectra(path: Path, medians: dict, wavelengths_nm: np.ndarray, label_order: list[str]) -> None:
    """One panel per label: median reflectance, colour = species, line style = state."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise XenoedgeError("plotting needs matplotlib: pip install 'xenoedge[sim]'") from exc
    labels = [name for name in label_order if any(k[0] == name for k in medians)]
    if not labels:
        return
    cols = min(4, len(labels))
    rows = (len(labels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False, sharex=True)
    species = sorted({k[1] for k in medians})
    states = sorted({k[2] for k in medians})
    colours = dict(zip(species, plt.cm.tab10.colors, strict=False))
    styles = dict(zip(states, ["-", "--", ":", "-.", (0, (5, 1))], strict=False))
    for ax, label in zip(axes.flat, labels, strict=False):
        for (lab, sp, st), median in sorted(medians.items()):
            if lab == label:
                ax.plot(wavelengths_nm, median, color=colours[sp], linestyle=styles[st], label=f"{sp} {st}")
        ax.set_title(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(labels) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("wavelength (nm)")
    for ax in axes[:, 0]:
        ax.set_ylabel("reflectance (0-1)")
    handles, names = [], []
    for ax in axes.flat:
        for hnd, nm in zip(*ax.get_legend_handles_labels(), strict=True):
            if nm not in names:
                handles.append(hnd)
                names.append(nm)
    fig.suptitle("median reflectance per class (colour: species, line style: state)")
    fig.tight_layout()
    # beside the panels, never over them or their axis labels (bbox_inches widens the picture)
    fig.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, title="species state")
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
