"""Sanity checks (Adebayo et al., 2018): does an explanation change when what the model learnt is destroyed?

* :func:`cascading_randomisation` - the layers with trainable weights are re-drawn one after another from the
  top (the classifier, then the embedding, then the last conv block, ...) down to the first conv; after each
  stage every method explains the same clips and the same target indices again and its relevance maps are
  compared with the trained model's (:func:`tfsonify.explain.metrics.similarity`: Spearman rank correlation and
  SSIM, per clip). Each trainable variable is replaced by ``N(0, sd^2)`` with ``sd`` its own standard deviation
  (0.05 when that is 0, e.g. zero biases or unit BatchNormalization scales), seeded. The model's weights are
  restored afterwards, also on error. A method that explains the model should drop towards 0.
* :func:`model_similarity` - the same comparison between two models with the same layers (e.g. trained on true
  and on shuffled labels).
"""
from __future__ import annotations

import numpy as np

from tfsonify.explain.methods import check_methods, explain
from tfsonify.explain.metrics import similarity
from tfsonify.explain.targets import Target, explained

__all__ = ["randomisation_stages", "cascading_randomisation", "model_similarity"]


def randomisation_stages(model) -> list:
    """The model's layers with trainable weights, top first (the order of the cascade); ValueError if none."""
    state = explained(model)
    layers = [layer for layer in state.model.layers if layer.trainable_weights]
    if not layers:
        raise ValueError(f"model {state.model.name!r} has no trainable weights: a parameter-randomisation check "
                         "needs a model with learnt parameters")
    return layers[::-1]


def _fixed(target: Target, index: np.ndarray) -> Target:
    return Target(target.layer, np.asarray(index, np.int32))


def cascading_randomisation(model, clips, target: Target, methods, stages: int | None = None, seed: int = 0,
                            options: dict | None = None) -> dict:
    """Cascading parameter randomisation from the top down (module docstring).

    Args:
        model: a Keras model or Sonifier; clips: float32 ``[n, T]``; target: the explained :class:`Target`
            (a ``"top"`` index is fixed to the trained model's choice for every stage).
        methods: method names; stages: randomise only the top ``stages`` layers (default all).
        options: per-method options ``{method: {option: value}}``.

    Returns:
        ``{"stages": [layer names, top first], "methods": {method: {"spearman": [stages, n], "ssim": [stages, n]}}}``.
    """
    methods = check_methods(methods)
    layers = randomisation_stages(model)
    state = explained(model)
    state.check_clips(clips, target)
    layers = layers if stages is None else layers[: int(stages)]
    options = options or {}
    before = {m: explain(m, state, clips, target, **options.get(m, {})) for m in methods}
    fixed = _fixed(target, before[methods[0]].index)
    saved = [[v.numpy().copy() for v in layer.trainable_weights] for layer in layers]
    rng = np.random.default_rng(seed)
    result = {m: {"spearman": [], "ssim": []} for m in methods}
    try:
        for layer in layers:
            for variable in layer.trainable_weights:
                value = variable.numpy()
                sd = float(value.std()) or 0.05
                variable.assign(rng.normal(0.0, sd, value.shape).astype(value.dtype))
            for m in methods:
                after = explain(m, state, clips, fixed, **options.get(m, {}))
                scores = similarity(before[m], after)
                for key in ("spearman", "ssim"):
                    result[m][key].append(scores[key])
    finally:
        for layer, values in zip(layers, saved):
            for variable, value in zip(layer.trainable_weights, values):
                variable.assign(value)
    return {"stages": [layer.name for layer in layers],
            "methods": {m: {k: np.stack(v) for k, v in r.items()} for m, r in result.items()}}


def model_similarity(model_a, model_b, clips, target: Target, methods, options: dict | None = None) -> dict:
    """``{method: {"spearman": [n], "ssim": [n]}}`` between the explanations of two models of the same clips and
    target indices (a ``"top"`` index is taken from ``model_a``)."""
    methods = check_methods(methods)
    for model in (model_a, model_b):
        randomisation_stages(model)
        explained(model).check_clips(clips, target)
    options = options or {}
    result = {}
    for m in methods:
        a = explain(m, model_a, clips, target, **options.get(m, {}))
        b = explain(m, model_b, clips, _fixed(target, a.index), **options.get(m, {}))
        result[m] = similarity(a, b)
    return result
