"""``results.json`` of the xeno experiment: the summary schema, on the tiny preset and on rows
made up so that the answer is known."""

import json

import numpy as np
import pytest
from xenoedge.xeno.experiment import MALPERFUSION, analyse, get_preset, protocol_arms


def _rows(preset, quality):
    """Rows as the experiment scores them: quality(arm, data, species, label) -> DSC, 10 subjects per species."""
    rng = np.random.default_rng(0)
    labels = {"human": ("kidney", "liver", "colon"), "pig": ("kidney", "colon", "liver"), "rat": ("kidney", "colon")}
    rows = []
    for arm in protocol_arms("paper"):
        if arm.name in preset.skip_arms:
            continue
        for seed in preset.seeds:
            if arm.domain == "crop":
                for data, species, label in [
                    ("seen", s, lab) for s in ("maize", "wheat") for lab in ("healthy_leaf", "stressed_leaf")
                ] + [("nitrogen_deficiency", arm.target, "stressed_leaf"), ("lesion", arm.target, "lesion")]:
                    for subject in range(10):
                        dsc = quality(arm.name, data, species, label) + rng.normal(0, 0.01)
                        rows.append({"arm": arm.name, "model": preset.model, "seed": seed, "fold": 0, "data": data,
                                     "species": species, "label": label, "subject": f"{species}/{subject}",
                                     "state": data, "dsc": dsc})  # fmt: skip
                continue
            datas = [("physiological", s) for s in ("human", "pig", "rat")]
            datas += [(s, "human") for s in MALPERFUSION] + [("icg", "pig"), ("icg", "rat")]
            for data, species in datas:
                for label in labels[species]:
                    for subject in range(10):
                        for _ in range(3):  # 3 instances per subject: 30 per cell
                            dsc = quality(arm.name, data, species, label) + rng.normal(0, 0.01)
                            rows.append({"arm": arm.name, "model": preset.model, "seed": seed, "fold": 0,
                                         "data": data, "species": species, "label": label,
                                         "subject": f"{species}/{subject}", "state": data, "dsc": dsc})  # fmt: skip
    return rows


def test_summary_from_known_rows():
    preset = get_preset("quick")

    def quality(arm, data, species, label):
        if data in ("physiological", "seen"):
            if arm == "human+pig" and species == "human":
                return 0.88  # +pig costs 2 points on human physiological tissue
            return 0.9 if arm.split("+")[0] == species else 0.5
        if arm in ("human", "pig", "rat", "maize"):
            return 0.3  # baselines on pathology
        return 0.55 if arm == "human+pig+rat" else 0.6  # +pig recovers half of the 0.6 gap

    results = analyse(_rows(preset, quality), preset, "paper", runs=[])
    summary = json.loads(json.dumps(results["summary"]))
    assert summary["preset"] == "quick" and summary["protocol"] == "paper"
    drop = summary["physiological_dsc_drop"]
    assert drop["arm"] == "human+pig"  # the arm with the best recovery
    assert drop["value"] == pytest.approx(2.0, abs=0.3) and drop["low"] <= drop["value"] <= drop["high"]
    for state in (*MALPERFUSION, "icg"):
        cell = summary["gap_recovery"][state]
        assert cell["value"] == pytest.approx(0.5, abs=0.05)
        assert cell["low"] <= cell["value"] <= cell["high"] and cell["n"] >= 30 and cell["subjects"] >= 10
    assert summary["min_instances_per_cell"] == 30
    assert summary["transfer"]["relative_drop"] == pytest.approx(1 - 0.5 / 0.9, abs=0.02)
    assert set(summary["targets"]) == {
        "physiological_dsc_drop_le_1_point",
        "gap_recovery_ge_0.8",
        "min_instances_per_cell_ge_30",
        "cross_species_ge_30_percent_below",
    }
    assert summary["targets"]["gap_recovery_ge_0.8"] == {s: False for s in (*MALPERFUSION, "icg")}
    assert set(summary["crops"]["gap_recovery"]) == {"nitrogen_deficiency", "lesion"}


def test_grouped_selection_returns_what_a_scan_of_every_row_returns():
    """The analysis selects from rows grouped by (arm, data); every selection it makes must give
    the same rows, in the same order, as a scan of the plain list (bootstraps depend on both)."""
    from xenoedge.xeno.experiment_analysis import _Rows, _select

    preset = get_preset("quick")
    rows = _rows(preset, lambda *_: 0.5)
    grouped = _Rows(rows)
    wheres = [
        {"arm": "human", "data": "physiological", "species": "human"},
        {"arm": "human+pig", "data": "malperfused_venous", "labels": ("kidney",)},
        {"arm": "pig", "data": "icg", "labels": ("colon", "liver")},
        {"arm": "maize", "data": "seen", "species": "wheat"},
        {"arm": "human+pig"},  # no data: the whole scan
        {"arm": "no such arm", "data": "physiological"},
    ]
    for where in wheres:
        expected = _select(rows, **dict(where))
        assert _select(grouped, **dict(where)) == expected
        assert all(a is b for a, b in zip(_select(grouped, **dict(where)), expected, strict=True))
    assert _select(grouped, arm="human", data="physiological", species="human")  # not vacuous


def test_tiny_run_writes_results_json_with_a_summary(tiny_results):
    _results, work = tiny_results
    saved = json.loads((work / "results.json").read_text())
    summary = saved["summary"]
    for key in ("preset", "physiological_dsc_drop", "gap_recovery", "min_instances_per_cell", "interval", "targets"):
        assert key in summary
    assert summary["preset"] == "tiny"
    assert set(summary["gap_recovery"]) == {*MALPERFUSION, "icg"}
    for cell in (summary["physiological_dsc_drop"], *summary["gap_recovery"].values()):
        assert {"value", "low", "high", "subjects"} <= set(cell)
    assert isinstance(summary["min_instances_per_cell"], int)
    assert (work / "rows.json.gz").is_file()
