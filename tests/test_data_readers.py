"""Dataset readers on tiny generated fixtures in exactly the published layouts."""
import csv

import numpy as np
import pytest
import soundfile

from tfsonify.data.pipeline import DataWarning, decode_clips
from tfsonify.data.readers import (SPEECH_COMMANDS_12, SPEECH_COMMANDS_WORDS, esc50_folds, read_esc50, read_folder,
                                   read_fsd50k, read_speech_commands, speech_commands_backgrounds)


def _wav(path, seconds=0.1, rate=16000, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    soundfile.write(str(path), (0.1 * rng.standard_normal(int(seconds * rate))).astype(np.float32), rate)
    return path


# ------------------------------------------------------------------------------------------------ folder


def test_read_folder_classes_labels_and_nested_files(tmp_path):
    _wav(tmp_path / "dog" / "a.wav")
    _wav(tmp_path / "dog" / "sub" / "b.flac")
    _wav(tmp_path / "cat" / "c.wav")
    (tmp_path / "cat" / "notes.txt").write_text("not audio")
    clips = read_folder(tmp_path)
    assert clips.class_names == ["cat", "dog"]
    assert [p.name for p in clips.paths] == ["c.wav", "a.wav", "b.flac"]
    np.testing.assert_array_equal(clips.labels, [0, 1, 1])
    assert clips.metadata["class"] == ["cat", "dog", "dog"]


def test_read_folder_empty_class_is_reported_and_left_out(tmp_path):
    _wav(tmp_path / "a" / "x.wav")
    (tmp_path / "b").mkdir()
    _wav(tmp_path / "c" / "y.wav")
    with pytest.warns(DataWarning, match=r"1 class folder.*no audio files.*b"):
        clips = read_folder(tmp_path)
    assert clips.class_names == ["a", "c"]
    np.testing.assert_array_equal(clips.labels, [0, 1])
    with pytest.warns(DataWarning, match="labels stay"):
        fixed = read_folder(tmp_path, class_names=["a", "b", "c"])
    np.testing.assert_array_equal(fixed.labels, [0, 2])


def test_read_folder_without_audio_raises_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        read_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no class sub-folders"):
        read_folder(tmp_path)
    _wav(tmp_path / "loose.wav")
    with pytest.raises(ValueError, match="1 audio files lie directly"):
        read_folder(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"no audio files .* in the class folders a"):
        read_folder(tmp_path)


# --------------------------------------------------------------------------------------- Speech Commands


@pytest.fixture
def speech_commands(tmp_path):
    """Speech Commands v2 layout: 4 of the 35 word folders, lists, _background_noise_."""
    root = tmp_path / "speech_commands_v0.02"
    words = {"yes": 5, "no": 4, "cat": 3, "stop": 3}
    for w_index, (word, count) in enumerate(words.items()):
        for k in range(count):
            _wav(root / word / f"spk{k:02d}ab_nohash_0.wav", seconds=0.05, seed=10 * w_index + k)
    (root / "validation_list.txt").write_text("yes/spk00ab_nohash_0.wav\ncat/spk00ab_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("yes/spk01ab_nohash_0.wav\nno/spk01ab_nohash_0.wav\nstop/spk09ab_nohash_0.wav\n")
    for name in ("white_noise.wav", "running_tap.wav"):
        _wav(root / "_background_noise_" / name, seconds=12.0, rate=8000, seed=99)
    (root / "_background_noise_" / "README.md").write_text("noise")
    return root


def test_speech_commands_35_word_splits(speech_commands):
    with pytest.warns(DataWarning, match="31 word folder"):
        train = read_speech_commands(speech_commands, "train")
    assert train.class_names == list(SPEECH_COMMANDS_WORDS) and len(train.class_names) == 35
    assert len(train) == 15 - 2 - 2  # 15 clips, 2 in validation, 2 that exist in testing_list.txt
    with pytest.warns(DataWarning):
        validation = read_speech_commands(speech_commands, "validation")
    assert sorted(f"{w}/{p.name}" for w, p in zip(validation.metadata["word"], validation.paths)) == \
        ["cat/spk00ab_nohash_0.wav", "yes/spk00ab_nohash_0.wav"]
    assert validation.class_names[validation.labels[0]] == "cat"
    with pytest.warns(DataWarning, match=r"1 file\(s\) named in testing_list.txt do not exist.*stop/spk09ab"):
        test = read_speech_commands(speech_commands, "test")
    assert len(test) == 2
    assert set(map(str, train.paths)).isdisjoint(map(str, test.paths))
    assert set(train.metadata["speaker"]) >= {"spk02ab", "spk03ab"}


def test_speech_commands_12_class_unknown_and_silence(speech_commands):
    with pytest.warns(DataWarning):
        train = read_speech_commands(speech_commands, "train", variant="12", seed=1)
    assert train.class_names == list(SPEECH_COMMANDS_12)
    names = [train.class_names[label] for label in train.labels]
    assert names.count("_unknown_") == 2  # cat: 3 clips, 1 in validation
    # silence count defaults to the mean of the ten command words in this split: yes 3, no 3, stop 3 -> 0.9
    assert names.count("_silence_") == 1
    with pytest.warns(DataWarning):
        test = read_speech_commands(speech_commands, "test", variant="12", silence_clips=20, seed=1)
    segments = [s for s, n in zip(test.segments, test.labels) if test.class_names[n] == "_silence_"]
    assert len(segments) == 20
    for start, duration in segments:  # last 10 % of the 12 s files: 10.8 s .. 12 s
        assert duration == 1.0 and 10.8 <= start <= 11.0 + 1e-9
    decoded = decode_clips(test, verbose=False)
    silence = [decoded.waveform(i) for i, n in enumerate(decoded.labels) if decoded.class_names[n] == "_silence_"]
    assert {w.size for w in silence} == {8000}
    assert len(speech_commands_backgrounds(speech_commands)) == 2


def test_speech_commands_bad_layouts(tmp_path, speech_commands):
    with pytest.raises(ValueError, match="validation_list.txt"):
        read_speech_commands(tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        read_speech_commands(speech_commands, "dev")
    with pytest.raises(ValueError, match="variant"):
        read_speech_commands(speech_commands, variant="10")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "validation_list.txt").write_text("")
    (tmp_path / "empty" / "testing_list.txt").write_text("")
    with pytest.raises(ValueError, match="none of the 35 word folders"):
        read_speech_commands(tmp_path / "empty")


# ------------------------------------------------------------------------------------------------- FSD50K


@pytest.fixture
def fsd50k(tmp_path):
    root = tmp_path / "FSD50K"
    truth = root / "FSD50K.ground_truth"
    truth.mkdir(parents=True)
    vocabulary = [(0, "Bark", "/m/05tny_"), (1, "Dog", "/m/0bt9lr"), (2, "Speech", "/m/09x0r"), (3, "Music", "/m/04rlf")]
    with open(truth / "vocabulary.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(vocabulary)
    dev = [("101", "Bark,Dog", "/m/05tny_,/m/0bt9lr", "train"), ("102", "Speech", "/m/09x0r", "train"),
           ("103", "Music,Speech", "/m/04rlf,/m/09x0r", "val"), ("104", "Dog", "/m/0bt9lr", "train")]
    with open(truth / "dev.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["fname", "labels", "mids", "split"])
        writer.writerows(dev)
    with open(truth / "eval.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["fname", "labels", "mids"])
        writer.writerows([("201", "Music", "/m/04rlf"), ("202", "Bark,Speech", "/m/05tny_,/m/09x0r")])
    for fname in ("101", "102", "103"):  # 104 is listed but missing
        _wav(root / "FSD50K.dev_audio" / f"{fname}.wav", seed=int(fname))
    for fname in ("201", "202"):
        _wav(root / "FSD50K.eval_audio" / f"{fname}.wav", seed=int(fname))
    return root


def test_fsd50k_multi_hot_labels_and_splits(fsd50k):
    with pytest.warns(DataWarning, match=r"1 of 3 clips listed in dev.csv are missing.*104.wav"):
        train = read_fsd50k(fsd50k, "train")
    assert train.multi_label and train.class_names == ["Bark", "Dog", "Speech", "Music"]
    assert train.metadata["fname"] == ["101", "102"]
    np.testing.assert_array_equal(train.labels, [[1, 1, 0, 0], [0, 0, 1, 0]])
    validation = read_fsd50k(fsd50k, "validation")
    np.testing.assert_array_equal(validation.labels, [[0, 0, 1, 1]])
    evaluation = read_fsd50k(fsd50k, "eval")
    np.testing.assert_array_equal(evaluation.labels, [[0, 0, 0, 1], [1, 0, 1, 0]])
    assert evaluation.labels.dtype == np.float32
    decoded = decode_clips(evaluation, verbose=False)
    assert decoded.multi_label and decoded.lengths.tolist() == [800, 800]  # 0.1 s at 16 kHz -> 8 kHz


def test_fsd50k_bad_layouts(tmp_path, fsd50k):
    with pytest.raises(ValueError, match="vocabulary.csv"):
        read_fsd50k(tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        read_fsd50k(fsd50k, "training")
    for path in (fsd50k / "FSD50K.eval_audio").iterdir():
        path.unlink()
    with pytest.raises(ValueError, match="no audio files"), pytest.warns(DataWarning, match="2 of 2"):
        read_fsd50k(fsd50k, "eval")


# ------------------------------------------------------------------------------------------------- ESC-50


@pytest.fixture
def esc50(tmp_path):
    root = tmp_path / "ESC-50-master"
    (root / "meta").mkdir(parents=True)
    rows = []
    categories = {0: ("dog", True), 1: ("rooster", True), 40: ("helicopter", False)}
    for fold in range(1, 6):
        for target, (category, esc10) in categories.items():
            name = f"{fold}-1000{target}-A-{target}.wav"
            rows.append([name, fold, target, category, str(esc10), f"1000{target}", "A"])
            _wav(root / "audio" / name, seconds=0.05, rate=44100, seed=fold * 100 + target)
    with open(root / "meta" / "esc50.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        writer.writerows(rows)
    return root


def test_esc50_folds_and_labels(esc50):
    clips = read_esc50(esc50)
    assert clips.class_names == ["dog", "rooster", "helicopter"] and len(clips) == 15
    assert sorted(set(clips.metadata["fold"])) == [1, 2, 3, 4, 5]
    train, test = esc50_folds(esc50, 3)
    assert len(train) == 12 and len(test) == 3 and set(test.metadata["fold"]) == {3}
    assert 3 not in train.metadata["fold"]
    assert set(map(str, train.paths)).isdisjoint(map(str, test.paths))
    esc10 = read_esc50(esc50, folds=[1, 2], esc10=True)
    assert esc10.class_names == ["dog", "rooster"] and len(esc10) == 4
    assert decode_clips(read_esc50(esc50, folds=[1]), verbose=False).lengths.tolist() == [400, 400, 400]


def test_esc50_missing_files_and_bad_folds(esc50):
    (esc50 / "audio" / "2-10000-A-0.wav").unlink()
    with pytest.warns(DataWarning, match=r"1 clips listed in meta/esc50.csv are missing.*2-10000-A-0.wav"):
        assert len(read_esc50(esc50)) == 14
    with pytest.raises(ValueError, match="folds are 1-5"):
        read_esc50(esc50, folds=[0])
    with pytest.raises(ValueError, match="test_fold must be 1-5"):
        esc50_folds(esc50, 6)
    (esc50 / "meta" / "esc50.csv").unlink()
    with pytest.raises(ValueError, match="esc50.csv"):
        read_esc50(esc50)
