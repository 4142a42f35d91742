"""The report's optional faithfulness section: :func:`tfsonify.explain.evaluate.evaluate` on the report's clips.

:func:`plan` checks everything (method names, target, clip length) before the report does any work;
:func:`section` runs the evaluation, writes one listening example per method (the first clip) into ``media/`` and
returns the section's HTML and its JSON.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_METHODS", "Plan", "plan", "section"]

DEFAULT_METHODS = ("sonification", "guided_backprop", "gradient", "integrated_gradients", "occlusion")
"""The cheap set ``tfsonify report --faithfulness`` runs without a list: one backward pass each, 32 for integrated
gradients, ``T // 16`` windows for occlusion (smoothgrad, band occlusion and NMF on request)."""
DELETION_STEPS = 10


@dataclass(frozen=True)
class Plan:
    """What the section will run: ``methods``, ``metrics``, ``target`` (a :class:`Target`), ``length`` samples."""

    methods: list
    metrics: list
    target: object
    length: int


def plan(sonifier, layers, methods=None, seconds: float = 1.0, classes: bool = True) -> Plan:
    """The section's settings, every check done (a ``ValueError`` before any work otherwise).

    Target: the predicted class when the model's output is class scores (``classes``) read out after the layers
    the deconvnet walks (metrics deletion/insertion, the L-MAC protocol and cost), else (an embedding, no read-out)
    the most active map of the report's deepest layer (deletion/insertion and cost). Clips are cut or zero-padded to ``seconds`` (a fixed-input model: its length).
    """
    from tfsonify.explain.methods import check_methods
    from tfsonify.explain.targets import Target, explained

    methods = check_methods(list(DEFAULT_METHODS if methods is None else methods))
    state = explained(sonifier)
    fixed = state.model.inputs[0].shape[1]
    if fixed is None and not seconds > 0:
        raise ValueError(f"faithfulness seconds must be positive; received {seconds!r}")
    length = int(fixed) if fixed is not None else int(round(seconds * state.sample_rate))
    if classes and state.head is not None:
        target, metrics = Target.unit("top"), ["deletion", "lmac", "cost"]
    else:
        deepest = max(layers, key=sonifier.min_length)
        target, metrics = Target.map(deepest, "top"), ["deletion", "cost"]
    state.check_clips(np.zeros((1, length), np.float32), target)  # too short for the target's layer: say so now
    return Plan(methods, metrics, target, length)


def _fit(wave: np.ndarray, length: int) -> np.ndarray:
    return np.pad(wave[:length], (0, max(0, length - wave.size))).astype(np.float32)


def section(sonifier, plan: Plan, waves, names, media: Path, write_pcm16) -> tuple[str, dict]:
    """Run the evaluation on ``waves`` and write ``media/faith_c00_{input,<method>}.wav``; ``(html, json)``."""
    from tfsonify.explain.evaluate import evaluate, listening_examples, summary_table

    rate = sonifier.sample_rate
    clips = np.stack([_fit(w, plan.length) for w in waves])
    result, explanations = evaluate(sonifier, clips, plan.methods, plan.metrics, plan.target, steps=DELETION_STEPS,
                                    log=lambda message: None)
    peak = float(np.max(np.abs(clips[0])))
    write_pcm16(media / "faith_c00_input.wav", clips[0], rate)
    examples = {"input": "media/faith_c00_input.wav"}
    for method, explanation in explanations.items():
        write_pcm16(media / f"faith_c00_{method}.wav", listening_examples(explanation, [0], peak or 0.9)[0], rate)
        examples[method] = f"media/faith_c00_{method}.wav"
    players = "".join(f"<tr><td>{html.escape(what)}</td><td><audio controls preload=metadata src=\"{html.escape(src)}\">"
                      "</audio></td></tr>" for what, src in examples.items())
    conditions = result["conditions"]
    body = (f"<h2 id=faithfulness>Faithfulness of the explanations</h2><p>Each method explains the "
            f"{html.escape(conditions['target'])} (per clip: {'the predicted class' if plan.target.layer is None else 'the map with the largest sum over time'}) "
            f"on the {conditions['clips']} clip(s), cut or zero-padded to {plan.length / rate:.2f} s "
            f"(<code>tfsonify.explain.evaluate</code>; mean ± 95 % interval over clips). Deletion / insertion: "
            f"the target's probability (or score relative to the clip's) as the time–frequency bins the explanation ranks "
            f"highest are removed / kept, {DELETION_STEPS} steps; a faithful explanation has a low deletion and a high "
            "insertion area (ins-del high)."
            + (" AI, AD, AG, FF, Fid-In: the L-MAC protocol on the explanation's soft mask." if "lmac" in plan.metrics else "")
            + " s/clip: seconds per explanation.</p>" + summary_table(result, "html")
            + f"<h3>Listening examples: {html.escape(names[0])}</h3><p class=note>Waveform methods are heard as they are "
            "(a gradient or occlusion curve is a relevance signal, not a separated source), time–frequency ones as their "
            "mask applied to the input; each scaled to the input's peak.</p>"
            f"<table>{players}</table>")
    return body, {**result, "examples": examples}
