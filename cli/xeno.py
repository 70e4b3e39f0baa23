"""``xenoedge xeno``: learn and inspect xeno-learning projections.

    xenoedge xeno learn --data DIR --species pig --state malperfused_venous [--organs kidney,liver]
                        --out pig_venous.npz [--steps 100] [--seed 0]
    xenoedge xeno show pig_venous.npz

``learn`` writes ``FILE.npz`` (docs/projections.md) and ``FILE.png``: per organ, the median
spectra of physiological, pathological and mapped physiological pixels. Errors are
``XenoedgeError``s; the top-level ``xenoedge`` entry point prints them as one line.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from xenoedge.cli.common import (
    console,
    input_file_option,
    input_folder_option,
    output_file_option,
    progress_bar,
    split_csv,
)

app = typer.Typer(help="Xeno-learning projections: learn per-organ maps, inspect files.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Xeno-learning projections (DESIGN.md section 1)."""


def _summary_table(ps, title: str) -> Table:
    table = Table(title=title)
    for column in ("organ", "state", "species", "maps", "loss identity", "loss learnt", "reduction"):
        table.add_column(column, justify="left" if column in ("organ", "state", "species") else "right")
    for row in ps.summary():
        reduction = row["initial_loss"] / row["loss"] if row["loss"] > 0 else float("inf")
        table.add_row(
            row["organ"],
            row["state"],
            row["species"],
            str(row["maps"]),
            f"{row['initial_loss']:.3g}",
            f"{row['loss']:.3g}",
            f"×{reduction:.3g}" if reduction >= 1 else f"[red]×{reduction:.2g} (worse than identity)[/red]",
        )
    return table


@app.command()
def learn(
    data: Path = typer.Option(
        ..., "--data", callback=input_folder_option, help="Data set folder (xenoedge simulate layout)."
    ),
    species: str = typer.Option(..., help="Source species, e.g. pig or rat."),
    state: str = typer.Option(..., help="Pathological state to learn, e.g. malperfused_venous or icg."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        metavar="FILE",
        callback=output_file_option,
        help="Projection file (.npz) to write; a .png goes beside it.",
    ),
    organs: str = typer.Option(None, help="Comma-separated organs (labels). Default: every organ with pairs."),
    physiological: str = typer.Option(None, help="The healthy state. Default: the data set's first state."),
    steps: int = typer.Option(100, min=0, help="Adam steps per map."),
    lr: float = typer.Option(0.01, min=1e-9, help="Adam learning rate."),
    seed: int = typer.Option(0, help="Seed of the pixel subsampling."),
    max_pixels: int = typer.Option(20000, min=2, help="Pixels per organ image entering the statistics."),
) -> None:
    """Learn one affine map per (physiological, pathological) image pair of each organ in SPECIES."""
    import json

    from xenoedge.xeno.projections import (
        ProjectionError,
        learn_projections,
        organ_samples_from_folder,
        plot_projection_effect,
        save_projections,
    )

    if out.suffix != ".npz":
        raise ProjectionError(f"{out}: the projection file must end in .npz")
    if physiological is None:
        try:
            physiological = json.loads((data / "index.json").read_text())["states"][0]
        except (OSError, ValueError, KeyError, IndexError):
            physiological = "physiological"
    organ_list = split_csv(organs)
    samples, wavelengths = organ_samples_from_folder(data, species, states=(physiological, state), organs=organ_list)
    if not samples:
        raise ProjectionError(f"{data}: no {species} images with organs in state {physiological} or {state}")
    with progress_bar() as progress:
        task = progress.add_task(f"learning {species} {state}", total=steps)
        ps = learn_projections(
            samples,
            state=state,
            physiological=physiological,
            source_species=species,
            wavelengths_nm=wavelengths,
            organs=organ_list,
            steps=steps,
            lr=lr,
            seed=seed,
            max_pixels=max_pixels,
            progress=lambda done, total: progress.update(task, completed=done),
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    save_projections(out, ps)
    picture = plot_projection_effect(ps, samples, out.with_suffix(".png"))
    console.print(_summary_table(ps, f"{len(ps)} maps, {species} {physiological} → {state}"))
    worse = int((ps.losses >= ps.initial_losses).sum())
    if worse:
        console.print(
            f"[yellow]warning:[/yellow] {worse} of {len(ps)} maps end worse than the identity; Adam at lr {lr} "
            "needs about 75-100 steps to settle (docs/projections.md)"
        )
    console.print(f"wrote {out} and {picture}")


@app.command()
def show(path: Path = typer.Argument(..., callback=input_file_option, help="Projection file (.npz).")) -> None:
    """Print what a projection file holds: source, bands, maps per organ and their losses."""
    from xenoedge.xeno.projections import load_projections

    ps = load_projections(path)
    console.print(
        f"{path}: format {ps.format_version}, created {ps.created_at}, source {ps.source_species}, "
        f"{ps.wavelength_range()}, {len(ps)} maps"
    )
    console.print(_summary_table(ps, str(path)))
