"""Analysis of the xeno experiment's scored rows: the tables with bootstrap intervals and the
``summary`` object of ``results.json``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from xenoedge.xeno.experiment_protocol import (
    CROP_STRESS_LABEL,
    CROP_TRANSFERRED,
    ICG_LABELS,
    MALPERFUSION,
    MALPERFUSION_LABELS,
    N_BOOT,
    SPECIES,
    Preset,
    protocol_arms,
)


class _Rows(list):
    """Scored rows (a list, in scoring order) that also keep them grouped by (arm, data), so
    that each of the analysis's ~80 selections scans one group, not every row (~10 s -> <1 s)."""

    def __init__(self, rows):
        super().__init__(rows)
        self.groups: dict[tuple, list[dict]] = {}
        for r in self:
            self.groups.setdefault((r.get("arm"), r.get("data")), []).append(r)


def _select(rows, **where):
    labels = where.pop("labels", None)
    if isinstance(rows, _Rows) and "arm" in where and "data" in where:
        rows = rows.groups.get((where["arm"], where["data"]), [])
    return [
        r for r in rows if all(r.get(k) == v for k, v in where.items()) and (labels is None or r["label"] in labels)
    ]


def _cell(rows, seed: int = 0) -> dict:
    from xenoedge.xeno.evaluate import subject_bootstrap

    return subject_bootstrap({"x": rows}, n_boot=N_BOOT, seed=seed)


def _gap(base_path, xeno_path, base_phys) -> Callable:
    def combine(v):
        with np.errstate(invalid="ignore", divide="ignore"):
            return (v[xeno_path] - v[base_path]) / (v[base_phys] - v[base_path])

    return combine


@dataclass
class _Analysis:
    rows: list
    model: str
    tables: dict = field(default_factory=dict)


def analyse(rows: list[dict], preset: Preset, protocol: str, runs: list[dict]) -> dict:
    """Tables with intervals and the ``summary`` object from the scored rows."""
    from xenoedge.xeno.evaluate import subject_bootstrap

    paper = protocol == "paper"
    main = _Rows(r for r in rows if r["model"] == preset.model)
    out: dict = {}

    # Part 1: transfer matrix (baselines on physiological tissue of every species).
    transfer = {}
    for source in SPECIES:
        transfer[source] = {t: _cell(_select(main, arm=source, data="physiological", species=t)) for t in SPECIES}
    out["part1_transfer"] = transfer
    same = [transfer[s][s]["value"] for s in SPECIES]
    cross = [transfer[s][t]["value"] for s in SPECIES for t in SPECIES if s != t]
    transfer_summary = {
        "in_species": float(np.mean(same)),
        "cross_species": float(np.mean(cross)),
        "relative_drop": float(1 - np.mean(cross) / np.mean(same)),
    }

    # Part 2: pathology. Scored labels per state: the labels the maps act on (paper) or all (legacy).
    human_arms = [
        a.name for a in protocol_arms(protocol) if a.target == "human" and a.sources and a.name not in preset.skip_arms
    ]
    scored = {s: (MALPERFUSION_LABELS if paper else None) for s in MALPERFUSION} | {
        "icg": ICG_LABELS if paper else None
    }
    part2: dict = {}
    for arm in ["human", *human_arms]:
        part2[arm] = {"physiological": _cell(_select(main, arm=arm, data="physiological", species="human"))}
        for state in MALPERFUSION + (() if paper else ("icg",)):
            part2[arm][state] = _cell(_select(main, arm=arm, data=state, labels=scored[state]))
    out["part2_human"] = part2
    gap: dict = {}
    recoveries = {}
    for arm in human_arms:
        recoveries[arm] = {}
        for state in MALPERFUSION + (() if paper else ("icg",)):
            groups = {
                "base_path": _select(main, arm="human", data=state, labels=scored[state]),
                "xeno_path": _select(main, arm=arm, data=state, labels=scored[state]),
                "base_phys": _select(main, arm="human", data="physiological", species="human", labels=scored[state]),
            }
            recoveries[arm][state] = subject_bootstrap(groups, _gap("base_path", "xeno_path", "base_phys"),
                                                       n_boot=N_BOOT)  # fmt: skip

    def mean_recovery(arm: str) -> float:
        values = [v["value"] for v in recoveries[arm].values() if np.isfinite(v["value"])]
        return float(np.mean(values)) if values else -np.inf

    best = max(human_arms, key=mean_recovery)
    for state, value in recoveries[best].items():
        gap[state] = {**value, "arm": best}
    part2_icg: dict = {}
    if paper:
        icg_groups = {}
        for target, arm in (("pig", "pig+rat"), ("rat", "rat+pig")):
            part2_icg[target] = {
                "baseline": {
                    "physiological": _cell(_select(main, arm=target, data="physiological", species=target)),
                    "icg": _cell(_select(main, arm=target, data="icg", labels=ICG_LABELS)),
                },
                arm: {
                    "physiological": _cell(_select(main, arm=arm, data="physiological", species=target)),
                    "icg": _cell(_select(main, arm=arm, data="icg", labels=ICG_LABELS)),
                },
            }
            icg_groups[f"{target}:base_path"] = _select(main, arm=target, data="icg", labels=ICG_LABELS)
            icg_groups[f"{target}:xeno_path"] = _select(main, arm=arm, data="icg", labels=ICG_LABELS)
            icg_groups[f"{target}:base_phys"] = _select(
                main, arm=target, data="physiological", species=target, labels=ICG_LABELS
            )

        def icg_combine(v):
            ratios = [_gap(f"{t}:base_path", f"{t}:xeno_path", f"{t}:base_phys")(v) for t in ("pig", "rat")]
            return np.mean(ratios, axis=0)

        gap["icg"] = {**subject_bootstrap(icg_groups, icg_combine, n_boot=N_BOOT), "arm": "pig+rat, rat+pig (mean)"}
        for target in ("pig", "rat"):
            part2_icg[target]["gap_recovery"] = subject_bootstrap(
                {k.split(":")[1]: v for k, v in icg_groups.items() if k.startswith(target)},
                _gap("base_path", "xeno_path", "base_phys"),
                n_boot=N_BOOT,
            )
    out["part2_icg"] = part2_icg
    out["gap_recovery_by_arm"] = recoveries

    base_phys = _select(main, arm="human", data="physiological", species="human")
    drop = subject_bootstrap(
        {"base": base_phys, "xeno": _select(main, arm=best, data="physiological", species="human")},
        lambda v: 100 * (v["base"] - v["xeno"]),
        n_boot=N_BOOT,
    )
    drop["arm"] = best

    # Rows of the other models: the per-pixel model, and unet-edge where the main model is another.
    out["extra_rows"] = {}
    for model, arms_of in (("pixel-mlp", preset.pixel_arms), ("unet-edge", preset.edge_arms)):
        scored_rows = _Rows(r for r in rows if r["model"] == model and model != preset.model)
        for arm in arms_of:
            if _select(scored_rows, arm=arm):
                out["extra_rows"][f"{arm} ({model})"] = {
                    "physiological": _cell(_select(scored_rows, arm=arm, data="physiological", species="human")),
                    **{s: _cell(_select(scored_rows, arm=arm, data=s, labels=scored[s])) for s in MALPERFUSION},
                }

    # Part 3: crops.
    src, tgt = preset.source_crop, preset.target_crop
    xeno_crop = f"{tgt}+{src}"
    crops: dict = {"transfer": {}, "target": {}}
    for a in (tgt, src):
        crops["transfer"][a] = {t: _cell(_select(main, arm=a, data="seen", species=t)) for t in (tgt, src)}
    crop_gap = {}
    for arm in (tgt, xeno_crop):
        crops["target"][arm] = {"seen (healthy + drought)": _cell(_select(main, arm=arm, data="seen", species=tgt))}
        for state in CROP_TRANSFERRED:
            crops["target"][arm][state] = _cell(_select(main, arm=arm, data=state, labels=(CROP_STRESS_LABEL[state],)))
    for state in CROP_TRANSFERRED:
        label = CROP_STRESS_LABEL[state]
        groups = {
            "base_path": _select(main, arm=tgt, data=state, labels=(label,)),
            "xeno_path": _select(main, arm=xeno_crop, data=state, labels=(label,)),
            # ceiling: the baseline on the stress it has seen (drought leaves), else its healthy leaves
            "base_phys": _select(main, arm=tgt, data="seen", species=tgt, labels=("stressed_leaf",))
            or _select(main, arm=tgt, data="seen", species=tgt, labels=("healthy_leaf",)),
        }
        crop_gap[state] = subject_bootstrap(groups, _gap("base_path", "xeno_path", "base_phys"), n_boot=N_BOOT)
    crops["gap_recovery"] = crop_gap
    crop_same = np.mean([crops["transfer"][a][a]["value"] for a in (tgt, src)])
    crop_cross = np.mean([crops["transfer"][tgt][src]["value"], crops["transfer"][src][tgt]["value"]])
    crops["transfer_summary"] = {
        "in_species": float(crop_same),
        "cross_species": float(crop_cross),
        "relative_drop": float(1 - crop_cross / crop_same),
    }
    out["part3_crops"] = crops

    # Instances per (state, class) cell of what the summary rests on (per seed, all folds).
    cells = _instance_cells(main, protocol, human_arms)
    out["instances_per_cell"] = cells
    min_cell = min(cells.values()) if cells else 0

    stopped = [r.get("stopped") for r in runs if r["model"] == preset.model]
    convergence = {
        "runs": len(stopped),
        "converged": sum(1 for s in stopped if s == "converged"),
        "budget": sum(1 for s in stopped if s == "budget"),
        "median_steps": float(np.median([r["steps"] for r in runs])) if runs else 0.0,
        "curve_runs": _curves(runs, preset.model),
    }
    out["convergence"] = convergence

    summary = {
        "preset": preset.name,
        "protocol": protocol,
        "model": preset.model,
        "seeds": list(preset.seeds),
        "folds": preset.folds,
        "subjects_per_species": preset.subjects,
        "physiological_dsc_drop": drop,
        "gap_recovery": gap,
        "min_instances_per_cell": min_cell,
        "transfer": transfer_summary,
        "crops": {"gap_recovery": crop_gap, "transfer": crops["transfer_summary"]},
        "convergence": {k: v for k, v in convergence.items() if k != "curve_runs"},
        "interval": "bootstrap 95 % over test subjects (1000 resamples), seed-averaged",
    }
    summary["targets"] = {
        "physiological_dsc_drop_le_1_point": bool(drop["value"] <= 1.0),
        "gap_recovery_ge_0.8": {s: bool(v["value"] >= 0.8) for s, v in gap.items()},
        "min_instances_per_cell_ge_30": bool(min_cell >= 30),
        "cross_species_ge_30_percent_below": bool(transfer_summary["relative_drop"] >= 0.3),
    }
    out["summary"] = summary
    return out


def _instance_cells(rows, protocol: str, human_arms) -> dict[str, int]:
    """'state/class' -> organ instances per seed in the test rows the summary uses."""
    paper = protocol == "paper"
    cells: dict[str, int] = {}
    seeds = max(1, len({r["seed"] for r in rows}))

    def count(selected, state):
        for r in selected:
            key = f"{state}/{r['species']}/{r['label']}"
            cells[key] = cells.get(key, 0) + 1

    count(_select(rows, arm="human", data="physiological", species="human"), "physiological")
    for state in MALPERFUSION + (() if paper else ("icg",)):
        count(_select(rows, arm="human", data=state, labels=MALPERFUSION_LABELS if paper else None), state)
    if paper:
        for target in ("pig", "rat"):
            count(_select(rows, arm=target, data="icg", labels=ICG_LABELS), "icg")
    return {k: round(v / seeds) for k, v in sorted(cells.items())}


def _curves(runs: list[dict], model: str) -> dict:
    """Validation curves of the human baseline and its best-known xeno arm (fold 0, seed 0 and all)."""
    out = {}
    for r in runs:
        if r["model"] == model and r["arm"] in ("human", "human+pig") and r.get("curve"):
            out.setdefault(r["arm"], []).append({"fold": r["fold"], "seed": r["seed"], "curve": r["curve"]})
    return out
