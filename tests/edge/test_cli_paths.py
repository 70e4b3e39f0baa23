"""Every ``xenoedge`` command that takes an output path refuses a bad one up front: one line naming
the path, no traceback, a non-zero exit (issue 17).

The commands are found by walking the typer app (every option spelt ``--out``, ``-o`` or
``--output``), so a new command is covered the day it is added. An output FOLDER is bad when a
regular file has its name, an output FILE when a folder has it; both are bad under a parent that
cannot be created (``/proc/nope/...``). Other required parameters get placeholder values; the
command must complain about ``--out`` first, since it is checked before any work.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main
from xenoedge.cli.main import app, main

OUT_NAMES = {"--out", "-o", "--output"}


def _walk(command, path=()):
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name, sub in sorted(subcommands.items()):
            yield from _walk(sub, (*path, name))
    else:
        yield path, command


def _out_options() -> list[tuple[tuple[str, ...], object, object]]:
    found = []
    for path, command in _walk(typer.main.get_command(app)):
        for param in command.params:
            if set(getattr(param, "opts", ())) & OUT_NAMES:
                found.append((path, command, param))
    return found


def _kind(param) -> str:
    """FOLDER or FILE: the option's metavar, or what its help says."""
    metavar = (param.metavar or "").upper()
    if metavar in ("FOLDER", "FILE"):
        return metavar
    return "FOLDER" if "folder" in (param.help or "").lower() else "FILE"


def _placeholders(command, skip) -> list[str]:
    """Values for the other required parameters: they are not what is tested, and a command that
    checks --out up front never looks at them."""
    args: list[str] = []
    for param in command.params:
        if param is skip or not param.required:
            continue
        value = "placeholder"
        if getattr(param, "opts", None) and param.opts[0].startswith("-"):
            args += [param.opts[0], value]
        else:
            args.append(value)
    return args


OPTIONS = _out_options()


def test_the_walk_finds_the_commands_that_write():
    names = {" ".join(path) for path, _, _ in OPTIONS}
    assert {"simulate", "camera-preview", "evaluate", "xeno learn", "calibrate dark", "bundle keygen"} <= names


def _run(argv: list[str], capsys) -> tuple[int, str]:
    """``xenoedge ARGV`` in this process, as the console script runs it: (exit status, output)."""
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # a traceback is what this test exists to catch
        out = capsys.readouterr()
        pytest.fail(f"xenoedge {' '.join(argv)} raised {exc!r}\n{out.out}{out.err}")
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize(
    ("path", "command", "param"),
    OPTIONS,
    ids=[f"{' '.join(path)} {param.opts[0]}" for path, _, param in OPTIONS],
)
@pytest.mark.parametrize("case", ["in-the-way", "no-parent"])
@pytest.mark.timeout(60)  # still running after a minute: --out was not checked up front
def test_a_bad_out_is_one_line_and_a_non_zero_exit(path, command, param, case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a command that does not check writes here, not in the repository
    monkeypatch.setenv("COLUMNS", "80")
    kind = _kind(param)
    if case == "in-the-way":
        bad = tmp_path / "in-the-way"
        if kind == "FOLDER":
            bad.write_text("a regular file where the output folder should go")
        else:
            bad.mkdir()
    else:
        bad = Path("/proc/nope") / ("x" if kind == "FOLDER" else "x.npz")
    argv = [*path, param.opts[0], str(bad), *_placeholders(command, param)]
    code, output = _run(argv, capsys)
    lines = [line for line in output.splitlines() if line.strip()]
    assert code != 0, output
    assert "Traceback" not in output, output
    assert len(lines) == 1, f"xenoedge {' '.join(argv)} printed {len(lines)} lines:\n{output}"
    assert str(bad) in lines[0], f"the error does not name {bad}: {lines[0]}"


def test_the_messages_say_what_is_wrong(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    cases = [
        (["simulate", "--out", str(a_file)], "exists and is not a folder"),
        (["simulate", "--out", str(a_file / "data")], f"{a_file} is a file, not a folder"),
        (["xeno", "learn", "-o", "/proc/nope/pig.npz", "--data", ".", "--species", "pig", "--state", "icg"], "cannot"),
        (["calibrate", "dark", "--out", str(tmp_path)], "is a folder; give a file name"),
        (["calibrate", "check", str(tmp_path / "missing.npz")], "no such file"),
        (["calibrate", "check", str(a_file)], "not a valid .npz references file"),
        (["evaluate", str(tmp_path / "nope"), "--data", ".", "--out", "e"], "no such folder"),
    ]  # fmt: skip
    for argv, expected in cases:
        code, output = _run(argv, capsys)
        assert code == 2 and output.startswith("error:") and expected in output, (argv, output)
        assert "pickle" not in output and len(output.strip().splitlines()) == 1, (argv, output)


def test_experiment_report_defaults_to_its_work_folder(tmp_path, monkeypatch, capsys):
    """A run from the repository root must not overwrite the committed docs/experiments/xeno.md."""
    import xenoedge.xeno.experiment

    written = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(xenoedge.xeno.experiment, "run", lambda preset, work, **kwargs: {"seconds": 1.0})
    monkeypatch.setattr(
        xenoedge.xeno.experiment, "write_report", lambda results, path, *args, **kw: written.append(path)
    )
    code, output = _run(["experiment", "xeno", "--preset", "tiny", "--work", "w"], capsys)
    assert code == 0, output
    assert written == [Path("w") / "xeno.md"]
    assert not (tmp_path / "docs").exists()
