"""Presets and protocol definitions of the xeno experiment: the species, states and labels, the
``Preset`` sizes and budgets, and the ``Arm``s each protocol trains (``xenoedge.xeno.experiment``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xenoedge.errors import UnknownNameError

SPECIES = ("human", "pig", "rat")
MALPERFUSION = ("malperfused_arterial", "malperfused_venous")
SURGICAL_PATHOLOGICAL = (*MALPERFUSION, "icg")
#: htc settings_species.malperfused_labels: malperfusion maps act on kidney only.
MALPERFUSION_LABELS = ("kidney",)
#: htc settings_species.icg_labels: the organs ICG maps act on (and ICG is scored on).
ICG_LABELS = ("stomach", "small_bowel", "colon", "liver", "kidney", "omentum", "peritoneum", "pancreas")
CROP_SEEN = ("healthy", "drought")  # what the target crop trains on
CROP_TRANSFERRED = ("nitrogen_deficiency", "lesion")  # what the source crop's maps bring
CROP_STRESS_LABEL = {"nitrogen_deficiency": "stressed_leaf", "lesion": "lesion", "drought": "stressed_leaf"}
PROTOCOLS = ("paper", "legacy")
N_BOOT = 1000
DATA_SEED = 7
SCORING_SEED = 8  # other images of the same subjects (subject parameters do not depend on the data seed)


@dataclass(frozen=True)
class Preset:
    name: str
    height: int
    width: int
    subjects: int  # per species
    folds: int  # subject-level cross-validation folds
    images_phys: int  # physiological images per subject
    images_path: int  # images per subject and pathological state (test targets and projection sources)
    model: str  # main model (every arm)
    max_steps: int  # budget; the stopping rule usually ends training earlier
    batch_size: int
    crop: int
    seeds: tuple[int, ...]
    projection_steps: int
    model_options: tuple[tuple[str, object], ...] = ()
    pixel_arms: tuple[str, ...] = ("human", "human+pig")  # also trained with the per-pixel model (first seed)
    edge_arms: tuple[str, ...] = ()  # also trained with unet-edge (pool 2) when the main model is another one
    skip_arms: tuple[str, ...] = ()  # arms left out of this preset (compute budget)
    val_every: int = 50
    patience: int = 3
    min_delta: float = 0.005
    min_steps: int = 100
    lr: float = 1e-3
    source_crop: str = "wheat"
    target_crop: str = "maize"
    projection_images: int | None = None  # per subject, state and source species (None: all)
    # ICG and crop maps act on many organs/leaves, so all pairs of all subjects would be thousands of
    # maps: learn them from this many source subjects (htc: 4 pigs, 2 rats for ICG). None: all.
    projection_subjects: int | None = None
    # Extra physiological human images per subject, never trained on (a second simulation seed: new
    # images of the same subjects), scored with the test subjects so that every physiological
    # (class) cell reaches its n; 0: none.
    images_phys_scoring: int = 0


PRESETS = {
    "tiny": Preset(
        "tiny", 32, 40, 3, 3, 4, 4, "unet-edge", 6, 2, 16, (0,), 5,
        model_options=(("pool", 2),), pixel_arms=("human",), val_every=3, patience=1, min_steps=0,
        skip_arms=("human+rat",),
    ),
    "quick": Preset(
        "quick", 48, 64, 10, 4, 6, 32, "unet-edge", 240, 8, 32, (0, 1, 2), 100,
        model_options=(("pool", 2),), projection_images=4, projection_subjects=4, skip_arms=("human+rat",),
        val_every=40, patience=2, min_steps=80, images_phys_scoring=30,
        # A dicot source for the grass target: wheat -> maize (two grasses) transferred directly
        # 3 % below in-species, too alike to test transfer (docs/experiments/xeno.md, "Crop pair").
        source_crop="tomato",
    ),
    "full": Preset(
        "full", 96, 128, 12, 5, 6, 20, "unet-effb5", 3000, 8, 64, (0, 1, 2), 100,
        model_options=(("pool", 2),), edge_arms=("human", "human+pig", "human+pig+rat"), val_every=100,
        patience=5,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Arm:
    """One training condition: the target species and the projections it is augmented with."""

    name: str
    target: str
    sources: tuple[str, ...] = ()  # projection source species (empty: physiological-only baseline)
    task: str | None = None  # "malperfusion", "icg" or "all" (legacy)
    augment_labels: tuple[str, ...] | None = None  # htc target_labels
    organ_transplantation: float = 0.0
    label_balanced: bool = False
    domain: str = "surgical"
    augment_blend: tuple[float, float] = (0.0, 1.0)  # map blend weight ~ U(lo, hi), as htc (benchmarks vary it)

    @property
    def baseline(self) -> str:
        return self.target


def protocol_arms(protocol: str, crops: tuple[str, str] = ("wheat", "maize")) -> list[Arm]:
    """The arms of ``protocol`` (surgical, then crops): baselines first."""
    if protocol not in PROTOCOLS:
        raise UnknownNameError("protocol", protocol, PROTOCOLS)
    paper = protocol == "paper"
    common = {"organ_transplantation": 0.8 if paper else 0.0, "label_balanced": paper}
    arms = [Arm(s, s, **common) for s in SPECIES]
    task, labels = ("malperfusion", MALPERFUSION_LABELS) if paper else ("all", None)
    for sources in (("pig",), ("rat",), ("pig", "rat")):
        arms.append(Arm("human+" + "+".join(sources), "human", sources, task, labels, **common))
    if paper:
        arms.append(Arm("pig+rat", "pig", ("rat",), "icg", ICG_LABELS, **common))
        arms.append(Arm("rat+pig", "rat", ("pig",), "icg", ICG_LABELS, **common))
    source, target = crops
    arms += [
        Arm(target, target, domain="crop", **common),
        Arm(source, source, domain="crop", **common),
        Arm(f"{target}+{source}", target, (source,), "crop", None, domain="crop", **common),
    ]
    return arms


def icg_targets(protocol: str) -> tuple[str, ...]:
    """Species whose ICG tissue is scored: pig and rat (paper), human (legacy)."""
    return ("pig", "rat") if protocol == "paper" else ("human",)


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UnknownNameError("experiment preset", name, sorted(PRESETS))
    return PRESETS[name]


Log = Callable[[str], None]
