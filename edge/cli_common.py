"""What every ``xenoedge`` sub-command shares: the console (stderr) and the progress bar."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

console = Console(stderr=True)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def split_csv(csv: str | None) -> tuple[str, ...] | None:
    """``"a, b"`` -> ``("a", "b")``; None or empty -> None."""
    return tuple(s.strip() for s in csv.split(",") if s.strip()) if csv else None
