"""Progress output for command-line programs (the CLI and the recipes).

- :class:`progress`: a one-line step timer, ``message... done (1.2 s)``.
- :func:`audio_bar`: progress through audio in seconds (done / total, audio seconds per wall second): a tqdm bar
  when stderr is a terminal, otherwise (a log file, CI, a pipe) plain lines every ``interval`` seconds, because a
  bar redraws itself with carriage returns that turn a log into one unreadable line.
- :func:`iterate`: progress through the items of a loop (blocks of a report, clips synthesised), the same way: a
  tqdm bar on a terminal, plain lines otherwise.
"""
from __future__ import annotations

import sys
import time
from typing import IO, Callable, Iterable, Iterator, TypeVar

Item = TypeVar("Item")

__all__ = ["progress", "audio_bar", "LineProgress", "iterate"]


class progress:
    """Print ``message...`` to stderr, then ``done (1.2 s)`` (or ``failed``) when the block ends."""

    def __init__(self, message: str):
        self.message = message

    def __enter__(self):
        self.start = time.perf_counter()
        print(f"{self.message}...", end="", file=sys.stderr, flush=True)
        return self

    def __exit__(self, exc_type, exc, traceback):
        status = _ending(exc_type)
        print(f" {status} ({time.perf_counter() - self.start:.1f} s)", file=sys.stderr, flush=True)
        return False


class LineProgress:
    """tqdm's ``update``/context-manager interface, written as whole lines (no ``\\r``) for non-terminal streams.

    Prints ``desc: 12.0/600.0 s audio (2 %), 6.1 audio s/s, 1:38 left`` at most every ``interval`` wall seconds,
    and a last line with the total time when the block ends (``failed after ...`` on an exception).

    Args:
        total: units to do (samples).
        rate: units per second of audio (the sample rate), so counts show as seconds of audio.
        desc: what is being done.
        file: where to write (default ``sys.stderr`` at the time of the call).
        interval: least wall-clock seconds between two lines.
        disable: write nothing.
    """

    def __init__(self, total: int, rate: float, desc: str, file: IO[str] | None = None, interval: float = 10.0,
                 disable: bool = False):
        self.total, self.rate, self.desc = int(total), float(rate), desc
        self.file, self.interval, self.disable = file, float(interval), disable
        self.n = 0

    def __enter__(self) -> "LineProgress":
        self.start = self._last = time.perf_counter()
        return self

    def _write(self, text: str) -> None:
        print(text, file=self.file or sys.stderr, flush=True)

    def _status(self, now: float) -> str:
        done, total, elapsed = self.n / self.rate, self.total / self.rate, max(now - self.start, 1e-9)
        share = f" ({100 * self.n / self.total:.0f} %)" if self.total else ""
        speed = done / elapsed
        left = f", {_clock((total - done) / speed)} left" if speed > 0 and done < total else ""
        return f"{self.desc}: {done:.1f}/{total:.1f} s audio{share}, {speed:.1f} audio s/s{left}"

    def update(self, count: int = 1) -> None:
        self.n += int(count)
        now = time.perf_counter()
        if not self.disable and now - self._last >= self.interval:
            self._last = now
            self._write(self._status(now))

    def __exit__(self, exc_type, exc, traceback):
        if not self.disable:
            elapsed = time.perf_counter() - self.start
            ending = _ending(exc_type)
            self._write(f"{self._status(time.perf_counter())} - {ending} in {_clock(elapsed)}")
        return False


def _ending(exc_type) -> str:
    """``done``, ``stopped`` (Ctrl-C / SIGTERM: the command prints why) or ``failed``."""
    if exc_type is None:
        return "done"
    return "stopped" if issubclass(exc_type, KeyboardInterrupt) else "failed"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def audio_bar(total_samples: int, rate: int, description: str, enabled: bool = True, file: IO[str] | None = None,
              interval: float = 10.0):
    """Progress over ``total_samples`` samples at ``rate`` Hz, shown in seconds of audio.

    A tqdm bar (done / total, audio seconds per second) when ``file`` (default stderr) is a terminal; otherwise a
    :class:`LineProgress` printing plain lines every ``interval`` seconds. Both have ``update(samples)`` and are
    context managers; ``enabled=False`` writes nothing.
    """
    stream = file or sys.stderr
    try:
        terminal = bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or odd streams: treat as a log
        terminal = False
    if not terminal:
        return LineProgress(total_samples, rate, description, file=stream, interval=interval, disable=not enabled)
    from tqdm import tqdm

    return tqdm(total=int(total_samples), desc=description, unit="s", unit_scale=1.0 / rate, disable=not enabled,
                file=stream,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}, "
                           "{rate_fmt}]", mininterval=0.5, dynamic_ncols=True)


def _terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or odd streams: treat as a log
        return False


def iterate(items: Iterable[Item], description: str, total: int | None = None, enabled: bool = True,
            label: Callable[[Item], str] | None = None, file: IO[str] | None = None,
            interval: float = 0.0) -> Iterator[Item]:
    """Yield ``items`` unchanged, showing how far the loop is.

    On a terminal a tqdm bar (``label(item)`` as its postfix). Otherwise (a log, CI, a pipe) a plain line as an item
    starts, ``description: 3/11 (block 3), 0:12 so far, 0:18 left`` (at most every ``interval`` wall seconds; the
    first item always), and ``description: 11/11 - done in 0:40`` when the loop ends. A loop left by an exception
    writes no last line (the error says what happened).

    Args:
        items: what the loop runs over.
        description: what is being done.
        total: number of items (default ``len(items)``; required for an iterator without one).
        enabled: write nothing when False.
        label: names an item in its line (default: none).
        file: where to write (default ``sys.stderr`` at the time of the call).
        interval: least wall-clock seconds between two lines (0: a line per item).
    """
    total = len(items) if total is None else int(total)  # type: ignore[arg-type]
    stream = file or sys.stderr
    if not enabled:
        yield from items
        return
    if _terminal(stream):
        from tqdm import tqdm

        with tqdm(total=total, desc=description, file=stream, mininterval=0.5, dynamic_ncols=True) as bar:
            for item in items:
                if label is not None:
                    bar.set_postfix_str(label(item), refresh=False)
                yield item
                bar.update(1)
        return
    start = last = time.perf_counter()
    done = 0
    for item in items:
        now = time.perf_counter()
        if done == 0 or now - last >= interval:
            last = now
            named = f" ({label(item)})" if label is not None else ""
            so_far = f", {_clock(now - start)} so far" if done else ""
            left = f", {_clock((now - start) / done * (total - done))} left" if done and total > done else ""
            print(f"{description}: {done + 1}/{total}{named}{so_far}{left}", file=stream, flush=True)
        yield item
        done += 1
    print(f"{description}: {done}/{total} - done in {_clock(time.perf_counter() - start)}", file=stream, flush=True)
