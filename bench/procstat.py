"""CPU seconds and resident memory of a process, read from /proc (Linux).

CPU is utime + stime from /proc/<pid>/stat (fields 14 and 15, in clock ticks); RSS is
VmRSS from /proc/<pid>/status. A process that is gone reads as None: nodes may be killed
on purpose (--fault) and the bench must keep going.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcSample:
    cpu_s: float
    rss_bytes: int


def parse_stat_cpu_s(stat_text: str) -> float:
    """utime + stime in seconds. The command name (field 2) may hold spaces and ')', so
    fields are counted after the last ')'."""
    fields = stat_text.rpartition(")")[2].split()
    # After ')': field 3 (state) is fields[0], so utime (14) and stime (15) are [11], [12].
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS_PER_S


def parse_status_rss_bytes(status_text: str) -> int:
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            return int(parts[1]) * 1024  # reported in kB
    return 0  # a zombie has no VmRSS line


def sample(pid: int) -> ProcSample | None:
    try:
        stat_text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        status_text = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    try:
        return ProcSample(parse_stat_cpu_s(stat_text), parse_status_rss_bytes(status_text))
    except (IndexError, ValueError):
        log.warning("pid %d: unreadable /proc entry", pid)
        return None


def self_cpu_s() -> float:
    """This process's own CPU seconds (user + system), children excluded."""
    times = os.times()
    return times.user + times.system
