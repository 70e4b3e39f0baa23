"""PacedLink: what benchmarks/flash_speed.py uses to make a pty as slow as a UART."""

from __future__ import annotations

import pytest
from xenoedge.edge.links import LinkError, open_link
from xenoedge.edge.links.paced import PacedLink


class Clock:
    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_writes_leave_no_earlier_than_the_uart_would_send_their_last_byte():
    clock = Clock()
    inner = open_link("null")
    link = PacedLink(inner, 115200, clock=clock, sleep=clock.sleep)
    assert link.write(b"x" * 11520)  # 11520 bytes at 11520 B/s (8N1): one second
    assert clock.now == pytest.approx(1.0)
    clock.now += 0.5  # the line idled half a second: no credit is carried over
    link.write(b"y" * 1152)
    assert clock.now == pytest.approx(1.6)
    link.write(b"z" * 1152)  # back to back: queued behind the previous write
    assert clock.now == pytest.approx(1.7)
    assert link.stats.bytes_written == 13824 and link.description.endswith("paced at 115200 baud")
    link.close()


def test_baud_must_be_positive():
    with pytest.raises(LinkError, match="baud"):
        PacedLink(open_link("null"), 0)
