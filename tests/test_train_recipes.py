"""Recipes run with --help; the shared experiment runner trains and evaluates end to end on generated files."""
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tfsonify.cli import main as cli_main
from tfsonify.data.pipeline import ClipList, decode_clips
from tfsonify.train.experiment import Config, run_experiment

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def test_every_recipe_has_help():
    code = ("import runpy, sys\n"
            "for name in sys.argv[1:]:\n"
            "    sys.argv = [name, '--help']\n"
            "    try:\n"
            "        runpy.run_path(name, run_name='__main__')\n"
            "    except SystemExit as exit:\n"
            "        assert exit.code in (0, None), (name, exit.code)\n"
            "    print('HELP-OK', name)\n")
    names = [str(RECIPES / f"{n}.py") for n in ("speech_commands", "fsd50k", "audioset", "esc50", "demo")]
    result = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("HELP-OK") == 5
    assert "--per-replica-batch-size" in result.stdout and "--crop-seconds" in result.stdout


def _clips(folder: Path, multi_label: bool) -> ClipList:
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for index in range(12):
        label = index % 3
        seconds = 0.5 + 0.1 * (index % 2)  # two lengths: whole-clip evaluation groups them
        t = np.arange(int(16000 * seconds)) / 16000
        path = folder / f"clip{index}.wav"
        soundfile.write(path, (0.3 * np.sin(2 * np.pi * 300 * (label + 1) * t) + 0.01 * rng.standard_normal(t.size)),
                        16000)
        paths.append(path)
        labels.append(np.eye(3)[label] + (np.eye(3)[(label + 1) % 3] if multi_label and index % 4 == 0 else 0)
                      if multi_label else label)
    return ClipList(paths=paths, labels=np.asarray(labels), class_names=["low", "mid", "high"], multi_label=multi_label)


def test_run_experiment_multi_label_end_to_end(tmp_path, capsys):
    decoded = decode_clips(_clips(tmp_path, multi_label=True), verbose=False)
    config = Config(multi_label=True, width=0.0625, per_replica_batch_size=4, epochs=2, warmup_epochs=1,
                    crop_seconds=2.0, strategy="default", jit_compile="false")
    with warnings.catch_warnings(record=True) as caught:  # crop longer than every clip: padded, with a warning
        warnings.simplefilter("always")
        summary = run_experiment("tiny", config, decoded, {"eval": decoded}, tmp_path / "run", verbose=0)
    assert any("longer than every clip" in str(w.message) for w in caught)
    result = summary["results"]["eval"]
    assert result["clips"] == 12 and 0.0 <= result["mAP"] <= 1.0 and np.isfinite(result["d_prime"])
    assert summary["global_batch_size"] == 4
    assert json.loads((tmp_path / "run" / "results.json").read_text())["results"]["eval"]["clips"] == 12
    assert (tmp_path / "run" / "model.keras").is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "training" / "checkpoints").iterdir()) == ["epoch-001.keras",
                                                                                               "epoch-002.keras"]
    assert "mAP" in capsys.readouterr().out


def test_run_experiment_bad_inputs(tmp_path):
    decoded = decode_clips(_clips(tmp_path, multi_label=False), verbose=False)
    config = Config(width=0.0625, per_replica_batch_size=64, epochs=2, warmup_epochs=1, strategy="default")
    with pytest.raises(ValueError, match="larger than the 12 training clips"):
        run_experiment("tiny", config, decoded, {}, tmp_path / "a", verbose=0)
    with pytest.raises(ValueError, match="no training clips"):
        run_experiment("tiny", Config(epochs=2, warmup_epochs=1), decoded.subset([]), {}, tmp_path / "b")
    with pytest.raises(ValueError, match="warmup_epochs"):
        run_experiment("tiny", Config(epochs=2, warmup_epochs=2), decoded, {}, tmp_path / "c")


def test_demo_command_rejects_bad_arguments(tmp_path, capsys):
    assert cli_main(["demo", "--out", str(tmp_path), "--epochs", "0"]) == 2
    assert "--epochs must be >= 1" in capsys.readouterr().err
    assert cli_main(["demo", "--out", str(tmp_path), "--epochs", "3", "--warmup-epochs", "3"]) == 2


def test_demo_speed_perturbation():
    import tensorflow as tf

    from tfsonify.data.augment import speed_perturb

    rng = np.random.default_rng(0)
    waves = rng.standard_normal((3, 801)).astype("float32")
    np.testing.assert_allclose(speed_perturb(waves, [1, 2], low=1.0, high=1.0), waves, atol=1e-6)  # factor 1: identity
    first, again = speed_perturb(waves, [3, 4]), speed_perturb(waves, [3, 4])
    np.testing.assert_array_equal(first, again)  # same seed, same draw
    assert first.shape == waves.shape and np.all(np.isfinite(first))
    twice = np.asarray(speed_perturb(np.tile(np.sin(np.arange(801) * 0.05, dtype=np.float32), (1, 1)), [0, 1],
                                     low=2.0, high=2.0))[0]
    # factor 2 about the centre: output t reads input 400 + 2 (t - 400); the outer half falls outside -> 0
    np.testing.assert_allclose(twice[400 - 100], np.sin((400 - 200) * 0.05), atol=1e-5)
    assert twice[0] == 0.0 and twice[-1] == 0.0
    xla = tf.function(lambda w: speed_perturb(w, tf.constant([3, 4])), jit_compile=True)
    np.testing.assert_allclose(xla(waves), first, atol=1e-5)
    with pytest.raises(ValueError, match=r"\[batch, time\]"):
        speed_perturb(waves[0], [1, 2])


def test_demo_chooses_a_correct_and_a_misclassified_mixture():
    from tfsonify.commands.demo import choose_mixtures

    snr = [10.0, 0.0, 5.0, 20.0]
    labels = [0, 1, 2, 3]
    chosen = choose_mixtures([0, 2, 2, 3], labels, snr, ["a", "b", "c", "d"])  # the 0 dB one is wrong
    assert [(c["index"], c["role"]) for c in chosen] == [(1, "misclassified"), (2, "correct")]
    assert "lowest-SNR held-out mixture" in chosen[0]["reason"] and "gets wrong" in chosen[0]["reason"]
    assert "classifies correctly" in chosen[1]["reason"]
    chosen = choose_mixtures([0, 1, 2, 0], labels, snr, ["a", "b", "c", "d"])  # hardest right, one wrong at 20 dB
    assert [(c["index"], c["role"]) for c in chosen] == [(1, "correct"), (3, "misclassified")]
    assert [c["role"] for c in choose_mixtures(labels, labels, snr, list("abcd"))] == ["correct"]  # nothing wrong
    assert choose_mixtures([], [], [], []) == []
