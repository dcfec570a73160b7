"""What a contender measures about itself: the wall and CPU seconds of its timed region, its peak RSS.

Used inside the contender's own process (bench/child.py starts it); nothing here knows the
contenders, so every contender module can import it.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path


class Clock:
    """Wall and CPU seconds of the measured region(s): this process plus children it waited for."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    @staticmethod
    def _cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    def __enter__(self) -> Clock:
        self._wall0, self._cpu0 = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._wall0
        self.cpu += self._cpu() - self._cpu0


def peak_rss_mb() -> float:
    """This process's own high-water mark. (ru_maxrss is not: Linux carries it across exec,
    so a child started by a large parent would report the parent's size.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")
