"""Peak resident memory of worker processes (Beam SDK workers of the DirectRunner), sampled from ``/proc`` (Linux).

A pipeline's memory lives in its worker processes, not in the Python objects of the driver, so
:class:`WorkerPeakMemory` samples every descendant process of this one while a block runs and keeps each one's
``VmHWM`` (the kernel's high-water mark of its resident set, in MiB). ``VmHWM`` is monotonic, so a sample shortly
before a worker exits already holds its peak. Used by ``benchmarks/analysis_bench.py`` and the memory test of
``tests/test_analysis_beam.py``; psutil would do the same with one more dependency.

Example::

    with WorkerPeakMemory(match="sdk_worker_main") as memory:
        run_topk(...)
    memory.peaks  # {pid: peak RSS in MiB} of the Beam SDK worker processes
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["WorkerPeakMemory", "peak_rss_mib"]


def peak_rss_mib(pid: int | str = "self") -> float | None:
    """``VmHWM`` of process ``pid`` in MiB, or ``None`` if it has gone (or there is no ``/proc``)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdecimal():
            try:  # the command name may hold spaces and parentheses: the parent pid follows the last ")"
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = [], {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        found += sorted(frontier)
    return found


SHELLS = ("sh", "bash", "dash")


def _command_line(pid: int) -> str:
    """The command line, or "" for a shell wrapping it (Beam starts SDK workers through ``sh -c``)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    if argv and os.path.basename(argv[0].decode("utf-8", "replace")) in SHELLS:
        return ""
    return b" ".join(argv).decode("utf-8", "replace")


class WorkerPeakMemory:
    """Context manager: peak RSS (MiB) of this process's descendants started or running inside the block.

    Args:
        match: keep only processes whose command line contains this text (``"sdk_worker_main"``: Beam's SDK
            workers of the multi-processing DirectRunner); ``None`` keeps every descendant. Shells wrapping a
            command (Beam starts workers by ``sh -c``) and forks that have not exec'd yet are never counted.
        interval: seconds between samples.

    Attributes:
        peaks: ``{pid: MiB}`` of the matching processes seen.
    """

    def __init__(self, match: str | None = "sdk_worker_main", interval: float = 0.1):
        if not Path("/proc/self/status").exists():
            raise ValueError("WorkerPeakMemory reads /proc/<pid>/status (Linux); this system has no /proc")
        self.match, self.interval = match, float(interval)
        self.peaks: dict[int, float] = {}
        self._names: dict[int, bool] = {}
        self._own = _command_line(os.getpid())  # a child not yet exec'd still has it (and this process's memory)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        """Read every matching descendant's ``VmHWM`` once (also called by the sampling thread)."""
        for pid in _descendants(os.getpid()):
            if not self._names.get(pid):  # re-read until it matches: between fork and exec it is the parent's
                command = _command_line(pid)
                self._names[pid] = bool(command) and command != self._own and (self.match is None or self.match in command)
                if not self._names[pid]:
                    continue
            mib = peak_rss_mib(pid)
            if mib is not None:
                self.peaks[pid] = max(self.peaks.get(pid, 0.0), mib)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> "WorkerPeakMemory":
        self._thread = threading.Thread(target=self._run, name="WorkerPeakMemory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def workers(self) -> list[float]:
        """The peaks, largest first (MiB)."""
        return sorted(self.peaks.values(), reverse=True)
