"""``xenoedge experiment xeno``: the xeno-learning paper's design on simulated data.

Protocols (``--protocol``; docs/training.md "The xeno experiment"):

- ``paper`` (default), as the paper's code (IMSY-DKFZ ``htc``, ``htc_projects/species``) runs it:
  malperfusion maps (arterial and venous) are applied to **kidney only** (``target_labels``), also
  for the human target; ICG maps are learnt in pig and rat and applied with **pig and rat as
  targets** (rat maps to pig, pig maps to rat), never human; every arm, baselines included, uses
  organ transplantation (p = 0.8) and label-balanced sampling; projections pair **every**
  physiological with every pathological image of an organ.
- ``legacy``: the project's earlier protocol: every state's maps on every organ of the human
  target, no organ transplantation, no label balancing, same-subject pairing capped at 4.

Evaluation: subject-level k-fold cross-validation per species (every subject is tested exactly
once per training seed; a validation subject per species from the next fold chooses the
checkpoint and stops training), several training seeds, and bootstrap 95 % intervals over test
subjects; every table cell prints n (organ instances per seed / subjects).

Parts:

1. In-species vs direct cross-species transfer on physiological tissue (the baselines).
2. Pathology: physiological-only baselines against xeno arms on held-out pathological tissue:
   human malperfused kidney (paper) and pig/rat ICG (paper) or human everything (legacy).
3. Crops: the target crop trains on healthy and drought plants (it has seen some stress); the
   source crop's nitrogen-deficiency and lesion maps are transferred; plus direct transfer
   between the crops.

``DIR/results.json`` holds a top-level ``summary`` (``physiological_dsc_drop``, ``gap_recovery``,
``min_instances_per_cell``, intervals, targets met); ``DIR/rows.json.gz`` every scored organ
instance.

Modules (this one is the entry point; the names below are importable from here):

- ``experiment_protocol``: presets, protocols and their arms;
- ``experiment_data``: the simulated dataset folders and the projection files;
- ``experiment_runs``: training and scoring every run (``run``, ``reanalyse``);
- ``experiment_analysis``: tables and the ``summary`` (``analyse``);
- ``experiment_report``: the markdown report and its figure (``write_report``).
"""

from __future__ import annotations

from xenoedge.xeno.experiment_analysis import analyse
from xenoedge.xeno.experiment_data import learn_projection_file, simulate_folders
from xenoedge.xeno.experiment_protocol import (
    CROP_SEEN,
    CROP_STRESS_LABEL,
    CROP_TRANSFERRED,
    DATA_SEED,
    ICG_LABELS,
    MALPERFUSION,
    MALPERFUSION_LABELS,
    N_BOOT,
    PRESETS,
    PROTOCOLS,
    SCORING_SEED,
    SPECIES,
    SURGICAL_PATHOLOGICAL,
    Arm,
    Log,
    Preset,
    get_preset,
    icg_targets,
    protocol_arms,
)
from xenoedge.xeno.experiment_report import PREVIOUS_RESULTS, SIMULATOR_NOTES, write_report
from xenoedge.xeno.experiment_runs import reanalyse, run

__all__ = [
    "CROP_SEEN",
    "CROP_STRESS_LABEL",
    "CROP_TRANSFERRED",
    "DATA_SEED",
    "ICG_LABELS",
    "MALPERFUSION",
    "MALPERFUSION_LABELS",
    "N_BOOT",
    "PRESETS",
    "PREVIOUS_RESULTS",
    "PROTOCOLS",
    "SCORING_SEED",
    "SIMULATOR_NOTES",
    "SPECIES",
    "SURGICAL_PATHOLOGICAL",
    "Arm",
    "Log",
    "Preset",
    "analyse",
    "get_preset",
    "icg_targets",
    "learn_projection_file",
    "protocol_arms",
    "reanalyse",
    "run",
    "simulate_folders",
    "write_report",
]
