"""``xenoedge bundle keygen|sign|verify|inspect`` on real files."""

from __future__ import annotations

import json
import stat
import tarfile

from typer.testing import CliRunner
from xenoedge.cli.bundle import app
from xenoedge.export.bundle.testing import write_demo_bundle

runner = CliRunner()


def _run(*args: str, stdin: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=stdin)


def test_keygen_sign_verify_inspect(tmp_path):
    key = tmp_path / "release.key"
    result = _run("keygen", "--out", key)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and (tmp_path / "release.key.pub").is_file()
    assert _run("keygen", "--out", key).exit_code == 2  # never overwrites a key silently

    bundle = write_demo_bundle(tmp_path / "crop.xeb")
    result = _run("verify", bundle, "--require-signature")
    assert result.exit_code == 1 and "unsigned" in result.output

    assert _run("sign", bundle, "--key", key).exit_code == 0
    result = _run("verify", bundle, "--key", tmp_path / "release.key.pub", "--require-signature")
    assert result.exit_code == 0 and "ok: crop-mosaic 1.2.0, 5 files verified, signature ok" in result.output
    result = _run("verify", bundle)
    assert result.exit_code == 0 and "NOT checked" in result.output

    result = _run("inspect", bundle, "--key", tmp_path / "release.key.pub")
    assert result.exit_code == 0, result.output
    for text in ("crop-mosaic 1.2.0", "cpu-ort-int8", "intel-npu", "int8", "fp16", "verified", "passed"):
        assert text in result.output
    info = json.loads(_run("inspect", bundle, "--json").stdout)
    assert info["signature"]["present"] and info["integrity"]["ok"]


def test_verify_reports_tampering_and_wrong_key_in_one_line(tmp_path):
    assert _run("keygen", "--out", tmp_path / "a.key").exit_code == 0
    assert _run("keygen", "--out", tmp_path / "b.key").exit_code == 0
    bundle = write_demo_bundle(tmp_path / "crop.xeb")
    assert _run("sign", bundle, "--key", tmp_path / "a.key").exit_code == 0
    result = _run("verify", bundle, "--key", tmp_path / "b.key.pub")
    assert result.exit_code == 1 and "error:" in result.output and "not by the given key" in result.output
    assert len(result.output.strip().splitlines()) == 1
    data = bytearray(bundle.read_bytes())
    with tarfile.open(bundle) as tar:
        data[tar.getmember("selftest/input.npz").offset_data + 10] ^= 0x40
    bundle.write_bytes(bytes(data))
    result = _run("verify", bundle, "--key", tmp_path / "a.key.pub")
    assert result.exit_code == 1 and "error:" in result.output and "'selftest/" in result.output
    result = _run("inspect", bundle)
    assert result.exit_code == 0 and "SHA-256 differs" in result.output
    assert _run("verify", bundle, "--key", tmp_path / "missing.pub").exit_code == 2


def test_encrypted_key(tmp_path):
    password = tmp_path / "pw"
    password.write_text("correct horse\n")
    assert _run("keygen", "--out", tmp_path / "k", "--encrypt", "--password-file", password).exit_code == 0
    bundle = write_demo_bundle(tmp_path / "crop.xeb")
    assert _run("sign", bundle, "--key", tmp_path / "k", "--password-file", password).exit_code == 0
    assert _run("sign", bundle, "--key", tmp_path / "k", stdin="wrong\n").exit_code == 2
    assert _run("verify", bundle, "--key", tmp_path / "k.pub", "--require-signature").exit_code == 0
