"""Interrupt a ``tfsonify`` command at a chosen point and check what it leaves (shared by the fault tests and
``benchmarks/fuzz_bench.py``).

:func:`interrupt` starts ``python -m tfsonify ARGS`` in a subprocess with SIGINT/SIGTERM at their defaults (a
non-interactive shell starts background jobs with SIGINT ignored, which would hide the very thing tested), waits
for a marker on its stderr (a progress line such as ``"activations"``) or a seeded random delay, sends the signal and
returns what happened. :func:`check_interrupted` asserts the contract: exit 130 for SIGINT, 143 or 0 for SIGTERM
(a run that finished first is fine), one line on stderr after the marker, no traceback. :func:`outputs` /
:func:`check_complete` read an output folder: every WAV decodes with the manifest's length, the manifest is absent
or valid, no half-written file under a final name.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Interrupted:
    returncode: int
    stderr: str  # everything the process wrote on stderr
    after: str  # stderr written after the signal was sent
    sent: bool  # False: the command ended before the point was reached


def _environment() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    """``python -m tfsonify ARGS`` in ``cwd`` with default signal handling, stderr piped (stdout too)."""
    return subprocess.Popen([sys.executable, "-m", "tfsonify", *map(str, args)], cwd=cwd, env=_environment(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_signals)


def interrupt(args: list[str], cwd: Path, sig: int = signal.SIGINT, marker: str | None = None,
              delay: float = 0.0, seed: int | None = None, timeout: float = 120.0) -> Interrupted:
    """Run the command, send ``sig`` once ``marker`` appeared on stderr (or at once) plus ``delay`` seconds (with
    ``seed``: a uniform random delay in [0, ``delay``) drawn from ``random.Random(seed)``); wait for it to end.

    ``timeout`` bounds the whole run (the process is killed and the test fails beyond it: a hang)."""
    if seed is not None:
        delay = random.Random(seed).uniform(0.0, delay)
    process = start(args, cwd)
    deadline = time.monotonic() + timeout
    seen, sent, before = b"", False, 0
    fd = process.stderr.fileno()
    os.set_blocking(fd, False)
    fire_at = None if marker is not None else time.monotonic() + delay
    while True:
        now = time.monotonic()
        if now > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"tfsonify {args[0]} did not end within {timeout} s (a hang); stderr:\n"
                                 f"{seen.decode(errors='replace')}")
        if not sent and fire_at is None and marker is not None and marker.encode() in seen:
            fire_at = now + delay
        if not sent and fire_at is not None and now >= fire_at and process.poll() is None:
            process.send_signal(sig)
            sent, before = True, len(seen)
        readable, _, _ = select.select([fd], [], [], 0.02)
        if readable:
            chunk = os.read(fd, 65536)
            if chunk:
                seen += chunk
                continue
        if process.poll() is not None:
            rest = process.stderr.read() or b""
            seen += rest
            break
    process.stdout.close()
    process.stderr.close()
    after = seen[before:].decode(errors="replace") if sent else ""
    return Interrupted(process.returncode, seen.decode(errors="replace"), after, sent)


def kill_at(args: list[str], cwd: Path, marker: str, timeout: float = 120.0) -> Interrupted:
    """SIGKILL once ``marker`` is on stderr (nothing can clean up)."""
    return interrupt(args, cwd, signal.SIGKILL, marker=marker, timeout=timeout)


def check_interrupted(result: Interrupted, sig: int = signal.SIGINT) -> None:
    """The contract of an interrupted command: 130 (SIGINT) or 143 (SIGTERM) with one line and no traceback; a run
    that ended before the signal must have succeeded."""
    assert "Traceback" not in result.stderr, result.stderr
    if not result.sent:
        assert result.returncode == 0, result.stderr
        return
    if result.returncode == 0:  # the signal arrived while the last files were renamed: it finished
        return
    assert result.returncode == 128 + sig, (result.returncode, result.stderr)
    lines = [line for line in result.after.replace("\r", "\n").splitlines() if line.strip()]
    messages = [line for line in lines if "interrupted" in line]
    assert len(messages) == 1 and messages[-1] == lines[-1], result.after
    assert "KeyboardInterrupt" not in result.after, result.after


def outputs(folder: Path) -> dict[str, str]:
    """``{name: sha256}`` of every file under ``folder`` (relative names); empty if it does not exist."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def check_complete(folder: Path, samples: int | None = None, temporaries: bool = False) -> None:
    """No temporary leftovers (with ``temporaries``: hidden ``.*.pPID-*`` ones are allowed, what SIGKILL leaves);
    every WAV under a final name decodes (with ``samples`` frames if given); the manifest is absent or complete:
    valid JSON listing only files that exist and decode."""
    import soundfile

    if not folder.exists():
        return
    for path in folder.rglob("*"):
        if temporaries and any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        assert not path.name.endswith(".part") and ".part." not in path.name, f"half-written leftover {path}"
        if path.suffix == ".wav":
            info = soundfile.info(str(path))
            data, _ = soundfile.read(str(path), dtype="float32")
            assert data.shape[0] == info.frames > 0, path
            if samples is not None:
                assert info.frames == samples, (path, info.frames, samples)
    manifest = folder / "manifest.json"
    if manifest.exists():
        content = json.loads(manifest.read_text())
        for entry in content["sonifications"]:
            assert (folder / entry["wav"]).is_file(), entry


def interrupt_in_process(argv: list[str], sig: int, delay: float, seed: int | None = None) -> int:
    """``tfsonify.cli.main(argv)`` in this process with ``sig`` sent to the main thread after ``delay`` seconds (with
    ``seed``: uniform in [0, ``delay``)); returns its exit status. Cheaper than :func:`interrupt` (TensorFlow and
    the model are loaded already); the CLI's handlers are the same. A signal arriving after the command ended (or
    while its handlers are being restored) lands on a no-op handler installed around the call, never on pytest."""
    import threading

    from tfsonify import cli

    if seed is not None:
        delay = random.Random(seed).uniform(0.0, delay)
    previous = signal.signal(sig, lambda *_: None)
    done = threading.Event()
    main = threading.main_thread().ident

    def send():
        if not done.wait(delay):
            signal.pthread_kill(main, sig)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        return cli.main(argv)
    finally:
        done.set()
        sender.join()
        signal.signal(sig, previous)
