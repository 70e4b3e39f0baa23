"""Organ separation in simulated data: median spectra apart versus each organ's own spread.

    OPENBLAS_NUM_THREADS=1 python benchmarks/organ_separation.py [--scenes 36] [--json out.json]

For each species (human, pig, rat) the script simulates ``--scenes`` physiological surgical
scenes (``--subjects`` subjects, seeds from ``--seed``) at ``--size`` on the Tivita bands, runs
them through the camera model exactly as ``xenoedge simulate`` does (raw counts with shot and
read noise, calibrated with the camera's dark and white references), L1-normalises every
tissue pixel and collects, per organ, all its pixels over all scenes and subjects.

Per organ: the median spectrum and the within-organ spread, the median (``spread50``) and
75th percentile (``spread75``) of the L1 distance from each pixel to that median. Per organ
pair: ``distance`` = L1 distance between the two median spectra and ``ratio`` =
distance / max(spread75 of either organ). A pair with ratio < 1 sits within pixel noise (the
typical pixel of one organ is farther from its own median than the two medians are apart).
``nearest`` is the share of an organ's pixels whose nearest median (L1) is their own organ's.

Prints, per species, each organ's spread and nearest-median share and the closest pairs,
then a one-line summary per species; ``--json`` writes every number.
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import combinations

import numpy as np
from xenoedge.calibration.normalise import l1_normalise
from xenoedge.calibration.reflectance import reflectance_from_raw
from xenoedge.xeno import camera_model
from xenoedge.xeno.labels import SURGICAL
from xenoedge.xeno.scene import SceneConfig, simulate_scene
from xenoedge.xeno.seeds import stable_seed

from xenoedge.sensors import get_sensor

MAX_PIXELS_PER_SCENE_ORGAN = 1500


def collect(species: str, scenes: int, subjects: int, size: tuple[int, int], seed: int) -> dict[str, np.ndarray]:
    """{organ: (N, C) float32 L1-normalised calibrated pixels} over ``scenes`` physiological scenes."""
    sensor = get_sensor("tivita")
    h, w = size
    model = camera_model.make_camera_model(sensor, h, w, seed)
    dark = camera_model.reference_counts(model, "dark", 10.0)
    white = camera_model.reference_counts(model, "white", 10.0)
    noise_rng = np.random.default_rng([seed, 0x0153])
    pixels: dict[str, list[np.ndarray]] = {}
    for i in range(scenes):
        scene_seed = stable_seed("organ-separation", seed, species, i) % 2**31
        config = SceneConfig(species=species, subject=i % subjects, height=h, width=w, states=("physiological",))
        scene = simulate_scene(config, scene_seed, sensor.wavelengths(), sensor.fwhm())
        mean = camera_model.expected_counts(model, scene.reflectance, 10.0)
        raw = camera_model.sample_raw(model, mean, camera_model.noise_sigma(model, mean), noise_rng, mosaic=False)
        cube = l1_normalise(reflectance_from_raw(raw, dark, white))
        pick = np.random.default_rng([seed, i, 7])
        for label_id in np.unique(scene.labels):
            if label_id == 0:
                continue
            values = cube[scene.labels == label_id]
            if len(values) > MAX_PIXELS_PER_SCENE_ORGAN:
                values = values[pick.choice(len(values), MAX_PIXELS_PER_SCENE_ORGAN, replace=False)]
            pixels.setdefault(SURGICAL.names[label_id], []).append(values)
    return {organ: np.concatenate(v) for organ, v in sorted(pixels.items())}


def separation(pixels: dict[str, np.ndarray]) -> dict:
    organs = sorted(pixels)
    medians = {o: np.median(pixels[o], axis=0) for o in organs}
    per_organ = {}
    stacked = np.stack([medians[o] for o in organs])  # (O, C)
    for k, organ in enumerate(organs):
        x = pixels[organ]
        own = np.abs(x - medians[organ]).sum(axis=1)
        to_all = np.abs(x[:, None, :] - stacked[None]).sum(axis=2)  # (N, O)
        per_organ[organ] = {
            "pixels": len(x),
            "spread50": float(np.median(own)),
            "spread75": float(np.percentile(own, 75)),
            "nearest": float(np.mean(np.argmin(to_all, axis=1) == k)),
        }
    pairs = []
    for a, b in combinations(organs, 2):
        d = float(np.abs(medians[a] - medians[b]).sum())
        noise = max(per_organ[a]["spread75"], per_organ[b]["spread75"])
        pairs.append({"a": a, "b": b, "distance": d, "ratio": d / noise})
    pairs.sort(key=lambda p: p["ratio"])
    return {"organs": per_organ, "pairs": pairs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--species", nargs="+", default=["human", "pig", "rat"])
    parser.add_argument("--scenes", type=int, default=36, help="physiological scenes per species")
    parser.add_argument("--subjects", type=int, default=6, help="subjects per species (scenes rotate over them)")
    parser.add_argument("--size", type=int, nargs=2, default=(96, 128), metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worst", type=int, default=6, help="closest pairs printed per species")
    parser.add_argument("--json", help="write every number here")
    args = parser.parse_args(argv)

    results = {}
    for species in args.species:
        result = separation(collect(species, args.scenes, args.subjects, tuple(args.size), args.seed))
        results[species] = result
        print(f"\n{species}: organ spread (L1 to own median; p50 / p75) and nearest-median share")
        print("| organ | pixels | spread p50 | spread p75 | nearest own median |")
        print("|---|---|---|---|---|")
        for organ, o in result["organs"].items():
            print(f"| {organ} | {o['pixels']} | {o['spread50']:.4f} | {o['spread75']:.4f} | {o['nearest']:.2f} |")
        print(f"\n{species}: closest organ pairs (ratio = distance / larger p75 spread; < 1 = within pixel noise)")
        print("| pair | median distance | ratio |")
        print("|---|---|---|")
        for p in result["pairs"][: args.worst]:
            print(f"| {p['a']} / {p['b']} | {p['distance']:.4f} | {p['ratio']:.2f} |")
    print("\nsummary")
    print("| species | pairs | pairs with ratio < 1 | smallest ratio (pair) | smallest nearest-median share (organ) |")
    print("|---|---|---|---|---|")
    for species, result in results.items():
        worst = result["pairs"][0]
        below = sum(p["ratio"] < 1 for p in result["pairs"])
        organ, o = min(result["organs"].items(), key=lambda kv: kv[1]["nearest"])
        print(
            f"| {species} | {len(result['pairs'])} | {below} | {worst['ratio']:.2f} ({worst['a']} / {worst['b']}) "
            f"| {o['nearest']:.2f} ({organ}) |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
