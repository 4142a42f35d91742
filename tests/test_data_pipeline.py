"""Decode-once pipeline: cache (no decoding after the first pass), corrupt files, crops, batches, determinism."""
import numpy as np
import pytest
import soundfile
import tensorflow as tf

from tfsonify.io.audio import load_audio
from tfsonify.data import pipeline
from tfsonify.data.augment import Augmenter
from tfsonify.data.pipeline import (ClipList, DataWarning, decode_clips, evaluation_dataset, pad_batch,
                                    training_dataset)
from tfsonify.data.readers import read_folder


class CountingDecoder:
    def __init__(self):
        self.calls = 0

    def __call__(self, path, sample_rate):
        self.calls += 1
        return load_audio(path, sample_rate)


def _tone(path, seconds, frequency, rate=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), rate)
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "data"
    for label, frequency in (("low", 300.0), ("high", 1200.0)):
        for k in range(4):
            _tone(root / label / f"{k}.wav", 0.2 + 0.05 * k, frequency + 10 * k)
    return root


def test_second_epoch_never_decodes(folder):
    decoder = CountingDecoder()
    decoded = decode_clips(read_folder(folder), decoder=decoder, verbose=False)
    assert decoder.calls == 8
    dataset = training_dataset(decoded, batch_size=4, crop_seconds=0.15, augment=Augmenter(), seed=0)
    for _ in range(3):
        batches = list(dataset)
        assert len(batches) == 2 and batches[0][0].shape == (4, 1200)
    assert decoder.calls == 8  # three epochs, no decoding after the first pass


def test_disk_cache_is_reused_and_invalidated(folder, tmp_path):
    clips = read_folder(folder)
    first_decoder, second_decoder = CountingDecoder(), CountingDecoder()
    first = decode_clips(clips, cache_dir=tmp_path / "cache", decoder=first_decoder, verbose=False)
    second = decode_clips(clips, cache_dir=tmp_path / "cache", decoder=second_decoder, verbose=False)
    assert first_decoder.calls == 8 and second_decoder.calls == 0
    np.testing.assert_array_equal(np.asarray(first.samples), np.asarray(second.samples))
    np.testing.assert_array_equal(first.labels, second.labels)
    assert [str(p) for p in first.paths] == [str(p) for p in second.paths]
    _tone(folder / "low" / "0.wav", 0.3, 500.0)  # a changed file changes the cache key
    third_decoder = CountingDecoder()
    third = decode_clips(clips, cache_dir=tmp_path / "cache", decoder=third_decoder, verbose=False)
    assert third_decoder.calls == 8 and third.lengths[4] == 2400  # clips: high/0-3, low/0-3


def test_corrupt_file_is_skipped_reported_and_counted(folder, capsys):
    (folder / "low" / "broken.wav").write_bytes(b"RIFF\x00\x00not really a wav")
    (folder / "high" / "empty.wav").write_bytes(b"")
    clips = read_folder(folder)
    with pytest.warns(DataWarning, match=r"skipped 2 of 10 clips.*high/empty.wav.*low/broken.wav"):
        decoded = decode_clips(clips)
    assert len(decoded) == 8
    assert sorted(path.rsplit("/", 1)[-1] for path, _ in decoded.skipped) == ["broken.wav", "empty.wav"]
    assert "skipped 2" in capsys.readouterr().err
    assert not any("broken" in str(p) for p in decoded.paths)
    assert sum(1 for _ in training_dataset(decoded, 2, crop_seconds=0.1)) == 4  # training goes on


def test_nothing_decodable_or_nothing_listed_raises(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bad.wav").write_bytes(b"junk")
    with pytest.raises(ValueError, match="none of the 1 clips could be decoded"), pytest.warns(DataWarning):
        decode_clips(read_folder(tmp_path))
    with pytest.raises(ValueError, match="empty"):
        decode_clips(ClipList(paths=[], labels=np.zeros(0, np.int32), class_names=["a"]))
    _tone(tmp_path / "b" / "good.wav", 0.1, 440.0)
    with pytest.warns(DataWarning, match=r"1 class\(es\) lost every clip .*: a"):
        decoded = decode_clips(read_folder(tmp_path), verbose=False)
    assert len(decoded) == 1 and decoded.class_names == ["a", "b"]


def test_resampling_and_whole_clip_evaluation(folder):
    decoded = decode_clips(read_folder(folder), verbose=False)
    assert decoded.sample_rate == 8000
    np.testing.assert_array_equal(decoded.lengths, [1600, 2000, 2400, 2800] * 2)  # 16 kHz files at 8 kHz
    spectrum = np.abs(np.fft.rfft(decoded.waveform(4)))  # "low"/0.wav: 300 Hz tone (classes sorted: high, low)
    assert abs(np.argmax(spectrum) * 8000 / decoded.lengths[4] - 300.0) < 8
    whole = [(x.numpy(), y.numpy()) for x, y in evaluation_dataset(decoded)]
    assert [x.shape[1] for x, _ in whole] == decoded.lengths.tolist()
    np.testing.assert_array_equal(whole[2][0][0], decoded.waveform(2))
    padded = list(evaluation_dataset(decoded, batch_size=3))
    assert [x.shape for x, _ in padded] == [(3, 2400), (3, 2800), (2, 2800)]
    fixed = list(evaluation_dataset(decoded, batch_size=8, pad_to_seconds=0.25))
    assert fixed[0][0].shape == (8, 2000)


def test_crop_longer_than_every_clip_warns_and_pads(folder):
    decoded = decode_clips(read_folder(folder), verbose=False)
    with pytest.warns(DataWarning, match=r"crop of 1.000 s .* longer than every clip \(longest 0.350 s\)"):
        dataset = training_dataset(decoded, batch_size=4, crop_seconds=1.0, seed=1)
    waves, labels = next(iter(dataset))
    assert waves.shape == (4, 8000)
    nonzero = (waves.numpy() != 0).sum(axis=1)
    assert np.all(nonzero <= 2800) and np.all(nonzero >= 1600)


def test_training_batches_are_reproducible_and_reshuffled(folder):
    decoded = decode_clips(read_folder(folder), verbose=False)

    def epochs(seed):
        dataset = training_dataset(decoded, batch_size=4, crop_seconds=0.1, augment=Augmenter(), seed=seed)
        return [np.concatenate([x.numpy() for x, _ in dataset]) for _ in range(2)]

    first, again = epochs(3), epochs(3)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.allclose(first[0], first[1])  # new crops/augmentations next epoch
    assert not np.allclose(first[0], epochs(4)[0])


def test_labels_one_hot_mixup_and_backgrounds(folder):
    decoded = decode_clips(read_folder(folder), verbose=False)
    plain = next(iter(training_dataset(decoded, 8, crop_seconds=0.1)))
    assert plain[1].dtype == tf.int32 and plain[1].shape == (8,)
    mixed = next(iter(training_dataset(decoded, 8, crop_seconds=0.1, mixup_alpha=0.4, seed=2)))
    assert mixed[1].dtype == tf.float32 and mixed[1].shape == (8, 2)
    np.testing.assert_allclose(mixed[1].numpy().sum(axis=1), 1.0, atol=1e-5)
    assert np.any((mixed[1].numpy() > 0.01) & (mixed[1].numpy() < 0.99))
    hum = np.sin(2 * np.pi * 50 * np.arange(8000) / 8000).astype(np.float32)
    with_bg = next(iter(training_dataset(decoded, 8, crop_seconds=0.1, backgrounds=[hum], background_snr_db=(0, 0),
                                         mix_back_snr_db=(10, 20), seed=2)))
    clean = next(iter(training_dataset(decoded, 8, crop_seconds=0.1, seed=2)))
    assert with_bg[0].shape == clean[0].shape and not np.allclose(with_bg[0], clean[0])
    with pytest.raises(ValueError, match="mixup needs one-hot"):
        training_dataset(decoded, 8, mixup_alpha=0.2, one_hot=False)
    with pytest.raises(ValueError, match="batch_size"):
        training_dataset(decoded, 0)


def test_memory_mapped_path_for_large_sets_matches_in_memory(folder, monkeypatch, tmp_path):
    decoded = decode_clips(read_folder(folder), verbose=False)
    in_memory = [(x.numpy(), y.numpy()) for x, y in decoded.dataset()]
    monkeypatch.setattr(pipeline, "IN_MEMORY_LIMIT_BYTES", 0)
    decode_clips(read_folder(folder), cache_dir=tmp_path / "cache", verbose=False)
    mapped = decode_clips(read_folder(folder), cache_dir=tmp_path / "cache", verbose=False)
    assert isinstance(mapped.samples, np.memmap)
    generated = [(x.numpy(), y.numpy()) for x, y in mapped.dataset()]
    assert next(iter(training_dataset(mapped, 4, crop_seconds=0.1)))[0].shape == (4, 800)
    assert len(in_memory) == len(generated) == 8
    for (a, la), (b, lb) in zip(in_memory, generated):
        np.testing.assert_array_equal(a, b)
        assert la == lb


def test_window_reader_in_memory_and_memory_mapped_agree_with_slicing(folder, monkeypatch, tmp_path):
    decoded = decode_clips(read_folder(folder), verbose=False)
    indices = np.array([0, 3, 7, 7, 5], np.int64)
    starts = np.array([0, -100, 2500, 100, -2000], np.int64)  # inside, zero-padded left, past the end, ...
    expected = np.zeros((5, 600), np.float32)
    for row, (index, start) in enumerate(zip(indices, starts)):
        wave = decoded.waveform(index)
        for k in range(600):
            if 0 <= start + k < wave.size:
                expected[row, k] = wave[start + k]
    in_memory = decoded.window_reader()(tf.constant(indices), tf.constant(starts), 600).numpy()
    np.testing.assert_array_equal(in_memory, expected)
    xla = tf.function(lambda i, s: decoded.window_reader()(i, s, 600), jit_compile=True)(indices, starts).numpy()
    np.testing.assert_array_equal(xla, expected)
    monkeypatch.setattr(pipeline, "IN_MEMORY_LIMIT_BYTES", 0)
    decode_clips(read_folder(folder), cache_dir=tmp_path / "cache", verbose=False)
    mapped = decode_clips(read_folder(folder), cache_dir=tmp_path / "cache", verbose=False)
    assert isinstance(mapped.samples, np.memmap)
    np.testing.assert_array_equal(mapped.window_reader()(tf.constant(indices), tf.constant(starts), 600).numpy(), expected)


def test_every_clip_once_per_epoch_with_its_label(folder):
    decoded = decode_clips(read_folder(folder), verbose=False)
    dataset = training_dataset(decoded, batch_size=3, seed=5, drop_remainder=False)  # whole clips (<= longest)
    for _ in range(2):
        waves, labels = (np.concatenate(parts) for parts in zip(*[(x.numpy(), y.numpy()) for x, y in dataset]))
        assert waves.shape == (8, int(decoded.lengths.max()))
        seen = []
        for wave, label in zip(waves, labels):
            matches = [i for i in range(8) if np.array_equal(wave[: decoded.lengths[i]], decoded.waveform(i))
                       and not wave[decoded.lengths[i]:].any()]
            assert len(matches) == 1 and decoded.labels[matches[0]] == label
            seen += matches
        assert sorted(seen) == list(range(8))


def test_cliplist_selection_and_validation(folder):
    clips = read_folder(folder)
    clips.metadata["speaker"] = ["s1", "s2"] * 4
    assert len(clips.select("speaker", "s1")) == 4 and len(clips.exclude("speaker", ["s1", "s2"])) == 0
    decoded = decode_clips(clips, verbose=False)
    held = decoded.select("speaker", "s2")
    assert len(held) == 4 and held.metadata["speaker"] == ["s2"] * 4
    np.testing.assert_array_equal(held.waveform(0), decoded.waveform(1))
    with pytest.raises(ValueError, match="no metadata column 'voice'"):
        clips.select("voice", "x")
    with pytest.raises(ValueError, match="2 paths but 1 labels"):
        ClipList(paths=["a", "b"], labels=[0], class_names=["x"])
    with pytest.raises(ValueError, match=r"\[N, C\] multi-hot"):
        ClipList(paths=["a"], labels=[0], class_names=["x"], multi_label=True)
    np.testing.assert_array_equal(pad_batch([np.ones(3), np.ones(5)]), [[1, 1, 1, 0, 0], [1] * 5])
