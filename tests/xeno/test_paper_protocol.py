"""The paper's protocol pieces: target_labels, all-pairs projections, organ transplantation,
label-balanced sampling, and the stopping rule on a validation split."""

import numpy as np
import pytest
import torch
from xenoedge.xeno.augment import PhysiologyAugmentation, organ_transplantation
from xenoedge.xeno.experiment import icg_targets, protocol_arms
from xenoedge.xeno.projections import OrganSample, ProjectionError, ProjectionSet, pairs_for

LABELS = ["background", "kidney", "liver", "spleen"]
C = 6


def _maps(organs):
    """Maps that multiply every band by 2 (W = 2 I, b = 0): easy to see where they acted."""
    n = len(organs)
    matrices = np.zeros((n, C, C + 1), np.float32)
    matrices[:, :, :C] = 2 * np.eye(C, dtype=np.float32)
    return ProjectionSet(
        matrices=matrices,
        organs=list(organs),
        states=["malperfused_venous"] * n,
        source_species="pig",
        wavelengths_nm=np.linspace(500, 1000, C),
        pairs=[("a", "b")] * n,
        losses=np.zeros(n),
        initial_losses=np.zeros(n),
    )


def _batch():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, C, 8, 8, generator=g) + 0.1
    x = x / x.sum(dim=1, keepdim=True)
    y = torch.zeros(4, 8, 8, dtype=torch.int64)
    y[:, :4, :4] = 1  # kidney
    y[:, 4:, :4] = 2  # liver
    y[:, :4, 4:] = 3  # spleen
    return x, y


def test_target_labels_restrict_maps_to_kidney():
    x, y = _batch()
    maps = _maps(["kidney", "liver", "spleen"])
    everything = PhysiologyAugmentation(maps, LABELS, p=1.0, generator=torch.Generator().manual_seed(1))
    kidney_only = PhysiologyAugmentation(
        maps, LABELS, p=1.0, generator=torch.Generator().manual_seed(1), target_labels=["kidney"]
    )
    assert sorted(kidney_only.maps_of_label) == [1] and sorted(everything.maps_of_label) == [1, 2, 3]
    out = kidney_only(x, y)
    changed = (out != x).any(dim=1)  # (B, H, W)
    assert changed[y != 1].sum() == 0  # liver, spleen and background bit-identical
    assert changed[y == 1].float().mean() > 0.5  # kidney pixels moved (blend weight 0 is measure zero)
    assert (everything(x, y) != x).any(dim=1)[y == 2].any()
    with pytest.raises(ProjectionError, match="not in the label set"):
        PhysiologyAugmentation(maps, LABELS, target_labels=["lung"])
    with pytest.raises(ProjectionError, match="no map of"):
        PhysiologyAugmentation(_maps(["liver"]), LABELS, target_labels=["kidney"])


def test_human_gets_kidney_only_malperfusion_and_icg_never_targets_human():
    arms = protocol_arms("paper")
    human = [a for a in arms if a.target == "human" and a.sources]
    assert human and all(a.task == "malperfusion" and a.augment_labels == ("kidney",) for a in human)
    icg = [a for a in arms if a.task == "icg"]
    assert {a.target for a in icg} == {"pig", "rat"}
    assert all(a.target not in a.sources for a in icg)
    assert icg_targets("paper") == ("pig", "rat") and "human" in icg_targets("legacy")
    assert all(a.organ_transplantation == 0.8 and a.label_balanced for a in arms)
    legacy = protocol_arms("legacy")
    assert all(a.augment_labels is None and a.organ_transplantation == 0.0 for a in legacy)


def _sample(image, subject, organ, state):
    return OrganSample(image, subject, organ, state, np.full((30, C), 1 / C, np.float32), species="pig")


def test_all_pairs_is_every_physiological_by_pathological_pair():
    samples = [_sample(f"p{i}", str(i % 3), "kidney", "physiological") for i in range(5)]
    samples += [_sample(f"m{i}", str(i % 3), "kidney", "malperfused_venous") for i in range(4)]
    samples += [_sample(f"l{i}", "0", "liver", "physiological") for i in range(2)]
    samples += [_sample("lm", "1", "liver", "malperfused_venous")]
    pairs = pairs_for(samples, "physiological", "malperfused_venous", pairing="all")
    assert len(pairs) == 5 * 4 + 2 * 1
    assert len(set((a.image_id, b.image_id) for a, b in pairs)) == len(pairs)
    assert all(a.organ == b.organ and a.state == "physiological" for a, b in pairs)
    same_subject = pairs_for(samples, "physiological", "malperfused_venous")
    assert len(same_subject) < len(pairs)  # the old rule prefers one subject and caps partners
    with pytest.raises(ProjectionError, match="pairing"):
        pairs_for(samples, "physiological", "icg", pairing="some")


def test_organ_transplantation_moves_one_donor_organ_into_the_acceptor():
    x, y = _batch()
    y[1] = 0
    y[1, 2:6, 2:6] = 2  # donor 1 shows background and liver only
    gen = torch.Generator().manual_seed(3)
    x2, y2 = organ_transplantation(x, y, p=0.5, generator=gen)  # donors 0, 1 -> acceptors 3, 0
    assert torch.equal(x2[2], x[2]) and torch.equal(y2[2], y[2])  # neither donor's acceptor
    moved = (y2[0] != y[0]) | (x2[0] != x[0]).any(dim=0)
    label = int(y2[0][moved][0]) if moved.any() else None
    if label is not None:  # donor 1 gave background or liver: exactly its pixels of that label
        region = y[1] == label
        assert torch.equal(y2[0][region], y[1][region]) and torch.equal(x2[0][:, region], x[1][:, region])
        assert not moved[~region].any()
    assert organ_transplantation(x, y, p=0.0)[0] is x
    again = organ_transplantation(x, y, p=0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(again[0], x2) and torch.equal(again[1], y2)


def test_label_balanced_sampler_balances(tmp_path):
    from xenoedge.xeno.dataset import SpectralDataset
    from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset
    from xenoedge.xeno.torch_data import RandomCrops

    root = tmp_path / "d"
    write_dataset(root, DatasetSpec(species=("human",), states=("physiological",), subjects_per_species=2,
                                    images_per_subject=3, height=32, width=40, seed=5))  # fmt: skip
    ds = SpectralDataset.open(root)
    plain = RandomCrops(ds, range(len(ds)), crop_size=(8, 8), samples_per_epoch=300, seed=0)
    balanced = RandomCrops(ds, range(len(ds)), crop_size=(8, 8), samples_per_epoch=300, seed=0, label_balanced=True)
    share = balanced.label_frequencies(epochs=2)
    assert len(share) >= 4
    assert max(share.values()) - min(share.values()) < 0.1  # uniform over labels within sampling noise

    # The rarest label present is hit far more often with balancing than without.
    from collections import Counter

    pixels = Counter()
    for i in range(len(ds)):
        pixels.update(np.asarray(ds.load(i).labels).ravel().tolist())
    rare = min((k for k in pixels if k != 0), key=lambda k: pixels[k])
    hits = [sum(1 for k in range(200) if (c[k][1] == rare).any()) for c in (plain, balanced)]
    assert hits[1] > hits[0]
    # Defaults unchanged: the plain sampler's crops are what they were before the option existed.
    assert plain.crop_box(0) == RandomCrops(ds, range(len(ds)), crop_size=(8, 8), samples_per_epoch=300).crop_box(0)


def test_stopping_rule_keeps_the_best_validation_weights(tmp_path):
    import dataclasses
    import json

    from xenoedge.xeno.dataset import SpectralDataset
    from xenoedge.xeno.simulate_dataset import DatasetSpec, write_dataset
    from xenoedge.xeno.train import TrainConfig, train

    root = tmp_path / "d"
    write_dataset(root, DatasetSpec(species=("human",), states=("physiological",), subjects_per_species=3,
                                    images_per_subject=1, height=24, width=32, seed=2))  # fmt: skip
    ids = [r.image_id for r in SpectralDataset.open(root).records]
    base = {"data": str(root), "model": "pixel-mlp", "image_ids": tuple(ids), "steps": 20, "batch_size": 2,
            "crop": 16, "threads": 1, "checkpoint_every": 100}  # fmt: skip
    # min_delta 1.0: no check can improve on the first one, so patience 1 stops at the second check.
    config = TrainConfig(**base, val_image_ids=(ids[0],), val_every=2, patience=1, min_delta=1.0,
                         lr_schedule="constant", organ_transplantation=0.8, label_balanced=True)  # fmt: skip
    out = train(config, tmp_path / "run")
    state = json.loads((out / "state.json").read_text())
    validation = state["validation"]
    assert validation["stopped"] == "converged" and state["step"] == 4
    assert [s for s, _ in validation["curve"]] == [2, 4] and validation["best_step"] == 2
    from xenoedge.xeno.checkpoint import load_tensors

    best, final = load_tensors(out / "best" / "model.pt"), load_tensors(out / "model.pt")
    assert all(torch.equal(best[k], final[k]) for k in best)  # the checkpoint is the best check's weights
    assert train(config, tmp_path / "run") == out  # a finished run returns at once
    # Without the options a config serialises as before they existed.
    plain = TrainConfig(**base).to_json()
    assert not {"val_every", "organ_transplantation", "label_balanced", "augment_labels", "lr_schedule",
                "augment_blend"} & set(plain)  # fmt: skip
    assert TrainConfig.from_json(config.to_json()) == config
    whole = dataclasses.replace(config, augment_blend=(1.0, 1.0))
    assert whole.to_json()["augment_blend"] == [1.0, 1.0] and TrainConfig.from_json(whole.to_json()) == whole
