"""Train/test splits of decoded clips: held-out metadata values, path patterns or a stratified random share."""
from __future__ import annotations

import re

import numpy as np

__all__ = ["split_holdout", "select_train_meta"]


def split_holdout(decoded, holdout_regex: str | None, test_fraction: float, seed: int, holdout_meta: str | None = None):
    """``(train, test)`` DecodedClips.

    The test set is: clips whose ``metadata[column]`` is one of the values of ``holdout_meta``
    (``"column=v1,v2"``, e.g. ``split=heldout_voice`` for the demo data), else clips whose path matches
    ``holdout_regex``, else a stratified random ``test_fraction`` of every class.
    """
    if holdout_meta:
        column, sep, values = holdout_meta.partition("=")
        if not sep or column not in decoded.metadata:
            raise ValueError(f"--holdout-meta must be COLUMN=V1,V2 with a metadata column of this dataset "
                             f"({sorted(decoded.metadata)}); received {holdout_meta!r}")
        wanted = set(values.split(","))
        test = np.array([str(value) in wanted for value in decoded.metadata[column]])
        what = f"--holdout-meta {holdout_meta!r}"
    elif holdout_regex:
        pattern = re.compile(holdout_regex)
        test = np.array([bool(pattern.search(str(path))) for path in decoded.paths])
        what = f"--holdout {holdout_regex!r}"
    else:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"--test-fraction must be in (0, 1); received {test_fraction}")
        rng = np.random.default_rng(seed)
        test = np.zeros(len(decoded), bool)
        labels = decoded.labels if not decoded.multi_label else np.zeros(len(decoded), int)
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            test[members[: max(1, int(round(test_fraction * members.size)))]] = True
        return decoded.subset(~test), decoded.subset(test)
    if not test.any() or test.all():
        raise ValueError(f"{what} selects {int(test.sum())} of {len(test)} clips; it must select some but not all")
    return decoded.subset(~test), decoded.subset(test)


def select_train_meta(train, train_meta: str | None):
    """``train`` restricted to clips whose metadata matches ``--train-meta COLUMN=V1,V2`` (unchanged if None)."""
    if not train_meta:
        return train
    column, _, values = train_meta.partition("=")
    if column not in train.metadata:
        raise ValueError(f"--train-meta: no metadata column {column!r} (have {sorted(train.metadata)})")
    return train.select(column, values.split(","))
