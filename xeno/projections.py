"""Xeno-learning projections: per-organ affine maps from physiological to pathological spectra.

In a source species (pig, rat) each map takes the L1-normalised spectra ``x`` (P, C) of one
organ in a physiological image to those of the same organ in a pathological image
(DESIGN.md section 1)::

    y = x @ W + b        W (C, C): rows = input channels, initialised to the identity
                         b (C,):   initialised to zero

There is no pixel correspondence; the loss compares per-channel statistics over pixels::

    loss = MSE(mean_p(y), mean_p(target)) + MSE(std_p(y), std_p(target))     (MSE over C)

Adam, lr 0.01, 100 steps, one map per (physiological, pathological) image pair. Because ``y``
is affine in ``x``, its per-channel mean and variance follow exactly from the mean (C,) and
covariance (C, C) of the source pixels: ``mean(y) = mean(x) @ W + b``,
``var(y)_c = W[:, c] @ cov(x) @ W[:, c]``. The optimiser therefore works on these moments
(computed in float64, optimised in float32 with fused Adam, all pairs in one batch), which
gives the same gradients as the pixel formulation at a cost independent of the pixel count.
Float32 and fused Adam are 3-4x faster than float64 (the quick experiment's 1,024 crop maps:
~75 -> ~21 s) and move the stored float32 maps by at most ~1e-5 (the quick experiment's ICG
and crop maps: 6e-6 and 2e-6).

Storage: one ``.npz`` without pickles: ``matrices`` (N, C, C + 1) float32 with W in
``[:, :, :C]`` and b in ``[:, :, C]``, ``wavelengths_nm`` (C,), ``losses`` / ``initial_losses``
(N,) and ``meta_json`` (uint8 JSON: organs, states, species, pairs, target labels, ...).
Torch is imported only inside the learning function, so loading and saving work without it.
Method, pairing rule and format: docs/projections.md.

>>> ps = identity_projections(["kidney"], np.linspace(500, 1000, 3))
>>> ps.apply(np.array([[0.2, 0.3, 0.5]], dtype=np.float32), 0).tolist()
[[0.20000000298023224, 0.30000001192092896, 0.5]]

Why one file (~750 lines): a projection set's whole life (organ samples, pairing, learning,
combining, applying, the ``.npz`` format and its checks, the diagnostic plot) shares the
``ProjectionSet`` invariants (channel count, wavelength range, digest) that each step checks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from xenoedge.xeno.seeds import stable_seed

from xenoedge.errors import XenoedgeError

FORMAT_VERSION = 1
WAVELENGTH_TOLERANCE_NM = 0.5
DEFAULT_MAX_PARTNERS = 4  # physiological partners per pathological sample (see pairs_for)
MIN_PIXELS = 20  # fewer pixels of an organ give no usable per-channel std
_ARRAY_KEYS = ("matrices", "wavelengths_nm", "losses", "initial_losses", "meta_json")


class ProjectionError(XenoedgeError):
    """Projections that cannot be learnt, loaded, combined or applied; the message says why."""


@dataclass
class OrganSample:
    """One image's pixels of one organ.

    ``spectra`` (N, C) float32 L1-normalised reflectance of that organ's pixels in that image.
    ``organ`` is the label a map learnt from this sample applies to (the organ's label in a
    physiological image); ``label`` is the label these pixels carry (None: same as ``organ``;
    crops differ: a drought leaf is labelled ``stressed_leaf`` but is organ ``healthy_leaf``).
    ``species`` None means unknown (taken to be the source species).
    """

    image_id: str
    subject: str
    organ: str
    state: str
    spectra: np.ndarray
    species: str | None = None
    label: str | None = None

    @property
    def pixel_label(self) -> str:
        return self.label or self.organ


@dataclass
class ProjectionSet:
    """N affine maps with their provenance; map ``i`` is ``y = x @ W[i] + b[i]``.

    ``matrices`` (N, C, C + 1) float32: ``W = matrices[:, :, :C]`` (rows = input channels),
    ``b = matrices[:, :, C]``. Per map: ``organs`` (label it applies to), ``states``
    (pathological state it imitates), ``species`` (where it was learnt), ``pairs``
    ((physiological image id, pathological image id)), ``target_labels`` (label of the
    pathological pixels), ``losses`` (final) and ``initial_losses`` (identity map).
    """

    matrices: np.ndarray
    organs: list[str]
    states: list[str]
    source_species: str
    wavelengths_nm: np.ndarray
    pairs: list[tuple[str, str]]
    losses: np.ndarray
    initial_losses: np.ndarray
    species: list[str] = field(default_factory=list)
    target_labels: list[str] = field(default_factory=list)
    physiological: str = "physiological"
    settings: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        self.matrices = np.asarray(self.matrices, dtype=np.float32)
        self.wavelengths_nm = np.asarray(self.wavelengths_nm, dtype=np.float64).ravel()
        self.losses = np.asarray(self.losses, dtype=np.float64).ravel()
        self.initial_losses = np.asarray(self.initial_losses, dtype=np.float64).ravel()
        self.pairs = [(str(a), str(b)) for a, b in self.pairs]
        n = len(self.organs)
        if not self.species:
            self.species = [self.source_species] * n
        if not self.target_labels:
            self.target_labels = list(self.organs)
        c = self.wavelengths_nm.size
        if self.matrices.shape != (n, c, c + 1):
            raise ProjectionError(
                f"projection matrices have shape {self.matrices.shape}; expected ({n}, {c}, {c + 1}) "
                f"for {n} maps over {c} bands"
            )
        for name in ("states", "pairs", "species", "target_labels"):
            if len(getattr(self, name)) != n:
                raise ProjectionError(f"{name} lists {len(getattr(self, name))} entries for {n} maps")
        for name in ("losses", "initial_losses"):
            if getattr(self, name).size != n:
                raise ProjectionError(f"{name} holds {getattr(self, name).size} values for {n} maps")

    def __len__(self) -> int:
        return len(self.organs)

    @property
    def n_channels(self) -> int:
        return int(self.wavelengths_nm.size)

    @property
    def weights(self) -> np.ndarray:
        """(N, C, C) float32, rows = input channels."""
        return self.matrices[:, :, : self.n_channels]

    @property
    def bias(self) -> np.ndarray:
        """(N, C) float32."""
        return self.matrices[:, :, self.n_channels]

    def organ_names(self) -> list[str]:
        """Organs that have at least one map, sorted."""
        return sorted(set(self.organs))

    def restricted_to(self, organs: Sequence[str]) -> ProjectionSet:
        """The maps of ``organs`` only (the paper's ``target_labels``), provenance kept.

        Raises ``ProjectionError`` when none of the maps is of those organs.
        """
        keep = [i for i, o in enumerate(self.organs) if o in set(organs)]
        if not keep:
            raise ProjectionError(
                f"no map of {', '.join(sorted(organs))} among the maps of {', '.join(self.organ_names())}"
            )
        return dataclasses.replace(
            self,
            matrices=self.matrices[keep],
            organs=[self.organs[i] for i in keep],
            states=[self.states[i] for i in keep],
            pairs=[self.pairs[i] for i in keep],
            losses=self.losses[keep],
            initial_losses=self.initial_losses[keep],
            species=[self.species[i] for i in keep],
            target_labels=[self.target_labels[i] for i in keep],
        )

    def maps_for(self, organ: str) -> np.ndarray:
        """Indices (int64) of the maps of ``organ`` (empty if it has none)."""
        return np.asarray([i for i, o in enumerate(self.organs) if o == organ], dtype=np.int64)

    def apply(self, spectra: np.ndarray, index: int) -> np.ndarray:
        """Map ``index`` applied to ``spectra`` (..., C): (..., C) float32, not re-normalised."""
        x = np.asarray(spectra, dtype=np.float32)
        if x.shape[-1] != self.n_channels:
            raise ProjectionError(f"spectra have {x.shape[-1]} bands; these projections need {self.n_channels}")
        return x @ self.weights[index] + self.bias[index]

    def wavelength_range(self) -> str:
        wl = self.wavelengths_nm
        return f"{wl.size} bands {wl.min():.0f}-{wl.max():.0f} nm" if wl.size else "0 bands"

    def summary(self) -> list[dict]:
        """One row per (organ, state, species): map count, median initial and final loss."""
        rows = []
        keys = sorted(set(zip(self.organs, self.states, self.species, strict=True)))
        for organ, state, species in keys:
            key = (organ, state, species)
            idx = [i for i in range(len(self)) if (self.organs[i], self.states[i], self.species[i]) == key]
            rows.append(
                {
                    "organ": organ,
                    "state": state,
                    "species": species,
                    "maps": len(idx),
                    "initial_loss": float(np.median(self.initial_losses[idx])),
                    "loss": float(np.median(self.losses[idx])),
                }
            )
        return rows


def identity_projections(organs: Sequence[str], wavelengths_nm: np.ndarray, *, state: str = "none") -> ProjectionSet:
    """One identity map per organ (W = I, b = 0): a neutral set for tests and baselines."""
    c = np.asarray(wavelengths_nm).size
    matrices = np.zeros((len(organs), c, c + 1), dtype=np.float32)
    matrices[:, :, :c] = np.eye(c, dtype=np.float32)
    return ProjectionSet(
        matrices=matrices,
        organs=list(organs),
        states=[state] * len(organs),
        source_species="none",
        wavelengths_nm=wavelengths_nm,
        pairs=[("", "")] * len(organs),
        losses=np.zeros(len(organs)),
        initial_losses=np.zeros(len(organs)),
    )


# ----------------------------------------------------------------------------- pairing


PAIRINGS = ("same-subject", "all")


def pairs_for(
    samples: Sequence[OrganSample],
    physiological: str,
    pathological: str,
    *,
    max_partners: int | None = DEFAULT_MAX_PARTNERS,
    pairing: str = "same-subject",
) -> list[tuple[OrganSample, OrganSample]]:
    """(physiological, pathological) sample pairs of the same organ, one map to learn per pair.

    ``pairing="all"`` (the paper's code, ``htc``): every physiological sample of an organ with
    every pathological sample of that organ (same species where both are known), whatever the
    subject: n_phys x n_path pairs per organ; ``max_partners`` does not apply. Pairs come sorted
    by (organ, pathological image id, physiological image id).

    ``pairing="same-subject"`` (default, the project's earlier rule): every pathological sample
    of state ``pathological`` is paired with physiological samples of the same organ (and same
    species where both are known), preferring the same subject: if that subject has
    physiological samples of the organ, it gets those (sorted by image id); otherwise it gets
    physiological samples of that organ from other subjects of the species, in an order fixed
    by a stable hash of the two image ids (so the choice spreads over subjects and is
    reproducible). At most ``max_partners`` partners each (None: all).
    A sample is never paired with itself. Pairs come sorted by (organ, pathological image id).
    """
    if pairing not in PAIRINGS:
        raise ProjectionError(f"unknown pairing {pairing!r}; choose one of {', '.join(PAIRINGS)}")
    phys = [s for s in samples if s.state == physiological]
    paths = sorted((s for s in samples if s.state == pathological), key=lambda s: (s.organ, s.image_id))
    pairs = []
    if pairing == "all":
        for target in paths:
            partners = sorted(
                (
                    s
                    for s in phys
                    if s.organ == target.organ
                    and s is not target
                    and (s.species is None or target.species is None or s.species == target.species)
                ),
                key=lambda s: s.image_id,
            )
            pairs.extend((source, target) for source in partners)
        return pairs
    for target in paths:
        candidates = [
            s
            for s in phys
            if s.organ == target.organ
            and s is not target
            and (s.species is None or target.species is None or s.species == target.species)
        ]
        same = sorted((s for s in candidates if s.subject == target.subject), key=lambda s: s.image_id)
        if same:
            chosen = same
        else:
            chosen = sorted(candidates, key=lambda s: stable_seed("pair", s.image_id, target.image_id))
        if max_partners is not None:
            chosen = chosen[:max_partners]
        pairs.extend((source, target) for source in chosen)
    return pairs


# ----------------------------------------------------------------------------- learning


def _moments(spectra: np.ndarray, max_pixels: int | None, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(mean (C,), covariance (C, C), std (C,)) in float64 over at most ``max_pixels`` pixels (unbiased)."""
    x = np.asarray(spectra, dtype=np.float64)
    if max_pixels is not None and x.shape[0] > max_pixels:
        x = x[np.sort(rng.choice(x.shape[0], max_pixels, replace=False))]
    mean = x.mean(axis=0)
    centred = x - mean
    cov = centred.T @ centred / max(x.shape[0] - 1, 1)
    return mean, cov, np.sqrt(np.clip(np.diag(cov), 0.0, None))


def _check_sample(sample: OrganSample, n_channels: int) -> None:
    s = sample.spectra
    if s.ndim != 2 or s.shape[1] != n_channels:
        raise ProjectionError(
            f"image {sample.image_id} ({sample.organ}): spectra have shape {s.shape}; expected (N, {n_channels})"
        )
    if not np.isfinite(s).all():
        raise ProjectionError(f"image {sample.image_id} ({sample.organ}): spectra hold NaN or infinite values")


def learn_projections(
    samples: Sequence[OrganSample],
    *,
    state: str,
    physiological: str = "physiological",
    source_species: str,
    wavelengths_nm: np.ndarray,
    organs: Sequence[str] | None = None,
    steps: int = 100,
    lr: float = 0.01,
    seed: int = 0,
    max_pixels: int | None = 20000,
    max_partners: int | None = DEFAULT_MAX_PARTNERS,
    min_pixels: int = MIN_PIXELS,
    pairing: str = "same-subject",
    progress: Callable[[int, int], None] | None = None,
) -> ProjectionSet:
    """Learn one map per (physiological, pathological) pair of ``source_species`` (see module doc).

    ``samples``: organ pixels (``OrganSample``, spectra (N, C) L1-normalised); samples of
    another species (``species`` set and different) are ignored, as are samples with fewer
    than ``min_pixels`` pixels and organs outside ``organs`` (None: all). Pairs: ``pairs_for``
    with ``pairing`` ("same-subject" or "all", the paper's every physiological x pathological pair).
    ``max_pixels`` randomly chosen pixels per sample (seeded by ``seed`` and the image id)
    enter the statistics. ``progress(step, steps)`` is called after each Adam step.
    Raises ``ProjectionError`` when no pair can be formed, naming what the samples hold.
    """
    import torch

    wavelengths_nm = np.asarray(wavelengths_nm, dtype=np.float64).ravel()
    c = wavelengths_nm.size
    if steps < 0 or lr <= 0:
        raise ProjectionError(f"steps must be >= 0 and lr > 0, got steps={steps}, lr={lr}")
    usable = [
        s
        for s in samples
        if (s.species is None or s.species == source_species)
        and (organs is None or s.organ in organs)
        and s.spectra.shape[0] >= min_pixels
    ]
    for s in usable:
        _check_sample(s, c)
    pairs = pairs_for(usable, physiological, state, max_partners=max_partners, pairing=pairing)
    if not pairs:
        have = sorted({(s.organ, s.state) for s in usable})
        raise ProjectionError(
            f"no (physiological, {state}) image pair of the same organ in {source_species}"
            + (f" among organs {', '.join(organs)}" if organs else "")
            + f"; the samples hold (organ, state): {', '.join(f'{o}/{st}' for o, st in have) or 'nothing'}"
        )

    moments: dict[int, tuple[np.ndarray, ...]] = {}
    for sample in {id(s): s for pair in pairs for s in pair}.values():
        rng = np.random.default_rng(stable_seed("projection-pixels", seed, sample.image_id, sample.organ) % 2**63)
        moments[id(sample)] = _moments(sample.spectra, max_pixels, rng)

    def stacked(which: int, side: int) -> torch.Tensor:
        return torch.tensor(np.stack([moments[id(pair[side])][which] for pair in pairs]), dtype=torch.float32)

    src_mean, src_cov = stacked(0, 0), stacked(1, 0)  # (N, C), (N, C, C)
    tgt_mean, tgt_std = stacked(0, 1), stacked(2, 1)

    n = len(pairs)
    weight = torch.eye(c, dtype=torch.float32).repeat(n, 1, 1).requires_grad_(True)
    bias = torch.zeros(n, c, dtype=torch.float32, requires_grad=True)

    def per_map_loss() -> torch.Tensor:
        mean = torch.einsum("nc,ncd->nd", src_mean, weight) + bias
        var = (weight * torch.bmm(src_cov, weight)).sum(dim=1)  # var_d = W[:, d] @ cov @ W[:, d]
        std = var.clamp_min(1e-30).sqrt()
        return ((mean - tgt_mean) ** 2).mean(dim=1) + ((std - tgt_std) ** 2).mean(dim=1)

    optimiser = torch.optim.Adam([weight, bias], lr=lr, fused=True)
    with torch.no_grad():
        initial = per_map_loss().double().numpy()
    for step in range(steps):
        optimiser.zero_grad()
        # The sum keeps each map's gradient equal to that of its own loss: Adam is per element,
        # so the batch is N independent optimisations.
        per_map_loss().sum().backward()
        optimiser.step()
        if progress is not None:
            progress(step + 1, steps)
    with torch.no_grad():
        final = per_map_loss().double().numpy()
        matrices = torch.cat([weight, bias[:, :, None]], dim=2).numpy()

    return ProjectionSet(
        matrices=matrices,
        organs=[p.organ for p, _ in pairs],
        states=[state] * n,
        source_species=source_species,
        wavelengths_nm=wavelengths_nm,
        pairs=[(p.image_id, t.image_id) for p, t in pairs],
        losses=final,
        initial_losses=initial,
        species=[source_species] * n,
        target_labels=[t.pixel_label for _, t in pairs],
        physiological=physiological,
        settings={
            "steps": steps,
            "lr": lr,
            "seed": seed,
            "max_pixels": max_pixels,
            "max_partners": None if pairing == "all" else max_partners,
            "min_pixels": min_pixels,
            "pairing": pairing,
            "optimiser": "Adam (fused, float32)",
            "loss": "MSE(mean) + MSE(std) over channels",
        },
    )


def pixel_loss(ps: ProjectionSet, index: int, source: np.ndarray, target: np.ndarray) -> float:
    """The loss of map ``index`` evaluated on pixels: source (P, C) mapped vs target (Q, C).

    The learner uses moments; this is the definition, for checks (float64, unbiased std).
    """
    y = ps.apply(source, index).astype(np.float64)
    t = np.asarray(target, dtype=np.float64)
    return float(np.mean((y.mean(0) - t.mean(0)) ** 2) + np.mean((y.std(0, ddof=1) - t.std(0, ddof=1)) ** 2))


def combine(sets: Sequence[ProjectionSet]) -> ProjectionSet:
    """Concatenate the maps of several sets (e.g. pig and rat) learnt at the same wavelengths."""
    if not sets:
        raise ProjectionError("combine needs at least one projection set")
    first = sets[0]
    for other in sets[1:]:
        _check_wavelengths(other.wavelengths_nm, first.wavelengths_nm, "combined projection set")
        if other.physiological != first.physiological:
            raise ProjectionError(
                f"cannot combine projections from {first.physiological!r} and from {other.physiological!r} tissue"
            )
    species_order = list(dict.fromkeys(sp for s in sets for sp in s.species))
    return ProjectionSet(
        matrices=np.concatenate([s.matrices for s in sets]),
        organs=[o for s in sets for o in s.organs],
        states=[st for s in sets for st in s.states],
        source_species="+".join(species_order),
        wavelengths_nm=first.wavelengths_nm,
        pairs=[p for s in sets for p in s.pairs],
        losses=np.concatenate([s.losses for s in sets]),
        initial_losses=np.concatenate([s.initial_losses for s in sets]),
        species=[sp for s in sets for sp in s.species],
        target_labels=[t for s in sets for t in s.target_labels],
        physiological=first.physiological,
        settings={"combined_from": [s.source_species for s in sets]},
    )


# ----------------------------------------------------------------------------- storage


def _describe(wavelengths_nm: np.ndarray) -> str:
    wl = np.asarray(wavelengths_nm, dtype=np.float64).ravel()
    return f"{wl.size} bands {wl.min():.1f}-{wl.max():.1f} nm" if wl.size else "0 bands"


def _check_wavelengths(have: np.ndarray, want: np.ndarray, what: str) -> None:
    have = np.asarray(have, dtype=np.float64).ravel()
    want = np.asarray(want, dtype=np.float64).ravel()
    if have.shape != want.shape or np.max(np.abs(have - want), initial=0.0) > WAVELENGTH_TOLERANCE_NM:
        raise ProjectionError(
            f"{what}: projections learnt for {_describe(have)} do not fit data with {_describe(want)} "
            f"(tolerance {WAVELENGTH_TOLERANCE_NM} nm); learn projections for this sensor "
            "(xenoedge xeno learn) or resample the data to the projections' bands"
        )


def _digest(matrices: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(matrices, dtype="<f4").tobytes()).hexdigest()


def save_projections(path: str | os.PathLike, ps: ProjectionSet) -> Path:
    """Write ``ps`` as one ``.npz`` (no pickles), atomically; returns the path."""
    from xenoedge.atomic import atomic_write

    meta = {
        "format": "xenoedge-projections",
        "format_version": FORMAT_VERSION,
        "created_at": ps.created_at,
        "source_species": ps.source_species,
        "physiological": ps.physiological,
        "organs": ps.organs,
        "states": ps.states,
        "species": ps.species,
        "target_labels": ps.target_labels,
        "pairs": [list(p) for p in ps.pairs],
        "settings": ps.settings,
        "matrices_sha256": _digest(ps.matrices),
        "layout": "y = x @ matrices[i, :, :C] + matrices[i, :, C]; x (P, C) L1-normalised",
    }
    arrays = {
        "matrices": np.ascontiguousarray(ps.matrices, dtype="<f4"),
        "wavelengths_nm": ps.wavelengths_nm.astype("<f8"),
        "losses": ps.losses.astype("<f8"),
        "initial_losses": ps.initial_losses.astype("<f8"),
        "meta_json": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
    }
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def load_projections(path: str | os.PathLike, *, wavelengths_nm: np.ndarray | None = None) -> ProjectionSet:
    """Read a file written by ``save_projections``; verifies format, checksum and shapes.

    With ``wavelengths_nm`` (C,) given, the projections must have been learnt at the same
    bands (within 0.5 nm), else ``ProjectionError`` naming the file and both ranges.
    """
    path = Path(path)
    if not path.is_file():
        raise ProjectionError(f"{path}: projection file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in _ARRAY_KEYS if k not in npz.files]
            if missing:
                raise ProjectionError(f"{path}: not a xenoedge projection file (missing {', '.join(missing)})")
            arrays = {k: npz[k] for k in _ARRAY_KEYS}
        meta = json.loads(arrays["meta_json"].tobytes().decode())
    except ProjectionError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, UnicodeDecodeError, io.UnsupportedOperation) as exc:
        raise ProjectionError(f"{path}: corrupt or not a projection file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != "xenoedge-projections":
        raise ProjectionError(f"{path}: not a xenoedge projection file (no projection metadata)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ProjectionError(
            f"{path}: projection format version {version!r}; this xenoedge reads up to {FORMAT_VERSION} (upgrade it)"
        )
    if meta.get("matrices_sha256") != _digest(arrays["matrices"]):
        raise ProjectionError(f"{path}: projection matrices do not match their checksum (corrupt file)")
    try:
        ps = ProjectionSet(
            matrices=arrays["matrices"],
            organs=list(meta["organs"]),
            states=list(meta["states"]),
            source_species=str(meta["source_species"]),
            wavelengths_nm=arrays["wavelengths_nm"],
            pairs=[tuple(p) for p in meta["pairs"]],
            losses=arrays["losses"],
            initial_losses=arrays["initial_losses"],
            species=list(meta["species"]),
            target_labels=list(meta["target_labels"]),
            physiological=str(meta["physiological"]),
            settings=dict(meta.get("settings", {})),
            format_version=version,
            created_at=str(meta["created_at"]),
        )
    except KeyError as exc:
        raise ProjectionError(f"{path}: projection metadata lacks {exc}") from exc
    except ProjectionError as exc:
        raise ProjectionError(f"{path}: {exc}") from exc
    if not np.isfinite(ps.matrices).all():
        raise ProjectionError(f"{path}: projection matrices hold NaN or infinite values")
    if wavelengths_nm is not None:
        _check_wavelengths(ps.wavelengths_nm, wavelengths_nm, str(path))
    return ps


# ----------------------------------------------------------------------------- data


def organ_samples_from_folder(
    root: str | os.PathLike,
    species: str,
    *,
    states: Sequence[str] | None = None,
    organs: Sequence[str] | None = None,
    min_pixels: int = MIN_PIXELS,
) -> tuple[list[OrganSample], np.ndarray]:
    """Organ samples of ``species`` from a simulator folder (docs/simulator.md), and its wavelengths.

    Returns (samples, wavelengths_nm (C,)). One sample per (image, label, state) present in
    the label and state maps, background and state-less pixels (255) excluded; spectra are
    L1-normalised reflectance (N, C) float32. Crop labels that name a state
    (``stressed_leaf``, ``lesion``) belong to organ ``healthy_leaf``.
    """
    from xenoedge.calibration.normalise import l1_normalise
    from xenoedge.devices.formats import read_cube, read_label_png

    from xenoedge.errors import FileFormatError

    root = Path(root)
    index_path = root / "index.json"
    try:
        index = json.loads(index_path.read_text())
        label_names = [entry["name"] for entry in sorted(index["label_set"], key=lambda e: e["id"])]
        state_names = list(index["states"])
        wavelengths = np.asarray(index["wavelengths_nm"], dtype=np.float64)
        entries = index["images"]
    except FileNotFoundError:
        raise ProjectionError(f"{root}: no index.json; expected a folder written by 'xenoedge simulate'") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ProjectionError(f"{index_path}: not a data set index ({type(exc).__name__}: {exc})") from exc
    organ_of = _organ_of_label(label_names, state_names)
    samples = []
    for entry in entries:
        if entry.get("species") != species:
            continue
        image_id = entry["image_id"]
        cube, cube_wl = read_cube(root / entry["cube"])
        if cube.ndim != 3 or cube.shape[2] != wavelengths.size:
            raise FileFormatError(root / entry["cube"], f"cube {cube.shape}; index.json lists {wavelengths.size} bands")
        if cube_wl is not None and np.max(np.abs(np.asarray(cube_wl) - wavelengths)) > WAVELENGTH_TOLERANCE_NM:
            raise FileFormatError(root / entry["cube"], "cube wavelengths differ from index.json")
        labels = read_label_png(root / entry["labels"])
        state_map = read_label_png(root / entry["states"])
        if labels.shape != cube.shape[:2] or state_map.shape != cube.shape[:2]:
            raise FileFormatError(
                root / entry["labels"], f"label/state maps {labels.shape}/{state_map.shape} vs cube {cube.shape[:2]}"
            )
        spectra = l1_normalise(cube.astype(np.float32, copy=False))
        finite = np.isfinite(spectra).all(axis=2)
        codes = np.unique(labels.astype(np.int64) * 256 + state_map)
        for label_id, state_id in ((int(code) // 256, int(code) % 256) for code in codes):
            if label_id == 0 or state_id >= len(state_names) or label_id >= len(label_names):
                continue
            label, state = label_names[label_id], state_names[state_id]
            organ = organ_of.get(label, label)
            if (states is not None and state not in states) or (organs is not None and organ not in organs):
                continue
            mask = (labels == label_id) & (state_map == state_id) & finite
            if np.count_nonzero(mask) < min_pixels:
                continue
            samples.append(
                OrganSample(
                    image_id=image_id,
                    subject=f"{species}_{entry['subject']}",
                    organ=organ,
                    state=state,
                    spectra=np.ascontiguousarray(spectra[mask]),
                    species=species,
                    label=label,
                )
            )
    return samples, wavelengths


def _organ_of_label(label_names: list[str], state_names: list[str]) -> dict[str, str]:
    """Labels that name a state (crop: stressed_leaf, lesion) -> the label of the healthy organ."""
    if "healthy_leaf" not in label_names:
        return {}
    from xenoedge.xeno.leaves import STATE_TO_LABEL

    healthy = STATE_TO_LABEL.get(state_names[0], "healthy_leaf")
    return {label: healthy for state, label in STATE_TO_LABEL.items() if state != state_names[0]}


# ----------------------------------------------------------------------------- picture


def median_spectra(
    ps: ProjectionSet, samples: Sequence[OrganSample], organ: str, *, max_pixels: int = 4000, seed: int = 0
) -> dict[str, np.ndarray] | None:
    """Median L1 spectra (C,) of ``organ``: physiological, pathological, and physiological mapped.

    "mapped" pools every map of the organ applied to (at most ``max_pixels``) physiological
    pixels, re-normalised (blend weight 1). None when the samples lack either state.
    """
    from xenoedge.calibration.normalise import l1_normalise

    idx = ps.maps_for(organ)
    phys = [s.spectra for s in samples if s.organ == organ and s.state == ps.physiological]
    path = [s.spectra for s in samples if s.organ == organ and s.state in set(ps.states[i] for i in idx)]
    if not phys or not path or idx.size == 0:
        return None
    rng = np.random.default_rng(seed)
    x = np.concatenate(phys)
    if x.shape[0] > max_pixels:
        x = x[rng.choice(x.shape[0], max_pixels, replace=False)]
    per_map = max(1, max_pixels // idx.size)
    mapped = [ps.apply(x[rng.choice(x.shape[0], min(per_map, x.shape[0]), replace=False)], i) for i in idx]
    return {
        "physiological": np.median(np.concatenate(phys), axis=0),
        "pathological": np.median(np.concatenate(path), axis=0),
        "mapped": np.median(l1_normalise(np.concatenate(mapped)), axis=0),
    }


def plot_projection_effect(ps: ProjectionSet, samples: Sequence[OrganSample], path: str | os.PathLike) -> Path:
    """Picture (PNG): per organ, median spectra of physiological, pathological and mapped pixels.

    A person sees whether the maps reproduce the pathological change: the dashed "mapped"
    curve should lie on the "pathological" one.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ProjectionError("plotting needs matplotlib: pip install 'xenoedge[sim]'") from exc
    from xenoedge.atomic import temp_path_beside

    path = Path(path)
    panels = [(o, m) for o in ps.organ_names() if (m := median_spectra(ps, samples, o)) is not None]
    cols = max(1, min(3, len(panels)))
    rows = max(1, (len(panels) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    wl = ps.wavelengths_nm
    species = sorted({s.species or ps.source_species for s in samples})
    for ax, (organ, medians) in zip(axes.flat, panels, strict=False):
        n_maps = ps.maps_for(organ).size
        ax.plot(wl, medians["physiological"], color="tab:blue", label="physiological")
        ax.plot(wl, medians["pathological"], color="tab:red", label="pathological")
        ax.plot(wl, medians["mapped"], color="black", linestyle="--", label=f"physiological mapped ({n_maps} maps)")
        ax.set_title(f"{organ}", fontsize=10)
        ax.set_xlabel("wavelength (nm)")
        ax.set_ylabel("L1-normalised reflectance")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    if not panels:
        axes.flat[0].text(0.5, 0.5, "no organ with both states in these samples", ha="center", va="center")
    states = ", ".join(sorted(set(ps.states)))
    fig.suptitle(f"maps from {ps.source_species} ({states}) applied to {', '.join(species)}", fontsize=10)
    fig.tight_layout()
    with temp_path_beside(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90)
        plt.close(fig)
        os.replace(tmp, path)
    return path
