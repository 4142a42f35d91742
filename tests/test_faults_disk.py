"""Full disk (issue 26): writers on a 256 KiB tmpfs that fills up mid-write. Each failure is one line naming the
file ("no space left on device: PATH"), leaves no partial file under a final name (nor a temporary, nor a folder
the run created), and earlier results in the folder stay intact.

Needs ``mount -t tmpfs`` (root; CI runs as root): without that privilege the tests skip and say why.
"""
from __future__ import annotations

import errno
import subprocess

import numpy as np
import pytest
import soundfile
from interrupt import check_complete, outputs

RATE = 8000


@pytest.fixture
def disk(tmp_path):
    """A 256 KiB tmpfs at ``tmp_path/disk``, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def _used(mount) -> list[str]:
    return sorted(str(p.relative_to(mount)) for p in mount.rglob("*"))


def _clip(path, seconds: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    soundfile.write(path, rng.normal(0, 0.2, int(seconds * RATE)).astype("float32"), RATE, subtype="PCM_16")
    return path


def test_write_wav_on_a_full_disk_raises_one_line_and_leaves_nothing(disk):
    from tfsonify import write_wav
    from tfsonify.io.manifest import NoSpaceError

    with pytest.raises(NoSpaceError) as error:
        write_wav(disk / "big.wav", np.zeros(RATE * 10, np.float32), RATE)  # 320 kB of float samples
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(disk / "big.wav")
    assert str(error.value).startswith(f"no space left on device: {disk / 'big.wav'}") and "\n" not in str(error.value)
    assert _used(disk) == []
    write_wav(disk / "small.wav", np.zeros(RATE, np.float32), RATE)  # the space came back
    assert soundfile.info(str(disk / "small.wav")).frames == RATE


def test_sonify_cli_on_a_full_disk_keeps_the_earlier_results(disk, tmp_path, model_file, capsys):
    from tfsonify import cli

    out = disk / "out"
    def argv(clip):
        return ["sonify", str(clip), "--model", str(model_file), "--layer", "3", "--top", "2", "--no-plots",
                "--no-progress", "--out", str(out)]

    assert cli.main(argv(_clip(tmp_path / "short.wav", 0.5))) == 0  # 3 x 16 kB of WAVs
    before = outputs(out)
    capsys.readouterr()
    status = cli.main(argv(_clip(tmp_path / "long.wav", 4.0, seed=1)))  # 128 kB input.wav + 2 x 128 kB
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and err[-1].startswith(f"tfsonify sonify: error: no space left on device: {out}/"), err
    assert "Traceback" not in "\n".join(err)
    assert outputs(out) == before  # earlier files intact, nothing half-written, no temporary left
    check_complete(out, samples=RATE // 2)


def test_sonify_cli_into_a_new_folder_on_a_full_disk_leaves_no_folder(disk, tmp_path, model_file, capsys):
    from tfsonify import cli

    status = cli.main(["sonify", str(_clip(tmp_path / "long.wav", 6.0)), "--model", str(model_file), "--layer", "1",
                       "--no-progress", "--out", str(disk / "new" / "out")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 1 and err.startswith("tfsonify sonify: error: no space left on device: ") and str(disk) in err
    assert _used(disk) == []


def test_report_on_a_full_disk_is_one_line_and_leaves_no_page(disk, tmp_path, model_file, capsys):
    from tfsonify import cli

    status = cli.main(["report", str(model_file), str(_clip(tmp_path / "a.wav", 3.0)), "--layers", "1,3",
                       "--no-residual", "--out", str(disk / "report")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 1 and err.startswith(f"tfsonify report: error: no space left on device: {disk / 'report'}/"), err
    assert not (disk / "report" / "index.html").exists() and not (disk / "report" / "report.json").exists()
    assert not [p for p in _used(disk) if ".part" in p or "tfsonify-raw" in p]


def test_exports_on_a_full_disk_are_one_line_and_leave_no_artefact(disk, model_file, capsys):
    """A SavedModel and a .tflite that do not fit: one line naming the path, no version folder or .tflite under its
    final name, no temporary, no folder the export created (the .tflite may fit in what is left: then it is whole)."""
    from tfsonify import cli

    models = disk / "models"
    status = cli.main(["export", "savedmodel", str(model_file), "--out", str(models)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and err[-1].startswith("tfsonify export: error: no space left on device: "), err
    assert str(disk) in err[-1] and "Traceback" not in "\n".join(err)
    leftovers = [p for p in _used(disk) if not p.startswith("models/") or p.count("/") > 1]
    assert leftovers == [], leftovers  # at most the empty models/NAME folder: no version, no temporary
    assert not any(p.name.isdigit() for p in models.rglob("*")) if models.exists() else True

    target = disk / "model.tflite"
    status = cli.main(["export", "tflite", str(model_file), "--out", str(target), "--length", "4000", "--layers", "2",
                       "--top", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    if status == 0:  # the .tflite fitted in what was left: then it must be complete
        assert target.stat().st_size > 0
        return
    assert status == 1 and "no space left on device: " in err[-1] and "Traceback" not in "\n".join(err), err
    assert not target.exists() and not [p for p in _used(disk) if "tflite" in p], _used(disk)
