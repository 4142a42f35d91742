"""SavedModel export in TensorFlow Serving's layout (``models/NAME/VERSION/``).

Any model :class:`tfsonify.Sonifier` supports (CNN12, CREPE, your own Keras CNN). Layer ids are the
model's conv blocks ``1..N`` (:meth:`tfsonify.Sonifier.layers` entries with a ``block``; CNN12: blocks
1..11, CREPE: 1..6), as the Sonifier's integer ``layer=``; the metadata's ``layer_names`` maps id ``L``
to its Keras layer name ``layer_names[L - 1]``, ``min_length[L - 1]`` is its minimum clip length.

Signatures (all inputs batched on axis 0 so TF Serving's row format and server-side
batching work; the waveform is float32 ``[batch, time]`` at the model's rate, 8 kHz
for CNN12, 16 kHz for CREPE, raw amplitude; every clip of one request has the same ``time``):

``serving_default``
    A model with an embedding (an ``encoder()`` method giving the model up to its embedding, as CNN12):
    ``waveform`` -> ``embedding`` float32 ``[batch, embedding_dim]`` (plus ``scores``
    ``[batch, num_classes]`` when the model has a classifier head). Any other model:
    ``waveform`` (its input shape, e.g. CREPE ``[batch, 1024]``) -> ``output``, the model's output.
``classify`` (only for models with a head: a ``num_classes`` attribute, as CNN12's, or class names stored
    with the model, :func:`tfsonify.models.checkpoint.save_model`)
    ``waveform`` -> ``scores`` float32 ``[batch, num_classes]``, ``classes`` int32 ``[batch]``
    (arg-max class) and, when the class names are known, ``labels`` string ``[batch]`` (its name).
``sonify``
    ``waveform``, ``layer`` int32 ``[batch]``, ``feature`` int32 ``[batch]`` ->
    ``sonification`` float32 ``[batch, time]``: map ``feature[i]`` of block ``layer[i]``
    for clip ``i``. The layer is a *runtime* per-row input (one graph, rows grouped
    by layer inside it) rather than eleven ``sonify_l1``...``sonify_l11`` signatures,
    so one request may mix layers and TF Serving's batcher may merge any requests.
``sonify_top_k``
    ``waveform``, ``layer`` int32 ``[batch]``, ``k`` int32 ``[batch]`` ->
    ``features`` int32 ``[batch, K]``, ``activations`` float32 ``[batch, K]``,
    ``sonifications`` float32 ``[batch, K, time]`` with ``K = max(k)``: row ``i`` holds the
    ``k[i]`` most active maps of block ``layer[i]`` (decreasing peak activation); slots
    beyond ``k[i]`` are padding (feature ``-1``, activation 0, silence). With one ``k``
    per request (the usual case) nothing is padded.
``sonify_wav``, ``sonify_top_k_wav``
    the same with encoded 16-bit PCM WAV files in (``wav_bytes`` string ``[batch]``) and out
    (``*_bytes`` outputs, peak-normalised, with their peaks): see :mod:`tfsonify.export.wav_graph`.

The graph functions are :class:`tfsonify.Sonifier`'s pure-TF builders reading the
kernels from the Keras model's variables, exported with
:class:`keras.export.ExportArchive` (see :func:`store_weights_once`: each weight is
stored exactly once).

Versions are written to ``models/NAME/.tmp-VERSION-*`` and renamed to ``VERSION`` only
when complete, so a ``tensorflow_model_server`` watching the folder never loads a
half-written version and an interrupted export leaves no numbered folder.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf

from tfsonify.export.wav_graph import WAV_SIGNATURES, add_wav_endpoints, encode_wav_files
from tfsonify.engine.sonifier import Sonifier
from tfsonify.validation import check_int
from tfsonify.io.manifest import NoSpaceError, disk_full

__all__ = [
    "METADATA_FILE",
    "WARMUP_FILE",
    "write_warmup_requests",
    "store_weights_once",
    "trace_endpoints_once",
    "build_archive",
    "export_saved_model",
    "next_version",
    "read_metadata",
    "write_batching_parameters",
    "write_model_config",
]

METADATA_FILE = "assets.extra/tfsonify.json"
"""Per-version JSON: the sample rate, per-layer names, map counts, receptive fields, strides and minimum lengths,
class names (or null), and the whole :class:`tfsonify.models.metadata.ModelMetadata` record under ``"model_metadata"``."""


def next_version(model_dir: str | os.PathLike) -> int:
    """The next integer version for ``model_dir`` (1 if it holds no numbered folder)."""
    path = Path(model_dir)
    versions = [int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdecimal()] if path.is_dir() else []
    return max(versions, default=0) + 1


def exported_layers(sonifier: Sonifier) -> list:
    """The :class:`tfsonify.engine.walk.LayerInfo` of layer ids ``1..N``: the model's conv blocks in graph order."""
    return [info for info in sonifier.layers() if info.block is not None]


def _embedding_model(model: keras.Model) -> keras.Model | None:
    """The model up to its embedding when ``model`` offers one (an ``encoder()`` method, as CNN12), else None."""
    method = getattr(type(model), "encoder", None)
    return model.encoder() if callable(method) else None


def _num_classes(model: keras.Model, class_names) -> int | None:
    """Classes of the model's head: its ``num_classes`` attribute (CNN12), else the stored class names, else None."""
    count = getattr(model, "num_classes", None)
    if count:
        return int(count)
    return len(class_names) if class_names else None


def _model_metadata(model: keras.Model, sonifier: Sonifier, class_names) -> dict:
    from tfsonify.models.metadata import describe

    num_classes = _num_classes(model, class_names)
    layers = exported_layers(sonifier)
    fixed = model.inputs[0].shape[1]
    embedding = _embedding_model(model)
    record = describe(model, sample_rate=sonifier.sample_rate, class_names=class_names)
    return {
        "format": "tfsonify-savedmodel/1",
        "model": model.name,
        "sample_rate": sonifier.sample_rate,
        "input_length": None if fixed is None else int(fixed),
        "num_layers": len(layers),
        "layer_names": [info.name for info in layers],
        "num_features": [info.channels for info in layers],
        "min_length": [info.min_length for info in layers],
        "receptive_field": [info.receptive_field for info in layers],
        "stride": [info.stride for info in layers],
        "num_classes": num_classes,
        "class_names": None if class_names is None else list(class_names),
        "embedding_dim": None if embedding is None else int(embedding.outputs[0].shape[-1]),
        "output_shape": [None if d is None else int(d) for d in model.outputs[0].shape[1:]],
        "signatures": ["serving_default"] + (["classify"] if num_classes else []) + ["sonify", "sonify_top_k"]
        + list(WAV_SIGNATURES),
        "model_metadata": record.to_dict(),
    }


def _per_layer_rows(layer: tf.Tensor, build_rows, initial: tuple[tf.Tensor, ...], num_layers: int) -> tuple[tf.Tensor, ...]:
    """Fill ``initial`` row-wise by calling ``build_rows(L, rows)`` for every block present in ``layer``.

    ``build_rows(L, rows)`` returns tensors for the rows ``rows`` (int32 ``[m]``) whose
    layer is ``L``; they are scattered into copies of ``initial`` (leading axis = batch).
    Blocks absent from the batch cost one ``tf.cond`` each.
    """
    outputs = initial
    for block in range(1, num_layers + 1):
        rows = tf.cast(tf.reshape(tf.where(tf.equal(layer, block)), [-1]), tf.int32)

        def compute(block=block, rows=rows, current=outputs):
            values = build_rows(block, rows)
            return tuple(tf.tensor_scatter_nd_update(c, tf.expand_dims(rows, -1), v) for c, v in zip(current, values))

        outputs = tf.cond(tf.size(rows) > 0, compute, lambda current=outputs: tuple(tf.identity(c) for c in current))
    return outputs


def _checks_in_order(*checks: Callable[[], tf.Operation]) -> list[tf.Operation]:
    """Run graph checks one after another: each check is built under a control dependency on the one before.

    A later check may index with an input an earlier one validates (``tf.gather(channels, layer - 1)`` after the
    layer-range check), so the earlier, clearer message always wins; without the ordering the runtime may run the
    gather first and fail with an index error instead (issue 11).
    """
    done: list[tf.Operation] = []
    for make in checks:
        with tf.control_dependencies(done):
            done = [make()]
    return done


def _row_checks(waveform: tf.Tensor, layer: tf.Tensor, other: tf.Tensor, other_name: str, num_layers: int) -> list:
    """Check makers (in order) for a per-row request: one entry per clip, then the layer range."""
    batch = lambda: tf.shape(waveform)[0]  # noqa: E731
    return [
        lambda: tf.debugging.assert_equal(tf.shape(layer)[0], batch(), message="layer must have one entry per clip ([batch] int32)"),
        lambda: tf.debugging.assert_equal(tf.shape(other)[0], batch(), message=f"{other_name} must have one entry per clip ([batch] int32)"),
        lambda: tf.debugging.assert_greater_equal(layer, 1, message=f"layer must be in 1..{num_layers}"),
        lambda: tf.debugging.assert_less_equal(layer, num_layers, message=f"layer must be in 1..{num_layers}"),
    ]


def build_archive(model: keras.Model, sample_rate: int | None = None,
                  class_names: list[str] | None = None) -> keras.export.ExportArchive:
    """An :class:`keras.export.ExportArchive` with the signatures described in the module docstring.

    Args:
        model: a :class:`tfsonify.CNN12` (with or without classifier head) or any model
            :class:`tfsonify.Sonifier` supports.
        sample_rate: the model's rate in Hz (default: stored with the model,
            :func:`tfsonify.models.metadata.sample_rate_of`).
        class_names: names of the head's classes (default: stored with the model, if any).
    """
    from tfsonify.models.metadata import check_class_names, class_names_of, sample_rate_of

    sonifier = Sonifier(model, sample_rate=sample_rate_of(model) if sample_rate is None else sample_rate)
    class_names = class_names_of(model) if class_names is None else list(class_names)
    class_names = check_class_names(class_names, getattr(model, "num_classes", None) or model.outputs[0].shape[-1],
                                    model.name)
    layers = exported_layers(sonifier)
    num_layers = len(layers)
    if not num_layers:
        raise ValueError(f"model {model.name!r} has no conv block to export (sonifiable layers: "
                         f"{[info.name for info in sonifier.layers()]})")
    names = [info.name for info in layers]
    channels = tf.constant([info.channels for info in layers], tf.int32)
    wave_spec = tf.TensorSpec([None, None], tf.float32, name="waveform")
    row_spec = lambda name: tf.TensorSpec([None], tf.int32, name=name)  # noqa: E731
    has_head = bool(_num_classes(model, class_names))
    encoder = _embedding_model(model)

    archive = keras.export.ExportArchive()

    if encoder is not None:
        def serving_default(waveform):
            outputs = {"embedding": encoder(waveform, training=False)}
            if has_head:
                outputs["scores"] = model(waveform, training=False)
            return outputs

        archive.add_endpoint("serving_default", serving_default, input_signature=[wave_spec])
    else:
        def serving_default(waveform):
            return {"output": model(waveform, training=False)}

        model_spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32, name="waveform")
        archive.add_endpoint("serving_default", serving_default, input_signature=[model_spec])

    if has_head:
        label_names = None if class_names is None else tf.constant(list(class_names), tf.string)

        def classify(waveform):
            scores = model(waveform, training=False)
            classes = tf.argmax(scores, axis=-1, output_type=tf.int32)
            outputs = {"scores": scores, "classes": classes}
            if label_names is not None:
                outputs["labels"] = tf.gather(label_names, classes)
            return outputs

        head_spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32, name="waveform")
        archive.add_endpoint("classify", classify, input_signature=[head_spec])

    def sonify(waveform, layer, feature):
        checks = _checks_in_order(
            *_row_checks(waveform, layer, feature, "feature", num_layers),
            lambda: tf.debugging.assert_non_negative(feature, message="feature must be >= 0"),
            lambda: tf.debugging.assert_less(feature, tf.gather(channels, layer - 1),
                                             message="feature must be < the number of maps of its layer"))
        with tf.control_dependencies(checks):  # every use of the inputs waits for the checks
            waveform, layer, feature = tf.identity(waveform), tf.identity(layer), tf.identity(feature)

        def rows_for(block, rows):
            clips = tf.gather(waveform, rows)
            index = tf.range(tf.shape(rows)[0], dtype=tf.int32)
            return (sonifier.sonify_selected_graph(clips, names[block - 1], index, tf.gather(feature, rows)),)

        (sonification,) = _per_layer_rows(layer, rows_for, (tf.zeros_like(waveform),), num_layers)
        return {"sonification": sonification}

    archive.add_endpoint("sonify", sonify, input_signature=[wave_spec, row_spec("layer"), row_spec("feature")])

    def sonify_top_k(waveform, layer, k):
        checks = _checks_in_order(
            *_row_checks(waveform, layer, k, "k", num_layers),
            lambda: tf.debugging.assert_positive(k, message="k must be >= 1"),
            lambda: tf.debugging.assert_less_equal(k, tf.gather(channels, layer - 1),
                                                   message="k must be <= the number of maps of its layer"))
        with tf.control_dependencies(checks):
            waveform, layer, k = tf.identity(waveform), tf.identity(layer), tf.identity(k)
        batch, time = tf.shape(waveform)[0], tf.shape(waveform)[1]
        top = tf.maximum(tf.reduce_max(k), 1)

        def rows_for(block, rows):
            clips = tf.gather(waveform, rows)
            block_k = tf.minimum(top, channels[block - 1])
            features, scores, sounds = sonifier.sonify_top_graph(clips, names[block - 1], block_k)
            pad = top - block_k
            features = tf.pad(features, [[0, 0], [0, pad]], constant_values=-1)
            scores = tf.pad(scores, [[0, 0], [0, pad]])
            sounds = tf.pad(sounds, [[0, 0], [0, pad], [0, 0]])
            keep = tf.expand_dims(tf.range(top), 0) < tf.expand_dims(tf.gather(k, rows), 1)  # [m, K]
            features = tf.where(keep, features, -tf.ones_like(features))
            scores = tf.where(keep, scores, tf.zeros_like(scores))
            sounds = sounds * tf.expand_dims(tf.cast(keep, sounds.dtype), -1)
            return features, scores, sounds

        initial = (
            -tf.ones(tf.stack([batch, top]), tf.int32),
            tf.zeros(tf.stack([batch, top]), tf.float32),
            tf.zeros(tf.stack([batch, top, time]), tf.float32),
        )
        features, activations, sonifications = _per_layer_rows(layer, rows_for, initial, num_layers)
        return {"features": features, "activations": activations, "sonifications": sonifications}

    archive.add_endpoint("sonify_top_k", sonify_top_k, input_signature=[wave_spec, row_spec("layer"), row_spec("k")])
    # sonify_wav and sonify_top_k_wav call the float endpoints' tf.functions (one trace each, shared in the
    # SavedModel's function library) rather than re-tracing their 11-branch graphs: the export took twice as long
    trackable = archive._tf_trackable
    add_wav_endpoints(archive, trackable.sonify, trackable.sonify_top_k, sonifier.sample_rate)
    store_weights_once(archive)
    trace_endpoints_once(archive)
    archive._tfsonify_metadata = _model_metadata(model, sonifier, class_names)  # read by export_saved_model
    return archive


def store_weights_once(archive: keras.export.ExportArchive) -> None:
    """Keep one copy of each weight in ``archive``'s SavedModel.

    ``ExportArchive`` (Keras 3.x, TF backend) saves the ``tf.Variable`` objects the endpoints
    capture (``_all_variables``) *and* the ``keras.Variable`` wrappers of the same weights in
    its ``variables`` lists, so every weight was written twice (measured: the checkpoint held
    2x ``count_params()`` values). The signatures only need the captured ``tf.Variable`` objects,
    so the wrapper lists are emptied before writing.
    """
    trackable = archive._tf_trackable
    trackable.variables = []
    trackable.trainable_variables = []
    trackable.non_trainable_variables = []


def trace_endpoints_once(archive: keras.export.ExportArchive) -> None:
    """Trace each endpoint of ``archive`` once, and save that trace.

    ``ExportArchive.write_out`` traces every endpoint (its ``tf.function`` with an input signature) to list the
    variables it uses, then ``tf.saved_model.save`` looks the same function up again inside its save context,
    whose variable policy is part of TensorFlow's function-cache key: the lookup misses and the whole graph is
    traced a second time (measured: every sonify signature traced twice, most of the export's time). Replacing
    each endpoint by its concrete function, traced here, gives both steps the same graph. The saved signatures
    and the restored endpoints are the same as before.
    """
    trackable = archive._tf_trackable
    for name in archive._endpoint_names:
        function = getattr(trackable, name)
        if hasattr(function, "get_concrete_function"):
            setattr(trackable, name, function.get_concrete_function())


def export_saved_model(model: keras.Model, model_dir: str | os.PathLike, version: int | None = None,
                       _before_rename=None, sample_rate: int | None = None, class_names: list[str] | None = None) -> Path:
    """Export ``model`` as ``model_dir/VERSION/`` (TF Serving layout), atomically.

    Args:
        model: a :class:`tfsonify.CNN12` or any model :class:`tfsonify.Sonifier` supports (CREPE, your own).
        model_dir: ``models/NAME``; created if missing.
        version: integer version; default: one more than the largest existing one.
        _before_rename: test hook called with the temporary path just before the rename.
        sample_rate, class_names: as :func:`build_archive` (default: stored with the model).

    Returns:
        The path of the new version folder.

    Raises:
        ValueError: if ``version`` exists already or is not a positive integer.
        tfsonify.io.manifest.NoSpaceError: the file system filled up; nothing is left under ``model_dir``.
    """
    model_dir = Path(model_dir)
    created = not model_dir.exists()
    model_dir.mkdir(parents=True, exist_ok=True)
    version = next_version(model_dir) if version is None else version
    check_int("version", version, minimum=1)
    final = model_dir / str(version)
    if final.exists():
        raise ValueError(f"version folder {final} exists already; choose another version or omit it")
    archive = build_archive(model, sample_rate=sample_rate, class_names=class_names)
    temporary = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_dir))
    try:
        archive.write_out(str(temporary / "model"), verbose=False)
        staged = temporary / "model"
        extra = staged / METADATA_FILE
        extra.parent.mkdir(parents=True, exist_ok=True)
        extra.write_text(json.dumps(archive._tfsonify_metadata, indent=2))
        write_warmup_requests(staged / WARMUP_FILE, archive._tfsonify_metadata)
        if _before_rename is not None:
            _before_rename(staged)
        os.rename(staged, final)  # atomic on one file system; fails if `final` appeared meanwhile
    except Exception as error:
        full = disk_full(error, model_dir)  # before the removal frees what filled the disk
        shutil.rmtree(temporary, ignore_errors=True)
        if created and not any(model_dir.iterdir()):
            model_dir.rmdir()
        if full:
            raise NoSpaceError(final) from None  # one line naming the version folder, for the CLI
        raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return final


WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
"""TF Serving replays these PredictRequests when it loads a version (first calls instantiate the graphs)."""


def write_warmup_requests(path: str | os.PathLike, metadata: dict) -> bool:
    """Write TF Serving's warm-up file: one PredictRequest per signature (every block for sonify*).

    Needs ``tensorflow-serving-api`` (the ``serving`` extra); returns False (no file) without it.
    """
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2  # noqa: F401
    except ImportError:
        return False
    import numpy as np

    layers = np.arange(1, metadata["num_layers"] + 1, dtype=np.int32)
    length = max(metadata["min_length"][-1], metadata.get("input_length") or 0)
    wave = np.tile(np.sin(np.arange(length, dtype=np.float32) * 0.05), (len(layers), 1)).astype(np.float32)
    requests = {
        "serving_default": {"waveform": wave},
        "classify": {"waveform": wave},
        "sonify": {"waveform": wave, "layer": layers, "feature": np.zeros_like(layers)},
        "sonify_top_k": {"waveform": wave, "layer": layers, "k": np.ones_like(layers)},
    }
    wavs = encode_wav_files(wave, metadata["sample_rate"])
    requests["sonify_wav"] = {"wav_bytes": wavs, "layer": layers, "feature": np.zeros_like(layers)}
    requests["sonify_top_k_wav"] = {"wav_bytes": wavs, "layer": layers, "k": np.ones_like(layers)}
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature in metadata["signatures"]:
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = signature
            for name, value in requests[signature].items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return True


def read_metadata(version_dir: str | os.PathLike) -> dict:
    """The tfsonify metadata JSON of an exported version (empty dict if absent)."""
    path = Path(version_dir) / METADATA_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


MODEL_CONFIG_COMMENT = (
    "# base_path: a relative path is relative to this file's folder for `tfsonify serve --model_config_file`;\n"
    "# tensorflow_model_server resolves it against its working directory, so for TF Serving export with an absolute\n"
    "# --base-path (Docker, models/ mounted at /models: /models/NAME; the binary: $PWD/models/NAME).\n")


def write_model_config(path: str | os.PathLike, models: dict[str, str], version_policy: str = "latest") -> Path:
    """Write a ``ModelServerConfig`` text proto for ``tensorflow_model_server --model_config_file``.

    Args:
        path: output file (e.g. ``models/models.config``).
        models: model name -> ``base_path``: relative to the config file's folder (``cnn12``: what ``tfsonify serve
            --model_config_file`` reads from any working directory) or absolute as the server sees it (Docker:
            ``/models/cnn12``; the TF Serving binary: ``$PWD/models/cnn12``).
        version_policy: ``"latest"`` (serve the newest version) or ``"all"``.

    The file opens with a comment saying how ``base_path`` is resolved.
    """
    if version_policy not in ("latest", "all"):
        raise ValueError(f"version_policy must be 'latest' or 'all'; received {version_policy!r}")
    policy = "latest { num_versions: 1 }" if version_policy == "latest" else "all {}"
    entries = "".join(
        f"  config {{\n    name: \"{name}\"\n    base_path: \"{base}\"\n    model_platform: \"tensorflow\"\n"
        f"    model_version_policy {{ {policy} }}\n  }}\n"
        for name, base in models.items()
    )
    path = Path(path)
    path.write_text(f"{MODEL_CONFIG_COMMENT}model_config_list {{\n{entries}}}\n")
    return path


def write_batching_parameters(path: str | os.PathLike, max_batch_size: int = 8, batch_timeout_micros: int = 2000,
                              num_batch_threads: int | None = None, max_enqueued_batches: int = 64) -> Path:
    """Write a ``BatchingParameters`` text proto for ``--enable_batching --batching_parameters_file``.

    All signatures take per-row inputs (``[batch]`` layer/feature/k), so TF Serving may merge
    any requests of one signature, provided their clips have the same length (send fixed-length
    windows, e.g. 1 s). ``pad_variable_length_inputs`` stays off: zero-padding a clip into a
    longer batch would change its maps near the end and the length of its sonifications.
    """
    threads = num_batch_threads or os.cpu_count() or 1
    text = (
        f"max_batch_size {{ value: {max_batch_size} }}\n"
        f"batch_timeout_micros {{ value: {batch_timeout_micros} }}\n"
        f"num_batch_threads {{ value: {threads} }}\n"
        f"max_enqueued_batches {{ value: {max_enqueued_batches} }}\n"
        "pad_variable_length_inputs: false\n"
    )
    path = Path(path)
    path.write_text(text)
    return path
