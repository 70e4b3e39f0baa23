"""docs/formats.md must list exactly the formats of ``CUBE_FORMATS``."""

from __future__ import annotations

import re
from pathlib import Path

from xenoedge.devices.formats import CUBE_FORMATS

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"


def test_format_table_matches_code():
    text = DOC.read_text()
    section = text.split("## The format table", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\w+) \| `([^`]+)` \| (yes|no)", section, flags=re.MULTILINE)
    documented = [(name, suffix, stores == "yes") for name, suffix, stores in rows]
    assert documented == [(f.name, f.suffix, f.stores_wavelengths) for f in CUBE_FORMATS]
