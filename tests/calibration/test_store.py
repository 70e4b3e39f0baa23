"""The references file: round trip, verification on load, merging captures."""

from __future__ import annotations

import dataclasses
import json
import warnings
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from xenoedge.calibration import store
from xenoedge.calibration.capture import capture_reference
from xenoedge.calibration.references import References
from xenoedge.calibration.store import ReferenceWarning, load_references, merge_reference, save_references
from xenoedge.devices.simulated import SimulatedCamera

from xenoedge.errors import CalibrationError, FileFormatError
from xenoedge.sensors import get_sensor

SENSOR = get_sensor("mosaic-5x5-nir")
CAPTURED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def captures():
    with SimulatedCamera(SENSOR, seed=5, camera_id="cam-A") as cam:
        dark = capture_reference(cam, "dark", 2, clock=lambda: CAPTURED)
        white = capture_reference(cam, "white", 2, clock=lambda: CAPTURED)
    return dark, white


@pytest.fixture(scope="module")
def refs(captures) -> References:
    dark, white = captures
    refs = merge_reference(None, "dark", dark, "cam-A", SENSOR)
    return merge_reference(refs, "white", white, "cam-A", SENSOR, stats={"validated": True})


@pytest.fixture
def saved(tmp_path, refs):
    return save_references(tmp_path / "refs.npz", refs)


def load_ok(path, **kw):
    """Load with every check given and no warning allowed."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load_references(
            path, camera_id="cam-A", sensor=SENSOR, exposure_ms=10.0, max_age_s=3600, now=CAPTURED, **kw
        )


def test_round_trip_keeps_arrays_and_metadata(saved, refs):
    loaded = load_ok(saved, require_complete=True)
    assert loaded.camera_id == "cam-A" and loaded.sensor == SENSOR.name
    assert loaded.sensor_signature == SENSOR.signature
    np.testing.assert_array_equal(loaded.dark, refs.dark)
    np.testing.assert_array_equal(loaded.white, refs.white)
    assert loaded.dark.dtype == np.float32 and loaded.dark.shape == SENSOR.cube_shape
    assert loaded.dark_meta == refs.dark_meta
    assert loaded.white_meta.stats["validated"] is True
    assert loaded.white_meta.captured_at == "2026-03-01T12:00:00Z"
    assert loaded.white_meta.frames == 2 and loaded.white_meta.exposure_ms == 10.0


def test_file_is_a_plain_npz_with_json_meta(saved):
    with np.load(saved, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["dark", "meta", "white"]
        meta = json.loads(npz["meta"].tobytes())
    assert meta["format_version"] == store.FORMAT_VERSION
    assert meta["camera_id"] == "cam-A" and meta["sensor_signature"] == SENSOR.signature
    assert meta["references"]["dark"]["shape"] == list(SENSOR.cube_shape)
    assert meta["checksum"].startswith("sha256:")
    assert [p.name for p in saved.parent.iterdir()] == ["refs.npz"]  # no temp file left


def test_flipped_byte_in_the_dark_array_is_a_checksum_error(saved, refs):
    content = bytearray(saved.read_bytes())
    probe = refs.dark.tobytes()[4000:4064]
    at = content.find(probe)
    assert at > 0
    content[at + 10] ^= 0x40
    saved.write_bytes(bytes(content))
    with pytest.raises(CalibrationError, match="checksum mismatch: file corrupted or edited"):
        load_references(saved)


def _rewrite(path, **changes):
    """Rewrite the npz as an editor would: same entries, some replaced, checksum untouched."""
    with np.load(path, allow_pickle=False) as npz:
        entries = {k: npz[k] for k in npz.files}
    entries.update(changes)
    with open(path, "wb") as f:
        np.savez(f, **entries)


def test_edited_array_or_meta_is_a_checksum_error(saved, refs):
    dark = refs.dark.copy()
    dark[0, 0, 0] += 1
    _rewrite(saved, dark=dark)
    with pytest.raises(CalibrationError, match=r"refs\.npz: checksum mismatch"):
        load_references(saved)
    save_references(saved, refs)
    with np.load(saved) as npz:
        meta = json.loads(npz["meta"].tobytes())
    meta["references"]["white"]["exposure_ms"] = 12.0
    _rewrite(saved, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(CalibrationError, match="checksum mismatch"):
        load_references(saved)


def test_nan_or_negative_references_are_refused(tmp_path, refs):
    bad = dataclasses.replace(refs, dark=refs.dark.copy())
    bad.dark[3, 4, 5] = np.nan
    with pytest.raises(CalibrationError, match="dark reference has 1 NaN"):
        save_references(tmp_path / "x.npz", bad)
    # A file written by another tool with a valid checksum is still checked on load.
    path = save_references(tmp_path / "refs.npz", refs)
    with np.load(path) as npz:
        meta = json.loads(npz["meta"].tobytes())
    white = refs.white.copy()
    white[1, 2, 3] = -5.0
    meta["checksum"] = store._checksum(meta, {"dark": refs.dark, "white": white})
    _rewrite(path, white=white, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(CalibrationError, match=r"refs\.npz.*white reference has 1 negative"):
        load_references(path)


def test_wrong_camera_and_wrong_sensor(saved):
    with pytest.raises(CalibrationError, match="references are for camera cam-A, not cam-B"):
        load_references(saved, camera_id="cam-B")
    with pytest.raises(CalibrationError, match=r"references are for sensor mosaic-5x5-nir .* not tivita"):
        load_references(saved, sensor=get_sensor("tivita"))


def test_stale_references_warn_or_fail_when_strict(saved):
    later = CAPTURED + timedelta(days=3)
    with pytest.warns(ReferenceWarning, match=r"dark reference is 3\.0 days old.*; white reference is 3\.0"):
        load_references(saved, max_age_s=86400, now=later)
    with pytest.raises(CalibrationError, match=r"refs\.npz: dark reference is 3\.0 days old"):
        load_references(saved, max_age_s=86400, now=later, strict=True)
    load_ok(saved)  # fresh enough at capture time


def test_other_exposure_warns_and_one_percent_is_tolerated(saved):
    with pytest.warns(ReferenceWarning, match="captured at 10 ms, the camera runs at 20 ms"):
        load_references(saved, exposure_ms=20.0)
    with pytest.raises(CalibrationError, match="captured at 10 ms"):
        load_references(saved, exposure_ms=20.0, strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_references(saved, exposure_ms=10.05)


def test_missing_and_foreign_files_name_the_file(tmp_path):
    missing = tmp_path / "nowhere.npz"
    with pytest.raises(FileFormatError, match=r"nowhere\.npz: no such references file"):
        load_references(missing)
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(FileFormatError, match=r"notes\.npz: not a valid \.npz") as refused:
        load_references(text)
    assert "pickle" not in str(refused.value)  # never a hint to load it unsafely
    for content in (b"", b"\x80\x04K\x01."):  # empty; a real pickle
        text.write_bytes(content)
        with pytest.raises(FileFormatError, match=r"notes\.npz: not a valid \.npz") as refused:
            load_references(text)
        assert "pickle" not in str(refused.value)
    other = tmp_path / "other.npz"
    np.savez(other, cube=np.zeros(3))
    with pytest.raises(FileFormatError, match=r"other\.npz: not a xenoedge references file"):
        load_references(other)


def test_white_before_dark_is_refused(captures):
    _, white = captures
    with pytest.raises(CalibrationError, match="capture the dark reference first"):
        merge_reference(None, "white", white, "cam-A", SENSOR)


def test_capturing_white_keeps_the_stored_dark_and_partial_files_load(tmp_path, captures, refs):
    dark, white = captures
    path = save_references(tmp_path / "r.npz", merge_reference(None, "dark", dark, "cam-A", SENSOR))
    partial = load_ok(path)
    assert partial.white is None and not partial.complete
    with pytest.raises(CalibrationError, match="no white reference"):
        load_ok(path, require_complete=True)
    full = merge_reference(partial, "white", white, "cam-A", SENSOR)
    np.testing.assert_array_equal(full.dark, dark.mean)
    assert full.dark_meta == partial.dark_meta and full.complete


def test_merge_refuses_other_cameras_and_sensors(captures, refs):
    dark, _ = captures
    with pytest.raises(CalibrationError, match="holds camera cam-A; refusing to add camera cam-B"):
        merge_reference(refs, "dark", dataclasses.replace(dark, camera_id="cam-B"), "cam-B", SENSOR)
    with pytest.raises(CalibrationError, match="capture is from camera cam-A, not cam-B"):
        merge_reference(None, "dark", dark, "cam-B", SENSOR)
    with pytest.raises(CalibrationError, match="capture is from sensor mosaic-5x5-nir, not tivita"):
        merge_reference(None, "dark", dark, "cam-A", get_sensor("tivita"))


def test_reference_that_does_not_fit_the_sensor_cube(tmp_path, refs):
    small = dataclasses.replace(refs, dark=refs.dark[:, :7], white=None, white_meta=None)
    path = save_references(tmp_path / "small.npz", small)
    load_references(path)  # consistent on its own
    with pytest.raises(CalibrationError, match=r"do not fit the mosaic-5x5-nir cube \(217, 409, 25\)"):
        load_references(path, sensor=SENSOR)
