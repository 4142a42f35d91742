"""Dataset-scale analyses and batch sonification as Apache Beam pipelines (optional extra ``tfsonify[beam]``).

One pipeline runs on the DirectRunner on a laptop (several worker processes) and unchanged on Flink, Spark or
Dataflow. Three analyses, each giving the same numbers as its single-process counterpart:

* :func:`topk_pipeline` - the ``k`` most activating clips of every map of every block
  (:func:`tfsonify.analysis.topk.top_activating_inputs`), combined per block with :class:`TopKPerMapFn`
  (``CombinePerKey``): a worker holds ``channels_L x (k + 64)`` scores and clip names per block, whatever the dataset
  size. Ties go to the clip whose name sorts first (the single-process path: the earlier clip; the same for
  a sorted file list).
* :func:`coherence_pipeline` - per-block mean top-k coherence between each clip and the sonification of its
  most active map with its Student-t interval (:func:`tfsonify.analysis.coherence.layer_coherence`), combined
  with :class:`CoherenceStatsFn` (count, mean, sum of squared deviations: Chan et al.'s parallel update, O(1)
  memory per block); every clip's score goes to JSON-lines shards.
* :func:`sonify_dataset_pipeline` - the ``top`` most active maps of every clip at every requested block
  written as WAVs plus a JSON-lines manifest, the layout of :mod:`tfsonify.analysis.sonify_dataset`.

Inputs (:class:`ReadClips`): file patterns (``fileio.MatchAll`` + ``ReadMatches``, any Beam filesystem:
local, ``gs://``, ``s3://``, ``hdfs://``), a :class:`tfsonify.data.pipeline.ClipList`, or in-memory
``(name, waveform)`` pairs. Files are decoded like :func:`tfsonify.load_audio` (downmix, soxr resampling to
the model's rate). Inference runs through ``RunInference`` with :class:`SonifierModelHandler`, which loads the
``.keras`` checkpoint once per worker (``tfsonify.load_checkpoint`` + ``sonifiable_of`` + ``Sonifier``, any model at its stored rate) and gets
batches from Beam's ``BatchElements``; a batch is split into runs of equal-length clips for the model.

Failures never stop a pipeline: a clip that cannot be decoded, holds NaN/Inf, or is shorter than the shallowest
requested block needs, and any batch whose inference raised, is counted (Beam counter ``tfsonify/dead_letter``)
and written with its reason to ``OUT/dead_letter-00000-of-00001.jsonl``. Every output is written under a
temporary name and renamed (Beam's file sinks for the shards, a temporary file for the JSON summaries and
WAVs), and names are deterministic with a fixed shard count, so a rerun into the same location replaces the
earlier results instead of adding to them.
"""
from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions

from tfsonify.analysis.clip_batches import check_layers, describe_layer
from tfsonify.analysis.sonify_dataset import DEAD_LETTER, MANIFEST, SonifyDatasetResult, manifest_entries
from tfsonify.analysis.beam_io import (  # noqa: F401  (re-exported: the public names)
    RUNNERS,
    NAMESPACE,
    pipeline_options,
    _join,
    _atomic_write,
    _WriteShards,
    read_records,
    _read_json,
    decode_audio,
    _dead,
    clip_reader,
    ReadClips,
    local_model,
    _sonifier,
    SonifierModelHandler,
    _infer,
    _write_dead_letters,
    _failed_batch_records,
)

__all__ = [
    "RUNNERS",
    "pipeline_options",
    "ReadClips",
    "SonifierModelHandler",
    "TopKPerMapFn",
    "CoherenceStatsFn",
    "topk_pipeline",
    "coherence_pipeline",
    "sonify_dataset_pipeline",
    "run_topk",
    "run_coherence",
    "run_sonify_dataset",
    "load_topk",
    "load_coherence",
    "read_records",
    "clip_reader",
    "local_model",
    "decode_audio",
    "BeamTopK",
]

logger = logging.getLogger(__name__)


def _merge_top(scores: np.ndarray, names: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` per row of ``[channels, n]`` scores and clip names: score descending, then name ascending."""
    negative = -scores.astype(np.float64)
    order = np.argsort(negative, axis=1, kind="stable")[:, : k + 1]
    head = np.take_along_axis(negative, order, axis=1)
    # names only break ties: rows with equal scores among their best k + 1 are re-sorted with names (rare for
    # float maxima, and the empty -inf slots until k clips are in); np.unique on the whole object array compared
    # Python strings for every slot and was most of a merge
    tied = np.flatnonzero(np.any(head[:, 1:] == head[:, :-1], axis=1))
    order = order[:, :k]
    if tied.size:
        sub = names[tied]
        flat = sub.ravel().tolist()
        ranks = {name: i for i, name in enumerate(sorted({n for n in flat if n is not None}))}
        ranks[None] = np.iinfo(np.int64).max
        rank = np.fromiter((ranks[n] for n in flat), np.int64, len(flat)).reshape(sub.shape)
        order[tied] = np.lexsort((rank, negative[tied]), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(names, order, axis=1)


class TopKPerMapFn(beam.CombineFn):
    """Combine ``(clip name, float32 [channels] per-map maxima or None)`` into each map's ``k`` best clips.

    The accumulator is ``[scores float32 [channels, k], names object [channels, k], clips seen, clips skipped,
    pending scores, pending names]`` (``-inf``/``None`` in empty slots). New clips wait in the pending lists and are
    merged ``buffer`` at a time (one sort per ``buffer`` clips instead of one per clip, which made the combiner the
    pipeline's bottleneck): memory ``channels x (k + buffer)`` however many clips are combined. ``None`` counts
    a clip too short for the block.
    """

    def __init__(self, k: int, buffer: int = 64):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer; received {k!r}")
        if isinstance(buffer, bool) or not isinstance(buffer, (int, np.integer)) or buffer < 1:
            raise ValueError(f"buffer must be a positive integer; received {buffer!r}")
        self.k, self.buffer = int(k), int(buffer)

    def create_accumulator(self):
        return [None, None, 0, 0, [], []]

    def _merge(self, accumulator, scores: np.ndarray, names: np.ndarray):
        if accumulator[0] is not None:
            scores = np.concatenate([accumulator[0], scores], axis=1)
            names = np.concatenate([accumulator[1], names], axis=1)
        accumulator[0], accumulator[1] = _merge_top(scores, names, self.k)
        return accumulator

    def _flush(self, accumulator):
        pending_scores, pending_names = accumulator[4], accumulator[5]
        if pending_scores:
            scores = np.stack(pending_scores, axis=1)  # [channels, pending]
            names = np.empty(scores.shape, dtype=object)
            names[:] = np.array(pending_names, dtype=object)[None, :]
            accumulator[4], accumulator[5] = [], []
            self._merge(accumulator, scores, names)
        return accumulator

    def add_input(self, accumulator, element):
        name, scores = element
        if scores is None:
            accumulator[3] += 1
            return accumulator
        accumulator[2] += 1
        accumulator[4].append(np.asarray(scores, np.float32).reshape(-1))
        accumulator[5].append(name)
        if len(accumulator[4]) >= self.buffer:
            self._flush(accumulator)
        return accumulator

    def compact(self, accumulator):
        return self._flush(accumulator)

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for accumulator in accumulators:
            scores, names, seen, skipped, pending_scores, pending_names = accumulator
            merged[2] += seen
            merged[3] += skipped
            if scores is not None:
                self._merge(merged, scores, names)
            merged[4].extend(pending_scores)
            merged[5].extend(pending_names)
            if len(merged[4]) >= self.buffer:
                self._flush(merged)
        return merged

    def extract_output(self, accumulator):
        scores, names, seen, skipped, _, _ = self._flush(accumulator)
        if scores is not None and scores.shape[1] < self.k:  # fewer clips than k: pad like StreamingTopK
            pad = self.k - scores.shape[1]
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            names = np.concatenate([names, np.full((names.shape[0], pad), None, dtype=object)], axis=1)
        return {"scores": scores, "names": names, "clips": int(seen), "skipped": int(skipped)}


def _maxima_per_layer(element, layers):
    name, maxima = element
    for layer in layers:
        yield layer, (name, maxima.get(layer))


def _topk_summary(per_layer: list, dead: int, k: int) -> dict:
    """The ``topk.json`` record: ``k``, the referenced clip names (sorted) and per block ids/scores into them."""
    names = sorted({n for _, r in per_layer if r["names"] is not None for n in r["names"].ravel() if n is not None})
    index = {n: i for i, n in enumerate(names)}
    layers = {}
    for layer, r in sorted(per_layer):
        ids = [] if r["names"] is None else [[-1 if n is None else index[n] for n in row] for row in r["names"]]
        scores = [] if r["scores"] is None else r["scores"].tolist()
        layers[str(layer)] = {"ids": ids, "scores": scores, "clips": r["clips"], "skipped": r["skipped"] + dead}
    return {"k": k, "clips": names, "layers": layers}


def _reading(model_path: str, layers, sample_rate: int | None):
    """``(layers checked against the model, its sample rate or the given one, the shallowest layer, its minimum
    length)``, from the model loaded once in this process (:func:`_sonifier`)."""
    sonifier = _sonifier(model_path)
    layers = check_layers(layers, sonifier)
    shallowest = min(layers, key=sonifier.min_length)
    rate = sonifier.sample_rate if sample_rate is None else int(sample_rate)
    return layers, rate, shallowest, sonifier.min_length(shallowest)


def topk_pipeline(pipeline, source, model_path: str, out: str, layers: Sequence[int | str] | None = None, k: int = 3,
                  batch_size: int = 8, sample_rate: int | None = None, tf_threads: int | None = None, label: str = "TopK"):
    """Add the top-k pipeline to ``pipeline``: writes ``out/topk.json`` and ``out/dead_letter-00000-of-00001.jsonl``.

    ``topk.json`` = ``{"k", "clips": sorted names of the clips in some top-k, "layers": {"L": {"ids" [channels][k]
    (indices into "clips", -1 = empty), "scores" [channels][k], "clips" (scored), "skipped" (too short for the
    block, including dead-lettered too-short clips)}}}``. Read it back with :func:`load_topk`.
    """
    layers, sample_rate, shallowest, needed = _reading(model_path, layers, sample_rate)
    handler = SonifierModelHandler(model_path, "maxima", layers, batch_size, tf_threads=tf_threads)
    reads = pipeline | f"{label}Read" >> ReadClips(source, sample_rate, shallowest, needed)
    dead_letters: list = []
    maxima = _infer(reads["clips"], handler, dead_letters)
    per_layer = (maxima
                 | f"{label}PerLayer" >> beam.FlatMap(_maxima_per_layer, layers)
                 | f"{label}Combine" >> beam.CombinePerKey(TopKPerMapFn(k))
                 | f"{label}Gather" >> beam.combiners.ToList())
    short = (reads[DEAD_LETTER]
             | f"{label}Short" >> beam.Filter(lambda d: d["reason"].startswith("too short"))
             | f"{label}CountShort" >> beam.combiners.Count.Globally())
    _ = (per_layer
         | f"{label}Summary" >> beam.Map(lambda rows, dead: _topk_summary(rows, dead, k), beam.pvalue.AsSingleton(short))
         | f"{label}WriteJson" >> beam.Map(lambda s: _atomic_write(_join(out, "topk.json"), json.dumps(s, indent=1).encode())))
    _write_dead_letters(out, reads, dead_letters, label)
    return pipeline


@dataclass
class BeamTopK:
    """:func:`load_topk`: ``result`` a :class:`~tfsonify.analysis.topk.TopKResult` whose ids index ``names``."""

    result: Any
    names: list[str]
    dead_letter: list[dict]


def load_topk(out: str) -> BeamTopK:
    """Read ``out/topk.json`` and the dead letter written by :func:`topk_pipeline`."""
    from tfsonify.analysis.topk import TopKResult

    summary = _read_json(_join(out, "topk.json"))
    layers = {int(layer) if layer.isdecimal() else layer: r for layer, r in summary["layers"].items()}
    result = TopKResult(k=summary["k"], ids={layer: np.asarray(r["ids"], np.int64) for layer, r in layers.items()},
                        scores={layer: np.asarray(r["scores"], np.float32) for layer, r in layers.items()},
                        clips={layer: r["clips"] for layer, r in layers.items()},
                        skipped={layer: r["skipped"] for layer, r in layers.items()})
    return BeamTopK(result, summary["clips"], read_records(out, DEAD_LETTER))


# -------------------------------------------------------------------------------------------- coherence
class CoherenceStatsFn(beam.CombineFn):
    """Combine per-clip scores (float, or None = skipped) into ``[count, mean, M2, skipped]`` (Chan et al.)."""

    def create_accumulator(self):
        return [0, 0.0, 0.0, 0]

    def add_input(self, accumulator, score):
        if score is None:
            accumulator[3] += 1
            return accumulator
        count, mean, m2, skipped = accumulator
        count += 1
        delta = score - mean
        mean += delta / count
        return [count, mean, m2 + delta * (score - mean), skipped]

    def merge_accumulators(self, accumulators):
        count, mean, m2, skipped = 0, 0.0, 0.0, 0
        for n, m, s, k in accumulators:
            skipped += k
            if n == 0:
                continue
            total = count + n
            delta = m - mean
            mean += delta * n / total
            m2 += s + delta * delta * count * n / total
            count = total
        return [count, mean, m2, skipped]

    def extract_output(self, accumulator):
        return tuple(accumulator)


def _interval(count: int, mean: float, m2: float, level: float) -> tuple[float, float, float]:
    """``confidence_interval`` from sufficient statistics (same Student-t interval, clipped to [0, 1])."""
    from scipy import stats

    if count == 0:
        return 0.0, 0.0, 0.0
    if count < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + level / 2.0, count - 1) * np.sqrt(m2 / (count - 1)) / np.sqrt(count))
    return mean, max(mean - half, 0.0), min(mean + half, 1.0)


def _coherence_per_layer(element, layers):
    name, scores = element
    for layer in layers:
        if layer in scores:
            yield layer, scores[layer]
        else:
            yield layer, None  # too short for the block


def _coherence_summary(rows: list, dead_short: int, layers, k, nperseg, sample_rate, level) -> dict:
    stats = dict(rows)
    summary = {"layers": list(layers), "mean": [], "low": [], "high": [], "clips": [], "skipped": [],
               "scores": [[] for _ in layers], "k": k, "nperseg": nperseg, "sample_rate": sample_rate}
    for layer in layers:
        count, mean, m2, skipped = stats.get(layer, (0, 0.0, 0.0, 0))
        mean, low, high = _interval(count, mean, m2, level)
        for key, value in (("mean", mean), ("low", low), ("high", high), ("clips", int(count)),
                           ("skipped", int(skipped + dead_short))):
            summary[key].append(value)
    return summary


def coherence_pipeline(pipeline, source, model_path: str, out: str, label: str = "model", layers: Sequence[int | str] | None = None,
                       k: int = 5, nperseg: int = 256, batch_size: int = 8, sample_rate: int | None = None, level: float = 0.95,
                       tf_threads: int | None = None, score_shards: int = 1):
    """Add the coherence pipeline: writes ``out/coherence_<label>.json`` (the :class:`CoherenceResult` fields;
    ``scores`` left empty), every clip's score to ``out/coherence_<label>_scores-SSSSS-of-NNNNN.jsonl``
    (``{"clip", "layer", "score"}``) and the dead letter. Read it back with :func:`load_coherence`."""
    layers, sample_rate, shallowest, needed = _reading(model_path, layers, sample_rate)
    name = f"Coherence_{label}"
    handler = SonifierModelHandler(model_path, "coherence", layers, batch_size, k=k, nperseg=nperseg, tf_threads=tf_threads)
    reads = pipeline | f"{name}Read" >> ReadClips(source, sample_rate, shallowest, needed)
    dead_letters: list = []
    scores = _infer(reads["clips"], handler, dead_letters)
    _ = (scores
         | f"{name}Rows" >> beam.FlatMap(lambda e: [{"clip": e[0], "layer": layer, "score": s} for layer, s in sorted(e[1].items())
                                                   if s is not None])
         | f"{name}WriteScores" >> _WriteShards(out, f"coherence_{label}_scores", score_shards))
    stats = (scores
             | f"{name}PerLayer" >> beam.FlatMap(_coherence_per_layer, layers)
             | f"{name}Combine" >> beam.CombinePerKey(CoherenceStatsFn())
             | f"{name}Gather" >> beam.combiners.ToList())
    short = (reads[DEAD_LETTER]
             | f"{name}Short" >> beam.Filter(lambda d: d["reason"].startswith("too short"))
             | f"{name}CountShort" >> beam.combiners.Count.Globally())
    path = _join(out, f"coherence_{label}.json")
    _ = (stats
         | f"{name}Summary" >> beam.Map(lambda rows, dead: _coherence_summary(rows, dead, layers, k, nperseg, sample_rate, level),
                                        beam.pvalue.AsSingleton(short))
         | f"{name}WriteJson" >> beam.Map(lambda s: _atomic_write(path, json.dumps(s, indent=1).encode())))
    _write_dead_letters(out, reads, dead_letters, name)
    return pipeline


def load_coherence(out: str, label: str = "model"):
    """``(CoherenceResult, per-clip score records, dead letter)`` written by :func:`coherence_pipeline`."""
    from tfsonify.analysis.coherence import CoherenceResult

    result = CoherenceResult(**_read_json(_join(out, f"coherence_{label}.json")))
    return result, read_records(out, f"coherence_{label}_scores"), read_records(out, DEAD_LETTER)


# ---------------------------------------------------------------------------------------- sonification
class _WriteSonifications(beam.DoFn):
    """``(name, {layer: (features, activations, sounds)})`` -> WAVs written atomically; yields manifest rows."""

    def __init__(self, out: str, sample_rate: int, layers: Sequence[int | str]):
        self.out, self.sample_rate, self.layers = str(out), int(sample_rate), list(layers)

    def process(self, element):
        from tfsonify.io.audio import open_float_wav

        name, sonified = element
        for layer in self.layers:
            if layer not in sonified:
                beam.metrics.Metrics.counter(NAMESPACE, f"skipped_block_{layer}").inc()
                continue
            features, activations, sounds = sonified[layer]
            rows = manifest_entries(name, layer, features, activations)
            for row, sound in zip(rows, sounds):
                if not np.all(np.isfinite(sound)):
                    yield _dead(name, f"{describe_layer(layer)} map {row['feature']}: sonification has NaN or Inf samples")
                    continue
                buffer = io.BytesIO()
                with open_float_wav(buffer, self.sample_rate) as file:  # no PEAK chunk (time of writing)
                    file.write(np.asarray(sound, np.float32))
                _atomic_write(_join(self.out, *row["wav"].split("/")), buffer.getvalue())
                beam.metrics.Metrics.counter(NAMESPACE, "wavs").inc()
                yield row


def sonify_dataset_pipeline(pipeline, source, model_path: str, out: str, layers: Sequence[int | str] | None = None, top: int = 1,
                            batch_size: int = 8, sample_rate: int | None = None, tf_threads: int | None = None,
                            manifest_shards: int = 1, label: str = "Sonify"):
    """Add the batch sonification: WAVs, ``manifest-SSSSS-of-NNNNN.jsonl`` and the dead letter under ``out``,
    laid out as :mod:`tfsonify.analysis.sonify_dataset` (whose single-process path writes the same files)."""
    layers, sample_rate, shallowest, needed = _reading(model_path, layers, sample_rate)
    handler = SonifierModelHandler(model_path, "sonify", layers, batch_size, top=top, tf_threads=tf_threads)
    reads = pipeline | f"{label}Read" >> ReadClips(source, sample_rate, shallowest, needed)
    dead_letters: list = []
    sonified = _infer(reads["clips"], handler, dead_letters)
    written = sonified | f"{label}Write" >> beam.ParDo(_WriteSonifications(out, sample_rate, layers)).with_outputs(
        DEAD_LETTER, main="rows")
    dead_letters.append(written[DEAD_LETTER])
    _ = written["rows"] | f"{label}Manifest" >> _WriteShards(out, MANIFEST, manifest_shards)
    _write_dead_letters(out, reads, dead_letters, label)
    return pipeline


# ------------------------------------------------------------------------------------------- run helpers
def _model_facts(model_path: str, layers, top: int | None = None):
    """Load the model in the driver once: a clear ``ValueError`` before any worker starts, and its rate."""
    from tfsonify.analysis.sonify_dataset import check_top

    sonifier = _sonifier(model_path)
    if top is not None:
        check_top(sonifier, check_layers(layers, sonifier), top)
    return sonifier


def _run(build, options: PipelineOptions | None):
    pipeline = beam.Pipeline(options=options or PipelineOptions([]))
    build(pipeline)
    result = pipeline.run()
    result.wait_until_finish()
    return result


def run_topk(source, model_path: str, out: str, layers: Sequence[int] | None = None, k: int = 3, batch_size: int = 8,
             options: PipelineOptions | None = None, tf_threads: int | None = None) -> BeamTopK:
    """Run :func:`topk_pipeline` to completion and read its result (:class:`BeamTopK`).

    Raises:
        ValueError: bad model or arguments, or fewer usable clips than ``k`` for a block (as the single-process path).
    """
    sonifier = _model_facts(model_path, layers)
    _run(lambda p: topk_pipeline(p, source, model_path, out, layers, k, batch_size, sonifier.sample_rate, tf_threads), options)
    loaded = load_topk(out)
    for layer, seen in loaded.result.clips.items():
        if seen < k:
            raise ValueError(f"the dataset has {seen} usable clip(s) for {describe_layer(layer)} but k={k} are needed per map "
                             f"({loaded.result.skipped[layer]} clip(s) were skipped as shorter than {sonifier.min_length(layer)} "
                             f"samples, {len(loaded.dead_letter)} in the dead letter); use a smaller k or more clips")
    return loaded


def run_coherence(source, model_path: str, out: str, label: str = "model", layers: Sequence[int] | None = None, k: int = 5,
                  nperseg: int = 256, batch_size: int = 8, options: PipelineOptions | None = None,
                  tf_threads: int | None = None):
    """Run :func:`coherence_pipeline` to completion; returns :func:`load_coherence`'s triple."""
    sonifier = _model_facts(model_path, layers)
    _run(lambda p: coherence_pipeline(p, source, model_path, out, label, layers, k, nperseg, batch_size,
                                      sonifier.sample_rate, tf_threads=tf_threads), options)
    result = load_coherence(out, label)
    if sum(result[0].clips) == 0:
        raise ValueError(f"no clip could be scored: {result[0].skipped[0]} skipped, {len(result[2])} in the dead letter")
    return result


def run_sonify_dataset(source, model_path: str, out: str, layers: Sequence[int] | None = None, top: int = 1,
                       batch_size: int = 8, options: PipelineOptions | None = None, tf_threads: int | None = None,
                       manifest_shards: int = 1) -> SonifyDatasetResult:
    """Run :func:`sonify_dataset_pipeline` to completion; summarise what it wrote."""
    sonifier = _model_facts(model_path, layers, top)
    layers = check_layers(layers, sonifier)
    _run(lambda p: sonify_dataset_pipeline(p, source, model_path, out, layers, top, batch_size, sonifier.sample_rate,
                                           tf_threads, manifest_shards), options)
    rows = read_records(out, MANIFEST)
    clips = {row["clip"] for row in rows}
    per_layer = {layer: {row["clip"] for row in rows if row["layer"] == layer} for layer in layers}
    return SonifyDatasetResult(clips=len(clips), wavs=len(rows),
                               skipped={layer: len(clips - per_layer[layer]) for layer in layers},
                               dead_letter=read_records(out, DEAD_LETTER))
