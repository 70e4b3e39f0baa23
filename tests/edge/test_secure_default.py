"""Secure by default (issue 17): a device that trusts no key installs nothing unless its
configuration opts in to unsigned bundles (``[bundle] allow_unsigned = true``, ``flash --to
--allow-unsigned``); the opt-in is announced in INFO and HELLO and logged at every start.

Over a real pty pair with the real daemon (``flash_fixtures.DeviceUnderTest``), and with the
real ``xenoedge flash --to`` into a device root; every refusal leaves the working model serving.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flash_fixtures import CROP, DeviceUnderTest, bundle_variant, masks_from, write_key
from install_fixtures import policy
from xenoedge.edge.config import ConfigError, load_config, signature_line
from xenoedge.edge.flashing import BundleRejected, InstallPolicy, SlotStore, install_bundle
from xenoedge.edge.flashing.host import FlashClient, FlashFailed
from xenoedge.edge.flashing.install import device_state_dir
from xenoedge.edge.protocol.decoder import StreamDecoder
from xenoedge.edge.protocol.flash import FlashCode
from xenoedge.edge.protocol.packets import PacketType, model_id_from_sha256
from xenoedge.export.bundle import generate_keypair, key_id

REPO = Path(__file__).resolve().parents[2]
CROP_SHA = hashlib.sha256(CROP.read_bytes()).hexdigest()
SENSOR_ARGS = ("--sensor", "mosaic-5x5-nir")


@pytest.fixture(scope="module")
def v2(tmp_path_factory) -> Path:
    return bundle_variant(tmp_path_factory.mktemp("v2") / "crop-1.1.0.xeb", version="1.1.0")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes), lock files aside."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def hello_from(link, seconds: float = 6.0) -> dict:
    """The next HELLO on ``link`` (the daemon repeats it every 10 STATUS packets)."""
    decoder = StreamDecoder()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for packet in decoder.feed(link.read(65536, timeout_s=0.05)):
            if packet.type == PacketType.HELLO:
                return packet.hello()
    raise AssertionError(f"no HELLO within {seconds} s")


def serving(host, sha256: str) -> bool:
    masks = masks_from(host, seconds=30.0, n=2)
    return len(masks) == 2 and all(m.model_id == model_id_from_sha256(sha256) for m in masks)


def says_what_to_configure(text: str) -> bool:
    return "bundle.public_key" in text and "bundle.allow_unsigned = true" in text


def factory_flashed(state: Path) -> Path:
    """A device state folder holding the crop model (installed earlier, e.g. at the factory)."""
    install_bundle(SlotStore(state), CROP, policy(self_test=False))
    return state


# --------------------------------------------------------------------------- the install engine


def test_without_key_or_opt_in_every_install_is_refused_and_nothing_is_written(tmp_path, v2):
    key, public = generate_keypair()
    signed = bundle_variant(tmp_path / "signed.xeb", version="1.2.0", signing_key=key)
    store = SlotStore(factory_flashed(tmp_path / "state"))
    before = snapshot(store.root)
    for bundle in (v2, signed):  # a signature nobody can check is no better than none
        with pytest.raises(BundleRejected) as refused:
            install_bundle(store, bundle, InstallPolicy())
        assert refused.value.reason == "signature" and says_what_to_configure(str(refused.value))
        assert "\n" not in str(refused.value)
        assert snapshot(store.root) == before
    assert store.active().sha256 == CROP_SHA
    # the key wins over the opt-in: with a key, an unsigned bundle is refused even with allow_unsigned
    with pytest.raises(BundleRejected, match="signature"):
        install_bundle(store, v2, policy(trusted_public_key=public, allow_unsigned=True))
    assert install_bundle(store, signed, policy(trusted_public_key=public, allow_unsigned=False)).signed


# --------------------------------------------------------------------------- over the link


def test_a_device_with_no_key_and_no_opt_in_refuses_uploads_and_keeps_serving(tmp_path, v2):
    state = factory_flashed(tmp_path / "state")
    with DeviceUnderTest(state, bundle=None, allow_unsigned=False, status_interval_s=0.2) as dut:
        host = dut.host_link()
        client = FlashClient(host)
        started = time.monotonic()
        with pytest.raises(FlashFailed) as refused:
            client.flash(v2, confirm_s=0)
        assert refused.value.code == FlashCode.SIGNATURE
        assert says_what_to_configure(str(refused.value)), str(refused.value)
        assert time.monotonic() - started < 10  # refused at UPLOAD_BEGIN, not after the whole upload
        assert not any((state / "uploads").iterdir())  # no byte of it kept
        info = client.info()
        assert info["active"]["sha256"] == CROP_SHA and info["inactive"] is None
        assert info["allow_unsigned"] is False and info["trusted_key_id"] is None
        hello = hello_from(host)
        assert hello["allow_unsigned"] is False and hello["trusted_key_id"] is None
        assert serving(host, CROP_SHA)
        host.close()


def test_the_shipped_config_without_a_key_refuses_even_the_first_install_and_says_why(tmp_path):
    """deploy/daemon.toml as shipped (no public_key, no allow_unsigned) and an empty state folder:
    the [bundle] path is refused too, so a device on a serial link waits in maintenance mode."""
    shipped = load_config(REPO / "deploy" / "daemon.toml")
    assert shipped.public_key is None and shipped.allow_unsigned is False
    assert "every install is refused" in signature_line(shipped)
    with DeviceUnderTest(tmp_path / "state", bundle=CROP, allow_unsigned=False) as dut:
        assert dut.daemon.maintenance and says_what_to_configure(dut.daemon.maintenance)
        host = dut.host_link()
        info = FlashClient(host).info()
        assert info["active"] is None and says_what_to_configure(info["maintenance"]["reason"])
        host.close()


def test_with_the_opt_in_an_unsigned_bundle_installs_and_info_and_hello_say_so(tmp_path, v2):
    v2_sha = hashlib.sha256(v2.read_bytes()).hexdigest()
    with DeviceUnderTest(tmp_path / "state", allow_unsigned=True, status_interval_s=0.2) as dut:
        host = dut.host_link()
        client = FlashClient(host)
        info = client.info()
        assert info["allow_unsigned"] is True and info["trusted_key_id"] is None
        assert hello_from(host)["allow_unsigned"] is True
        report = client.flash(v2, confirm_s=0)
        assert report.after["sha256"] == v2_sha
        hello = hello_from(host)  # the one sent with the hot swap
        assert hello["allow_unsigned"] is True and hello["bundle_version"] == "1.1.0"
        assert serving(host, v2_sha)
        host.close()


def test_a_signed_bundle_installs_with_the_key_as_before(tmp_path):
    key, public = generate_keypair()
    v1 = bundle_variant(tmp_path / "v1.xeb", version="1.0.0", signing_key=key)
    v2 = bundle_variant(tmp_path / "v2.xeb", version="1.1.0", signing_key=key)
    v2_sha = hashlib.sha256(v2.read_bytes()).hexdigest()
    with DeviceUnderTest(tmp_path / "state", bundle=v1, public_key=write_key(tmp_path, public)) as dut:
        assert not dut.config.allow_unsigned
        host = dut.host_link()
        client = FlashClient(host)
        assert client.flash(v2, confirm_s=0).after["sha256"] == v2_sha
        info = client.info()
        assert info["allow_unsigned"] is False and info["trusted_key_id"] == key_id(public)
        assert hello_from(host)["trusted_key_id"] == key_id(public)
        host.close()


# --------------------------------------------------------------------------- flash --to


def test_flash_to_refuses_an_unsigned_bundle_without_a_key_or_allow_unsigned(tmp_path, v2):
    from typer.testing import CliRunner
    from xenoedge.cli.main import app

    def cli(*args):
        result = CliRunner().invoke(app, [str(a) for a in args])
        return result, " ".join(result.output.split())

    root = tmp_path / "sdcard"
    root.mkdir()
    done, out = cli("flash", CROP, "--to", root, *SENSOR_ARGS, "--allow-unsigned")
    assert done.exit_code == 0 and "installed crop 1.0.0" in out and "signature NOT checked" in out, out
    before = snapshot(device_state_dir(root))
    refused = subprocess.run(  # the real entry point: one line naming the settings, no traceback
        [sys.executable, "-m", "xenoedge.cli.main", "flash", str(v2), "--to", str(root), *SENSOR_ARGS],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "COLUMNS": "400"},
        cwd=REPO,
    )
    error = refused.stderr.strip()
    assert refused.returncode != 0 and "Traceback" not in refused.stderr, refused.stderr
    assert len(error.splitlines()) == 1 and "--public-key" in error and "--allow-unsigned" in error, error
    assert snapshot(device_state_dir(root)) == before
    assert json.loads(cli("device", "info", "--root", root)[0].stdout)["active"]["sha256"] == CROP_SHA
    bad, _ = cli("flash", v2, "--port", "/dev/null", "--allow-unsigned")  # the opt-in is --to only
    assert bad.exit_code == 2
    key, public = generate_keypair()
    signed = bundle_variant(tmp_path / "signed.xeb", version="1.3.0", signing_key=key)
    done, out = cli("flash", signed, "--to", root, *SENSOR_ARGS, "--public-key", write_key(tmp_path, public))
    assert done.exit_code == 0 and f"signature verified, key {key_id(public)}" in out, out


# --------------------------------------------------------------------------- config and start-up log


def test_config_opt_in_is_a_boolean_and_excludes_a_key(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text("[bundle]\nallow_unsigned = true\n")
    assert load_config(path).allow_unsigned is True
    path.write_text('[bundle]\nallow_unsigned = "yes"\n')
    with pytest.raises(ConfigError, match="allow_unsigned must be bool"):
        load_config(path)
    path.write_text('[bundle]\nallow_unsigned = true\npublic_key = "release.pub"\n')
    with pytest.raises(ConfigError, match="exclude each other"):
        load_config(path)


def test_every_start_logs_which_bundles_the_device_installs(tmp_path):
    from xenoedge.edge.daemon import daemon_main

    common = dict(bundle=CROP, camera="sim:crop", max_frames=2, capture_frames=2, threads=1)
    lines: list[str] = []
    assert daemon_main(None, state_dir=tmp_path / "open", allow_unsigned=True, log=lines.append, **common) == 0
    assert "NOT checked" in lines[0] and "bundle.allow_unsigned = true" in lines[0], lines
    lines.clear()
    assert daemon_main(None, state_dir=tmp_path / "closed", log=lines.append, **common) == 1  # null sink: exit
    assert "every install is refused" in lines[0] and says_what_to_configure(lines[-1]), lines
    assert len(lines) == 2
    lines.clear()
    assert daemon_main(None, log=lines.append, **common) == 0  # no state folder: nothing is installed
    assert "nothing can be flashed" in lines[0], lines
