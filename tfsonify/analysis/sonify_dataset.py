"""Batch sonification of a dataset: the most active map(s) of every clip, as WAVs plus a JSON-lines manifest.

For every clip and every requested block ``L`` the ``top`` most active maps (largest ``max_t A_L[f, t]``) are
sonified (:meth:`tfsonify.Sonifier.sonify_top`) and written as 32-bit float WAVs at the model's rate. The layout
is the same for the single-process path here and for the Apache Beam pipeline
(:func:`tfsonify.analysis.beam.sonify_dataset_pipeline`), so either can be rerun onto the other's output::

    OUT/wav/<clip stem>-<10 hex digits of sha1(clip name)>/L05_r0_f0012.wav   block 5, rank 0, map 12
    OUT/manifest-00000-of-00001.jsonl   one JSON object per WAV: clip, layer, rank, feature, activation, wav
    OUT/dead_letter-00000-of-00001.jsonl one JSON object per clip that could not be used: clip, reason

File names depend only on the clip name, block, rank and map, so a rerun into the same folder overwrites instead
of duplicating; every file is written to a temporary name and renamed (no half-written WAV or manifest).

Resuming (single-process path): once every WAV of a clip is in place, ``OUT/wav/<slug>/clip.json`` is renamed into
place beside them, holding the clip's manifest rows, the SHA-256 of each of its WAVs and a key: SHA-1 of the model's
weights, the blocks, ``top`` and the decoded samples. A rerun decodes each clip (cheap next to sonifying it) and
skips it when its record has the same key and every WAV it lists still has the recorded hash; an interrupted run
leaves clips either recorded (complete) or not (recomputed). Resuming works on whole batches (``batch_size`` usable
clips in input order): a batch is skipped when all its clips are recorded and is otherwise sonified whole, so each
forward pass holds the same clips as in an uninterrupted run and the WAVs are byte-identical at any batch size
(TensorFlow's kernels may round differently for another batch composition). ``resume=False`` recomputes everything. Clips too
short for some requested blocks are sonified at the blocks they fit and counted as skipped for the others; a clip
that cannot be read, holds NaN/Inf, or is too short for the shallowest requested block goes to the dead letter
with its reason.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

__all__ = ["clip_slug", "sonification_path", "clip_problem", "sonify_batch", "manifest_entries", "shard_name",
           "read_shards", "SonifyDatasetResult", "sonify_dataset"]

MANIFEST = "manifest"
DEAD_LETTER = "dead_letter"


def clip_slug(name: str) -> str:
    """A folder name for clip ``name`` (a path or URL): its stem plus 10 hex digits of ``sha1(name)``.

    Two clips with the same stem in different folders get different slugs; the same name always the same slug.
    """
    stem = PurePosixPath(str(name).replace("\\", "/")).stem or "clip"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80]
    return f"{safe}-{hashlib.sha1(str(name).encode('utf-8')).hexdigest()[:10]}"


def layer_tag(layer: int | str) -> str:
    """``L05`` for block 5; a layer name as itself, non-alphanumerics (but ``-_``) as ``_`` (file names)."""
    if isinstance(layer, str):
        return "".join(c if c.isalnum() or c in "-_" else "_" for c in layer)
    return f"L{int(layer):02d}"


def sonification_path(name: str, layer: int | str, rank: int, feature: int) -> str:
    """Relative POSIX path of the WAV of ``feature`` (the ``rank``-th most active map of block or layer ``layer``)
    of a clip."""
    return f"wav/{clip_slug(name)}/{layer_tag(layer)}_r{int(rank)}_f{int(feature):04d}.wav"


def shard_name(prefix: str, shard: int = 0, shards: int = 1, suffix: str = ".jsonl") -> str:
    """Beam's default shard naming, ``prefix-SSSSS-of-NNNNN.suffix``."""
    return f"{prefix}-{shard:05d}-of-{shards:05d}{suffix}"


def clip_problem(waveform: np.ndarray, min_samples: int, min_layer: int | str) -> str | None:
    """Why a decoded clip cannot be analysed (a dead-letter reason), or None if it can.

    Args:
        waveform: the decoded clip (should be float32 ``[time]``).
        min_samples: fewest samples the shallowest requested layer needs (``Sonifier.min_length(min_layer)``).
        min_layer: that block index or layer name, for the message.
    """
    array = np.asarray(waveform)
    if array.ndim != 1 or array.size == 0:
        return f"not a non-empty mono waveform [time]: shape {array.shape}"
    if not np.all(np.isfinite(array)):
        return "contains NaN or Inf samples"
    if array.size < min_samples:
        what = f"layer {min_layer!r}" if isinstance(min_layer, str) else f"block {min_layer}"
        return f"too short: {array.size} samples, {what} needs at least {min_samples}"
    return None


def equal_length_groups(items: Sequence[tuple[object, np.ndarray]]) -> Iterator[tuple[list, np.ndarray]]:
    """Split ``[(key, waveform [time])]`` into runs of consecutive equal-length clips: ``(keys, [n, time])``."""
    start = 0
    for end in range(1, len(items) + 1):
        if end == len(items) or items[end][1].size != items[start][1].size:
            yield [key for key, _ in items[start:end]], np.stack([w for _, w in items[start:end]]).astype(np.float32)
            start = end


def sonify_batch(sonifier, batch: np.ndarray, layers: Sequence[int | str], top: int) -> dict:
    """The ``top`` most active maps of each clip and their sonifications, per layer the clips are long enough for.

    Args:
        sonifier: a :class:`tfsonify.Sonifier` of any supported model.
        batch: float32 ``[batch, time]`` equal-length clips at ``sonifier.sample_rate``.
        layers: block indices or layer names of the model.
        top: maps per clip and block (``1 <= top <=`` the block's maps).

    Returns:
        ``{layer: (features int32 [batch, top], activations float32 [batch, top], sonifications float32 [batch, top, time])}``.
    """
    return {layer: sonifier.sonify_top(batch, layer, top) for layer in layers if batch.shape[1] >= sonifier.min_length(layer)}


def manifest_entries(name: str, layer: int | str, features: np.ndarray, activations: np.ndarray) -> list[dict]:
    """Manifest rows for one clip and block: ``clip, layer, rank, feature, activation, wav`` (relative path)."""
    return [{"clip": str(name), "layer": layer if isinstance(layer, str) else int(layer), "rank": rank, "feature": int(feature), "activation": float(activation),
             "wav": sonification_path(name, layer, rank, int(feature))}
            for rank, (feature, activation) in enumerate(zip(features, activations))]


def read_shards(location: str | os.PathLike, prefix: str, suffix: str = ".jsonl") -> list[dict]:
    """All JSON-lines records of the shards ``location/prefix-*-of-*.suffix`` (local folders only)."""
    records = []
    for path in sorted(glob.glob(os.path.join(str(location), f"{prefix}-*-of-*{suffix}"))):
        with open(path, encoding="utf-8") as handle:
            records.extend(json.loads(line) for line in handle if line.strip())
    return records


def _write_jsonl(path, records: Iterable[dict]) -> None:
    from tfsonify.io.audio import atomic_path

    with atomic_path(path, suffix=".jsonl") as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, sort_keys=True) + "\n")


def remove_stale_shards(location: str | os.PathLike, prefix: str, shards: int, suffix: str = ".jsonl") -> None:
    """Delete ``prefix-*-of-*`` shards of an earlier run written with another shard count (they would duplicate)."""
    keep = f"-of-{shards:05d}{suffix}"
    for path in glob.glob(os.path.join(str(location), f"{prefix}-*-of-*{suffix}")):
        if not path.endswith(keep):
            os.remove(path)


@dataclass
class SonifyDatasetResult:
    """What a dataset sonification wrote.

    Attributes:
        clips: clips sonified (at one block at least), resumed ones included.
        wavs: WAV files written (not counting those of resumed clips).
        resumed: clips skipped because an earlier run left complete outputs for every clip of their batch (``clip.json``).
        skipped: per block, clips too short for it (but not for the shallowest block).
        dead_letter: ``{"clip", "reason"}`` per clip that could not be used.
    """

    clips: int = 0
    wavs: int = 0
    resumed: int = 0
    skipped: dict[int, int] = field(default_factory=dict)
    dead_letter: list[dict] = field(default_factory=list)


def check_top(sonifier, layers: Sequence[int], top: int) -> int:
    """``top`` as an int in ``1..`` the fewest maps of the requested blocks; ``ValueError`` otherwise."""
    fewest = min(sonifier.num_features(layer) for layer in layers)
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or not 1 <= top <= fewest:
        raise ValueError(f"top must be an integer in 1..{fewest} (maps of the narrowest requested block); received {top!r}")
    return int(top)


def sonify_dataset(sonifier, clips: Iterable[tuple[str, np.ndarray | Callable[[], np.ndarray]]], out: str | os.PathLike,
                   layers: Sequence[int] | None = None, top: int = 1, batch_size: int = 8,
                   resume: bool = True) -> SonifyDatasetResult:
    """Single-process batch sonification: the ``top`` most active maps of every clip at every block in ``layers``.

    Args:
        sonifier: a :class:`tfsonify.Sonifier`.
        clips: ``(name, waveform)`` pairs, the waveform mono float32 ``[time]`` at the model's rate, or a
            zero-argument callable returning it (e.g. a file reader); a callable raising ``ValueError`` sends the
            clip to the dead letter with the error as reason. Consecutive equal-length clips are batched.
        out: local output folder (created if missing), laid out as in the module docstring.
        layers: block indices or layer names (default every block of the model).
        top: maps per clip and layer.
        batch_size: clips per forward pass.
        resume: skip each batch whose clips all have complete outputs that an earlier run with the same model,
            blocks and ``top`` left (module docstring); False recomputes every clip.

    Returns:
        :class:`SonifyDatasetResult`; also writes the manifest and dead-letter shards.
    """
    from tfsonify import write_wav
    from tfsonify.analysis.clip_batches import check_layers
    from tfsonify.io.manifest import remove_stale_temporaries
    from tfsonify.io.render import check_writable_dir

    layers = check_layers(layers, sonifier)
    shallowest = min(layers, key=sonifier.min_length)
    top = check_top(sonifier, layers, top)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; received {batch_size!r}")
    root = check_writable_dir(out)
    remove_stale_temporaries(root, recursive=True)  # what a killed run left (its WAVs are complete or absent)
    result = SonifyDatasetResult(skipped={layer: 0 for layer in layers})
    slots: list[list[dict]] = []  # manifest rows per usable clip, in input order (resumed or computed)
    pending: list[tuple[tuple[int, str, str], np.ndarray, bool]] = []  # ((slot, name, key), waveform, recorded)
    settings = _settings_hash(sonifier, layers, top)

    def flush():
        if all(recorded for _, _, recorded in pending):  # the whole batch is complete on disk
            result.clips += len(pending)
            result.resumed += len(pending)
            pending.clear()
            return
        for tags, batch in equal_length_groups([(tags, waveform) for tags, waveform, _ in pending]):
            outputs = sonify_batch(sonifier, batch, layers, top)
            for layer in layers:
                if layer not in outputs:
                    result.skipped[layer] += len(tags)
            for i, (slot, name, key) in enumerate(tags):
                clip_rows = []
                for layer, (features, activations, sounds) in outputs.items():
                    rows = manifest_entries(name, layer, features[i], activations[i])
                    for row, sound in zip(rows, sounds[i]):
                        (root / row["wav"]).parent.mkdir(parents=True, exist_ok=True)
                        write_wav(root / row["wav"], sound, sonifier.sample_rate)
                    clip_rows.extend(rows)
                    result.wavs += len(rows)
                slots[slot] = clip_rows
                if clip_rows:  # after its WAVs are in place: the clip is complete
                    _write_record(root, name, key, clip_rows)
            result.clips += len(tags)
        pending.clear()

    for name, waveform in clips:
        try:
            waveform = waveform() if callable(waveform) else waveform
        except ValueError as error:
            result.dead_letter.append({"clip": str(name), "reason": f"unreadable: {error}"})
            continue
        problem = clip_problem(waveform, sonifier.min_length(shallowest), shallowest)
        if problem:
            result.dead_letter.append({"clip": str(name), "reason": problem})
            continue
        waveform = np.asarray(waveform, np.float32)
        key = _clip_key(settings, waveform)
        done = _complete_record(root, str(name), key) if resume else None
        slots.append(done or [])
        pending.append(((len(slots) - 1, str(name), key), waveform, done is not None))
        if len(pending) == batch_size:
            flush()
    flush()
    entries = [row for rows in slots for row in rows]
    for prefix, records in ((MANIFEST, entries), (DEAD_LETTER, result.dead_letter)):
        remove_stale_shards(root, prefix, 1)
        _write_jsonl(root / shard_name(prefix), records)
    return result


RECORD = "clip.json"
"""Per-clip completion record, beside the clip's WAVs (``OUT/wav/<slug>/clip.json``)."""


def _settings_hash(sonifier, layers: Sequence[int | str], top: int) -> str:
    """SHA-1 of the model's weights (their bytes, in order), the blocks and ``top``: what a clip's outputs depend on
    besides its samples."""
    digest = hashlib.sha1()
    for weight in sonifier.model.get_weights():
        array = np.ascontiguousarray(weight)
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(array.tobytes())
    digest.update(json.dumps({"layers": [str(layer) for layer in layers], "top": int(top),
                              "rate": int(sonifier.sample_rate)}, sort_keys=True).encode())
    return digest.hexdigest()


def _clip_key(settings: str, waveform: np.ndarray) -> str:
    """SHA-1 of the settings hash and a clip's decoded float32 samples."""
    return hashlib.sha1(settings.encode() + np.ascontiguousarray(waveform, np.float32).tobytes()).hexdigest()


def _sha256(path) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _write_record(root, name: str, key: str, rows: list[dict]) -> None:
    """``clip.json`` for a clip whose WAVs are all in place: its key, manifest rows and each WAV's SHA-256."""
    from tfsonify.io.audio import atomic_path

    record = {"clip": name, "key": key, "rows": rows, "sha256": {row["wav"]: _sha256(root / row["wav"]) for row in rows}}
    with atomic_path(root / "wav" / clip_slug(name) / RECORD, suffix=".json") as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


def _complete_record(root, name: str, key: str) -> list[dict] | None:
    """The manifest rows an earlier run recorded for clip ``name`` with the same ``key``, if every WAV it lists is
    still there with the recorded hash; None otherwise (no record, another model/blocks/top/samples, a WAV missing
    or changed, an unreadable record)."""
    path = root / "wav" / clip_slug(name) / RECORD
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
        if record.get("clip") != name or record.get("key") != key:
            return None
        rows, hashes = record["rows"], record["sha256"]
        if not rows or any(_sha256(root / row["wav"]) != hashes.get(row["wav"]) for row in rows):
            return None
        return rows
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
