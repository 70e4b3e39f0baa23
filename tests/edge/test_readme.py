"""README.md's commands chain: keygen writes the key that export signs with, and verify checks the
bundle export wrote with the public key keygen wrote (KEY.pub), in that order (issue 17).
The chain itself was run by hand; this keeps the text from drifting apart again."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _commands() -> list[list[str]]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def _option(words: list[str], *names: str) -> str | None:
    for i, word in enumerate(words[:-1]):
        if word in names:
            return words[i + 1]
    return None


def test_the_set_up_commands_come_first():
    assert _commands()[:2] == [["make", "demo"], ["make", "test"]]


def test_keygen_then_signed_export_then_verify_with_the_public_key():
    commands = _commands()
    keygen = next(i for i, c in enumerate(commands) if c[1:3] == ["bundle", "keygen"])
    export = next(i for i, c in enumerate(commands) if c[1:2] == ["export"])
    verify = next(i for i, c in enumerate(commands) if c[1:3] == ["bundle", "verify"])
    assert keygen < export < verify
    key = _option(commands[keygen], "--out", "-o")
    assert key and _option(commands[export], "--sign") == key
    bundle = _option(commands[export], "--out", "-o")
    assert commands[verify][3] == bundle and _option(commands[verify], "--key", "-k") == f"{key}.pub"


def test_export_reads_data_that_an_earlier_command_simulated():
    commands = _commands()
    export = next(i for i, c in enumerate(commands) if c[1:2] == ["export"])
    simulated = {_option(c, "--out", "-o") for c in commands[:export] if c[1:2] == ["simulate"]}
    data = [_option(commands[export], name) for name in ("--calib", "--val")]
    assert data[1] is not None and all(folder in simulated for folder in data if folder is not None)
