"""tfsonify.progress: the step timer and the audio progress (tqdm on a terminal, plain lines in a log)."""
import io

import pytest

from tfsonify import progress as progress_module
from tfsonify.progress import LineProgress, audio_bar, progress


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_step_timer_prints_done_and_failed(capsys):
    with progress("loading"):
        pass
    with pytest.raises(RuntimeError):
        with progress("breaking"):
            raise RuntimeError("x")
    err = capsys.readouterr().err
    assert "loading... done (" in err and "breaking... failed (" in err


def test_log_gets_plain_lines_without_carriage_returns(monkeypatch):
    clock = iter(range(0, 1000, 4))  # each perf_counter() call: 4 s later
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: float(next(clock)))
    log = io.StringIO()  # not a terminal
    with audio_bar(8000 * 60, 8000, "block 11: activations", file=log, interval=10.0) as bar:
        assert isinstance(bar, LineProgress)
        for _ in range(10):
            bar.update(8000 * 6)
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert 2 <= len(lines) <= 5  # every 10 s of wall time (a call every 4 s), not one per update
    assert lines[0].startswith("block 11: activations: ") and "s audio" in lines[0] and "audio s/s" in lines[0]
    assert lines[-1].startswith("block 11: activations: 60.0/60.0 s audio (100 %)") and "done in" in lines[-1]


def test_log_line_reports_failure_and_disabled_writes_nothing():
    log = io.StringIO()
    with pytest.raises(ValueError):
        with audio_bar(100, 10, "decoding", file=log):
            raise ValueError("truncated")
    assert "failed in" in log.getvalue() and "0.0/10.0 s audio (0 %)" in log.getvalue()
    quiet = io.StringIO()
    with audio_bar(100, 10, "decoding", enabled=False, file=quiet, interval=0.0) as bar:
        bar.update(50)
    assert quiet.getvalue() == ""


def test_terminal_gets_a_tqdm_bar():
    from tqdm import tqdm

    screen = FakeTerminal()
    with audio_bar(8000 * 10, 8000, "decoding", file=screen) as bar:
        assert isinstance(bar, tqdm)
        bar.update(8000 * 10)
    assert "decoding: 100%" in screen.getvalue() and "10.0/10.0 s audio" in screen.getvalue()


def test_cli_long_file_path_logs_lines(tmp_path, capfd):
    """sonify_file with stderr captured (not a terminal): progress lines, no carriage returns."""
    import numpy as np
    import soundfile

    from tests.tiny import tiny_cnn12
    from tfsonify import Sonifier
    from tfsonify.engine.long_files import sonify_file

    rng = np.random.default_rng(0)
    soundfile.write(tmp_path / "in.wav", rng.normal(0, 0.1, 8000).astype(np.float32), 8000)
    sonify_file(Sonifier(tiny_cnn12(0)), tmp_path / "in.wav", tmp_path / "out", [3], top=1, plots=False, progress=True)
    err = capfd.readouterr().err
    assert "\r" not in err
    assert "decoding: 1.0/1.0 s audio (100 %)" in err and "block 3: sonifying 1 map(s): 1.0/1.0 s audio" in err
