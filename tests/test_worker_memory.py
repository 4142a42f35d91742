"""WorkerPeakMemory: the peak RSS of descendant processes, sampled from /proc (no TensorFlow needed)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tfsonify.analysis.worker_memory import WorkerPeakMemory, peak_rss_mib

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# A child that touches `mib` MiB, holds them briefly and exits; the marker names it on its command line.
CHILD = "import sys, time; block = bytearray({mib} * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep(0.8)  # {marker}"


def test_peaks_of_matching_descendants_only_through_a_shell():
    with WorkerPeakMemory(match="worker-marker-a", interval=0.05) as memory:
        big = subprocess.Popen(f'{sys.executable} -c "{CHILD.format(mib=120, marker="worker-marker-a")}"', shell=True)
        small = subprocess.Popen([sys.executable, "-c", CHILD.format(mib=5, marker="other-marker")])
        assert big.wait() == 0 and small.wait() == 0
    assert len(memory.peaks) == 1  # the python under `sh -c` (not the shell, not the other child)
    (peak,) = memory.workers()
    assert 120 <= peak < 120 + 100  # the bytearray plus an interpreter
    assert peak_rss_mib() > 1.0 and peak_rss_mib(2**22 + 12345) is None  # this process; a pid that does not exist


def test_every_descendant_without_a_filter():
    with WorkerPeakMemory(match=None, interval=0.05) as memory:
        for mib in (40, 80):
            assert subprocess.run([sys.executable, "-c", CHILD.format(mib=mib, marker="x")]).returncode == 0
    peaks = memory.workers()
    assert len(peaks) == 2 and peaks[0] >= 80 and 40 <= peaks[1] < 80
