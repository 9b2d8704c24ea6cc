"""/proc parsing (bench/procstat.py)."""

from __future__ import annotations

import os

from bench import procstat


def test_cpu_is_read_after_the_last_parenthesis() -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    fields = [
        "S",
        "1",
        "1",
        "1",
        "0",
        "-1",
        "0",
        "0",
        "0",
        "0",
        "0",
        str(3 * ticks),
        str(ticks),
        "0",
        "0",
    ]
    text = "4242 (weird ) name) " + " ".join(fields)
    assert procstat.parse_stat_cpu_s(text) == 4.0


def test_rss_is_read_from_vmrss_in_kilobytes() -> None:
    assert procstat.parse_status_rss_bytes("Name:\tx\nVmRSS:\t  2048 kB\n") == 2048 * 1024
    assert procstat.parse_status_rss_bytes("Name:\tzombie\n") == 0


def test_sample_of_this_process_and_of_a_gone_process() -> None:
    sample = procstat.sample(os.getpid())
    assert sample is not None
    assert sample.rss_bytes > 1024 * 1024
    assert sample.cpu_s > 0
    assert procstat.sample(2**22 + 12345) is None  # above pid_max: never a live process
