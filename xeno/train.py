"""Training: CE + Dice, Adam, seeded and deterministic, resumable checkpoints.

``train(config, out)`` opens the data set, picks the training and validation images
(split by subject), and trains ``config.model`` on random crops, optionally with
physiology-based augmentation from projection files. Every ``checkpoint_every`` steps and at
the end it writes a checkpoint folder (``xenoedge.xeno.checkpoint``); run again with the same config
and ``resume=True`` and it continues from the last one, reproducing the same weights as an
uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xenoedge.calibration.normalise import L1_EPS
from xenoedge.xeno import checkpoint as ckpt
from xenoedge.xeno.distributed import SINGLE, Rank

from xenoedge.errors import XenoedgeError


@dataclass(frozen=True)
class TrainConfig:
    """What to train on and how. Paths are strings so the config is plain JSON."""

    data: str
    model: str = "unet-small"
    model_options: dict = field(default_factory=dict)
    sensor: str | None = None  # resample the data to this sensor profile
    species: tuple[str, ...] = ("human",)
    states: tuple[str, ...] | None = ("physiological",)  # images whose tissue is all in these states; None: any
    image_ids: tuple[str, ...] | None = None  # explicit training pool (overrides species/states)
    projections: tuple[str, ...] = ()  # projection files for physiology-based augmentation
    augment_p: float = 0.8
    relabel_threshold: float | None = None  # crops: blended pixels >= this take the map's target label
    geometric: bool = True
    crop: int = 64
    batch_size: int = 8
    steps: int = 400
    lr: float = 1e-3
    val_fraction: float = 0.2
    seed: int = 0
    checkpoint_every: int = 100
    threads: int = 2
    cache_dir: str | None = None  # preprocessed cubes as .npy, read with mmap (large images: crops stay cheap)
    # The paper's protocol (docs/training.md "Protocol options"); the defaults keep the earlier training.
    augment_labels: tuple[str, ...] | None = None  # physiology maps only on these labels (htc target_labels)
    organ_transplantation: float = 0.0  # share of each batch that donates one organ (htc: 0.8)
    label_balanced: bool = False  # crops around a label drawn uniformly (htc hierarchical_sampling "label")
    augment_blend: tuple[float, float] = (0.0, 1.0)  # physiology map blend weight ~ U(lo, hi); htc: U(0, 1)
    # Stopping rule on a validation split (docs/training.md "Training to convergence"); off when 0.
    val_image_ids: tuple[str, ...] | None = None  # explicit validation images (overrides val_fraction)
    val_every: int = 0  # evaluate validation mean DSC every this many steps; 0: no validation, train `steps`
    patience: int = 4  # stop after this many evaluations without an improvement of at least min_delta
    min_delta: float = 0.002  # validation mean DSC gain that counts as an improvement
    min_steps: int = 0  # never stop before this step
    lr_schedule: str = "cosine"  # cosine decay over `steps`, or constant (with early stopping)

    def to_json(self) -> dict:
        """Plain JSON; the protocol and stopping options appear only when set, so configs (and
        checkpoints) of trainings that do not use them read exactly as before they existed."""
        data = json.loads(json.dumps(dataclasses.asdict(self)))
        for name in OPTIONAL_FIELDS:
            if data[name] == _DEFAULTS[name]:
                del data[name]
        return data

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise XenoedgeError(f"unknown training options: {', '.join(sorted(unknown))}")
        values = dict(data)
        for name in (
            "species",
            "states",
            "image_ids",
            "projections",
            "augment_labels",
            "val_image_ids",
            "augment_blend",
        ):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)


OPTIONAL_FIELDS = (
    "augment_labels",
    "organ_transplantation",
    "label_balanced",
    "augment_blend",
    "val_image_ids",
    "val_every",
    "patience",
    "min_delta",
    "min_steps",
    "lr_schedule",
)
# As JSON holds them (tuples as lists), so that to_json compares like with like.
_DEFAULTS = {
    f.name: json.loads(json.dumps(f.default)) for f in dataclasses.fields(TrainConfig) if f.name in OPTIONAL_FIELDS
}
LR_SCHEDULES = ("cosine", "constant")
VALIDATION_BN_BATCHES = 8  # BatchNorm recalibration batches before each validation (on a copy)

ProgressCallback = Callable[[int, int, float], None]


def tissue_states_of(record) -> set[str]:
    """States of the tissue/leaf regions of an image, from its metadata (empty if unknown)."""
    regions = record.meta.get("regions", [])
    return {r["state"] for r in regions if r.get("kind") in ("tissue", "leaf", "lesion") and r.get("pixels", 1) > 0}


def select_training_pool(dataset, config: TrainConfig) -> list[int]:
    """Indices of the images the config may train and validate on."""
    chosen = []
    for i, record in enumerate(dataset.records):
        if config.image_ids is not None:
            if record.image_id in config.image_ids:
                chosen.append(i)
            continue
        if record.species not in config.species:
            continue
        if config.states is not None and not tissue_states_of(record) <= set(config.states):
            continue
        chosen.append(i)
    if not chosen:
        raise XenoedgeError(f"{config.data}: no images for species {config.species} with states {config.states}")
    return chosen


BN_RECALIBRATION_BATCHES = 20


def recalibrate_batchnorm(model, crops, batch_size: int, batches: int, *, forward=None) -> None:
    """Recompute BatchNorm running statistics for the final weights on clean training crops.

    During training the running averages trail weights that keep changing and see augmented
    batches; inference sees neither. A pass without gradients over ``batches`` batches (epochs
    far from the training ones, so new crops) with cumulative averaging fixes both. ``forward``
    (default: the model) is what the crops are fed to, e.g. ``model.forward_working``.
    """
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    with torch.no_grad():
        for b in range(batches):
            crops.set_epoch(10_000_000 + b)
            (forward or model)(torch.stack([crops[k][0] for k in range(batch_size)]))
    for norm in norms:
        norm.momentum = 0.1
    model.eval()


def _seed_everything(seed: int, threads: int):
    import torch

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    # Deterministic mode also fills every new tensor with NaN, to expose reads of uninitialised
    # memory. No op here reads any (the weights come out bit-identical without the fills); the
    # fills cost ~1 % of an experiment training (up to ~10 % of a bare step of a small model).
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.set_num_threads(max(1, threads))
    return torch.Generator().manual_seed(seed)


def train(
    config: TrainConfig,
    out: Path,
    *,
    resume: bool = True,
    progress: ProgressCallback | None = None,
    dist: Rank = SINGLE,
) -> Path:
    """Train per ``config`` into checkpoint folder ``out``; returns ``out``.

    ``dist``: this process's rank in a DistributedDataParallel group (``xenoedge.xeno.distributed``);
    the default is the single-process training."""
    import torch
    from xenoedge.xeno.augment import PhysiologyAugmentation, geometric_augment, organ_transplantation
    from xenoedge.xeno.dataset import SpectralDataset, Split, split_by_subject
    from xenoedge.xeno.losses import IGNORE_INDEX, ce_dice_loss
    from xenoedge.xeno.models import build_model, model_config
    from xenoedge.xeno.projections import combine, load_projections
    from xenoedge.xeno.torch_data import PooledImages, RandomCrops

    out = Path(out)
    generator = _seed_everything(config.seed, dist.threads or config.threads)
    sensor = None
    if config.sensor:
        from xenoedge.sensors import get_sensor

        sensor = get_sensor(config.sensor)
    dataset = SpectralDataset.open(Path(config.data), sensor=sensor, cache_dir=config.cache_dir)
    pool = select_training_pool(dataset, config)
    records = [dataset.records[i] for i in pool]
    if config.lr_schedule not in LR_SCHEDULES:
        raise XenoedgeError(f"unknown lr_schedule {config.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
    if config.val_image_ids is not None:
        chosen = set(config.val_image_ids)
        missing = sorted(chosen - {r.image_id for r in dataset.records})
        if missing:
            raise XenoedgeError(f"{config.data}: validation images not in the data set: {', '.join(missing[:5])}")
        split = Split(
            train=tuple(r for r in records if r.image_id not in chosen),
            val=tuple(r for r in dataset.records if r.image_id in chosen),
            test=(),
        )
    else:
        split = split_by_subject(records, val_fraction=config.val_fraction, test_fraction=0.0, seed=config.seed)
    index_of = {r.image_id: i for i, r in enumerate(dataset.records)}
    train_idx = [index_of[r.image_id] for r in split.train]
    val_ids = [r.image_id for r in split.val]
    if config.val_every and not val_ids:
        raise XenoedgeError("val_every needs validation images (val_image_ids or val_fraction > 0)")

    n_bands = dataset.n_bands
    label_names = dataset.label_set.names
    model = build_model(config.model, n_bands, len(label_names), **config.model_options)
    # foreach: one kernel per step for all tensors (same numbers as the per-tensor loop, ~30 % less time)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, foreach=True)
    augmentation = None
    if config.projections:
        projections = combine(
            [load_projections(Path(p), wavelengths_nm=dataset.wavelengths_out_nm) for p in config.projections]
        )
        augmentation = PhysiologyAugmentation(
            projections,
            label_names,
            p=config.augment_p,
            generator=generator,
            relabel_threshold=config.relabel_threshold,
            target_labels=config.augment_labels,
            blend_range=config.augment_blend,
        )

    run_config = {
        "model": model_config(model),
        "labels": dataset.label_set.to_json(),
        "label_set": dataset.label_set.name,
        "states": list(dataset.states),
        "wavelengths_nm": [float(v) for v in dataset.wavelengths_out_nm],
        "sensor": config.sensor,
        "preprocessing": {"reflectance": True, "l1_normalise": True, "l1_eps": L1_EPS},
        "train": config.to_json(),
        "split": {"train": [r.image_id for r in split.train], "val": val_ids},
    }
    if dist.distributed:
        run_config["distributed"] = dist.run_config()
    step, history = 0, []
    # Stopping rule state: the curve (step, validation mean DSC), the best step, and why training ended.
    validation: dict = {"curve": [], "best_step": None, "best_dsc": None, "stopped": None}
    state = ckpt.read_state(out) if resume else None
    if state is not None:
        saved = ckpt.read_config(out)
        if saved.get("train") != config.to_json() or saved.get("distributed") != dist.run_config():
            raise XenoedgeError(f"{out}: holds a checkpoint of another training config; use another folder")
        model.load_state_dict(ckpt.load_tensors(out / "model.pt"))
        optimizer.load_state_dict(ckpt.load_tensors(out / "optimizer.pt"))
        generator.set_state(ckpt.load_tensors(out / "rng.pt"))
        step, history = int(state["step"]), list(state["history"])
        validation = dict(state.get("validation") or validation)
        if validation.get("stopped"):
            return out

    # An edge-first model trains its core at the working size: images are pooled once (as the
    # model and the exported graph do), crops cut, augmented and scored there (block-majority labels).
    input_pool = int(getattr(model, "input_pool", 1))
    if input_pool > 1 and config.crop % input_pool:
        raise XenoedgeError(f"crop {config.crop} must be a multiple of the model's pooling factor {input_pool}")
    network = model.forward_working if input_pool > 1 else model
    crop = config.crop // input_pool
    crops = RandomCrops(
        PooledImages(dataset, input_pool) if input_pool > 1 else dataset,
        train_idx,
        crop_size=(crop, crop),
        samples_per_epoch=config.batch_size,
        seed=config.seed,
        pad_label=IGNORE_INDEX,
        label_balanced=config.label_balanced,
    )

    def save(at_step: int, weights=None) -> None:
        if not dist.is_main:
            return
        finished = at_step >= config.steps or bool(validation["stopped"])
        state = {"step": at_step, "history": history, "finished": finished}
        if config.val_every:
            state["validation"] = validation
        ckpt.save_checkpoint(
            out,
            model=model if weights is None else weights,
            optimizer=optimizer,
            config=run_config,
            state=state,
            rng_state=generator.get_state(),
        )

    best_dir = out / "best"  # the best validation weights so far (a checkpoint folder of its own)
    val_indices = [index_of[i] for i in val_ids]

    candidate = None  # the copy that validation recalibrates and scores, built once

    def validate(at_step: int) -> bool:
        """Score a BatchNorm-recalibrated copy on the validation images; True when the rule says stop."""
        import copy

        from xenoedge.xeno.evaluate import evaluate_model

        nonlocal candidate
        if candidate is None:
            candidate = copy.deepcopy(model)
        else:
            candidate.load_state_dict(model.state_dict())  # same values as a fresh deep copy, no rebuild
        recalibrate_batchnorm(candidate, crops, config.batch_size, VALIDATION_BN_BATCHES, forward=_working(candidate))
        candidate.eval()
        dsc = evaluate_model(candidate, dataset, val_indices).mean_dsc()
        crops.set_epoch(at_step)
        validation["curve"].append([at_step, round(float(dsc), 5)])
        if validation["best_dsc"] is None or dsc >= validation["best_dsc"] + config.min_delta:
            validation["best_dsc"], validation["best_step"] = round(float(dsc), 5), at_step
            ckpt.save_checkpoint(
                best_dir,
                model=candidate,
                optimizer=None,
                config=run_config,
                state={"step": at_step, "validation_dsc": validation["best_dsc"]},
                rng_state=generator.get_state(),
            )
        since = sum(1 for s_, _ in validation["curve"] if s_ > validation["best_step"])
        return at_step >= config.min_steps and since >= config.patience

    def _working(m):
        return m.forward_working if input_pool > 1 else m

    forward = dist.wrap(model, input_pool)  # `network`, or DDP around it with N processes
    model.train()
    while step < config.steps:
        if config.lr_schedule == "cosine":
            # Cosine decay to zero: the final weights settle, so BatchNorm statistics can match them.
            for group in optimizer.param_groups:
                group["lr"] = config.lr * 0.5 * (1.0 + math.cos(math.pi * step / config.steps))
        crops.set_epoch(step)  # batch `step` is the same whether or not the run was resumed
        dist.seed_step(generator, config.seed, step)
        batch = [crops[k] for k in dist.shard(config.batch_size)]
        x = torch.stack([b[0] for b in batch])
        y = torch.stack([b[1] for b in batch])
        if config.geometric:
            # Without the protocol options the order stays as it was (physiology maps first).
            if config.organ_transplantation or config.label_balanced:
                x, y = geometric_augment(x, y, generator=generator)[:2]
                if augmentation is not None:
                    x, y = augmentation.with_labels(x, y)
            else:
                if augmentation is not None:
                    x, y = augmentation.with_labels(x, y)
                x, y = geometric_augment(x, y, generator=generator)[:2]
        elif augmentation is not None:
            x, y = augmentation.with_labels(x, y)
        if config.organ_transplantation:
            # htc order: geometric transforms, physiology maps, then organ transplantation.
            x, y = organ_transplantation(x, y, p=config.organ_transplantation, generator=generator)
        loss = ce_dice_loss(forward(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        history.append(round(dist.mean(loss.detach()), 5))
        if progress:
            progress(step, config.steps, history[-1])
        if config.val_every:
            if step % config.val_every == 0 or step == config.steps:
                stop = dist.agree(validate(step) if dist.is_main else False)
                if stop or step == config.steps:
                    validation["stopped"] = "converged" if stop else "budget"
                    # The checkpoint holds the best validation weights (recalibrated when they were scored).
                    model.load_state_dict(ckpt.load_tensors(best_dir / "model.pt"))
                    model.eval()
                    save(step)
                    return out
                model.train()
            if step % config.checkpoint_every == 0:
                save(step)
            continue
        if step == config.steps and dist.is_main:
            recalibrate_batchnorm(model, crops, config.batch_size, BN_RECALIBRATION_BATCHES, forward=network)
        if step % config.checkpoint_every == 0 or step == config.steps:
            save(step)
    if not (out / "state.json").is_file():
        save(step)
    return out


def training_history(out: Path) -> list[float]:
    state = ckpt.read_state(Path(out))
    return [] if state is None else list(state["history"])
