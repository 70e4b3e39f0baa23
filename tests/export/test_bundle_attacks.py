"""Hostile archives built by hand with tarfile: each is refused with a typed error naming the member,
and extraction leaves nothing behind (no dest, no staging folder, nothing outside)."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest
from xenoedge.export.bundle import ArchiveError, IntegrityError, UnsafeArchiveError, extract_bundle, verify_bundle
from xenoedge.export.bundle.testing import write_demo_bundle

MODEL = "models/cpu-ort-int8/model.onnx"


@pytest.fixture()
def valid(tmp_path):
    return write_demo_bundle(tmp_path / "valid.xeb")


def _members(bundle) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(bundle) as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]


def _build(path, members: list[tuple[tarfile.TarInfo, bytes | None]]):
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, **attrs) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def _extra(name: str, data: bytes = b"evil") -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, size=len(data)), data


ATTACKS = {
    "absolute path": ("/tmp/xenoedge-evil", lambda: [_extra("/tmp/xenoedge-evil")]),
    "dot-dot traversal": ("models/../../evil.txt", lambda: [_extra("models/../../evil.txt")]),
    "dot component": ("./models/x", lambda: [_extra("./models/x")]),
    "symlink": (
        "models/cpu-ort-int8/link",
        lambda: [(_info("models/cpu-ort-int8/link", tarfile.SYMTYPE, linkname="/etc"), None)],
    ),
    "hardlink": (
        "models/cpu-ort-int8/hard",
        lambda: [(_info("models/cpu-ort-int8/hard", tarfile.LNKTYPE, linkname="/etc/passwd"), None)],
    ),
    "hardlink to a symlink": (
        "models/a/sym",
        lambda: [
            (_info("models/a/sym", tarfile.SYMTYPE, linkname="/etc/passwd"), None),
            (_info("models/a/hard", tarfile.LNKTYPE, linkname="models/a/sym"), None),
        ],
    ),
    "character device": (
        "models/a/null",
        lambda: [(_info("models/a/null", tarfile.CHRTYPE, devmajor=1, devminor=3), None)],
    ),
    "fifo": ("models/a/fifo", lambda: [(_info("models/a/fifo", tarfile.FIFOTYPE), None)]),
    "directory": ("models/a", lambda: [(_info("models/a", tarfile.DIRTYPE), None)]),
    "duplicate name": (MODEL, lambda: [_extra(MODEL, b"x" * 3000)]),
    "second manifest": ("manifest.json", lambda: [_extra("manifest.json", b"{}")]),
    "unlisted extra member": ("models/cpu-ort-int8/extra.bin", lambda: [_extra("models/cpu-ort-int8/extra.bin")]),
    "long gnu name": ("models/" + "a" * 150, lambda: [_extra("models/" + "a" * 150)]),
}


def _assert_nothing_left(tmp_path, dest, before):
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_hostile_member_is_refused(tmp_path, valid, attack):
    member, extra = ATTACKS[attack]
    bad = _build(tmp_path / "bad.xeb", _members(valid) + extra())
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UnsafeArchiveError) as err:
        verify_bundle(bad)
    assert err.value.member == member and repr(member) in str(err.value)
    dest = tmp_path / "slot"
    with pytest.raises(UnsafeArchiveError):
        extract_bundle(bad, dest)
    _assert_nothing_left(tmp_path, dest, before)
    assert not (tmp_path.parent / "evil.txt").exists()


@pytest.mark.parametrize(
    ("limits", "member"),
    [
        ({"max_member_bytes": 2500}, "manifest.json"),  # ~3.2 kB manifest first
        ({"max_members": 3}, "models/intel-npu/model.xml"),  # 4th member
        ({"max_total_bytes": 7000}, "models/intel-npu/model.bin"),  # manifest + 3000 + 1500 bytes
    ],
)
def test_limits(tmp_path, valid, limits, member):
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UnsafeArchiveError, match=r"limit|past") as err:
        extract_bundle(valid, tmp_path / "slot", **limits)
    assert err.value.member == member
    _assert_nothing_left(tmp_path, tmp_path / "slot", before)


def test_member_larger_than_declared_and_missing_member(tmp_path, valid):
    members = _members(valid)
    grown = [(_info(m.name, size=len(d) + 100), d + b"\0" * 100) if m.name == MODEL else (m, d) for m, d in members]
    with pytest.raises(IntegrityError, match="3100 bytes, the manifest says 3000") as err:
        extract_bundle(_build(tmp_path / "grown.xeb", grown), tmp_path / "slot")
    assert err.value.member == MODEL
    missing = [(m, d) for m, d in members if m.name != MODEL]
    with pytest.raises(IntegrityError, match="listed but missing") as err:
        extract_bundle(_build(tmp_path / "missing.xeb", missing), tmp_path / "slot")
    assert err.value.member == MODEL and not (tmp_path / "slot").exists()


def test_member_before_the_manifest_and_compressed_bundles(tmp_path, valid):
    members = _members(valid)
    with pytest.raises(ArchiveError, match="first member"):
        verify_bundle(_build(tmp_path / "order.xeb", members[1:] + members[:1]))
    gz = tmp_path / "bundle.xeb.gz"
    gz.write_bytes(gzip.compress(valid.read_bytes()))
    with pytest.raises(ArchiveError, match="uncompressed tar"):
        extract_bundle(gz, tmp_path / "slot")
    assert not (tmp_path / "slot").exists()


def test_existing_dest_is_refused(tmp_path, valid):
    (tmp_path / "slot").mkdir()
    (tmp_path / "slot" / "keep").write_text("old model")
    with pytest.raises(Exception, match="already exists"):
        extract_bundle(valid, tmp_path / "slot")
    assert (tmp_path / "slot" / "keep").read_text() == "old model"


def test_gnu_rebuild_of_a_valid_bundle_is_not_canonical(tmp_path, valid):
    """Same members, another tar writer: refused, because the reader accepts one layout only."""
    with pytest.raises(ArchiveError, match=r"not canonical|canonical bundle"):
        verify_bundle(_build(tmp_path / "gnu.xeb", _members(valid)))
