"""GPS for scan sessions: NMEA lines through pynmea2, and a reader on a real pseudo-terminal pair."""

from __future__ import annotations

import json
import os
import threading
import time

import pynmea2
import pytest
from xenoedge.edge.scan.errors import ScanError
from xenoedge.edge.scan.gps import GpsReader, NmeaParser, parse_port_spec


def gga(lat: str = "4807.038", ns: str = "N", lon: str = "01131.000", ew: str = "E", quality: str = "1") -> str:
    """A GGA sentence with its real checksum (pynmea2 renders it)."""
    fields = ("123519.00", lat, ns, lon, ew, quality, "08", "0.9", "545.4", "M", "46.9", "M", "", "")
    return str(pynmea2.GGA("GP", "GGA", fields))


def rmc(status: str = "A") -> str:
    fields = ("123520", status, "4807.100", "S", "01131.500", "W", "022.4", "084.4", "230394", "003.1", "W")
    return str(pynmea2.RMC("GP", "RMC", fields))


def test_gga_and_rmc_give_fixes_in_signed_degrees():
    parser = NmeaParser(clock=lambda: 7.0)
    fix = parser.feed_line(gga().encode() + b"\r\n")
    assert fix is not None and fix.sentence == "GGA"
    assert fix.latitude == pytest.approx(48 + 7.038 / 60) and fix.longitude == pytest.approx(11 + 31.0 / 60)
    assert (fix.quality, fix.satellites, fix.hdop, fix.altitude_m, fix.utc_time) == (1, 8, 0.9, 545.4, "12:35:19")
    assert fix.received_s == 7.0
    south_west = parser.feed_line(rmc().encode())
    assert south_west.latitude == pytest.approx(-(48 + 7.1 / 60)) and south_west.longitude == pytest.approx(
        -(11 + 31.5 / 60)
    )
    assert parser.counts.fixes == 2 and parser.counts.rejected_total == 0


def test_garbage_is_counted_by_kind_and_never_raised():
    parser = NmeaParser()
    good = gga()
    bad_checksum = good[:-2] + ("00" if good[-2:] != "00" else "11")
    lines = [
        bad_checksum.encode(),
        good.split("*")[0].encode(),  # checksum missing
        bytes(range(128, 200)),  # binary junk
        b"hello world",  # not a sentence
        b"$" + b"A" * 200,  # far longer than NMEA allows
        gga(lat="48x7.038").encode(),  # right checksum, garbled latitude
        gga(lat="9907.038").encode(),  # right checksum, latitude beyond 90 degrees
    ]
    assert all(parser.feed_line(line) is None for line in lines)
    rejected = parser.counts.rejected
    assert rejected == {"bad_checksum": 2, "not_nmea": 3, "unparsable": 2}, rejected
    assert parser.counts.fixes == 0 and "9907.038" in parser.last_problem


def test_valid_sentences_without_a_fix_are_not_garbage():
    parser = NmeaParser()
    assert parser.feed_line(gga(quality="0").encode()) is None
    assert parser.feed_line(rmc(status="V").encode()) is None
    assert (
        parser.feed_line(str(pynmea2.VTG("GP", "VTG", ("054.7", "T", "", "M", "005.5", "N", "010.2", "K"))).encode())
        is None
    )
    proprietary = "PXYZ,1,2,3"  # a type pynmea2 does not know, with its right checksum
    assert parser.feed_line(f"${proprietary}*{pynmea2.NMEASentence.checksum(proprietary):02X}".encode()) is None
    assert (parser.counts.no_fix, parser.counts.ignored, parser.counts.rejected_total) == (2, 2, 0)


def test_port_spec():
    assert parse_port_spec("/dev/ttyACM0") == ("/dev/ttyACM0", 9600)
    assert parse_port_spec("socket://gps.local:2947") == ("socket://gps.local:2947", 9600)
    with pytest.raises(ScanError, match="baud rate 'fast'"):
        parse_port_spec("/dev/ttyUSB0@fast")


def _wait(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_reader_on_a_pty_pair_keeps_the_latest_fix_and_ages_it():
    master, slave = os.openpty()
    now = [100.0]
    reader = GpsReader(os.ttyname(slave), max_fix_age_s=5.0, clock=lambda: now[0])
    try:
        reader.start()
        assert reader.position() == (None, "missing")
        # junk split across writes and a sentence split in two: the reader reassembles lines
        sentence = gga().encode() + b"\r\n"
        os.write(master, b"\xff\xfe\x00garbage\r\n" + sentence[:20])
        os.write(master, sentence[20:])
        _wait(lambda: reader.counts().fixes == 1)
        fix, status = reader.position()
        assert status == "fix" and fix.latitude == pytest.approx(48.1173)
        assert reader.counts().rejected["not_nmea"] == 1
        now[0] += 6.0  # the GPS went quiet: its last fix is too old to place a frame
        assert reader.position() == (None, "missing")
    finally:
        reader.close()
        os.close(master)
        os.close(slave)


def test_a_port_that_cannot_be_opened_is_a_clear_error(tmp_path):
    with pytest.raises(ScanError, match=r"GPS .*nothing-here: cannot open it"):
        GpsReader(str(tmp_path / "nothing-here")).start()


def _gps_link(link, slave: int) -> None:
    """Point ``link`` at the slave side of a pty pair atomically (as udev re-creates /dev/gps)."""
    tmp = link.with_name(link.name + ".new")
    os.symlink(os.ttyname(slave), tmp)
    os.replace(tmp, link)


def test_a_gps_port_that_fails_mid_scan_is_reopened_and_frames_keep_coming(tmp_path):
    """The receiver is unplugged mid-scan (its pty's master side closes; the old device node goes
    away) and plugged in again as a new pty behind the same path: the frame taken meanwhile is
    scanned with its position missing and a warning, the reader reopens the path (every second)
    and the next frame has a position again; the failures are counted in session.json."""
    from xenoedge.edge.scan import ScanSession

    from tests.edge.test_scan_session import PipeInput, _gga, assert_consistent, options, records_of
    from tests.edge.test_scan_session import _wait as wait_for

    link = tmp_path / "gps"
    master, slave = os.openpty()
    _gps_link(link, slave)
    now = [1000.0]  # the reader's monotonic clock: fixes age only when the test says so
    operator = PipeInput("\n\n")  # the white-tile step
    lines: list[str] = []
    session = tmp_path / "s"
    scan = ScanSession(
        options(session, interval_s=None, frames=None, gps=f"{link}@4800"),
        trigger=operator.trigger,
        gps_clock=lambda: now[0],
        log=lines.append,
    )
    outcome: dict = {}
    runner = None
    fds = [master, slave]
    try:
        scan.open()
        runner = threading.Thread(target=lambda: outcome.update(result=scan.run()))
        runner.start()
        os.write(master, _gga("4807.038", "01131.000"))
        wait_for(lambda: scan.gps.counts().fixes == 1, "the first fix")
        operator.send("\n")
        wait_for(lambda: len(records_of(session)) == 1, "frame 1")

        for fd in fds:  # unplugged: reads fail (EIO), the device node disappears
            os.close(fd)
        fds = []
        link.unlink()  # as udev removes /dev/gps (and a freed pty number may go to another process)
        wait_for(lambda: scan.gps.counts().port_errors >= 2, "the failed read and a failed reopen")
        now[0] += 10.0  # the last fix is now older than --gps-max-age
        operator.send("\n")
        wait_for(lambda: len(records_of(session)) == 2, "frame 2 while the GPS is gone")

        master, slave = os.openpty()  # plugged in again, as a new pty behind the same path
        fds = [master, slave]
        _gps_link(link, slave)
        second = _gga("4807.500", "01131.000")
        deadline = time.monotonic() + 60  # reopened every second; generous for a busy machine
        while scan.gps.counts().fixes < 2:  # written until the reopened port has read one
            assert time.monotonic() < deadline, "the port was not reopened"
            os.write(master, second)
            time.sleep(0.1)
        operator.send("\nq\n")
        runner.join(timeout=60)
        assert not runner.is_alive()
    finally:
        if runner is not None and runner.is_alive():
            scan.stop()
            runner.join(timeout=30)
        scan.close()
        operator.close()
        for fd in fds:
            os.close(fd)
    result = outcome["result"]
    assert result.frames == 3 and result.skipped == 0
    records = assert_consistent(session)
    assert [r["gps"] for r in records] == ["fix", "missing", "fix"]
    assert records[0]["position"]["latitude"] == pytest.approx(48 + 7.038 / 60)
    assert records[1]["position"] is None
    assert records[2]["position"]["latitude"] == pytest.approx(48 + 7.5 / 60)
    errors = result.gps["port_errors"]
    assert errors >= 2 and result.gps["rejected_total"] == 0
    meta = json.loads((session / "session.json").read_text())
    assert meta["runs"][0]["gps_counts"]["port_errors"] == errors
    (warning,) = [line for line in lines if "position missing" in line]
    assert "warning: GPS port failed" in warning and "reopening it every second" in warning
