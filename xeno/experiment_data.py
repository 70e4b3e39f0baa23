"""The xeno experiment's data: the simulated dataset folders in the work folder and the projection
files learnt from them (both skipped when already there, so a run resumes)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from xenoedge.xeno.experiment_protocol import (
    CROP_SEEN,
    CROP_TRANSFERRED,
    DATA_SEED,
    MALPERFUSION,
    SCORING_SEED,
    SPECIES,
    Log,
    Preset,
)


def _folder_jobs(preset: Preset, protocol: str) -> dict[str, tuple]:
    """name -> (domain, species, states, images per subject, pathological probability)."""
    jobs = {"surgical_physiological": ("surgical", SPECIES, ("physiological",), preset.images_phys, 0.0)}
    sources = preset.projection_images or preset.images_path
    for state in MALPERFUSION:
        # scored on human only; pig and rat images of the state only feed projection learning
        jobs[f"surgical_{state}"] = ("surgical", ("human",), ("physiological", state), preset.images_path, 1.0)
        jobs[f"source_{state}"] = ("surgical", ("pig", "rat"), ("physiological", state), sources, 1.0)
    icg_species = SPECIES if protocol == "legacy" else ("pig", "rat")
    jobs["surgical_icg"] = ("surgical", icg_species, ("physiological", "icg"), preset.images_path, 1.0)
    if preset.images_phys_scoring:
        jobs["surgical_physiological_scoring"] = (
            "surgical", ("human",), ("physiological",), preset.images_phys_scoring, 0.0, SCORING_SEED,
        )  # fmt: skip
    crops = (preset.source_crop, preset.target_crop)
    jobs["crop_seen"] = ("crop", crops, CROP_SEEN, preset.images_phys, 0.5)
    for state in CROP_TRANSFERRED:
        jobs[f"crop_{state}"] = ("crop", crops, ("healthy", state), max(2, preset.images_path // 3), 1.0)
    return jobs


Call = tuple[Callable, tuple]  # a function and its arguments, picklable for a worker process
Done = Callable[[int], None]  # told the index of each call whose result is in, in call order
RunAll = Callable[[list[Call], Done | None], list]


def run_in_process(calls: list[Call], done: Done | None = None) -> list:
    """Each call in turn, in this process: the results in order (``RunAll`` without workers)."""
    return _in_order((function(*args) for function, args in calls), done)


def _in_order(results: Iterable, done: Done | None) -> list:
    """Drain ``results`` (lazy: each is computed or awaited when reached), telling ``done`` each index."""
    collected = []
    for i, result in enumerate(results):
        collected.append(result)
        if done:
            done(i)
    return collected


@contextmanager
def worker_pool(workers: int) -> Iterator[RunAll]:
    """A ``RunAll`` on ``workers`` spawned processes (in this process when ``workers`` <= 1); the
    pool lives for the ``with`` block, so the simulation, the projections and the trainings share it.
    Results come back in call order, whatever order the workers finish in."""
    if workers <= 1:
        yield run_in_process
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield lambda calls, done=None: _in_order(
            (f.result() for f in [pool.submit(function, *args) for function, args in calls]), done
        )
    except BaseException:
        # Ctrl-C or a failed job: drop the queued jobs instead of running them all to the end.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _largest_first(calls: list[tuple[int, Call]]) -> list[Call]:
    return [call for _, call in sorted(calls, key=lambda c: -c[0])]


def simulate_folders(
    work: Path,
    preset: Preset,
    protocol: str,
    log: Log,
    run_all: RunAll = run_in_process,
    state_deviation: float | dict[str, float] | None = None,
) -> dict[str, Path]:
    """Simulate the data set folders the work folder lacks (on ``run_all``'s workers, largest
    first) at ``state_deviation`` (one value, {species: value}, or None: the species' defaults);
    returns every folder by name.
    A folder simulated at another deviation is refused (``XenoedgeError``): use another work folder."""
    from xenoedge.xeno.simulate_dataset import DatasetSpec, check_free_space, dataset_bytes, write_dataset

    folders, calls, needed = {}, [], 0
    for name, (domain, species, states, images, p_path, *seed) in _folder_jobs(preset, protocol).items():
        folder = work / "data" / name
        if (folder / "index.json").is_file():
            _check_simulation(folder, state_deviation)
        else:
            log(f"simulating {name}: {len(species)} species x {preset.subjects} subjects x {images} images")
            spec = DatasetSpec(
                domain=domain,
                species=species,
                states=states,
                subjects_per_species=preset.subjects,
                images_per_subject=images,
                height=preset.height,
                width=preset.width,
                pathological_probability=p_path,
                seed=seed[0] if seed else DATA_SEED,
                state_deviation=state_deviation,
            )
            calls.append((len(species) * images, (write_dataset, (folder, spec))))
            needed += dataset_bytes(spec)
        folders[name] = folder
    # All at once, before any: the data sets are written side by side (the quick preset's ~3 GB).
    check_free_space(work, needed, f"simulating the experiment's {len(calls)} data sets")
    run_all(_largest_first(calls), None)
    return folders


def parse_state_deviation(text: str) -> float | dict[str, float]:
    """``"2"`` -> 2.0 (every species); ``"pig=2,rat=2"`` -> {"pig": 2.0, "rat": 2.0} (the others
    keep their default). Values must be numbers >= 0 and species known; ``XenoedgeError`` otherwise."""
    from xenoedge.xeno.species import check_species

    from xenoedge.errors import XenoedgeError

    def number(value: str, what: str) -> float:
        try:
            parsed = float(value)
            if parsed >= 0.0:  # also refuses nan
                return parsed
        except ValueError:
            pass
        raise XenoedgeError(f"state deviation{what}: {value!r} is not a number >= 0")

    if "=" not in text:
        return number(text.strip(), "")
    chosen = {}
    for part in text.split(","):
        species, _, value = part.partition("=")
        species = check_species(species.strip())
        chosen[species] = number(value.strip(), f" of {species}")
    return chosen


def _check_simulation(folder: Path, state_deviation: float | dict[str, float] | None) -> None:
    """Refuse a surgical data set simulated at another state deviation or other state strengths."""
    import json

    from xenoedge.xeno.simulate_dataset import state_ranges_json

    from xenoedge.errors import XenoedgeError

    index = json.loads((folder / "index.json").read_text())
    stored = index.get("spec", {}).get("state_deviation")
    if stored != state_deviation:
        raise XenoedgeError(
            f"{folder}: simulated at state deviation {stored} (None: the default), this run asks for "
            f"{state_deviation}; use another work folder"
        )
    if index.get("spec", {}).get("domain") == "surgical" and index.get("state_ranges") != state_ranges_json():
        stored_ranges = index.get("state_ranges") or "not recorded: before 2026-12-07"
        raise XenoedgeError(
            f"{folder}: simulated with other state strengths ({stored_ranges}) than "
            "xenoedge.xeno.species.STATE_RANGES now; use another work folder"
        )


def learn_projection_file(
    folders: list[Path],
    species: str,
    states: tuple[str, ...],
    healthy: str,
    steps: int,
    out: Path,
    log: Log,
    *,
    organs: tuple[str, ...] | None = None,
    pairing: str = "same-subject",
    max_images: int | None = None,
    max_subjects: int | None = None,
) -> Path:
    """Maps healthy -> each state in ``species``; states without any image pair are skipped (logged).

    ``max_images``: per (subject, state), only the first images (by id) enter, as the paper's
    code learns from a few subjects' images; with ``pairing="all"`` the map count grows as
    n_phys x n_path.
    """
    from xenoedge.xeno.projections import (
        ProjectionError,
        combine,
        learn_projections,
        organ_samples_from_folder,
        save_projections,
    )

    if out.is_file():
        return out
    samples, wavelengths = [], None
    for folder in folders:
        found, wavelengths = organ_samples_from_folder(folder, species)
        samples.extend(found)
    if max_subjects is not None:
        chosen = sorted({s.subject for s in samples}, key=lambda v: (len(str(v)), str(v)))[:max_subjects]
        samples = [s for s in samples if s.subject in chosen]
    if max_images is not None:
        kept: dict[tuple[str, str], list[str]] = {}
        for s in sorted(samples, key=lambda s: s.image_id):
            ids = kept.setdefault((s.subject, s.state), [])
            if s.image_id not in ids and len(ids) < max_images:
                ids.append(s.image_id)
        samples = [s for s in samples if s.image_id in kept[(s.subject, s.state)]]
    sets = []
    for state in states:
        try:
            sets.append(
                learn_projections(
                    samples,
                    state=state,
                    physiological=healthy,
                    source_species=species,
                    wavelengths_nm=wavelengths,
                    steps=steps,
                    organs=organs,
                    pairing=pairing,
                    max_partners=None if pairing == "all" else 4,
                )
            )
        except ProjectionError as exc:
            log(f"{species}: no maps for {state}: {exc}")
    if not sets:
        raise ProjectionError(f"{species}: no projection could be learnt for any of {', '.join(states)}")
    projections = combine(sets)
    log(f"{species}: {len(projections)} maps for {', '.join(states)} ({pairing} pairing)")
    return save_projections(out, projections)


def learn_projection_file_quietly(
    folders: list[Path], species: str, states: tuple[str, ...], healthy: str, steps: int, out: Path, **options
) -> tuple[Path, list[str]]:
    """``learn_projection_file`` without ``log``, for a worker process: (the file, the lines it
    would have logged), so that the caller logs them."""
    lines: list[str] = []
    return learn_projection_file(folders, species, states, healthy, steps, out, lines.append, **options), lines
