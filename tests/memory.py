"""The one way the tests measure memory: a process's own lines of Linux's /proc/PID/status.

``VmRSS`` is resident memory now, ``VmHWM`` its peak since the process started (its exec), ``RssFile`` the resident
part that is file-backed (memory-mapped shards). ``resource.getrusage().ru_maxrss`` is not used: a child started
by ``subprocess`` (vfork, then exec) inherits its parent's peak, so a child of pytest reports pytest's size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

HAS_PROC = Path("/proc/self/status").exists()


def status_bytes(field: str = "VmRSS", pid: int | str = "self") -> int:
    """``field`` of /proc/PID/status in bytes; 0 once the process has gone (or no longer maps memory)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def peaks_while_running(proc, *probes: Callable[[], int], every: float = 0.01) -> tuple[int, ...]:
    """The largest value of each probe, sampled every ``every`` seconds until ``proc`` (a Popen) exits."""
    peaks = [0] * len(probes)
    while proc.poll() is None:
        peaks = [max(peak, probe()) for peak, probe in zip(peaks, probes, strict=True)]
        time.sleep(every)
    return tuple(peaks)


def peak_rss(proc, every: float = 0.01) -> int:
    """Peak resident memory of ``proc`` (a Popen), sampled every ``every`` seconds until it exits."""
    (peak,) = peaks_while_running(proc, lambda: status_bytes("VmRSS", proc.pid), every=every)
    return peak
