"""A corpus of malicious bundles against a real device slot store: each gets a typed error and not
one byte is written outside the installer's staging folder (the whole test folder is snapshotted
around every install). The corpus is built from the shipped crop bundle with ``tarfile`` and by
hand, so every attack sits next to real, correctly hashed members.

The writing pass of the archive reader is also run on its own (as if the verifying pass before it
were missing): even then nothing lands outside staging.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest
from xenoedge.edge.flashing import BundleRejected, FlashError, SelfTestFailed, SlotStore, install_bundle
from xenoedge.export.bundle import BundleError
from xenoedge.export.bundle.archive import Limits, _Scan, _Sink

from tests.edge.install_fixtures import CROP_BUNDLE, ort_models, policy, variant

MODEL = ort_models(CROP_BUNDLE)[0]  # a real, listed member of the shipped bundle (read from its manifest)
TARGET_DIR = MODEL.rsplit("/", 1)[0]  # and its folder: attacks sit next to it
OUTSIDE = Path("/tmp") / f"xenoedge-hostile-{uuid.uuid4().hex[:8]}"


def members(bundle: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(bundle) as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]


def info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, **attrs) -> tarfile.TarInfo:
    out = tarfile.TarInfo(name)
    out.type, out.size, out.mode = kind, size, 0o644
    for key, value in attrs.items():
        setattr(out, key, value)
    return out


def regular(name: str, data: bytes = b"evil") -> tuple[tarfile.TarInfo, bytes]:
    return info(name, size=len(data)), data


def tar_bytes(items: list[tuple[tarfile.TarInfo, bytes | None]], fmt=tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for item, data in items:
            tar.addfile(item, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def huge_member_header() -> bytes:
    """A valid bundle's members, then a header announcing a 1 TB member with no data behind it."""
    data = tar_bytes(members(CROP_BUNDLE))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        last = tar.getmembers()[-1]
    end = last.offset_data + -(-last.size // 512) * 512
    header = info(f"{TARGET_DIR}/weights.bin", size=1 << 40).tobuf(tarfile.GNU_FORMAT)
    return data[:end] + header + bytes(1024)


def valid_members() -> list:
    return members(CROP_BUNDLE)


def with_extra(*extra) -> bytes:
    return tar_bytes(valid_members() + list(extra))


def replaced(name: str, data: bytes) -> bytes:
    assert name in {m.name for m, _ in valid_members()}, f"{name} is no member: nothing to replace"
    return tar_bytes([(info(m.name, size=len(data)), data) if m.name == name else (m, d) for m, d in valid_members()])


def without(name: str) -> bytes:
    kept = [(m, d) for m, d in valid_members() if m.name != name]
    assert len(kept) == len(valid_members()) - 1, f"{name} is no member: nothing to leave out"
    return tar_bytes(kept)


#: name -> (bundle bytes factory, expected BundleRejected reason)
CORPUS = {
    "absolute path": (lambda: with_extra(regular(str(OUTSIDE / "evil"))), "archive"),
    "dot-dot path": (lambda: with_extra(regular("models/../../../evil")), "archive"),
    "symlink escape, then a file through it": (
        lambda: with_extra(
            (info(f"{TARGET_DIR}/out", tarfile.SYMTYPE, linkname=str(OUTSIDE)), None),
            regular(f"{TARGET_DIR}/out/evil"),
        ),
        "archive",
    ),
    "hardlink escape": (
        lambda: with_extra((info(f"{TARGET_DIR}/pw", tarfile.LNKTYPE, linkname="/etc/passwd"), None)),
        "archive",
    ),
    "hardlink to a symlink": (
        lambda: with_extra(
            (info("models/x/sym", tarfile.SYMTYPE, linkname="/etc/passwd"), None),
            (info("models/x/hard", tarfile.LNKTYPE, linkname="models/x/sym"), None),
        ),
        "archive",
    ),
    "character device": (
        lambda: with_extra((info("models/x/null", tarfile.CHRTYPE, devmajor=1, devminor=3), None)),
        "archive",
    ),
    "block device": (
        lambda: with_extra((info("models/x/sda", tarfile.BLKTYPE, devmajor=8, devminor=0), None)),
        "archive",
    ),
    "fifo": (lambda: with_extra((info("models/x/fifo", tarfile.FIFOTYPE), None)), "archive"),
    "duplicate name": (lambda: with_extra(regular(MODEL, b"x" * 100)), "archive"),
    "second manifest": (lambda: with_extra(regular("manifest.json", b"{}")), "archive"),
    "member absent from the manifest": (
        lambda: with_extra(regular(f"{TARGET_DIR}/extra.bin")),
        "archive",
    ),
    "member of the manifest missing": (
        lambda: without(MODEL),
        "integrity",
    ),
    "member larger than declared": (
        lambda: replaced(MODEL, CROP_MODEL_BYTES() + b"\0" * 4096),
        "integrity",
    ),
    "member bytes changed": (lambda: replaced(MODEL, bytes(len(CROP_MODEL_BYTES()))), "integrity"),
    "pax header renames a member outside": (
        lambda: tar_bytes(
            [*valid_members(), (info("models/x/ok", size=4, pax_headers={"path": "../../evil"}), b"evil")],
            fmt=tarfile.PAX_FORMAT,
        ),
        "archive",
    ),
    "gnu long name outside": (lambda: with_extra(regular("models/" + "../" * 40 + "evil")), "archive"),
    "manifest not first": (lambda: tar_bytes(valid_members()[1:] + valid_members()[:1]), "archive"),
    "oversized manifest": (lambda: replaced("manifest.json", b" " * (5 << 20)), "archive"),
    "gzip bomb": (lambda: gzip.compress(CROP_BUNDLE.read_bytes() + b"\0" * (16 << 20), 9), "archive"),
    "1 TB member header": (huge_member_header, "archive"),
    "thousand members": (
        lambda: with_extra(*[regular(f"models/x/f{i}", b"") for i in range(1000)]),
        "archive",
    ),
    "not a tar at all": (lambda: b"\x7fELF" + bytes(10236), "archive"),
}


def CROP_MODEL_BYTES() -> bytes:
    return dict((m.name, d) for m, d in valid_members())[MODEL]


def snapshot(root: Path, skip: Path) -> dict[str, bytes | None]:
    out = {}
    for path in sorted(root.rglob("*")):
        if skip == path or skip in path.parents or path.name.endswith(".lock"):
            continue
        out[path.relative_to(root).as_posix()] = None if path.is_dir() else path.read_bytes()
    return out


@pytest.fixture(scope="module")
def device(tmp_path_factory) -> dict:
    """A device store with crop 1.0.0 active (good) and 1.1.0 inactive, inside a folder that also
    holds a decoy 'outside' tree; both are snapshotted around each hostile install."""
    base = tmp_path_factory.mktemp("hostile")
    store = SlotStore(base / "device" / "var" / "lib" / "xenoedge")
    install_bundle(store, variant(base / "v11.xeb", version="1.1.0"), policy(self_test=False))
    install_bundle(store, CROP_BUNDLE, policy(self_test=False))
    store.mark_good()
    (base / "device" / "etc").mkdir()
    (base / "device" / "etc" / "passwd").write_text("root:x:0:0\n")
    return {"base": base, "store": store}


@pytest.mark.parametrize("attack", list(CORPUS))
def test_hostile_bundle_is_refused_and_writes_nothing_outside_staging(device, attack):
    base, store = device["base"], device["store"]
    factory, reason = CORPUS[attack]
    bundle = base / "incoming" / f"{attack.replace(' ', '-')}.xeb"
    bundle.parent.mkdir(exist_ok=True)
    bundle.write_bytes(factory())
    before = snapshot(base, store.staging_dir)
    with pytest.raises(BundleRejected) as err:
        install_bundle(store, bundle, policy())
    assert err.value.reason == reason, str(err.value)
    assert "bundle refused" in str(err.value)
    assert snapshot(base, store.staging_dir) == before
    assert list(store.staging_dir.iterdir()) == []
    assert not OUTSIDE.exists() and not (base / "evil").exists() and not Path("/evil").exists()
    assert store.active().version == "1.0.0" and store.inactive().version == "1.1.0"


def npz_bomb(megabytes: int, *, lie: bool = False) -> bytes:
    """An npz whose ``raw`` array decompresses to ``megabytes`` MB of zeros (about 1.3 MB packed);
    with ``lie`` a tiny array whose header claims that size instead."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("raw.npy", "w", force_zip64=True) as f:
            header = {"descr": "|u1", "fortran_order": False, "shape": (megabytes << 20,)}
            np.lib.format.write_array_header_1_0(f, header)
            for _ in range(1 if lie else megabytes):
                f.write(bytes(1 << 20 if not lie else 16))
    return buf.getvalue()


@pytest.mark.parametrize(("lie", "message"), [(False, "zip bomb"), (True, "declares")])
def test_selftest_npz_bomb_is_refused_before_loading(device, lie, message):
    """Correctly hashed, unsigned, but its golden input would decompress to 260 MB (or its header
    claims so): refused at the self-test, nothing outside staging, the previous bundle still in
    the inactive slot."""
    base, store = device["base"], device["store"]
    bomb = variant(
        base / "incoming" / f"npz-bomb-{lie}.xeb", version="6.6.6", files={"selftest/input.npz": npz_bomb(260, lie=lie)}
    )
    before = snapshot(base, store.staging_dir)
    with pytest.raises(SelfTestFailed, match=message):
        install_bundle(store, bomb, policy())
    assert snapshot(base, store.staging_dir) == before
    assert store.active().version == "1.0.0" and store.inactive().version == "1.1.0"


@pytest.mark.parametrize("attack", [a for a, (_, reason) in CORPUS.items() if reason in ("archive", "integrity")])
def test_the_writing_pass_alone_stays_inside_staging(tmp_path, attack):
    """Second line of defence: run only the pass that writes (no verifying pass first)."""
    staging = tmp_path / "staging"
    staging.mkdir()
    (tmp_path / "outside").mkdir()
    bundle = tmp_path / "bad.xeb"
    bundle.write_bytes(CORPUS[attack][0]())
    before = snapshot(tmp_path, staging)
    with open(bundle, "rb") as f, pytest.raises(BundleError):
        _Scan(f, "bad.xeb", public_key=None, require_signature=False, limits=Limits(), sink=_Sink(staging)).run()
    assert snapshot(tmp_path, staging) == before
    for path in staging.rglob("*"):  # whatever it wrote is a plain file or folder inside staging
        assert not path.is_symlink() and (path.is_dir() or path.is_file())
        assert staging in path.resolve().parents
    assert not OUTSIDE.exists()


def test_errors_are_typed_flash_errors(device):
    base, store = device["base"], device["store"]
    bundle = base / "incoming" / "typed.xeb"
    bundle.write_bytes(CORPUS["dot-dot path"][0]())
    with pytest.raises(FlashError) as err:
        install_bundle(store, bundle, policy())
    assert isinstance(err.value.__cause__, BundleError) and "'models/../../../evil'" in str(err.value)


@pytest.mark.parametrize(
    "extra",
    [
        {f"{TARGET_DIR}/{MODEL.rsplit('/', 1)[1].upper()}": b"twin"},  # one file on a FAT/exFAT card or macOS
        {f"{TARGET_DIR}/w": b"file", f"{TARGET_DIR}/w/x": b"needs w to be a folder"},
    ],
    ids=["case-only twin", "file where a folder must be"],
)
def test_listed_members_that_collide_on_disk_are_refused(device, extra):
    """Correctly listed and hashed (the manifest's author made them), but they cannot both be
    unpacked: refused up front as a hostile archive, not a half-written slot."""
    base, store = device["base"], device["store"]
    bundle = variant(base / "incoming" / f"collide-{len(extra)}.xeb", version="7.0.0", files=extra)
    before = snapshot(base, store.staging_dir)
    with pytest.raises(BundleRejected, match="collides with member") as err:
        install_bundle(store, bundle, policy())
    assert err.value.reason == "archive"
    assert snapshot(base, store.staging_dir) == before
