"""tfsonify.progress: the step timer and the audio progress (tqdm on a terminal, plain lines in a log)."""
import io

import numpy as np
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


def test_iterate_writes_a_line_per_item_then_done(monkeypatch):
    from tfsonify.progress import iterate

    clock = iter(range(0, 1000, 5))  # each perf_counter() call: 5 s later
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: float(next(clock)))
    log = io.StringIO()
    assert list(iterate([1, 4, 8], "report: sonifying", label=lambda b: f"block {b}", file=log)) == [1, 4, 8]
    assert log.getvalue().splitlines() == [
        "report: sonifying: 1/3 (block 1)",
        "report: sonifying: 2/3 (block 4), 0:10 so far, 0:20 left",  # started at 0, item 1 at 5 s, item 2 at 10 s
        "report: sonifying: 3/3 (block 8), 0:15 so far, 0:08 left",
        "report: sonifying: 3/3 - done in 0:20"]
    assert "\r" not in log.getvalue()


def test_iterate_throttles_disables_and_stops_quietly_on_errors(monkeypatch):
    from tfsonify.progress import iterate

    clock = iter(range(0, 1000, 4))
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: float(next(clock)))
    log = io.StringIO()
    assert sum(iterate(iter(range(10)), "clips", total=10, file=log, interval=10.0)) == 45  # an iterator: total given
    lines = log.getvalue().splitlines()
    assert lines[0] == "clips: 1/10" and lines[-1].startswith("clips: 10/10 - done in") and 3 <= len(lines) < 10
    quiet = io.StringIO()
    assert list(iterate([1, 2], "x", file=quiet, enabled=False)) == [1, 2] and quiet.getvalue() == ""
    broken = io.StringIO()
    with pytest.raises(RuntimeError):
        for _ in iterate([1, 2], "y", file=broken):
            raise RuntimeError("stop")
    assert broken.getvalue().splitlines() == ["y: 1/2"]  # no "done" line for a loop that failed


def test_iterate_is_a_tqdm_bar_on_a_terminal():
    from tfsonify.progress import iterate

    terminal = FakeTerminal()
    assert list(iterate(["a", "b"], "blocks", label=str.upper, file=terminal)) == ["a", "b"]
    shown = terminal.getvalue()
    assert "\r" in shown and "blocks: 100%" in shown and "2/2" in shown


def test_report_command_shows_its_steps(tmp_path, capsys):
    """``tfsonify report`` on two short clips: a line per block, then the timed coherence and residual steps; the
    library's ``build_report`` is quiet by default."""
    from tfsonify.cli import main
    from tfsonify.report import build_report
    from tiny import saved_classifier, tiny_cnn12, write_clips

    model = saved_classifier(tmp_path / "m.keras", 2)
    clips = write_clips(tmp_path / "clips", 1, ("tone.wav", 4000, 300.0), {"noise.wav": 3000})
    assert main(["report", str(model), str(clips), "--out", str(tmp_path / "report"), "--layers", "1,2", "--top", "1"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("report: ")]
    assert len(lines) == 5, err
    assert lines[0] == "report: sonifying the top maps: 1/2 (block 1)"
    assert lines[1].startswith("report: sonifying the top maps: 2/2 (block 2), ")
    assert lines[2].startswith("report: sonifying the top maps: 2/2 - done in ")
    assert lines[3].startswith("report: coherence per layer (2 layer(s), 2 clip(s))... done (")
    assert lines[4].startswith("report: residual experiment (agreement, 2 clip(s))... done (")
    rng = np.random.default_rng(0)
    build_report(tiny_cnn12(2), {"a": rng.normal(0, 0.2, 3000).astype("float32")}, tmp_path / "quiet", layers=[1],
                 top=1, residual=False)
    assert "report: " not in capsys.readouterr().err
