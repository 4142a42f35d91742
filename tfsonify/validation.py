"""Argument checks every module shares (in the spirit of Keras' ``argument_validation.py``).

Each check returns the value in its canonical type or raises a ``ValueError`` that names the argument, says what
is expected and quotes what was received: ``k must be a positive integer; received 0``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["check_int", "check_choice", "check_names", "preview"]


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None, *,
              allow_none: bool = False, detail: str = "", expected: str | None = None) -> int | None:
    """``value`` as a Python int if it is an integer (Python or numpy, not bool) within ``[minimum, maximum]``.

    Args:
        name: the argument's name, as the caller knows it.
        value: what was received.
        minimum, maximum: inclusive bounds (None: unbounded).
        allow_none: None is accepted (and returned).
        detail: appended to the expectation, e.g. ``" (block 5's maps)"``.
        expected: the whole expectation instead of the generated one (``"an integer block index in 1..11"``).

    Raises:
        ValueError: ``"{name} must be a positive integer; received {value!r}"`` and the like.
    """
    if value is None and allow_none:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer))
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if ok:
        return int(value)
    if expected is not None:
        pass
    elif minimum is not None and maximum is not None:
        expected = f"an integer in {minimum}..{maximum}"
    elif minimum == 1:
        expected = "a positive integer"
    elif minimum == 0:
        expected = "a non-negative integer"
    elif minimum is not None:
        expected = f"an integer >= {minimum}"
    elif maximum is not None:
        expected = f"an integer <= {maximum}"
    else:
        expected = "an integer"
    if allow_none and not expected.startswith("None"):
        expected = f"None or {expected}"
    raise ValueError(f"{name} must be {expected}{detail}; received {value!r}")


def check_choice(name: str, value, choices: Sequence, detail: str = ""):
    """``value`` if it is one of ``choices``, else ``"{name} must be one of (...){detail}; received ..."``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}{detail}; received {value!r}")
    return value


def check_names(kind: str, names, valid: Sequence[str], hint: str = "") -> list[str]:
    """A non-empty list of names out of ``valid`` (a single string is one name); ``ValueError`` listing the
    unknown ones with the valid ones otherwise: ``unknown method(s) ['x']; valid: a, b``."""
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        raise ValueError(f"unknown {kind}(s) {unknown or names}; valid: {', '.join(valid)}{hint}")
    return names


def preview(items: Sequence, limit: int = 5) -> str:
    """The first ``limit`` items joined by commas, and how many more (for error and warning messages)."""
    items = list(items)
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def integer_pcm_hint(dtype) -> str:
    """`` (integer PCM: divide by 2**15 for int16, as soundfile reads it)`` for an integer ``dtype`` (unsigned:
    subtract the midpoint first): the part of an error message that says how to get samples at full scale 1.0."""
    dtype = np.dtype(dtype)
    half = np.iinfo(dtype).bits - 1
    how = (f"divide by 2**{half}" if np.issubdtype(dtype, np.signedinteger)
           else f"subtract 2**{half}, then divide by 2**{half}")
    return f" (integer PCM: {how} for {dtype}, as soundfile reads it)"


def check_clip(waveform, needed: int, where: str) -> np.ndarray:
    """A waveform as float32 ``[batch, time]`` after the checks every sonifier input gets.

    Samples are floating point at full scale ±1.0 (float16/32/64, bool, or lists of floats). Integer PCM arrays are
    refused rather than cast: their scale is the dtype's (±2**15 for int16 ... ±2**63 for int64), and cast unscaled
    they gave the model amplitudes up to 9.2e18, where the long fuzz run saw exact long-clip windows differ from
    the one-pass result (issue 26). Divide by the full scale first, as ``soundfile`` and
    :func:`tfsonify.load_audio` do; live stream blocks and CREPE refuse integer samples the same way.

    Raises ``ValueError`` naming the problem for: non-numeric or integer data, rank other than 1 or 2, an empty
    clip, NaN or Inf samples, or fewer than ``needed`` samples (``where`` names the layer in the message, e.g.
    ``"block 11"``).
    """
    try:
        dtype = waveform.dtype if isinstance(waveform, np.ndarray) else np.asarray(waveform).dtype
    except (TypeError, ValueError):
        dtype = None  # ragged or not numeric: the float32 conversion below says so
    if dtype is not None and np.issubdtype(dtype, np.integer):
        raise ValueError(f"waveform must be floating-point samples at full scale 1.0; received dtype {dtype}"
                         f"{integer_pcm_hint(dtype)}")
    try:
        array = np.asarray(waveform, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ValueError(f"waveform must be a numeric array [time] or [batch, time]; could not convert: {error}") from None
    if array.ndim not in (1, 2):
        raise ValueError(f"waveform must have shape [time] or [batch, time]; received shape {array.shape}")
    batch = array[None] if array.ndim == 1 else array
    if batch.shape[0] == 0 or batch.shape[1] == 0:
        raise ValueError(f"waveform is empty (shape {array.shape}); expected at least {needed} samples")
    if not np.all(np.isfinite(batch)):
        bad = int(np.size(batch) - np.count_nonzero(np.isfinite(batch)))
        raise ValueError(f"waveform contains {bad} NaN or Inf samples; expected finite values")
    if batch.shape[1] < needed:
        raise ValueError(f"clip has {batch.shape[1]} samples but {where} needs at least {needed} samples "
                         f"(pad or use a longer clip, or a shallower layer)")
    return batch
