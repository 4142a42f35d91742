"""The Beam plumbing under :mod:`tfsonify.analysis.beam`'s pipelines (optional extra ``tfsonify[beam]``).

- runner options (:func:`pipeline_options`, :data:`RUNNERS`: unknown flags refused in one line);
- outputs written atomically and sharded deterministically (a rerun replaces, never adds), read back with
  :func:`read_records`;
- clip reading (:class:`ReadClips`: file patterns on any Beam filesystem, a ``ClipList`` or in-memory pairs; decoded
  by :func:`decode_audio`, the library's one decoder and resampler, to the model's rate), dead letters for clips
  that cannot be read;
- inference (:class:`SonifierModelHandler` for ``RunInference``: one checkpoint per worker, any model at its stored
  rate, batches split into runs of equal-length clips).
"""
from __future__ import annotations

import json
import logging
import os
import posixpath
import threading
import uuid
from typing import Any, Iterable, Mapping, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from tfsonify.analysis.sonify_dataset import DEAD_LETTER, clip_problem, equal_length_groups
from tfsonify.io import audio

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
    return audio.decode_audio(data, name, sample_rate)


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
