"""docs/bundles.md states the limits, fields and errors the code has (STYLE.md: tests that docs match code)."""

from pathlib import Path

import xenoedge.export.bundle as bundle
from xenoedge.export.bundle.manifest import OPTIONAL_KEYS, PRECISIONS, REQUIRED_KEYS, RUNTIMES

DOC = (Path(__file__).resolve().parents[2] / "docs" / "bundles.md").read_text()


def test_doc_matches_code():
    for key in REQUIRED_KEYS + OPTIONAL_KEYS:
        assert f"| `{key}` |" in DOC, key
    for value in RUNTIMES + PRECISIONS:
        assert f"`{value}`" in DOC, value
    assert f"| `max_members` | {bundle.DEFAULT_MAX_MEMBERS} |" in DOC
    assert f"({bundle.DEFAULT_MAX_MEMBER_BYTES})" in DOC and f"({bundle.DEFAULT_MAX_TOTAL_BYTES})" in DOC
    errors = [n for n in bundle.__all__ if n.endswith("Error") and issubclass(getattr(bundle, n), bundle.BundleError)]
    for name in errors:
        if name != "BundleError":
            assert f"| `{name}`" in DOC, name
