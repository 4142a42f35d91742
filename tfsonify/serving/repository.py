"""Loaded SavedModels and request validation shared by the REST and gRPC front ends.

A *model base path* is TF Serving's ``models/NAME/`` holding integer version folders;
:class:`tfsonify.serving.lifecycle.ModelManager` decides which versions are loaded (and
``ModelRepository``, the newest of every model under a folder, is one of them).
"""
from __future__ import annotations

import base64
import binascii
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfsonify.export.savedmodel import read_metadata
from tfsonify.export.wav_graph import WAV_INPUT, encode_wav_files, parse_wav_header

__all__ = ["LoadedVersion", "ServingError", "load_version"]

_NUMPY = {tf.float32: np.float32, tf.int32: np.int32, tf.int64: np.int64, tf.float64: np.float64}


class ServingError(Exception):
    """A request error: ``status`` is the HTTP code (400 bad input, 404 unknown model/version/signature)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class LoadedVersion:
    """One loaded version: its signatures (concrete functions), SignatureDefs and tfsonify metadata."""

    name: str
    version: int
    path: Path
    signatures: dict
    signature_defs: dict  # name -> tensorflow.core.protobuf.meta_graph_pb2.SignatureDef
    metadata: dict
    lock: threading.Lock = field(default_factory=threading.Lock)

    def input_specs(self, signature: str) -> dict[str, tf.TensorSpec]:
        return self.signatures[signature].structured_input_signature[1]

    def check_inputs(self, signature: str, inputs: dict) -> dict[str, np.ndarray]:
        """Convert and validate request inputs for ``signature``; raise :class:`ServingError` (400/404).

        Checks: the signature exists; the input names are exactly the signature's; each value
        converts to the input's dtype (integers must be whole numbers) and has its rank; every
        input has the same batch size; waveforms are finite and long enough for the requested
        layer; layer/feature/k lie in range.
        """
        if signature not in self.signatures:
            raise ServingError(f"signature_name {signature!r} not found in model {self.name!r} version {self.version}; "
                               f"available: {sorted(self.signatures)}")
        specs = self.input_specs(signature)
        missing, extra = sorted(set(specs) - set(inputs)), sorted(set(inputs) - set(specs))
        if missing or extra:
            raise ServingError(f"signature {signature!r} takes inputs {sorted(specs)}; missing {missing}, unexpected {extra}")
        arrays = {}
        for name, spec in specs.items():
            arrays[name] = _convert(name, inputs[name], spec)
        batch_sizes = {name: array.shape[0] for name, array in arrays.items()}
        if len(set(batch_sizes.values())) > 1:
            raise ServingError(f"all inputs need the same batch size (axis 0); received {batch_sizes}")
        if "waveform" in arrays:
            self._check_semantics(arrays)
        elif WAV_INPUT in arrays:
            self._check_wavs(arrays)
        return arrays

    def _check_wavs(self, arrays: dict[str, np.ndarray]) -> None:
        """Check the WAV headers (16-bit PCM, the model's rate, one length), then the waveform rules."""
        wavs = arrays[WAV_INPUT]
        if wavs.shape[0] == 0:
            raise ServingError(f"{WAV_INPUT} batch is empty; expected at least one WAV file [batch]")
        rate = self.metadata.get("sample_rate")
        frames = []
        for row, data in enumerate(wavs):
            try:
                header = parse_wav_header(bytes(data))
            except ValueError as error:
                raise ServingError(f"{WAV_INPUT}[{row}]: {error}") from None
            if header.format_tag != 1 or header.bits_per_sample != 16:
                kind = {1: "PCM", 3: "IEEE float"}.get(header.format_tag, f"format {header.format_tag}")
                raise ServingError(f"{WAV_INPUT}[{row}] is {header.bits_per_sample}-bit {kind}; expected 16-bit PCM "
                                   "(e.g. `sox in.wav -b 16 -e signed-integer out.wav`)")
            if rate and header.sample_rate != rate:
                raise ServingError(f"{WAV_INPUT}[{row}] is at {header.sample_rate} Hz; the model expects {rate} Hz "
                                   f"(resample it first, e.g. `sox in.wav -r {rate} out.wav`)")
            frames.append(header.frames)
        if len(set(frames)) > 1:
            raise ServingError(f"all WAVs of one request must have the same number of samples; received {frames}")
        # the waveform rules (length for the layer, ranges) on a stand-in of the decoded shape
        stand_in = {name: value for name, value in arrays.items() if name != WAV_INPUT}
        stand_in["waveform"] = np.zeros((wavs.shape[0], frames[0]), np.float32)
        self._check_semantics(stand_in)

    def _check_semantics(self, arrays: dict[str, np.ndarray]) -> None:
        wave = arrays["waveform"]
        meta = self.metadata
        if wave.shape[0] == 0:
            raise ServingError("waveform batch is empty; expected at least one clip [batch, time]")
        if not np.all(np.isfinite(wave)):
            raise ServingError("waveform contains NaN or Inf samples; expected finite float32 values")
        if not meta:
            return
        num_layers = meta["num_layers"]
        layers = arrays.get("layer")
        if layers is not None and (layers.min() < 1 or layers.max() > num_layers):
            raise ServingError(f"layer must be in 1..{num_layers}; received {sorted(set(layers.tolist()))}")
        deepest = int(layers.max()) if layers is not None else num_layers
        needed = meta["min_length"][deepest - 1]
        if wave.shape[1] < needed:
            raise ServingError(f"waveform has {wave.shape[1]} samples but block {deepest} needs at least {needed} "
                               f"(at {meta['sample_rate']} Hz)")
        for name, low in (("feature", 0), ("k", 1)):
            values = arrays.get(name)
            if values is None:
                continue
            limits = np.asarray(meta["num_features"])[layers - 1]
            high = limits - 1 if name == "feature" else limits
            bad = (values < low) | (values > high)
            if bad.any():
                row = int(np.argmax(bad))
                raise ServingError(f"{name}[{row}] = {values[row]} is out of range for layer {layers[row]}: "
                                   f"expected {low}..{high[row]}")

    def run(self, signature: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run a validated request; TF runtime errors become :class:`ServingError` (400)."""
        function = self.signatures[signature]
        try:
            outputs = function(**{name: tf.constant(value) for name, value in arrays.items()})
        except (tf.errors.InvalidArgumentError, ValueError) as error:
            raise ServingError(f"signature {signature!r} rejected the input: {_runtime_message(error)}") from None
        return {name: tensor.numpy() for name, tensor in outputs.items()}


def _runtime_message(error: Exception) -> str:
    """The useful line of a TF runtime error: an assertion's own message (and values), else the first line."""
    text = getattr(error, "message", str(error))
    found = re.search(r"assertion failed: \[(.*?)\](.*?)(?:\n|$)", text)
    if found:
        values = re.findall(r"\[x \([^)]*\) = \] \[([^\]]*)\]", found.group(2))
        return found.group(1).replace("\\'", "'") + (f" (received {values[0]})" if values else "")
    lines = [line for line in text.strip().splitlines() if line.strip() and not line.startswith(("Graph execution", "Detected at"))]
    return lines[0] if lines else text.strip()


def _convert_strings(name: str, value, spec: tf.TensorSpec) -> np.ndarray:
    """DT_STRING input: nested lists of ``{"b64": "..."}`` (TF Serving's REST binary form), str or bytes."""
    def leaf(item):
        if isinstance(item, dict):
            if set(item) != {"b64"} or not isinstance(item["b64"], str):
                raise ServingError(f"input {name!r}: binary values must be {{\"b64\": \"<base64>\"}}; received keys {sorted(item)}")
            try:
                return base64.b64decode(item["b64"], validate=True)
            except (binascii.Error, ValueError) as error:
                raise ServingError(f"input {name!r} holds invalid base64: {error}") from None
        if isinstance(item, str):
            return item.encode()
        if isinstance(item, (bytes, np.bytes_)):
            return bytes(item)
        raise ServingError(f"input {name!r} must be strings ({spec.dtype.name}, binary as {{\"b64\": ...}}); "
                           f"received {type(item).__name__}")

    def walk(item):
        if isinstance(item, (list, tuple)) or (isinstance(item, np.ndarray) and item.ndim > 0):
            return [walk(x) for x in item]
        return leaf(item.item() if isinstance(item, np.ndarray) else item)

    nested = walk(value)
    try:
        array = np.array(nested, dtype=object)
    except ValueError as error:
        raise ServingError(f"input {name!r} is not a rectangular array: {error}") from None
    if array.ndim == 0:
        array = array.reshape(())
    if any(not isinstance(item, bytes) for item in array.reshape(-1)):
        raise ServingError(f"input {name!r} is not a rectangular array of strings")
    if array.ndim != spec.shape.rank:
        raise ServingError(f"input {name!r} must have rank {spec.shape.rank} (shape {spec.shape.as_list()}); "
                           f"received shape {list(array.shape)}")
    return array


def _convert(name: str, value, spec: tf.TensorSpec) -> np.ndarray:
    if spec.dtype == tf.string:
        return _convert_strings(name, value, spec)
    dtype = _NUMPY.get(spec.dtype)
    if dtype is None:
        raise ServingError(f"input {name!r} has unsupported dtype {spec.dtype.name}")
    try:
        raw = np.asarray(value)
    except ValueError as error:  # ragged nested lists
        raise ServingError(f"input {name!r} is not a rectangular array: {error}") from None
    if raw.dtype == object or raw.dtype.kind not in "biuf":
        raise ServingError(f"input {name!r} must be numeric ({spec.dtype.name}); received {raw.dtype} values")
    if raw.dtype.kind == "b":
        raise ServingError(f"input {name!r} must be {spec.dtype.name}; received booleans")
    if np.issubdtype(dtype, np.integer) and raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
            raise ServingError(f"input {name!r} must be whole numbers ({spec.dtype.name}); received fractional values")
    array = raw.astype(dtype)
    if array.ndim != spec.shape.rank:
        raise ServingError(f"input {name!r} must have rank {spec.shape.rank} (shape {spec.shape.as_list()}); "
                           f"received shape {list(array.shape)}")
    for axis, size in enumerate(spec.shape.as_list()):
        if size is not None and array.shape[axis] != size:
            raise ServingError(f"input {name!r} must have shape {spec.shape.as_list()}; received {list(array.shape)}")
    return array


def _signature_defs(version_dir: Path) -> dict:
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    defs = proto.meta_graphs[0].signature_def
    return {name: defs[name] for name in defs if not name.startswith("__")}


def load_version(name: str, version_dir: Path, warmup: bool = True) -> LoadedVersion:
    """Load one exported version folder.

    With ``warmup``, every signature is called once on a short silent-free clip (every block
    for ``sonify``/``sonify_top_k``) before the version is served: TensorFlow instantiates and
    optimises a loaded function on its first call, which took 20-90 s for the 11-branch
    sonify graphs on a busy 2-core machine and would otherwise land on the first requests
    (TF Serving's counterpart is ``assets.extra/tf_serving_warmup_requests``).
    """
    loaded = tf.saved_model.load(str(version_dir))
    signatures = dict(loaded.signatures)
    version = LoadedVersion(name, int(version_dir.name), version_dir, signatures, _signature_defs(version_dir),
                            read_metadata(version_dir))
    version._keepalive = loaded  # the concrete functions need their owner alive
    if warmup and version.metadata:
        _warm_up(version)
    return version


def _warm_up(version: LoadedVersion) -> None:
    meta = version.metadata
    layers = np.arange(1, meta["num_layers"] + 1, dtype=np.int32)
    length = meta["min_length"][-1]
    wave = np.tile(np.sin(np.arange(length, dtype=np.float32) * 0.05), (len(layers), 1)).astype(np.float32)
    per_row = {"layer": layers, "feature": np.zeros_like(layers), "k": np.ones_like(layers),
               WAV_INPUT: encode_wav_files(wave, meta["sample_rate"])}
    for signature in version.signatures:
        specs = version.input_specs(signature)
        inputs = {name: (wave if name == "waveform" else per_row[name]) for name in specs if name in per_row or name == "waveform"}
        if set(inputs) == set(specs):
            version.run(signature, version.check_inputs(signature, inputs))


def _versions(base: Path) -> list[Path]:
    return [p for p in base.iterdir() if p.is_dir() and p.name.isdecimal() and (p / "saved_model.pb").is_file()]
