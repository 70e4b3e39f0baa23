"""Simulated spectral scenes with ground truth: layout + optics + shading + highlights.

``simulate_scene`` returns the *apparent* reflectance a perfect camera would measure,
(H, W, C) float32 at the requested bands, with labels, a state map and metadata. The
camera model (``xenoedge.xeno.camera_model``) turns it into raw counts.

Speed comes from caching spectra per region: each region gets a small table of K
variants (parameters along a latent that varies smoothly in space), computed on the
1 nm grid and integrated to the sensor's bands once; pixels then only gather from the
table and get multiplied by shading. Every draw comes from one seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import cv2
import numpy as np
from xenoedge.calibration.bands import band_response_matrix
from xenoedge.xeno import species as tissue_tables
from xenoedge.xeno.fields import radial_falloff, smooth_field
from xenoedge.xeno.labels import CROP, SURGICAL, LabelSet
from xenoedge.xeno.layout import Layout, RegionSpec, crop_layout, surgical_layout
from xenoedge.xeno.materials import material_reflectance
from xenoedge.xeno.optics import GRID_NM, tissue_reflectance
from xenoedge.xeno.seeds import stable_seed

from xenoedge.errors import UnknownNameError

VARIANTS_PER_REGION = 12
NO_STATE = 255  # state-map value for soil, drapes and instruments


@dataclass(frozen=True)
class Domain:
    name: str
    labels: LabelSet
    species: tuple[str, ...]
    states: tuple[str, ...]  # states[0] is the healthy/physiological one


def _crop_domain() -> Domain:
    from xenoedge.xeno.leaves import CROP_STATES, CROPS

    return Domain("crop", CROP, tuple(CROPS), tuple(CROP_STATES))


def get_domain(name: str) -> Domain:
    """``surgical`` (human, pig, rat organs) or ``crop`` (crops as species)."""
    if name == "surgical":
        return Domain("surgical", SURGICAL, tissue_tables.SPECIES, tissue_tables.STATES)
    if name == "crop":
        return _crop_domain()
    raise UnknownNameError("domain", name, ["crop", "surgical"])


@dataclass(frozen=True)
class SceneConfig:
    """What to simulate. ``states`` are the states regions may take (first = healthy one);
    a tissue/leaf region is pathological with ``pathological_probability``."""

    domain: str = "surgical"
    species: str = "human"
    subject: int = 0
    height: int = 480
    width: int = 640
    states: tuple[str, ...] | None = None  # None: all states of the domain
    pathological_probability: float = 0.5
    specular: bool = True
    # How far each species' states depart from the shared relative change
    # (xenoedge.xeno.species.state_change); None: the species' documented default.
    state_deviation: float | None = None
    # Surgical: the organ group to show (first = target organ); None: drawn from
    # xenoedge.xeno.layout.SURGICAL_ARRANGEMENTS.
    arrangement: tuple[str, ...] | None = None


@dataclass
class Scene:
    reflectance: np.ndarray  # (H, W, C) float32 apparent reflectance
    labels: np.ndarray  # (H, W) uint8 label ids
    states: np.ndarray  # (H, W) uint8 index into domain.states, NO_STATE where none applies
    wavelengths_nm: np.ndarray  # (C,)
    meta: dict = field(default_factory=dict)


def _subject_seed(species: str, subject: int) -> int:
    return stable_seed("subject", species, subject)


def _variant_latent() -> np.ndarray:
    return np.linspace(-1.0, 1.0, VARIANTS_PER_REGION)


def _tissue_table(
    region: RegionSpec, species: str, subject: int, strength: dict, deviation: float | None = None
) -> tuple[np.ndarray, dict]:
    """K physiological variants along the organ's texture latent, then the state's relative
    change (xenoedge.xeno.species.state_change) applied to all of them."""
    organ = region.what
    base = tissue_tables.subject_params(species, organ, _subject_seed(species, subject))
    amp = tissue_tables.ORGAN_TEXTURE[organ][1]
    variants = [
        base.replace(
            sto2=float(np.clip(base.sto2 + 0.04 * amp * t, 0.02, 0.98)),
            blood=base.blood * (1 + 0.15 * amp * t),
            scatter_a=base.scatter_a * (1 + 0.05 * amp * t),
            layer_mm=base.layer_mm * (1 + 0.25 * amp * t),
            under_blood=base.under_blood * (1 + 0.15 * amp * t),
        )
        for t in _variant_latent()
    ]
    table = tissue_reflectance(variants)
    d = tissue_tables.state_deviation(species) if deviation is None else float(deviation)
    if region.state != "physiological":
        change = tissue_tables.state_change(base, organ, region.state, strength, species, d)
        table = tissue_tables.apply_change(table, change)
    params = dataclasses.asdict(tissue_tables.apply_state(base, region.state, strength, species))
    params["state_deviation"] = d
    return table, params


def _leaf_table(region: RegionSpec, subject: int, strength: float) -> tuple[np.ndarray, dict]:
    from xenoedge.xeno import leaves

    traits = leaves.plant_traits(region.what, np.random.default_rng(_subject_seed(region.what, subject)))
    if region.state != "healthy":
        traits = leaves.apply_state(traits, region.state, strength)
    spectra = [
        leaves.leaf_reflectance(
            dataclasses.replace(traits, cab=traits.cab * (1 + 0.1 * t), cw=traits.cw * (1 + 0.08 * t)),
            GRID_NM,
        )
        for t in _variant_latent()
    ]
    return np.asarray(spectra, dtype=np.float64), dataclasses.asdict(traits)


def _soil_table(moisture: float) -> tuple[np.ndarray, dict]:
    from xenoedge.xeno import leaves

    spectra = [leaves.soil_reflectance(GRID_NM, float(np.clip(moisture + 0.15 * t, 0, 1))) for t in _variant_latent()]
    return np.asarray(spectra, dtype=np.float64), {"moisture": moisture}


def _material_table(material: str) -> tuple[np.ndarray, dict]:
    base = material_reflectance(material, GRID_NM)
    return np.asarray([base * (1 + 0.05 * t) for t in _variant_latent()]), {"material": material}


def _assign_states(layout: Layout, domain: Domain, states: tuple[str, ...], p_path: float, rng) -> None:
    pathological = [s for s in states if s != domain.states[0]]
    for region in layout.regions:
        if region.kind == "tissue":
            region.state = domain.states[0]
            if pathological and rng.random() < p_path:
                region.state = str(rng.choice(pathological))


def _shading(layout: Layout, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32 illumination not seen by the white reference: light fall-off across
    the field, gentle surface undulation, and dark creases along region boundaries."""
    h, w = layout.region_map.shape
    side = min(h, w)
    centre = (h * rng.uniform(0.3, 0.7), w * rng.uniform(0.3, 0.7))
    light = radial_falloff(h, w, centre, rng.uniform(0.25, 0.5))
    light *= 1.0 + 0.08 * smooth_field(h, w, 0.4 * side, rng)
    rm = layout.region_map.astype(np.float32)
    edges = (cv2.Laplacian(rm, cv2.CV_32F) != 0).astype(np.uint8)
    dist = cv2.distanceTransform(1 - edges, cv2.DIST_L2, 3)
    light *= 1.0 - 0.35 * np.exp(-dist / max(1.5, 0.008 * side))
    return np.clip(light, 0.2, 1.1).astype(np.float32)


def _specular(layout: Layout, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32 spectrally flat specular reflectance on wet tissue and steel."""
    h, w = layout.region_map.shape
    shiny_regions = np.array([r.kind == "tissue" or r.what == "metal" for r in layout.regions])
    shiny = shiny_regions[layout.region_map]
    spots = smooth_field(h, w, 0.02 * min(h, w), rng)
    return np.where(shiny, np.clip((spots - 2.7) * 1.5, 0.0, 1.5), 0.0).astype(np.float32)


def simulate_scene(
    config: SceneConfig,
    seed: int,
    wavelengths_nm: np.ndarray,
    fwhm_nm: np.ndarray,
) -> Scene:
    """One reproducible scene at the given bands (C,) with FWHM (C,) in nm."""
    domain = get_domain(config.domain)
    if config.species not in domain.species:
        raise UnknownNameError(f"{domain.name} species", config.species, domain.species)
    states = config.states or domain.states
    for s in states:
        if s not in domain.states:
            raise UnknownNameError(f"{domain.name} state", s, domain.states)
    rng = np.random.default_rng(seed)
    h, w = config.height, config.width

    if domain.name == "surgical":
        layout = surgical_layout(h, w, rng, config.arrangement)
        _assign_states(layout, domain, states, config.pathological_probability, rng)
    else:
        layout = crop_layout(
            h,
            w,
            config.species,
            rng,
            tuple(s for s in states if s != "healthy"),
            config.pathological_probability,
        )

    tables, region_meta = [], []
    moisture = float(rng.uniform(0.1, 0.9))
    for i, region in enumerate(layout.regions):
        if region.kind == "tissue":
            strength = tissue_tables.draw_state_strength(region.state, rng)
            table, params = _tissue_table(region, config.species, config.subject, strength, config.state_deviation)
        elif region.kind in ("leaf", "lesion"):
            strength = {"strength": float(rng.uniform(0.6, 1.0))} if region.state != "healthy" else {}
            table, params = _leaf_table(region, config.subject, strength.get("strength", 0.0))
        elif region.kind == "soil":
            strength, (table, params) = {}, _soil_table(moisture)
        else:
            strength, (table, params) = {}, _material_table(region.what)
        tables.append(table)
        region_meta.append(
            {
                "region": i,
                "label": region.label,
                "kind": region.kind,
                "what": region.what,
                "state": region.state,
                "strength": strength,
                "params": params,
                "pixels": int(np.count_nonzero(layout.region_map == i)),
            }
        )

    band_matrix = band_response_matrix(GRID_NM, wavelengths_nm, fwhm_nm)
    band_table = (np.concatenate(tables, axis=0) @ band_matrix).astype(np.float32)  # (R*K, C)

    variant = smooth_field(h, w, 0.15 * min(h, w), rng)
    # Tissue varies at its organ's own texture scale (xenoedge.xeno.species.ORGAN_TEXTURE).
    for i, region in enumerate(layout.regions):
        if region.kind == "tissue":
            inside = layout.region_map == i
            cell = tissue_tables.ORGAN_TEXTURE[region.what][0] * min(h, w)
            variant[inside] = smooth_field(h, w, max(cell, 1.0), rng)[inside]
    variant_index = np.clip(np.rint((variant * 0.3 + 0.5) * (VARIANTS_PER_REGION - 1)), 0, VARIANTS_PER_REGION - 1)
    table_index = layout.region_map * VARIANTS_PER_REGION + variant_index.astype(np.int32)
    reflectance = np.take(band_table, table_index, axis=0)  # (H, W, C)

    texture = 1.0 + 0.03 * smooth_field(h, w, 0.006 * min(h, w), rng)
    reflectance *= (_shading(layout, rng) * texture)[..., None]
    if config.specular:
        spec = _specular(layout, rng)
        ys, xs = np.nonzero(spec)
        reflectance[ys, xs, :] += spec[ys, xs, None]

    label_ids = np.array([domain.labels.id_of(r.label) for r in layout.regions], dtype=np.uint8)
    state_ids = np.array(
        [domain.states.index(r.state) if r.state in domain.states else NO_STATE for r in layout.regions],
        dtype=np.uint8,
    )
    meta = {
        "domain": domain.name,
        "species": config.species,
        "subject": config.subject,
        "seed": seed,
        "height": h,
        "width": w,
        "label_set": domain.labels.name,
        "states": list(domain.states),
        "regions": region_meta,
    }
    return Scene(
        reflectance=reflectance,
        labels=label_ids[layout.region_map],
        states=state_ids[layout.region_map],
        wavelengths_nm=np.asarray(wavelengths_nm, dtype=np.float32),
        meta=meta,
    )
