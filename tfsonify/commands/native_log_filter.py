"""Drop known-harmless TensorFlow / LiteRT native log lines from a CLI process's stderr, pass everything else through.

While TensorFlow and ai-edge-litert load, and on their first graphs, their C++ code writes lines such as::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796598818.659662    7295 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    E0000 00:00:1796156557.305184   23320 util.cc:131] oneDNN supports DT_BOOL only on platforms with AVX-512. ...
    E0000 00:00:1796156434.307014   22990 cuda_executor.cc:1228] failed call to cuInit: INTERNAL: CUDA error: ...
    INFO: Created TensorFlow Lite XNNPACK delegate for CPU.

``TF_CPP_MIN_LOG_LEVEL`` does not hide them (measured: the first two are printed before absl's logging is
initialised, whatever the level; oneDNN's notice is logged at ERROR level, and ``3`` would hide real errors too), and
``TF_ENABLE_ONEDNN_OPTS=0`` would also switch off oneDNN's faster kernels. So :func:`install` points file descriptor 2
at a pipe read by a small *separate process* (this file run as a script) that forwards every byte except the lines
matching :data:`DROPPED`. Being a process, it outlives a crash of the CLI (a ``LOG(FATAL)`` or segfault message still
arrives) and forwards the rest once the pipe closes. Python's own output (tracebacks, warnings, progress lines and
bars) passes untouched, even when a native line lands in the middle of it. ``tfsonify --verbose`` does not install it.
"""
from __future__ import annotations

import os
import re
import select
import subprocess
import sys

__all__ = ["DROPPED", "filter_stream", "install"]

DROPPED = [
    rb"oneDNN supports DT_\w+ only on platforms with AVX-512",
    rb"oneDNN custom operations are on\.",
    rb"Could not find cuda drivers on your machine, GPU will not be used",
    rb"(?i)failed call to cuInit",
    rb"Unable to register cu(DNN|FFT|BLAS) factory",
    rb"when one has already been registered",
    rb"computation placer already registered",
    rb"TF-TRT Warning: Could not find TensorRT",
    rb"This TensorFlow binary is optimized to use available CPU instructions",
    rb"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags",
    rb"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    rb"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU",
]
"""Patterns of native log records to drop (bytes regexes, searched within one record: one line)."""

_PREFIX = rb"[IWEF]\d{4} \d\d:\d\d:\d\d"  # absl/TF log prefix: E0000 00:00:1796156557.3 ...
#: native lines without absl's prefix, recognised by how they begin
_PLAIN = (b"WARNING: All log messages before absl::", b"INFO: Created TensorFlow Lite", b"To enable the following instructions:")
_RECORD_START = re.compile(_PREFIX + b"|" + b"|".join(re.escape(p) for p in _PLAIN))
_TEMPLATE = b"E0000 00:00:00"  # a record prefix: what the end of a read may hold the start of
_LONGEST = max(len(_TEMPLATE), *(len(p) for p in _PLAIN))
FLUSH_SECONDS = 0.2
"""A possible record start held at the end of a read is forwarded after this long without more data."""


def _could_start_record(tail: bytes) -> bool:
    """Whether ``tail`` (shorter than a full start) may be the beginning of a native log record."""
    if any(plain.startswith(tail) for plain in _PLAIN):
        return True
    if len(tail) >= len(_TEMPLATE):
        return False
    for byte, want in zip(tail, _TEMPLATE):
        if want == ord("E"):
            ok = byte in b"IWEF"
        elif chr(want).isdigit():
            ok = chr(byte).isdigit()
        else:
            ok = byte == want
        if not ok:
            return False
    return True


def filter_stream(read_fd: int, write_fd: int, patterns: list[bytes] = DROPPED) -> None:
    """Copy ``read_fd`` to ``write_fd`` until EOF, leaving out native log records that match ``patterns``.

    Text before a record (e.g. a progress line without its newline) is forwarded at once; a record is held until its
    newline, then dropped or forwarded whole; a possible record start at the end of a read is forwarded after
    :data:`FLUSH_SECONDS` without more data (so a prompt ending in ``I`` is not held back).
    """
    dropped = [re.compile(p) for p in patterns]
    buffer = b""

    def write(data: bytes) -> None:
        while data:
            data = data[os.write(write_fd, data):]

    while True:
        if buffer and _could_start_record(buffer[:_LONGEST]) and b"\n" not in buffer:
            ready, _, _ = select.select([read_fd], [], [], FLUSH_SECONDS)
            if not ready:  # a held tail and a quiet writer: it was not a record after all (or is a stuck one)
                write(buffer)
                buffer = b""
                continue
        data = os.read(read_fd, 65536)
        if not data:
            write(buffer)
            return
        buffer += data
        while buffer:
            match = _RECORD_START.search(buffer)
            if match is None:  # forward all but a possible split record start at the very end
                start = max(len(buffer) - _LONGEST + 1, 0)
                hold = next((i for i in range(start, len(buffer)) if _could_start_record(buffer[i:])), len(buffer))
                write(buffer[:hold])
                buffer = buffer[hold:]
                break
            write(buffer[:match.start()])
            buffer = buffer[match.start():]
            end = buffer.find(b"\n")
            if end < 0:
                break  # wait for the rest of the record
            record, buffer = buffer[:end + 1], buffer[end + 1:]
            if not any(p.search(record) for p in dropped):
                write(record)


def install() -> bool:
    """Route this process's fd 2 through the filter process (POSIX only); returns whether it is active.

    Call once, early (before TensorFlow is imported). Any failure leaves stderr untouched.
    """
    if os.name != "posix" or os.environ.get("TFSONIFY_RAW_STDERR"):
        return False
    try:
        sys.stderr.flush()
        original = os.dup(2)
        try:
            child = subprocess.Popen([sys.executable, "-S", "-E", os.path.abspath(__file__)], stdin=subprocess.PIPE,
                                     stdout=original, stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True)
        finally:
            os.close(original)
        os.dup2(child.stdin.fileno(), 2)
        child.stdin.close()  # fd 2 is now the only write end: the child sees EOF when this process ends
    except OSError:
        return False
    return True


if __name__ == "__main__":
    try:
        filter_stream(0, 1)
    except (OSError, KeyboardInterrupt):
        pass
