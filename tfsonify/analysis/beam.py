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
import os
import posixpath
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from tfsonify.io import audio
from tfsonify.analysis.clip_batches import check_layers, describe_layer
from tfsonify.analysis.sonify_dataset import (DEAD_LETTER, MANIFEST, SonifyDatasetResult, clip_problem,
                                              equal_length_groups, manifest_entries, shard_name)

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

RUNNERS = ("DirectRunner", "FlinkRunner", "SparkRunner", "DataflowRunner", "PortableRunner", "PrismRunner")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
NAMESPACE = "tfsonify"


# ----------------------------------------------------------------------------------------------- options
def pipeline_options(runner: str | None = None, beam_args: Sequence[str] = ()) -> PipelineOptions:
    """``PipelineOptions`` from a runner name and pass-through flags (e.g. ``["--direct_num_workers=2"]``).

    Flags are ``--name=value``, ``--name value`` or a bare ``--switch``, checked against every option Beam defines
    (the DirectRunner's, Flink's, Spark's, Dataflow's, portable runners', filesystems', plus any ``PipelineOptions``
    subclass the caller has imported). Beam itself only logs and drops an unknown flag, so a typo such as
    ``--direct_num_worker=2`` would silently run with one worker; here it is a ``ValueError``.

    Raises:
        ValueError: a runner not in :data:`RUNNERS`, a token that is not a flag, an unknown option (with the
            closest known names) or a value Beam's parser rejects (e.g. ``--direct_num_workers=two``).
    """
    args = list(beam_args)
    for arg in args:
        if not isinstance(arg, str):
            raise ValueError(f"Beam pipeline options are strings like --name=value; received {arg!r}")
    if args and not args[0].startswith("--"):
        raise ValueError(f"Beam pipeline options look like --name=value; received {args[0]!r}")
    if runner is not None:
        if runner not in RUNNERS:
            raise ValueError(f"--runner must be one of {', '.join(RUNNERS)}; received {runner!r}")
        args = [f"--runner={runner}"] + args
    _check_known(args)
    return PipelineOptions(args)


def _check_known(args: Sequence[str]) -> None:
    """``ValueError`` unless every flag in ``args`` is an option of some ``PipelineOptions`` class."""
    import argparse
    import difflib

    from apache_beam.options import pipeline_options as beam_options

    class Parser(beam_options._BeamArgumentParser):  # Beam's parser (value-provider options), raising not exiting
        def error(self, message):
            raise ValueError(f"invalid Beam pipeline option: {message}")

    parser = Parser(allow_abbrev=False, add_help=False)
    classes: dict[str, type] = {}
    for cls in PipelineOptions.__subclasses__():  # what PipelineOptions.get_all_options parses
        classes.setdefault(str(cls), cls)
    for cls in classes.values():
        try:
            cls._add_argparse_args(parser)
        except argparse.ArgumentError:  # a user class re-declaring an option: Beam tolerates it the same way
            continue
    _, unknown = parser.parse_known_args(list(args))
    if not unknown:
        return
    known = sorted({o for action in parser._actions for o in action.option_strings if o.startswith("--")})
    problems = []
    for token in unknown:
        if not token.startswith("-"):
            problems.append(f"{token!r} (a value with no option before it)")
            continue
        flag = token.split("=", 1)[0]
        close = difflib.get_close_matches(flag, known, n=3, cutoff=0.75)
        problems.append(f"{flag}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
    raise ValueError(f"unknown Beam pipeline option(s): {', '.join(problems)}; see "
                     "https://beam.apache.org/documentation/runners/direct/ and each runner's page for the options")


def _join(location: str, *parts: str) -> str:
    return FileSystems.join(str(location), *parts)


def _atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` on any Beam filesystem: a temporary sibling, then a rename (replaces ``path``)."""
    directory, name = posixpath.split(str(path)) if "://" in str(path) else os.path.split(str(path))
    temporary = _join(directory, f".{name}.{uuid.uuid4().hex}.part") if directory else f".{name}.{uuid.uuid4().hex}.part"
    with FileSystems.create(temporary) as handle:
        handle.write(data)
    if FileSystems.exists(path) and "://" in str(path):  # object stores: rename = copy, which refuses to overwrite
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])


def _remove_stale_shards(location: str, prefix: str, shards: int, suffix: str = ".jsonl") -> None:
    """Delete shards of an earlier run written with another shard count (they would duplicate records)."""
    keep = f"-of-{shards:05d}{suffix}"
    try:
        matches = FileSystems.match([_join(location, f"{prefix}-*-of-*{suffix}")])[0].metadata_list
    except Exception:  # nothing there yet (some filesystems raise for a missing folder)
        return
    stale = [m.path for m in matches if not m.path.endswith(keep)]
    if stale:
        FileSystems.delete(stale)


class _WriteShards(beam.PTransform):
    """JSON-lines records to ``location/prefix-SSSSS-of-NNNNN.jsonl`` (Beam's atomic file sink, fixed shard count)."""

    def __init__(self, location: str, prefix: str, shards: int = 1):
        super().__init__()
        self.location, self.prefix, self.shards = str(location), prefix, int(shards)

    def expand(self, records):
        _remove_stale_shards(self.location, self.prefix, self.shards)
        return (records
                | "ToJson" >> beam.Map(lambda record: json.dumps(record, sort_keys=True))
                | "Write" >> beam.io.WriteToText(_join(self.location, self.prefix), file_name_suffix=".jsonl",
                                                 num_shards=self.shards, shard_name_template="-SSSSS-of-NNNNN"))


def read_records(location: str, prefix: str) -> list[dict]:
    """Every record of the JSON-lines shards ``location/prefix-*-of-*.jsonl`` (any Beam filesystem)."""
    records = []
    matches = FileSystems.match([_join(str(location), f"{prefix}-*-of-*.jsonl")])[0].metadata_list
    for metadata in sorted(matches, key=lambda m: m.path):
        with FileSystems.open(metadata.path) as handle:
            records.extend(json.loads(line) for line in handle.read().decode("utf-8").splitlines() if line.strip())
    return records


def _read_json(path: str):
    with FileSystems.open(path) as handle:
        return json.loads(handle.read().decode("utf-8"))


# ------------------------------------------------------------------------------------------------ inputs
def decode_audio(data: bytes, name: str, sample_rate: int) -> np.ndarray:
    """Audio file bytes as mono float32 ``[time]`` at ``sample_rate``, exactly as :func:`tfsonify.load_audio` reads.

    Raises:
        ValueError: not audio or corrupt, no samples, or NaN/Inf samples (the message names ``name``).
    """
    return audio.decode_audio(io.BytesIO(data), name, sample_rate)


def _dead(name: str, reason: str) -> beam.pvalue.TaggedOutput:
    beam.metrics.Metrics.counter(NAMESPACE, "dead_letter").inc()
    return beam.pvalue.TaggedOutput(DEAD_LETTER, {"clip": str(name), "reason": reason})


class clip_reader:
    """Random access to clips by position in ``names`` (paths or URLs), each read when indexed (for
    :func:`tfsonify.analysis.topk.sonify_top_inputs` on :func:`load_topk`'s names): float32 ``[time]``."""

    def __init__(self, names: Sequence[str], sample_rate: int):
        self.names, self.sample_rate = list(names), int(sample_rate)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> np.ndarray:
        name = self.names[index]
        with FileSystems.open(name) as handle:
            return decode_audio(handle.read(), name, self.sample_rate)


class _DecodeClip(beam.DoFn):
    """A ``ReadableFile``, a ``(path, segment)`` or a ``(name, waveform)`` -> ``(name, float32 [time])`` or a dead letter."""

    def __init__(self, sample_rate: int, min_samples: int, min_layer: int | str):
        self.sample_rate, self.min_samples, self.min_layer = int(sample_rate), int(min_samples), min_layer

    def process(self, element):
        if isinstance(element, fileio.ReadableFile):
            name, segment, waveform = element.metadata.path, None, None
        else:
            name, payload = element
            segment, waveform = (payload, None) if payload is None or isinstance(payload, tuple) else (None, payload)
        if waveform is None:
            try:
                if isinstance(element, fileio.ReadableFile):
                    data = element.read()
                else:
                    with FileSystems.open(str(name)) as handle:
                        data = handle.read()
                waveform = decode_audio(data, str(name), self.sample_rate)
            except (ValueError, OSError) as error:
                yield _dead(name, f"unreadable: {error}")
                return
            if segment is not None:
                start = int(round(segment[0] * self.sample_rate))
                waveform = waveform[start : start + int(round(segment[1] * self.sample_rate))]
        problem = clip_problem(waveform, self.min_samples, self.min_layer)
        if problem:
            yield _dead(name, problem)
            return
        beam.metrics.Metrics.counter(NAMESPACE, "clips").inc()
        yield str(name), np.asarray(waveform, np.float32)


class ReadClips(beam.PTransform):
    """Clips for the analyses: ``{"clips": PCollection[(name, float32 [time])], "dead_letter": PCollection[dict]}``.

    Args:
        source: a file pattern or a list of them (``"data/**"``, ``"gs://bucket/audioset/*.flac"``; only
            files ending in .wav .flac .ogg .mp3 are read), a :class:`tfsonify.data.pipeline.ClipList`
            (its ``segments`` are cut), or a list of ``(name, waveform)`` pairs (mono float32 at ``sample_rate``).
        sample_rate: the model's rate (Hz); files are resampled to it.
        min_layer: the shallowest block index or layer name analysed (for the dead letter's reason).
        min_samples: the fewest samples it needs (``Sonifier.min_length(min_layer)``); shorter clips go to the
            dead letter.
    """

    def __init__(self, source, sample_rate: int, min_layer: int | str, min_samples: int):
        super().__init__()
        self.source, self.sample_rate, self.min_layer, self.min_samples = source, int(sample_rate), min_layer, int(min_samples)

    def expand(self, pbegin):
        source = self.source
        if isinstance(source, (str, os.PathLike)):
            source = [source]
        if hasattr(source, "paths") and hasattr(source, "segments"):  # a ClipList
            segments = source.segments or [None] * len(source.paths)
            elements = pbegin | "ClipList" >> beam.Create([(str(p), s) for p, s in zip(source.paths, segments)])
        else:
            source = list(source)
            if not source:
                raise ValueError("the clip source is empty: give file patterns, a ClipList or (name, waveform) pairs")
            if all(isinstance(s, (str, os.PathLike)) for s in source):
                elements = (pbegin
                            | "Patterns" >> beam.Create([str(s) for s in source])
                            | "Match" >> fileio.MatchAll()
                            | "Audio" >> beam.Filter(lambda m: m.path.lower().endswith(AUDIO_SUFFIXES)))
            elif all(isinstance(s, tuple) and len(s) == 2 for s in source):
                elements = pbegin | "Arrays" >> beam.Create([(str(n), np.asarray(w, np.float32)) for n, w in source])
            else:
                raise ValueError("the clip source must be file patterns, a ClipList or (name, waveform) pairs")
        # Break fusion so the clips spread over the workers (one file pattern is one element otherwise).
        elements = elements | "Spread" >> beam.Reshuffle()
        if isinstance(source, list) and source and isinstance(source[0], (str, os.PathLike)):
            elements = elements | "Read" >> fileio.ReadMatches()
        return elements | "Decode" >> beam.ParDo(_DecodeClip(self.sample_rate, self.min_samples, self.min_layer)).with_outputs(
            DEAD_LETTER, main="clips")


# -------------------------------------------------------------------------------------------- inference
def coherence_batch(sonifier, batch: np.ndarray, layers: Sequence[int | str], k: int = 5, nperseg: int = 256) -> list[dict]:
    """Per clip of an equal-length ``[batch, time]`` batch: ``{layer: top-k coherence or None (silent)}``.

    Layers the clips are too short for are absent; the score is the one :func:`layer_coherence` averages.
    """
    from tfsonify.analysis.coherence import top_k_coherence

    min_length = sonifier.min_length

    silent = np.max(np.abs(batch), axis=1) == 0.0
    rows: list[dict] = [{} for _ in range(batch.shape[0])]
    for layer in layers:
        if batch.shape[1] < min_length(layer):
            continue
        for i in np.flatnonzero(silent):
            rows[i][layer] = None
        if (~silent).any():
            usable = batch[~silent]
            _, _, sounds = sonifier.sonify_top(usable, layer, 1)
            scores = np.atleast_1d(top_k_coherence(usable, sounds[:, 0], k, sonifier.sample_rate, nperseg))
            for i, score in zip(np.flatnonzero(~silent), scores):
                rows[i][layer] = float(score)
    return rows


def local_model(path: str) -> str:
    """``path`` itself, or for a URL (``gs://...``) a local temporary copy (``load_checkpoint`` reads local files)."""
    if "://" not in str(path):
        return str(path)
    import tempfile

    with FileSystems.open(str(path)) as handle, tempfile.NamedTemporaryFile(suffix=".keras", delete=False) as local:
        local.write(handle.read())
    return local.name


_SONIFIERS: dict = {}  # (model path, its size and modification time, jit_compile) -> Sonifier, this process
_SONIFIERS_LOCK = threading.Lock()
_SONIFIERS_KEPT = 4


def _sonifier(model_path: str, jit_compile: bool = False):
    """The :class:`tfsonify.Sonifier` of a checkpoint, loaded once per process and shared.

    Every ``RunInference`` of a pipeline (top-k, coherence and sonification over the same model) and the driver's
    argument check get the same object, so a worker loads the checkpoint and traces its graphs once, not once per
    analysis, and holds one copy of the weights. The key includes the file's size and modification time, so a
    checkpoint rewritten at the same path is loaded again; the last :data:`_SONIFIERS_KEPT` models are kept.
    """
    from tfsonify import Sonifier
    from tfsonify.models.checkpoint import load_checkpoint, sonifiable_of
    from tfsonify.models.metadata import sample_rate_of

    try:
        metadata = FileSystems.match([str(model_path)])[0].metadata_list[0]
        stamp = (metadata.size_in_bytes, getattr(metadata, "last_updated_in_seconds", None))
    except Exception:  # not matchable (the load below raises the clear error)
        stamp = None
    key = (str(model_path), stamp, bool(jit_compile))
    with _SONIFIERS_LOCK:
        if key not in _SONIFIERS:
            model = sonifiable_of(load_checkpoint(local_model(model_path)))  # any model the deconvnet walks
            sonifier = Sonifier(model, sample_rate=sample_rate_of(model), jit_compile=bool(jit_compile))
            while len(_SONIFIERS) >= _SONIFIERS_KEPT:
                _SONIFIERS.pop(next(iter(_SONIFIERS)))
            _SONIFIERS[key] = sonifier
        return _SONIFIERS[key]


class SonifierModelHandler(ModelHandler):
    """``RunInference`` handler: a tfsonify ``.keras`` checkpoint loaded once per worker as a :class:`tfsonify.Sonifier`.

    Beam's TensorFlow handler cannot load Keras 3 models with custom layers; this one calls
    :func:`tfsonify.load_checkpoint` (any model the deconvnet walks; a ContrastiveModel's encoder is used), at the
    sample rate stored with it.

    Args:
        model_path: the ``.keras`` file (any Beam filesystem; remote files are copied to a local temporary file).
        task: ``"maxima"`` (per-map ``max_t A_L`` per block: ``{layer: float32 [channels]}``), ``"coherence"``
            (``{layer: score or None}``) or ``"sonify"`` (``{layer: (features [top], activations [top],
            sonifications [top, time])}``); blocks a clip is too short for are absent.
        layers: block indices or layer names of the model.
        batch_size: most clips per ``BatchElements`` batch.
        top: maps per clip for ``"sonify"``; ``k``/``nperseg``: coherence settings.
        tf_threads: if set, TensorFlow's intra- and inter-op thread pools of each worker (e.g. 1 to measure
            scaling per thread).
        jit_compile: XLA-compile the graphs.
    """

    def __init__(self, model_path: str, task: str, layers: Sequence[int], batch_size: int = 8, top: int = 1, k: int = 5,
                 nperseg: int = 256, tf_threads: int | None = None, jit_compile: bool = False):
        super().__init__()
        if task not in ("maxima", "coherence", "sonify"):
            raise ValueError(f"task must be 'maxima', 'coherence' or 'sonify'; received {task!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; received {batch_size!r}")
        self.model_path, self.task, self.layers = str(model_path), task, list(layers)
        self.batch_size, self.top, self.k, self.nperseg = batch_size, int(top), int(k), int(nperseg)
        self.tf_threads, self.jit_compile = tf_threads, bool(jit_compile)

    def load_model(self):
        import tensorflow as tf

        if self.tf_threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(int(self.tf_threads))
                tf.config.threading.set_inter_op_parallelism_threads(int(self.tf_threads))
            except RuntimeError:  # the runtime is already up (in-process runner sharing the caller's TensorFlow)
                logger.warning("TensorFlow is already initialised in this process; tf_threads=%s not applied", self.tf_threads)
        return _sonifier(self.model_path, self.jit_compile)

    def run_inference(self, batch: Sequence[np.ndarray], model, inference_args: Mapping[str, Any] | None = None
                      ) -> Iterable[PredictionResult]:
        from tfsonify.analysis.sonify_dataset import sonify_batch
        from tfsonify.analysis.topk import per_map_maxima

        outputs: list[Any] = [None] * len(batch)
        for indices, waves in equal_length_groups(list(enumerate(np.asarray(w, np.float32) for w in batch))):
            if self.task == "maxima":
                maxima = per_map_maxima(model, waves, self.layers)
                rows = [{layer: scores[i] for layer, scores in maxima.items()} for i in range(len(indices))]
            elif self.task == "coherence":
                rows = coherence_batch(model, waves, self.layers, self.k, self.nperseg)
            else:
                sonified = sonify_batch(model, waves, self.layers, self.top)
                rows = [{layer: (f[i], a[i], s[i]) for layer, (f, a, s) in sonified.items()} for i in range(len(indices))]
            for index, row in zip(indices, rows):
                outputs[index] = row
        return [PredictionResult(None, output) for output in outputs]

    def batch_elements_kwargs(self) -> Mapping[str, Any]:
        # A fixed size (only a bundle's last batch is smaller): few distinct shapes, so TensorFlow's per-shape
        # kernel caches (oneDNN primitives) stay small; BatchElements' adaptive sizes made peak RSS creep with N.
        return {"min_batch_size": self.batch_size, "max_batch_size": self.batch_size}

    def get_metrics_namespace(self) -> str:
        return NAMESPACE


def _infer(clips, handler: SonifierModelHandler, dead_letters: list):
    """RunInference over ``(name, waveform)``; failed batches join the dead letter. Yields ``(name, output)``."""
    results = clips | f"Infer{handler.task.title()}" >> RunInference(KeyedModelHandler(handler)).with_exception_handling()
    main, failures = results
    dead_letters.append(failures.failed_inferences
                        | f"Failed{handler.task.title()}" >> beam.FlatMap(_failed_batch_records))
    return main | f"Unwrap{handler.task.title()}" >> beam.MapTuple(lambda name, result: (name, result.inference))


def _failed_batch_records(failure):
    batch, error = failure  # error: (type, repr(exception), traceback lines) from ParDo.with_exception_handling
    if isinstance(error, tuple) and len(error) >= 2:
        error = error[1]
    beam.metrics.Metrics.counter(NAMESPACE, "dead_letter").inc(len(batch))
    for name, _ in batch:
        yield {"clip": str(name), "reason": f"inference failed: {error}"}


def _write_dead_letters(out: str, reads, dead_letters: list, label: str = ""):
    return ((reads[DEAD_LETTER], *dead_letters) | f"{label}Dead" >> beam.Flatten()
            | f"{label}WriteDead" >> _WriteShards(out, DEAD_LETTER, 1))


# ------------------------------------------------------------------------------------------------ top-k
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
    layers = {int(layer) if layer.isdigit() else layer: r for layer, r in summary["layers"].items()}
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
        import soundfile

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
                soundfile.write(buffer, np.asarray(sound, np.float32), self.sample_rate, subtype="FLOAT", format="WAV")
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
