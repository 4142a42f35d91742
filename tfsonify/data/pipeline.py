"""``tf.data`` pipelines of ``(waveform float32 [T], label)`` from audio files, decoded once and cached.

Data flows one way::

    reader (readers.py) -> ClipList (paths, labels, class names, per-clip metadata)
        -> decode_clips(): load_audio (soundfile + soxr) to the model's rate, ONE pass, unreadable files skipped,
           reported by path and counted; optional packed-array cache on disk (``cache_dir``)
        -> DecodedClips (packed float32 samples + offsets)  -- epochs never decode again
        -> training_dataset() / evaluation_dataset(): tf.data with random crops, augmentation,
           mixup / mix-back, batching

Each public name below documents its shapes and options: :class:`ClipList`, :func:`decode_clips`,
:class:`DecodedClips`, :func:`training_dataset`, :func:`evaluation_dataset`, :func:`pad_batch` and
:data:`CROP_SECONDS` (the paper's crop lengths, App. A.3).

Labels: multi-class clips carry an int32 class index (``one_hot=True`` gives float32 ``[C]``);
multi-label clips carry a float32 multi-hot ``[C]``. Mixup always produces float targets.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfsonify.io.audio import load_audio
from tfsonify.validation import preview
from tfsonify.data import augment as aug

__all__ = ["DataWarning", "ClipList", "DecodedClips", "decode_clips", "is_cached", "training_dataset",
           "evaluation_dataset", "pad_batch", "CROP_SECONDS"]


#: Training crop lengths of the paper (App. A.3), seconds; None = no crop (clips <= 1 s, padded to the longest).
CROP_SECONDS = {"audioset": 5.0, "fsd50k": 2.5, "speech_commands": None}

#: Packed clips above this size are served by a generator over a memory-mapped array instead of one tensor.
IN_MEMORY_LIMIT_BYTES = 1 << 30


class DataWarning(UserWarning):
    """A dataset problem that training can survive (skipped file, empty class, crop longer than clips)."""


def warn(message: str) -> None:
    """Issue a :class:`DataWarning` (shown on stderr by default)."""
    warnings.warn(message, DataWarning, stacklevel=3)


@dataclasses.dataclass
class ClipList:
    """Audio clips of a dataset split, before decoding.

    Attributes:
        paths: one file path per clip.
        labels: int32 ``[N]`` class indices (multi-class) or float32 ``[N, C]`` multi-hot (multi-label).
        class_names: the ``C`` class names; label ``k`` means ``class_names[k]``.
        multi_label: True for multi-hot labels (FSD50K, AudioSet).
        metadata: per-clip columns (lists of length ``N``), e.g. ``fold``, ``engine``, ``voice``, ``speaker``.
        segments: optional per-clip ``(start_seconds, duration_seconds)`` to cut from the file (None = whole file).
    """

    paths: list[Path]
    labels: np.ndarray
    class_names: list[str]
    multi_label: bool = False
    metadata: dict[str, list] = dataclasses.field(default_factory=dict)
    segments: list[tuple[float, float] | None] | None = None

    def __post_init__(self):
        self.paths = [Path(p) for p in self.paths]
        self.labels = np.asarray(self.labels, np.float32 if self.multi_label else np.int32)
        self.class_names = list(self.class_names)
        expected_rank = 2 if self.multi_label else 1
        if self.labels.ndim != expected_rank and not (len(self.paths) == 0 and self.labels.size == 0):
            raise ValueError(f"labels must be {'[N, C] multi-hot' if self.multi_label else '[N] class indices'}; "
                             f"received shape {self.labels.shape}")
        if len(self.labels) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")
        for name, column in self.metadata.items():
            if len(column) != len(self.paths):
                raise ValueError(f"metadata column {name!r} has {len(column)} values for {len(self.paths)} clips")
        if self.segments is not None and len(self.segments) != len(self.paths):
            raise ValueError(f"{len(self.segments)} segments for {len(self.paths)} clips")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def one_hot(self) -> np.ndarray:
        """float32 ``[N, C]`` targets (multi-hot as is, class indices one-hot encoded)."""
        if self.multi_label:
            return self.labels.astype(np.float32)
        return np.eye(self.num_classes, dtype=np.float32)[self.labels]

    def subset(self, selection) -> "ClipList":
        """Clips at ``selection`` (integer indices or a boolean mask of length ``N``)."""
        indices = _indices(selection, len(self))
        return dataclasses.replace(
            self,
            paths=[self.paths[i] for i in indices],
            labels=self.labels[indices] if len(indices) else self.labels[:0],
            metadata={name: [column[i] for i in indices] for name, column in self.metadata.items()},
            segments=None if self.segments is None else [self.segments[i] for i in indices],
        )

    def select(self, column: str, values) -> "ClipList":
        """Clips whose ``metadata[column]`` is in ``values`` (a value or a collection)."""
        return self.subset(_membership(self.metadata, column, values))

    def exclude(self, column: str, values) -> "ClipList":
        """Clips whose ``metadata[column]`` is not in ``values``."""
        return self.subset(~_membership(self.metadata, column, values))


def _indices(selection, size: int) -> np.ndarray:
    selection = np.asarray(selection)
    if selection.dtype == bool:
        if selection.shape != (size,):
            raise ValueError(f"boolean mask must have shape ({size},); received {selection.shape}")
        return np.flatnonzero(selection)
    return selection.astype(np.int64).reshape(-1)


def _membership(metadata: dict, column: str, values) -> np.ndarray:
    if column not in metadata:
        raise ValueError(f"no metadata column {column!r}; available: {sorted(metadata)}")
    if isinstance(values, (str, bytes, int, float)):
        values = [values]
    values = set(values)
    return np.array([value in values for value in metadata[column]], dtype=bool)


# ----------------------------------------------------------------------------------------------- decoding


@dataclasses.dataclass
class DecodedClips:
    """Decoded clips packed in one float32 array: clip ``i`` is ``samples[offsets[i]:offsets[i+1]]``.

    Attributes:
        samples: float32 ``[total_samples]`` at ``sample_rate`` Hz (may be a read-only memory map).
        offsets: int64 ``[N + 1]``.
        labels, class_names, multi_label, metadata: as in :class:`ClipList`, for the kept clips.
        paths: source file of each kept clip.
        sample_rate: Hz.
        skipped: ``(path, reason)`` for each clip that could not be decoded.
    """

    samples: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    multi_label: bool
    paths: list[Path]
    metadata: dict[str, list]
    sample_rate: int
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def lengths(self) -> np.ndarray:
        """int64 ``[N]`` clip lengths in samples."""
        return np.diff(self.offsets)

    def waveform(self, index: int) -> np.ndarray:
        """float32 ``[T_index]`` of clip ``index``."""
        return np.asarray(self.samples[self.offsets[index] : self.offsets[index + 1]])

    def one_hot(self) -> np.ndarray:
        """float32 ``[N, C]`` targets."""
        if self.multi_label:
            return self.labels.astype(np.float32)
        return np.eye(self.num_classes, dtype=np.float32)[self.labels]

    def subset(self, selection) -> "DecodedClips":
        """Clips at ``selection`` (indices or boolean mask), repacked."""
        indices = _indices(selection, len(self))
        pieces = [self.waveform(i) for i in indices]
        offsets = np.concatenate([[0], np.cumsum([p.size for p in pieces], dtype=np.int64)]).astype(np.int64)
        samples = np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)
        return dataclasses.replace(
            self, samples=samples, offsets=offsets,
            labels=self.labels[indices] if len(indices) else self.labels[:0],
            paths=[self.paths[i] for i in indices],
            metadata={name: [column[i] for i in indices] for name, column in self.metadata.items()})

    def select(self, column: str, values) -> "DecodedClips":
        return self.subset(_membership(self.metadata, column, values))

    def exclude(self, column: str, values) -> "DecodedClips":
        return self.subset(~_membership(self.metadata, column, values))

    def targets(self, one_hot: bool = False) -> np.ndarray:
        """Labels as the pipelines emit them: int32 ``[N]`` class indices, or float32 ``[N, C]`` (one-hot or multi-hot)."""
        labels = self.one_hot() if one_hot else self.labels
        return labels.astype(np.float32 if (one_hot or self.multi_label) else np.int32)

    def dataset(self, one_hot: bool = False, shuffle_seed: int | None = None) -> tf.data.Dataset:
        """Unbatched ``(waveform float32 [T_i], label)``; no decoding happens here.

        The dataset runs over clip *indices* and slices the packed samples, so shuffling
        (``shuffle_seed``: a new order every epoch, reproducible) moves integers, never audio.
        Small sets (< 1 GiB) slice one in-memory tensor (pure graph); larger ones slice the
        (memory-mapped) packed array through ``tf.numpy_function``.

        Args:
            one_hot: float32 ``[C]`` targets instead of int32 class indices.
            shuffle_seed: shuffle the clip order (None: clip order).
        """
        if len(self) == 0:
            raise ValueError("no clips to make a dataset from (every clip was skipped or the split is empty)")
        labels = self.targets(one_hot)
        indices = tf.data.Dataset.range(len(self))
        if shuffle_seed is not None:
            indices = indices.shuffle(len(self), seed=shuffle_seed, reshuffle_each_iteration=True)
        label_tensor = tf.constant(labels)
        offsets = tf.constant(self.offsets, tf.int64)
        if self.samples.nbytes <= IN_MEMORY_LIMIT_BYTES:
            samples = tf.constant(np.asarray(self.samples, np.float32))
            return indices.map(lambda i: (samples[offsets[i] : offsets[i + 1]], label_tensor[i]),
                               num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        packed, starts = self.samples, self.offsets

        def read(index):
            return np.asarray(packed[starts[index] : starts[index + 1]], np.float32)

        def element(i):
            wave = tf.numpy_function(read, [i], tf.float32, stateful=False)
            return tf.ensure_shape(wave, [None]), label_tensor[i]

        return indices.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def window_reader(self) -> Callable[[tf.Tensor, tf.Tensor, int], tf.Tensor]:
        """``read(indices int [B], starts int [B], length) -> float32 [B, length]``, for use inside ``tf.data``.

        Row ``b`` holds samples ``starts[b] … starts[b] + length − 1`` of clip ``indices[b]``; positions outside
        the clip (negative, or past its end) are 0, so a short clip comes out zero-padded. One vectorised
        gather per batch (no per-clip work): graph ops on the packed in-memory tensor for small sets
        (< 1 GiB), one ``tf.numpy_function`` per batch on the memory map for larger ones.
        """
        if len(self) == 0:
            raise ValueError("no clips to read windows from")
        offsets = tf.constant(np.asarray(self.offsets, np.int64))
        total = int(self.samples.size)
        if self.samples.nbytes <= IN_MEMORY_LIMIT_BYTES:
            samples = tf.constant(np.asarray(self.samples, np.float32))

            def read(indices, starts, length: int):
                return packed_windows(samples, offsets, indices, starts, length)

            return read
        packed = self.samples

        def gather_numpy(flat):
            return np.asarray(packed[flat.ravel()], np.float32).reshape(flat.shape)

        def read(indices, starts, length: int):
            flat, inside = _window_positions(offsets, total, indices, starts, length)
            windows = tf.ensure_shape(tf.numpy_function(gather_numpy, [flat], tf.float32, stateful=False), [None, length])
            return tf.where(inside, windows, 0.0)

        return read


def _window_positions(offsets: tf.Tensor, total: int | tf.Tensor, indices, starts, length: int):
    """``(flat int64 [B, length], inside bool [B, length])``: where each window sample lies in the packed array
    (clamped into range) and whether it lies inside its clip (else the window holds 0 there)."""
    indices = tf.cast(indices, tf.int64)
    first = tf.gather(offsets, indices)
    size = tf.gather(offsets, indices + 1) - first
    position = tf.cast(starts, tf.int64)[:, None] + tf.range(length, dtype=tf.int64)[None]
    inside = (position >= 0) & (position < size[:, None])
    flat = first[:, None] + tf.clip_by_value(position, 0, tf.maximum(size[:, None] - 1, 0))
    return tf.minimum(flat, tf.maximum(tf.cast(total, tf.int64) - 1, 0)), inside


def packed_windows(samples: tf.Tensor, offsets: tf.Tensor, indices, starts, length: int) -> tf.Tensor:
    """float32 ``[B, length]``: windows of clips packed in ``samples`` (clip ``i`` = ``samples[offsets[i]:offsets[i+1]]``).

    Row ``b`` is clip ``indices[b]`` from sample ``starts[b]`` (may be negative) for ``length`` samples; positions
    outside the clip are 0. Pure TensorFlow (one gather), so it runs in ``tf.data`` and under XLA.
    """
    flat, inside = _window_positions(offsets, tf.size(samples, out_type=tf.int64), indices, starts, length)
    return tf.where(inside, tf.gather(samples, flat), 0.0)


def _cut(waveform: np.ndarray, segment, sample_rate: int, path) -> np.ndarray:
    if segment is None:
        return waveform
    start, duration = segment
    begin = int(round(start * sample_rate))
    end = begin + int(round(duration * sample_rate))
    if begin >= waveform.size:
        raise ValueError(f"segment starting at {start} s is past the end of {str(path)!r} "
                         f"({waveform.size / sample_rate:.2f} s)")
    return waveform[begin:end]


def _cache_key(clips: ClipList, sample_rate: int) -> str:
    digest = hashlib.sha256()
    digest.update(f"v1|{sample_rate}|".encode())
    for index, path in enumerate(clips.paths):
        try:
            stat = path.stat()
            signature = f"{stat.st_size}|{stat.st_mtime_ns}"
        except OSError:
            signature = "missing"
        segment = None if clips.segments is None else clips.segments[index]
        digest.update(f"{path.resolve()}|{signature}|{segment}\n".encode())
    return digest.hexdigest()[:24]


def is_cached(clips: ClipList, sample_rate: int, cache_dir: str | os.PathLike) -> bool:
    """Whether :func:`decode_clips` with this ``cache_dir`` would read ``clips`` from its cache (decode nothing)."""
    key = _cache_key(clips, sample_rate)
    return all((Path(cache_dir) / f"{key}.{ext}").is_file() for ext in ("npy", "json"))


def decode_clips(clips: ClipList, sample_rate: int = 8000, cache_dir: str | os.PathLike | None = None,
                 decoder: Callable[[Path, int], np.ndarray] = load_audio, workers: int = 2,
                 verbose: bool = True) -> DecodedClips:
    """Decode every clip once (:func:`tfsonify.load_audio`: soundfile + soxr to ``sample_rate``) into a packed array.

    Unreadable clips (corrupt, empty, not audio, NaN samples) are skipped; each is reported by path in a
    :class:`DataWarning` with the total count, and listed in ``DecodedClips.skipped``. A file shared by several
    clips (e.g. background-noise segments) is decoded once.

    With ``cache_dir``, the packed result is stored as ``<cache_dir>/<key>.npy`` plus ``.json`` (key = hash of the
    paths, sizes, modification times, segments and rate); the next call with the same clips memory-maps it and
    decodes nothing.

    Args:
        clips: what to decode.
        sample_rate: target rate in Hz.
        cache_dir: optional folder for the packed-array cache.
        decoder: ``decoder(path, sample_rate) -> float32 [T]``; raises ``ValueError`` for unreadable files.
        workers: decoding threads.
        verbose: print a one-line summary to stderr.

    Returns:
        :class:`DecodedClips` of the clips that decoded.

    Raises:
        ValueError: ``clips`` is empty, or no clip at all could be decoded.
    """
    if len(clips) == 0:
        raise ValueError("decode_clips: the clip list is empty (no audio files found for this split)")
    if sample_rate <= 0:
        raise ValueError(f"decode_clips: sample_rate must be positive; received {sample_rate}")
    cache_files = None
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        key = _cache_key(clips, sample_rate)
        cache_files = (cache_dir / f"{key}.npy", cache_dir / f"{key}.json")
        if cache_files[0].is_file() and cache_files[1].is_file():
            info = json.loads(cache_files[1].read_text())
            kept = np.asarray(info["kept"], np.int64)
            samples = np.load(cache_files[0], mmap_mode="r")
            decoded = _assemble(clips, kept, samples, np.asarray(info["offsets"], np.int64), sample_rate,
                                [tuple(item) for item in info["skipped"]])
            if verbose:
                print(f"decoded-audio cache: {len(decoded)} clips from {cache_files[0]}", file=sys.stderr)
            return decoded

    unique_paths = list(dict.fromkeys(clips.paths))

    def decode(path):
        try:
            return path, decoder(path, sample_rate), None
        except ValueError as error:
            return path, None, str(error)

    results: dict[Path, tuple[np.ndarray | None, str | None]] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for path, waveform, error in pool.map(decode, unique_paths):
            results[path] = (waveform, error)

    pieces, kept, skipped = [], [], []
    for index, path in enumerate(clips.paths):
        waveform, error = results[path]
        if waveform is not None:
            try:
                waveform = _cut(waveform, None if clips.segments is None else clips.segments[index], sample_rate, path)
                if waveform.size == 0:
                    raise ValueError(f"{str(path)!r} decoded to 0 samples")
            except ValueError as cut_error:
                waveform, error = None, str(cut_error)
        if waveform is None:
            skipped.append((str(path), error))
            continue
        pieces.append(np.asarray(waveform, np.float32))
        kept.append(index)
    if skipped:
        warn(f"skipped {len(skipped)} of {len(clips)} clips that could not be decoded: "
             + "; ".join(f"{path}: {reason}" for path, reason in skipped[:10])
             + (f"; ... ({len(skipped) - 10} more)" if len(skipped) > 10 else ""))
    if not pieces:
        raise ValueError(f"none of the {len(clips)} clips could be decoded; first problem: {skipped[0][1]}")
    if skipped and not clips.multi_label:
        before, after = set(clips.labels.tolist()), set(clips.labels[kept].tolist())
        emptied = [clips.class_names[label] for label in sorted(before - after)]
        if emptied:
            warn(f"{len(emptied)} class(es) lost every clip to decoding errors and have no examples: "
                 f"{preview(emptied)}")
    offsets = np.concatenate([[0], np.cumsum([p.size for p in pieces])]).astype(np.int64)
    samples = np.concatenate(pieces)
    kept = np.asarray(kept, np.int64)
    if cache_files is not None:
        from tfsonify.io.audio import atomic_path

        with atomic_path(cache_files[0], suffix=".npy") as temporary:
            with open(temporary, "wb") as handle:
                np.save(handle, samples)
        with atomic_path(cache_files[1], suffix=".json") as temporary:
            temporary.write_text(json.dumps({"offsets": offsets.tolist(), "kept": kept.tolist(), "skipped": skipped,
                                             "sample_rate": sample_rate}))
    decoded = _assemble(clips, kept, samples, offsets, sample_rate, skipped)
    if verbose:
        seconds = samples.size / sample_rate
        print(f"decoded {len(decoded)} clips ({seconds:.1f} s of audio at {sample_rate} Hz), "
              f"skipped {len(skipped)}", file=sys.stderr)
    return decoded


def _assemble(clips: ClipList, kept: np.ndarray, samples, offsets, sample_rate, skipped) -> DecodedClips:
    chosen = clips.subset(kept)
    return DecodedClips(samples=samples, offsets=offsets, labels=chosen.labels, class_names=chosen.class_names,
                        multi_label=chosen.multi_label, paths=chosen.paths, metadata=chosen.metadata,
                        sample_rate=sample_rate, skipped=list(skipped))


# ----------------------------------------------------------------------------------------------- pipelines


def _check_crop(decoded: DecodedClips, crop_samples: int) -> None:
    longest = int(decoded.lengths.max())
    if crop_samples > longest:
        warn(f"crop of {crop_samples / decoded.sample_rate:.3f} s ({crop_samples} samples) is longer than every clip "
             f"(longest {longest / decoded.sample_rate:.3f} s); every clip will be zero-padded to the crop length")


def training_dataset(decoded: DecodedClips, batch_size: int, crop_seconds: float | None = None,
                     augment: Callable | None = None, mixup_alpha: float | None = None,
                     backgrounds: np.ndarray | Sequence[np.ndarray] | None = None,
                     background_snr_db: tuple[float, float] = (0.0, 20.0), background_probability: float = 1.0,
                     mix_back_snr_db: tuple[float, float] | None = None, seed: int = 0,
                     one_hot: bool | None = None, drop_remainder: bool = True,
                     repeat: bool = False, foreground_augment: Callable | None = None) -> tf.data.Dataset:
    """Shuffled, cropped, augmented batches for training.

    Per example (one random draw each): random crop to ``crop_seconds`` (shorter clips zero-padded at a
    random offset; with ``crop_seconds=None`` all clips are padded/cropped to the longest clip — fine for
    ≤ 1 s clips such as Speech Commands), optional ``foreground_augment(waves [B, L], seed)`` on the clips alone
    (e.g. :meth:`~tfsonify.data.microphone.MicrophoneAugmenter.foreground`: speed, pitch, room), optional background mixing (a random crop of a random background
    at ``U[background_snr_db]`` with probability ``background_probability``), ``augment(waves [B, L], seed)``
    (e.g. :class:`~tfsonify.data.augment.Augmenter`), then optional mix-back, then mixup.
    The whole set is shuffled every epoch (clip indices, not audio); the shuffled indices are batched first
    and every step above runs vectorised over the batch in one ``map`` call (one gather reads all crops),
    so the pipeline costs a few ms of CPU per batch. All randomness is stateless and derived from ``seed``:
    reproducible, different every epoch.

    Args:
        decoded: clips from :func:`decode_clips`.
        batch_size: examples per batch (the *global* batch under a distribution strategy).
        crop_seconds: crop length in seconds (5 for AudioSet, 2.5 for FSD50K) or None.
        augment: ``augment(waves [B, L], seed [2]) -> [B, L]`` with one draw per example, or None.
        mixup_alpha: Beta parameter for :func:`~tfsonify.data.augment.mixup`, or None for no mixup.
        backgrounds: float32 waveforms (at the same rate) to mix in, e.g. ``_background_noise_``.
        background_snr_db: SNR range for background mixing, dB.
        background_probability: chance that an example gets a background.
        mix_back_snr_db: SNR range for batch mix-back, or None.
        seed: integer seed.
        one_hot: labels as float ``[C]`` targets; default True when mixup is on or labels are multi-label.
        drop_remainder: drop the last partial batch (static batch shape, needed on TPU).
        repeat: repeat forever (use ``steps_per_epoch``).
        foreground_augment: like ``augment`` but applied before background mixing, or None.

    Returns:
        ``tf.data.Dataset`` of ``(waves float32 [B, L], labels)`` with labels int32 ``[B]`` or float32 ``[B, C]``.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive; received {batch_size}")
    if one_hot is None:
        one_hot = decoded.multi_label or mixup_alpha is not None
    if mixup_alpha is not None and not one_hot:
        raise ValueError("mixup needs one-hot targets; pass one_hot=True (or leave it unset)")
    if crop_seconds is not None:
        if crop_seconds <= 0:
            raise ValueError(f"crop_seconds must be positive; received {crop_seconds}")
        length = int(round(crop_seconds * decoded.sample_rate))
        _check_crop(decoded, length)
    else:
        length = int(decoded.lengths.max())
    read_windows = decoded.window_reader()
    lengths = tf.constant(np.asarray(decoded.lengths, np.int64))
    label_tensor = tf.constant(decoded.targets(one_hot))

    read_backgrounds = background_lengths = None
    if backgrounds is not None:
        pieces = [np.asarray(b, np.float32) for b in (backgrounds if isinstance(backgrounds, (list, tuple)) else [backgrounds])]
        pieces = [p for p in pieces if p.ndim == 1 and p.size > 0]
        if not pieces:
            raise ValueError("backgrounds: expected at least one non-empty float32 [T] waveform")
        background_offsets = np.concatenate([[0], np.cumsum([p.size for p in pieces])]).astype(np.int64)
        background_samples = tf.constant(np.concatenate(pieces))
        background_lengths = tf.constant(np.diff(background_offsets))
        background_offset_tensor = tf.constant(background_offsets)

        def read_backgrounds(indices, starts):
            return packed_windows(background_samples, background_offset_tensor, indices, starts, length)

    def make_batch(indices, seed_pair):
        """Clip indices ``[B]`` -> ``(waves [B, length], labels)``: everything vectorised over the batch."""
        (crop_seed, choice_seed, background_crop_seed, snr_seed, use_seed,
         augment_seed, mix_seed, mixup_seed) = tf.unstack(aug.split_seed(seed_pair, 8))
        clip_lengths = tf.gather(lengths, indices)
        if crop_seconds is not None:
            starts = aug.random_crop_starts(clip_lengths, length, crop_seed)
        else:
            starts = tf.zeros_like(clip_lengths)
        waves = read_windows(indices, starts, length)
        labels = tf.gather(label_tensor, indices)
        if foreground_augment is not None:  # the clip alone (a seed of its own: the other stages keep their draws)
            waves = foreground_augment(waves, aug.split_seed(augment_seed, 2)[1])
        if read_backgrounds is not None:
            batch = tf.shape(indices)[0]
            choice = aug.uniform([batch], choice_seed, 0, tf.shape(background_lengths)[0], dtype=tf.int32)
            background_starts = aug.random_crop_starts(tf.gather(background_lengths, choice), length, background_crop_seed)
            background = read_backgrounds(choice, background_starts)
            mixed = aug.mix_background(waves, background, snr_seed, *background_snr_db)[0]
            use = aug.uniform([batch, 1], use_seed) < background_probability
            waves = tf.where(use, mixed, waves)
        if augment is not None:  # one random draw per example
            waves = augment(waves, augment_seed)
        if mix_back_snr_db is not None:
            waves = aug.mix_back(waves, mix_seed, *mix_back_snr_db)
        if mixup_alpha is not None:
            waves, labels = aug.mixup(waves, labels, mixup_seed, mixup_alpha)
        return tf.ensure_shape(waves, [None, length]), labels

    indices = tf.data.Dataset.range(len(decoded))
    indices = indices.shuffle(len(decoded), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        indices = indices.repeat()
    dataset = tf.data.Dataset.zip((indices.batch(batch_size, drop_remainder=drop_remainder), aug.seeds_dataset(seed)))
    dataset = dataset.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(decoded: DecodedClips, batch_size: int = 1, pad_to_seconds: float | None = None,
                       one_hot: bool = False) -> tf.data.Dataset:
    """Whole clips in order, for evaluation (App. A.3: "evaluation on the entire audio clip").

    ``batch_size=1`` keeps every clip at its own length (exact whole-clip evaluation). A larger batch
    zero-pads to the longest clip in the batch (or to ``pad_to_seconds``, cropping longer clips), which
    changes a global-average-pooled model's output slightly for the shorter clips.

    Returns:
        ``(waves float32 [B, T], labels)`` batches.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive; received {batch_size}")
    dataset = decoded.dataset(one_hot=one_hot or decoded.multi_label)
    if pad_to_seconds is not None:
        length = int(round(pad_to_seconds * decoded.sample_rate))
        if length <= 0:
            raise ValueError(f"pad_to_seconds must be positive; received {pad_to_seconds}")
        dataset = dataset.map(lambda wave, label: (aug.pad_or_crop(wave, length), label))
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return dataset.padded_batch(batch_size).prefetch(tf.data.AUTOTUNE)


def pad_batch(waves: Sequence[np.ndarray], length: int | None = None) -> np.ndarray:
    """Stack ``[T_i]`` waveforms into float32 ``[N, length]`` (zero-padded at the end / cropped).

    ``length`` defaults to the longest waveform.
    """
    waves = [np.asarray(w, np.float32).reshape(-1) for w in waves]
    if not waves:
        raise ValueError("pad_batch: no waveforms given")
    length = max(w.size for w in waves) if length is None else int(length)
    out = np.zeros((len(waves), length), np.float32)
    for row, wave in zip(out, waves):
        row[: min(length, wave.size)] = wave[:length]
    return out
