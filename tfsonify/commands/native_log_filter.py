"""Drop known-harmless TensorFlow C++ log lines from a CLI process's stderr, pass everything else through.

TensorFlow's oneDNN probe logs, at ERROR level, on every CPU without AVX-512 and on the first graph
that has a boolean tensor::

    E0000 00:00:1796156557.305184   23320 util.cc:131] oneDNN supports DT_BOOL only on platforms with
    AVX-512. Falling back to the default Eigen-based implementation if present.

It is a notice (the op runs on TensorFlow's Eigen kernel), but no log level hides it without hiding
real errors (``TF_CPP_MIN_LOG_LEVEL=3`` would), and ``TF_ENABLE_ONEDNN_OPTS=0`` would also switch off
oneDNN's faster kernels. So :func:`install` points file descriptor 2 at a pipe read by a small
*separate process* (this file run as a script) that forwards every byte except records matching
:data:`DROPPED`. Being a process, it outlives a crash of the CLI (a ``LOG(FATAL)`` or segfault
message still arrives) and forwards the rest once the pipe closes.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

__all__ = ["DROPPED", "filter_stream", "install"]

DROPPED = [rb"oneDNN supports DT_\w+ only on platforms with AVX-512"]
"""Patterns of native log records to drop (bytes regexes, searched within one record)."""

_RECORD_START = re.compile(rb"[IWEF]\d{4} \d\d:\d\d:\d\d")  # absl/TF log prefix: E0000 00:00:1796156557.3 ...
_TEMPLATE = b"E0000 00:00:00"  # a record prefix: what the end of a read may hold the start of


def _could_start_record(tail: bytes) -> bool:
    """Whether ``tail`` (shorter than the template) may be the beginning of a log record prefix."""
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

    Text before a record (e.g. a progress line without its newline) is forwarded at once; a record is
    held until its newline, then dropped or forwarded whole.
    """
    dropped = [re.compile(p) for p in patterns]
    buffer = b""

    def write(data: bytes) -> None:
        while data:
            data = data[os.write(write_fd, data):]

    while True:
        data = os.read(read_fd, 65536)
        if not data:
            write(buffer)
            return
        buffer += data
        while buffer:
            match = _RECORD_START.search(buffer)
            if match is None:  # forward all but a possible split record prefix at the very end
                start = max(len(buffer) - len(_TEMPLATE) + 1, 0)
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
