"""What every ``xenoedge`` sub-command shares: the console (stderr), the progress bar, wide tables
and the checks of the paths a user types.

Paths are checked up front, before any work, by the ``*_option`` typer callbacks (or the
``check_*`` functions where a value may be something else than a path): a bad one is a
``PathError``, which ``xenoedge`` prints as one line naming the path and what is wrong, with
exit status 2. Output options say ``FOLDER`` or ``FILE`` in ``--help`` (their metavar)::

    out: Path = typer.Option(..., "--out", "-o", metavar="FOLDER", callback=output_folder_option)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from xenoedge.errors import XenoedgeError

console = Console(stderr=True)


class PathError(XenoedgeError):
    """A path given on the command line that cannot be used: ``PATH: what is wrong``."""

    def __init__(self, path: object, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}")


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


# ---- tables -------------------------------------------------------------------------------------
def wide_table(*columns: str, names: tuple[str, ...] = (), **kwargs) -> Table:
    """A rich table whose ``names`` columns (what a user must type: sensor names, camera strings)
    are never cut or ellipsized: they keep their width and other columns fold. Print it with
    ``print_table``, which never narrows it below what those columns need."""
    table = Table(**kwargs)
    for column in columns:
        if column in names:
            table.add_column(column, no_wrap=True, overflow="fold")
        else:
            table.add_column(column, overflow="fold")
    return table


def print_table(table: Table, out: Console | None = None) -> None:
    """Print ``table`` on ``out`` (stdout by default). On a terminal it takes the terminal's width
    (name columns do not wrap, the others fold); to a pipe or a file it is printed no narrower than
    its name columns need, so that a name is never cut at 80 columns."""
    out = out or Console()
    if out.is_terminal:
        out.print(table)
        return
    # no narrower than what keeps every name column whole (the other columns fold to fit), with
    # some room beyond that for the prose columns
    measured = out.measure(table, options=out.options.update(width=10_000))
    needed = min(measured.maximum, measured.minimum + 40)
    narrow = out.width
    if needed <= narrow:
        out.print(table)
        return
    out.width = needed  # Console.print never renders wider than the console
    try:
        out.print(table, crop=False)
    finally:
        out.width = narrow


# ---- paths --------------------------------------------------------------------------------------
def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (``/`` at worst)."""
    absolute = Path(os.path.abspath(path))
    for candidate in (absolute, *absolute.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(absolute.anchor)


def _probe_folder(path: Path, target: Path, base: Path) -> None:
    """Create (and remove) a temporary folder in ``base``, the closest existing ancestor of the
    folder ``target`` that ``path`` needs: the only honest test of writability (root passes
    ``os.access`` on read-only and virtual file systems)."""
    try:
        probe = tempfile.mkdtemp(prefix=".xenoedge-probe-", dir=base)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        absolute = Path(os.path.abspath(target))
        if base == absolute:
            raise PathError(path, f"cannot write in {target} ({reason})") from None
        missing = base / absolute.relative_to(base).parts[0]
        raise PathError(path, f"cannot create the folder {missing} ({reason})") from None
    os.rmdir(probe)


def check_output_folder(path: Path, what: str = "the folder") -> Path:
    """``path`` is, or can be created as, a folder we can write in (nothing is created)."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise PathError(path, "exists and is not a folder (give a folder; a file of that name is in the way)")
        base = _nearest_existing(path)
        if not base.is_dir():
            raise PathError(path, f"cannot create {what}: {base} is a file, not a folder")
    except OSError as exc:
        raise PathError(path, f"cannot be used ({exc.strerror or exc})") from None
    _probe_folder(path, path, base)
    return path


def check_output_file(path: Path, what: str = "the file") -> Path:
    """``path`` names a file we can write (an existing one is replaced); its folder may be missing
    and is created by the command (nothing is created here)."""
    path = Path(path)
    try:
        if path.is_dir():
            raise PathError(path, "is a folder; give a file name")
        if path.exists() and not path.is_file():
            raise PathError(path, "exists and is not a regular file")
        parent = path.parent
        base = _nearest_existing(parent)
        if not base.is_dir():
            raise PathError(path, f"cannot create {what}: {base} is a file, not a folder")
    except OSError as exc:
        raise PathError(path, f"cannot be used ({exc.strerror or exc})") from None
    _probe_folder(path, parent, base)
    return path


def check_input_file(path: Path, what: str = "file") -> Path:
    """``path`` is an existing, readable file."""
    path = Path(path)
    if not path.exists():
        raise PathError(path, f"no such {what}")
    if path.is_dir():
        raise PathError(path, f"is a folder, not a {what}")
    if not os.access(path, os.R_OK):
        raise PathError(path, f"cannot read this {what} (permission denied)")
    return path


def check_input_folder(path: Path, what: str = "folder") -> Path:
    """``path`` is an existing folder."""
    path = Path(path)
    if not path.exists():
        raise PathError(path, f"no such {what}")
    if not path.is_dir():
        raise PathError(path, f"is a file, not a {what}")
    return path


def check_input_path(path: Path, what: str = "file or folder") -> Path:
    """``path`` exists (a file or a folder)."""
    path = Path(path)
    if not path.exists():
        raise PathError(path, f"no such {what}")
    return path


def _callback(check):
    def callback(ctx: typer.Context, value: Path | None) -> Path | None:
        if value is None or ctx.resilient_parsing:
            return value
        return check(Path(value))

    callback.__name__ = f"{check.__name__}_option"
    callback.__doc__ = f"typer callback: ``{check.__name__}`` on the option's value, up front."
    return callback


output_folder_option = _callback(check_output_folder)
output_file_option = _callback(check_output_file)
input_file_option = _callback(check_input_file)
input_folder_option = _callback(check_input_folder)
input_path_option = _callback(check_input_path)
