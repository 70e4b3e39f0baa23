"""Bundles with real files: round trip, tampering with any byte, keys and signatures, schema errors."""

from __future__ import annotations

import json
import os
import stat
import tarfile

import numpy as np
import pytest
from xenoedge.export.bundle import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    ArchiveError,
    BundleError,
    BundleFile,
    IncompatibleBundleError,
    IntegrityError,
    KeyFileError,
    ManifestError,
    SelftestError,
    SignatureError,
    check_selftest,
    compatible_targets,
    extract_bundle,
    file_sha256,
    generate_keypair,
    inspect_bundle,
    key_id,
    load_private_key,
    load_public_key,
    load_selftest,
    read_manifest,
    save_private_key,
    save_public_key,
    sign_bundle,
    verify_bundle,
    write_bundle,
)
from xenoedge.export.bundle.testing import demo_files, demo_manifest, write_demo_bundle


@pytest.fixture(scope="module")
def keys():
    return generate_keypair()


@pytest.fixture()
def signed(tmp_path, keys):
    return write_demo_bundle(tmp_path / "demo.xeb", signing_key=keys[0])


def test_round_trip_extracts_exactly_the_listed_files(tmp_path, keys, signed):
    manifest = verify_bundle(signed, public_key=keys[1], require_signature=True)
    assert manifest.signed and manifest.signature_verified and manifest.key_id == key_id(keys[1])
    assert manifest["signature"] == {"algorithm": "ed25519", "key_id": key_id(keys[1])}
    npu = manifest["targets"]["intel-npu"]
    assert npu["model"] == "models/intel-npu/model.xml" and len(npu["files"]) == 2
    dest = extract_bundle(signed, tmp_path / "slot-a", public_key=keys[1], require_signature=True)
    files = demo_files()
    on_disk = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert on_disk == set(files) | {MANIFEST_NAME, SIGNATURE_NAME}
    for name, data in files.items():
        assert (dest / name).read_bytes() == data
        assert stat.S_IMODE((dest / name).stat().st_mode) == 0o644
    assert read_manifest(dest) == manifest == read_manifest(signed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.xeb", "slot-a"]  # no staging left
    selftest = load_selftest(dest, manifest)
    assert set(selftest.inputs) == {"raw", "dark", "gain"} and selftest.inputs["raw"].dtype == np.uint16
    assert check_selftest(selftest.expected, selftest) == 1.0
    with pytest.raises(SelftestError, match="self-test failed"):
        check_selftest(selftest.expected + 1, selftest)


def test_written_bundle_is_canonical_and_reproducible(tmp_path, keys, signed):
    unsigned = write_demo_bundle(tmp_path / "unsigned.xeb")
    sources = tmp_path / "src"
    for name, data in demo_files().items():  # same content from source files and BundleFile objects
        (sources / name).parent.mkdir(parents=True, exist_ok=True)
        (sources / name).write_bytes(data)
    from_paths = write_bundle(
        tmp_path / "paths.xeb", demo_manifest(), [BundleFile(n, source=sources / n) for n in demo_files()]
    )
    assert from_paths.read_bytes() == unsigned.read_bytes()
    assert sign_bundle(unsigned, keys[0]).read_bytes() == signed.read_bytes()  # signing later == signing at write
    with tarfile.open(signed) as tar:
        names = tar.getnames()
        assert names[:2] == [MANIFEST_NAME, SIGNATURE_NAME] and names[2:] == sorted(demo_files())
        assert all(m.mode == 0o644 and m.uid == 0 and m.isreg() for m in tar.getmembers())
    assert signed.stat().st_size % 10240 == 0


def _tamper_offsets(path) -> list[int]:
    """Every header byte, the first/middle/last byte of each member's data and padding, the trailer."""
    offsets: set[int] = set()
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    for m in members:
        offsets.update(range(m.offset, m.offset + 512, 3))
        offsets.update(range(m.offset + 148, m.offset + 156))  # the checksum field, including its NUL and space
        end = m.offset_data + m.size
        offsets.update({m.offset_data, m.offset_data + m.size // 2, end - 1, *range(m.offset_data, end, 211)})
        offsets.update({end, (end + 511) // 512 * 512 - 1} if end % 512 else set())
    size = path.stat().st_size
    last = members[-1].offset_data + members[-1].size
    offsets.update({*range(last, size, 331), size - 1})
    return sorted(o for o in offsets if o < size)


def test_changing_any_byte_is_detected(tmp_path, keys, signed):
    original = signed.read_bytes()
    with tarfile.open(signed) as tar:
        spans = {m.name: (m.offset_data, m.offset_data + m.size) for m in tar.getmembers()}
    offsets = _tamper_offsets(signed)
    assert len(offsets) > 1000
    bad = tmp_path / "bad.xeb"
    for i, offset in enumerate(offsets):
        data = bytearray(original)
        data[offset] ^= 0x01 if i % 2 else 0xFF
        bad.write_bytes(bytes(data))
        with pytest.raises(BundleError) as err:
            verify_bundle(bad, public_key=keys[1])
        for name, (start, end) in spans.items():
            if start <= offset < end and name not in (MANIFEST_NAME, SIGNATURE_NAME):
                assert isinstance(err.value, IntegrityError) and err.value.member == name, (offset, err.value)
            elif start <= offset < end:
                assert isinstance(err.value, (SignatureError, ManifestError)), (offset, err.value)
    bad.write_bytes(original + b"\0" * 10240)  # appended record
    with pytest.raises(ArchiveError, match="canonical"):
        verify_bundle(bad)


def test_unsigned_bundle_still_detects_file_and_layout_changes(tmp_path):
    unsigned = write_demo_bundle(tmp_path / "u.xeb")
    with tarfile.open(unsigned) as tar:
        model = tar.getmember("models/intel-npu/model.bin")
    data = bytearray(unsigned.read_bytes())
    data[model.offset_data + 7] ^= 0x10
    unsigned.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"model\.bin.*SHA-256"):
        verify_bundle(unsigned)


def test_wrong_key_missing_and_stripped_signatures(tmp_path, keys, signed):
    _, other = generate_keypair()
    with pytest.raises(SignatureError, match=f"signed by key {key_id(keys[1])}, not by the given key {key_id(other)}"):
        verify_bundle(signed, public_key=other)
    unsigned = write_demo_bundle(tmp_path / "u.xeb")
    assert not verify_bundle(unsigned).signed
    for kwargs in ({"require_signature": True}, {"public_key": keys[1]}):
        with pytest.raises(SignatureError, match="unsigned"):
            verify_bundle(unsigned, **kwargs)
        with pytest.raises(SignatureError):
            extract_bundle(unsigned, tmp_path / "x", **kwargs)
        assert not (tmp_path / "x").exists()
    # strip manifest.sig from a signed bundle: the signed manifest still names the key
    stripped = tmp_path / "stripped.xeb"
    with tarfile.open(signed) as src, tarfile.open(stripped, "w", format=tarfile.USTAR_FORMAT) as dst:
        for m in src.getmembers():
            if m.name != SIGNATURE_NAME:
                dst.addfile(m, src.extractfile(m))
    with pytest.raises(SignatureError, match=r"manifest\.sig is missing"):
        verify_bundle(stripped)


def test_resigning_with_another_key(tmp_path, keys, signed):
    other_private, other_public = generate_keypair()
    sign_bundle(signed, other_private)
    assert verify_bundle(signed, public_key=other_public).key_id == key_id(other_public)
    with pytest.raises(SignatureError):
        verify_bundle(signed, public_key=keys[1])


def test_key_files(tmp_path, keys):
    private, public = keys
    path = save_private_key(tmp_path / "k.pem", private)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert key_id(load_private_key(path).public_key()) == key_id(public)
    with pytest.raises(KeyFileError, match="exists"):
        save_private_key(path, private)
    enc = save_private_key(tmp_path / "enc.pem", private, password="s3cret")
    assert key_id(load_private_key(enc, "s3cret").public_key()) == key_id(public)
    for password in (None, "wrong"):
        with pytest.raises(KeyFileError):
            load_private_key(enc, password)
    for fmt in ("pem", "hex"):
        pub_path = save_public_key(tmp_path / f"k.{fmt}", public, fmt=fmt)
        assert key_id(load_public_key(pub_path)) == key_id(public)
    assert len((tmp_path / "k.hex").read_text().strip()) == 64
    (tmp_path / "junk.pub").write_text("not a key")
    with pytest.raises(KeyFileError, match=r"junk\.pub"):
        load_public_key(tmp_path / "junk.pub")
    with pytest.raises(KeyFileError, match="no such key file"):
        load_private_key(tmp_path / "missing.pem")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m.pop("labels"), "labels: missing"),
        (lambda m: m.update(version="1.2"), "version: '1.2' is not a semantic version"),
        (lambda m: m.update(version="v1.2.0"), "not a semantic version"),
        (lambda m: m.update(created_at="yesterday"), "created_at"),
        (lambda m: m.update(colour="red"), "colour: unknown field"),
        (lambda m: m["input"].update(layout="NCHW"), "input.layout"),
        (lambda m: m["input"].update(shape=[1, 4, 6, 99]), "input.shape: C=99 but 25 wavelengths"),
        (lambda m: m["labels"][1].update(id=5), r"labels\[1\].id"),
        (lambda m: m["labels"][1].update(color=[0, 0, 300]), r"labels\[1\].color"),
        (lambda m: m["targets"]["intel-npu"].update(runtime="tflite"), "targets.intel-npu.runtime"),
        (lambda m: m["targets"]["intel-npu"].update(precision="int4"), "targets.intel-npu.precision"),
        (
            lambda m: m["targets"]["cpu-ort-int8"].update(files=["models/cpu-ort-int8/gone.onnx"]),
            "'models/cpu-ort-int8/gone.onnx' is listed but missing",
        ),
        (lambda m: m["accuracy"].update(jetson={}), "accuracy.jetson: no such target"),
        (lambda m: m["accuracy"]["cpu-ort-int8"].update(pixel_agreement=float("nan")), "pixel_agreement"),
        (lambda m: m["selftest"].update(min_agreement=1.5), "selftest.min_agreement"),
        (lambda m: m["targets"].pop("intel-npu"), "listed by no target nor the self-test: models/intel-npu/"),
    ],
)
def test_manifest_schema_errors(tmp_path, change, match):
    manifest = demo_manifest()
    change(manifest)
    with pytest.raises(ManifestError, match=match):
        write_bundle(tmp_path / "b.xeb", manifest, demo_files())
    assert not (tmp_path / "b.xeb").exists()


def test_bad_member_names_and_json_traps(tmp_path):
    for name in ("models/cpu-ort-int8/../../x", "/abs/model.onnx", "manifest.json", "models\\cpu\\m.onnx"):
        with pytest.raises(ManifestError):
            write_bundle(tmp_path / "b.xeb", demo_manifest(), demo_files() | {name: b"x"})
    manifest = demo_manifest()
    manifest["provenance"]["val_loss"] = float("nan")  # free-form fields too: JSON has no NaN
    with pytest.raises(ManifestError, match="write null"):
        write_bundle(tmp_path / "b.xeb", manifest, demo_files())
    from xenoedge.export.bundle.manifest import loads_manifest

    with pytest.raises(ManifestError, match="duplicate key 'name'"):
        loads_manifest(b'{"name": "a", "name": "b"}')
    with pytest.raises(ManifestError, match="NaN is not allowed"):
        loads_manifest(b'{"x": NaN}')


def test_schema_error_inside_a_bundle_names_the_manifest(tmp_path, signed):
    bad = tmp_path / "bad.xeb"
    with tarfile.open(signed) as src, tarfile.open(bad, "w", format=tarfile.USTAR_FORMAT) as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            if m.name == MANIFEST_NAME:
                obj = json.loads(data)
                obj["version"] = "one"
                obj.pop("signature")
                data = json.dumps(obj).encode()
                m.size = len(data)
            if m.name != SIGNATURE_NAME:
                dst.addfile(m, __import__("io").BytesIO(data))
    with pytest.raises(ManifestError, match="version") as err:
        verify_bundle(bad)
    assert err.value.member == MANIFEST_NAME


def test_not_a_bundle(tmp_path):
    junk = tmp_path / "junk.xeb"
    junk.write_bytes(b"hello" * 100)
    with pytest.raises(ArchiveError):
        verify_bundle(junk)
    with pytest.raises(ArchiveError, match="no such bundle"):
        verify_bundle(tmp_path / "missing.xeb")


def test_inspect_reports_integrity_and_signature(tmp_path, keys, signed):
    info = inspect_bundle(signed, public_key=keys[1])
    assert info["integrity"] == {"ok": True, "error": None} and info["sha256"] == file_sha256(signed)
    assert info["signature"] == {"present": True, "key_id": key_id(keys[1]), "verified": True}
    assert {t["name"]: t["bytes"] for t in info["targets"]} == {"cpu-ort-int8": 3000, "intel-npu": 760 + 1500}
    assert info["input"]["bands"] == 25 and info["labels"][0] == "soil"
    info = inspect_bundle(signed, public_key=generate_keypair()[1])
    assert not info["integrity"]["ok"] and info["signature"]["verified"] is False


def test_compatible_targets(signed):
    manifest = read_manifest(signed)
    signature = manifest["sensor"]["signature"]
    assert compatible_targets(manifest, sensor_signature=signature) == ["cpu-ort-int8", "intel-npu"]
    assert compatible_targets(manifest, sensor_signature=signature, runtimes=("openvino",)) == ["intel-npu"]
    with pytest.raises(IncompatibleBundleError, match="built for sensor"):
        compatible_targets(manifest, sensor_signature="tivita:000000000000")
    with pytest.raises(IncompatibleBundleError, match="no target for runtimes tensorrt"):
        compatible_targets(manifest, sensor_signature=signature, runtimes=("tensorrt",))
