"""``xenoedge train``, ``evaluate`` and ``experiment``: the science commands (need ``xenoedge[train]``).

torch is imported inside the commands only, so the device install never needs it.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from xenoedge.cli.common import (
    check_input_file,
    check_input_folder,
    console,
    input_file_option,
    input_folder_option,
    output_file_option,
    output_folder_option,
    print_table,
    progress_bar,
    split_csv,
    wide_table,
)


def train(
    data: Path = typer.Option(
        ..., callback=input_folder_option, help="Data set folder (simulator layout or metadata.csv)."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", metavar="FOLDER", callback=output_folder_option, help="Checkpoint folder."
    ),
    model: str = typer.Option("unet-small", help="Model name (see docs/models.md)."),
    species: str = typer.Option("human", help="Comma-separated species to train on."),
    states: str = typer.Option(
        "physiological", help="Comma-separated tissue states allowed in training images; 'any'."
    ),
    projections: str = typer.Option(None, help="Comma-separated projection files for physiology-based augmentation."),
    sensor: str = typer.Option(None, help="Resample the data to this sensor profile."),
    steps: int = typer.Option(400, min=1),
    batch_size: int = typer.Option(8, min=1),
    crop: int = typer.Option(64, min=8),
    lr: float = typer.Option(1e-3),
    seed: int = typer.Option(0),
    resume: bool = typer.Option(True, help="Continue from a checkpoint of the same config in --out."),
    nproc: int = typer.Option(
        1, min=1, help="Processes (DistributedDataParallel, gloo) sharing each batch; under torchrun leave it out."
    ),
    threads: int = typer.Option(2, min=1, help="torch threads on this machine, shared among the processes."),
) -> None:
    """Train a segmentation model (CE + Dice, Adam) with optional xeno augmentation."""
    for projection in split_csv(projections) or ():
        check_input_file(Path(projection), "projection file")
    from xenoedge.xeno.distributed import is_main_process, train_processes
    from xenoedge.xeno.train import TrainConfig

    config = TrainConfig(
        data=str(data),
        model=model,
        sensor=sensor,
        species=split_csv(species) or ("human",),
        states=None if states == "any" else split_csv(states),
        projections=split_csv(projections) or (),
        steps=steps,
        batch_size=batch_size,
        crop=crop,
        lr=lr,
        seed=seed,
        threads=threads,
    )
    if not is_main_process():  # a torchrun rank other than 0: rank 0 reports and writes
        train_processes(config, out, resume=resume)
        return
    with progress_bar() as bar:
        task = bar.add_task("training", total=steps)
        train_processes(
            config,
            out,
            nproc=nproc,
            resume=resume,
            progress=lambda step, total, loss: bar.update(task, completed=step, description=f"loss {loss:.3f}"),
        )
    console.print(f"checkpoint in {out}")


def evaluate(
    checkpoint: Path = typer.Argument(..., callback=input_folder_option, help="Checkpoint folder."),
    data: Path = typer.Option(..., callback=input_folder_option, help="Data set folder to evaluate on."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        metavar="FOLDER",
        callback=output_folder_option,
        help="Folder for evaluation.json, confusion.png and overlays.",
    ),
    species: str = typer.Option(None, help="Only these species (comma-separated)."),
    exclude_training: bool = typer.Option(True, help="Skip images the checkpoint trained or validated on."),
) -> None:
    """DSC per class, species and state; confusion matrix; truth-vs-prediction pictures."""
    from xenoedge.xeno.checkpoint import load_model
    from xenoedge.xeno.evaluate import checkpoint_dataset, evaluate_model, held_out_indices, write_evaluation

    model, config = load_model(checkpoint)
    dataset = checkpoint_dataset(data, config)
    indices = held_out_indices(dataset.records, config, species=split_csv(species), exclude_training=exclude_training)
    if not indices:
        raise typer.BadParameter("no images left to evaluate (all used in training, or none of those species)")
    result = evaluate_model(model, dataset, indices, pictures=out / "pictures")
    write_evaluation(result, out)
    table = Table(title=f"{checkpoint} on {data}: mean DSC {result.mean_dsc():.3f}")
    for column in ("group", "mean DSC", "std", "n"):
        table.add_column(column)
    for key in ("label", "species", "state"):
        for name, row in result.table(key).items():
            table.add_row(f"{key}: {name}", f"{row['mean']:.3f}", f"{row['std']:.3f}", str(row["n"]))
    console.print(table)
    console.print(f"written: {out / 'evaluation.json'}, {out / 'confusion.png'}, {out / 'pictures'}")


experiment_app = typer.Typer(help="Reproducible experiments that write results documents.", no_args_is_help=True)


@experiment_app.command("xeno")
def experiment_xeno(
    preset: str = typer.Option("quick", help="tiny (seconds, for tests), quick (minutes) or full."),
    work: Path = typer.Option(
        Path("experiments/xeno"),
        metavar="FOLDER",
        callback=output_folder_option,
        help="Working folder: simulated data, runs, results.json and the report.",
    ),
    report: Path = typer.Option(
        None,
        metavar="FILE",
        callback=output_file_option,
        help="Results document to write (default: WORK/xeno.md; the committed one is docs/experiments/xeno.md).",
    ),
    protocol: str = typer.Option(
        "paper",
        help="paper: the paper's protocol (kidney-only malperfusion maps, ICG with pig/rat targets, organ "
        "transplantation, label-balanced sampling, all-pairs projections); legacy: the earlier one.",
    ),
    state_deviation: str = typer.Option(
        None,
        metavar="D or SPECIES=D,...",
        help="Simulate the species' states at this deviation from the shared relative change (0: the premise "
        "holds exactly; default: the simulator's, 1); 'pig=2,rat=2' for some species only. Needs its own --work.",
    ),
) -> None:
    """In-species vs cross-species transfer, xeno augmentation for pathology, and crops (k-fold, bootstrap CIs)."""
    from xenoedge.xeno.experiment import get_preset, run, write_report

    report = report if report is not None else work / "xeno.md"
    chosen = get_preset(preset)
    deviation = None
    if state_deviation is not None:
        from xenoedge.xeno.experiment_data import parse_state_deviation

        deviation = parse_state_deviation(state_deviation)
    results = run(
        chosen,
        work,
        protocol=protocol,
        log=lambda message: console.print(f"[dim]{message}[/dim]"),
        state_deviation=deviation,
    )
    command = f"xenoedge experiment xeno --preset {preset} --protocol {protocol} --work {work} --report {report}"
    if state_deviation is not None:
        command += f" --state-deviation {state_deviation}"
    write_report(results, report, command)
    console.print(f"results in {report} and {work / 'results.json'} ({results['seconds']:.0f} s)")


def export(
    checkpoint: Path = typer.Argument(..., help="Checkpoint folder, or a default model name: surgical, crop."),
    target: str = typer.Option("cpu", help="Target profile: cpu, jetson-orin, intel-npu (docs/targets.md)."),
    precision: str = typer.Option("int8", help="fp32, fp16 or int8 (what the target allows)."),
    calib: Path = typer.Option(None, callback=input_folder_option, help="Data set folder for INT8 calibration frames."),
    val: Path = typer.Option(
        ..., callback=input_folder_option, help="Data set folder for the accuracy gate (labelled)."
    ),
    max_drop: float = typer.Option(0.01, help="Largest DSC drop per class allowed against FP32 PyTorch."),
    sign: Path = typer.Option(
        None, callback=input_file_option, help="Ed25519 private key (xenoedge bundle keygen) to sign the bundle."
    ),
    shape: str = typer.Option(None, help="Frame HxW (default: the sensor's cube size)."),
    dynamic: bool = typer.Option(
        False, help="Dynamic H and W (refused before any work for targets that need static shapes: NPU, Jetson)."
    ),
    method: str = typer.Option("minmax", help="INT8 calibration: minmax, entropy or percentile."),
    keep_float: str = typer.Option(None, help="Nodes kept in float for INT8: first, head or node names."),
    name: str = typer.Option(None, help="Bundle name (default: the checkpoint folder's name)."),
    version: str = typer.Option("0.1.0", help="Bundle version (semver)."),
    out: Path = typer.Option(
        ..., "--out", "-o", metavar="FILE", callback=output_file_option, help="Bundle file to write (.xeb)."
    ),
    quant_report: bool = typer.Option(
        False,
        "--quant-report",
        help="Per-layer INT8 quantisation error (ONNX Runtime qdq_loss_debug, SQNR in dB) of each ONNX INT8 "
        "artifact, written beside the bundle as <bundle>.<target>.quant-report.json and .md.",
    ),
) -> None:
    """Checkpoint -> ONNX/OpenVINO artifacts -> accuracy gate -> one (signed) bundle."""
    import logging

    from xenoedge.xeno.default_models import checkpoint_or_default

    folder, default_name = checkpoint_or_default(checkpoint)
    if default_name is None:
        check_input_folder(checkpoint, "checkpoint folder")
    from xenoedge.export.export import export_checkpoint

    logging.getLogger("nncf").setLevel(logging.WARNING)

    size = None
    if shape:
        try:
            size = tuple(int(v) for v in shape.lower().split("x"))
        except ValueError:
            raise typer.BadParameter(f"shape must look like 480x640, got {shape!r}", param_hint="--shape") from None
    report = export_checkpoint(
        folder,
        target=target,
        precision=precision,
        out=out,
        calib=calib,
        val=val,
        max_drop=max_drop,
        sign_key=sign,
        shape=size,
        dynamic=dynamic,
        method=method,
        keep_float=split_csv(keep_float) or (),
        name=name or default_name,
        version=version,
        quant_report=quant_report,
        log=lambda message: console.print(f"[dim]{message}[/dim]"),
    )
    table = wide_table(
        *("artifact", "pixel agreement", "mean DSC FP32", "mean DSC artifact", "largest class drop"),
        names=("artifact",),
        title=f"{out}: {target} {precision}",
    )
    for artifact, record in report.artifacts.items():
        table.add_row(
            artifact,
            f"{record['pixel_agreement']:.4f}",
            f"{record['mean_dsc_reference'] or 0:.3f}",
            f"{record['mean_dsc_artifact'] or 0:.3f}",
            f"{record['max_class_drop'] or 0:.3f}",
        )
    print_table(table, console)
    for artifact, path in report.quant_reports.items():
        import json

        from xenoedge.export.quantize import quantization_report_table

        console.print(f"{artifact}: worst layers first (all in {path}, table in {path.with_suffix('.md')})")
        console.print(quantization_report_table(json.loads(path.read_text()), limit=5), markup=False, soft_wrap=True)
    console.print(f"bundle written: {out} ({out.stat().st_size / 1e6:.2f} MB)")


def register(app: typer.Typer) -> None:
    from xenoedge.cli.xeno import app as projections_app

    app.command()(train)
    app.command()(evaluate)
    app.command()(export)
    app.add_typer(experiment_app, name="experiment")
    app.add_typer(projections_app, name="xeno")
