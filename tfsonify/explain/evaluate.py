"""Run every method and metric on a set of clips; write ``faithfulness.json``, tables, plots and listening examples.

:func:`evaluate` returns a JSON-ready dict:

``{"conditions": {...}, "methods": {method: {metric: {"mean", "ci95", "n"}}}, "curves": {method: {"fractions",
"deletion", "insertion"}}, "randomisation": {"stages": [...], "methods": {method: {"spearman": [...], "ssim":
[...]}}}}``

``ci95`` is the half-width of a normal 95 % interval of the mean over clips (``1.96 sd / sqrt(n)``). Costs are
seconds per clip of the whole batched call after one warm-up call (graphs traced), on the clips given.
:func:`write_outputs` writes it to a folder; :func:`summary_table` gives the markdown/CSV/HTML table the report
embeds; :func:`listening_examples` turns an explanation into sounds (the listening examples of the output folder,
the report and the explorer's method picker).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from tfsonify.explain.methods import MASK_METHODS, check_methods, explain
from tfsonify.explain.metrics import (check_metrics, check_parts, deletion_insertion, lmac_protocol,
                                      mixture_scores)
from tfsonify.explain.sanity import cascading_randomisation, randomisation_stages
from tfsonify.explain.spectral import soft_mask, spectral_for
from tfsonify.explain.targets import Target, explained

__all__ = ["evaluate", "randomisation_subset", "RANDOMISATION_CLIPS", "write_outputs", "summary_table", "listening_examples", "COLUMNS"]

COLUMNS = [("energy_share", "energy in source"), ("si_sdr_mask", "SI-SDR mask dB"), ("si_sdr_wave", "SI-SDR wave dB"),
           ("deletion_auc", "deletion AUC"), ("insertion_auc", "insertion AUC"), ("insertion_minus_deletion", "ins-del"),
           ("AI", "AI"), ("AD", "AD"), ("AG", "AG"), ("FF", "FF"), ("Fid-In", "Fid-In"),
           ("randomised_spearman", "rand. Spearman"), ("randomised_ssim", "rand. SSIM"),
           ("seconds_per_clip", "s/clip")]


def _stat(values) -> dict:
    values = np.asarray(values, np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"mean": None, "ci95": None, "n": 0}
    ci = 1.96 * values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else 0.0
    return {"mean": float(values.mean()), "ci95": float(ci), "n": int(values.size)}


#: Clips the cascading randomisation explains again after each stage (spread evenly over the set): Adebayo et al.
#: (2018) compare explanations on a sample, and the cascade costs ``stages x methods`` explanations per clip.
RANDOMISATION_CLIPS = 32


def randomisation_subset(count: int, clips: int | None = RANDOMISATION_CLIPS) -> np.ndarray:
    """Indices of ``clips`` of ``count`` clips spread evenly (all of them when ``clips`` is None, 0 or >= count)."""
    if clips is not None and int(clips) < 0:
        raise ValueError(f"randomisation_clips must be >= 0 (0 or None: every clip); received {clips}")
    if not clips or int(clips) >= count:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, int(clips)).round().astype(np.int64))


def evaluate(model, clips, methods, metrics, target: Target | None = None, sources=None, backgrounds=None,
             steps: int = 20, stages: int | None = None, options: dict | None = None, log=print,
             n_fft: int | None = None, randomisation_clips: int | None = RANDOMISATION_CLIPS) -> tuple[dict, dict]:
    """Evaluate ``methods`` with ``metrics`` on ``clips`` (float32 ``[n, T]`` at the model's rate).

    Args:
        model: Keras model or Sonifier; target: :class:`Target` (default the predicted class ``Target.unit("top")``).
        sources, backgrounds: with the ``"mixture"`` metric, the known parts of each clip (``clips[i]`` is
            ``sources[i] + backgrounds[i]`` up to scale), each ``[n, T]``.
        steps: deletion/insertion fractions; stages: layers randomised (default all); options: per-method options.
        randomisation_clips: how many of the clips (spread evenly) the cascading randomisation re-explains after
            each stage (default :data:`RANDOMISATION_CLIPS`; None or 0: all of them).

    Returns:
        ``(result, explanations)``: the dict of the module docstring and ``{method: Explanation}`` of the clips.

    Every check - names, target range, clip lengths, mixture parts, trainable weights for the randomisation,
    class target for L-MAC - runs before the first explanation.
    """
    methods, metrics = check_methods(methods), check_metrics(metrics)
    state = explained(model)
    target = Target.unit("top") if target is None else target
    batch = state.check_clips(clips, target)
    options = options or {}
    for method, extra in options.items():
        check_methods([method])
    if "mixture" in metrics:
        if sources is None or backgrounds is None:
            raise ValueError("the 'mixture' metric needs the known source and background of every clip")
        sources, backgrounds = check_parts(batch, sources, backgrounds)
    if "lmac" in metrics and target.layer is not None:
        raise ValueError("the 'lmac' metric (AI, AD, AG, FF, Fid-In) needs a class target (Target.unit), not a map")
    if "randomisation" in metrics:
        randomisation_stages(state)
    subset = randomisation_subset(batch.shape[0], randomisation_clips)
    spectral = spectral_for(state.sample_rate, n_fft)
    index = state.indices(target, state.scale(batch))
    fixed = Target(target.layer, index)
    result = {"conditions": {"clips": int(batch.shape[0]), "samples": int(batch.shape[1]),
                             "sample_rate": state.sample_rate, "target": target.describe(),
                             "model": state.model.name, "n_fft": spectral.n_fft, "hop": spectral.hop,
                             "deletion_steps": int(steps), "methods": methods, "metrics": metrics,
                             "options": {m: {k: v for k, v in o.items()} for m, o in options.items()}},
              "methods": {}, "curves": {}}
    if "randomisation" in metrics:
        result["conditions"]["randomisation_clips"] = int(subset.size)
    seconds = dict.fromkeys(["explain"] + [m for m in metrics if m != "cost"], 0.0)
    result["conditions"]["seconds"] = seconds  # wall time per phase, summed over the methods
    explanations = {}
    for method in methods:
        log(f"  {method}: explaining {batch.shape[0]} clip(s)")
        started = time.perf_counter()
        explain(method, state, batch[:1], Target(target.layer, index[:1]), spectral=spectral, **options.get(method, {}))
        explanation = explain(method, state, batch, fixed, spectral=spectral, **options.get(method, {}))
        seconds["explain"] += time.perf_counter() - started
        explanations[method] = explanation
        row = {"seconds_per_clip": _stat([explanation.seconds / batch.shape[0]])}
        if "mixture" in metrics:
            started = time.perf_counter()
            for key, values in mixture_scores(explanation, sources, backgrounds).items():
                row[key] = _stat(values)
            seconds["mixture"] += time.perf_counter() - started
        if "deletion" in metrics:
            started = time.perf_counter()
            curves = deletion_insertion(state, explanation, steps)
            seconds["deletion"] += time.perf_counter() - started
            for key in ("deletion_auc", "insertion_auc", "insertion_minus_deletion"):
                row[key] = _stat(curves[key])
            result["curves"][method] = {"fractions": curves["fractions"].tolist(),
                                        "deletion": curves["deletion"].mean(0).tolist(),
                                        "insertion": curves["insertion"].mean(0).tolist()}
        if "lmac" in metrics:
            started = time.perf_counter()
            for key, values in lmac_protocol(state, explanation).items():
                row[key] = _stat(values)
            seconds["lmac"] += time.perf_counter() - started
        result["methods"][method] = row
    if "randomisation" in metrics:
        log(f"  cascading randomisation ({stages or 'all'} stages, {subset.size} clip(s))")
        started = time.perf_counter()
        check = cascading_randomisation(state, batch[subset], Target(target.layer, index[subset]), methods,
                                        stages=stages, options=options)
        seconds["randomisation"] = time.perf_counter() - started
        result["randomisation"] = {"stages": check["stages"], "methods": {
            m: {k: v.mean(axis=1).tolist() for k, v in r.items()} for m, r in check["methods"].items()}}
        for m, r in check["methods"].items():  # the fully randomised model (the last stage)
            result["methods"][m]["randomised_spearman"] = _stat(r["spearman"][-1])
            result["methods"][m]["randomised_ssim"] = _stat(r["ssim"][-1])
    return result, explanations


def _fmt(stat: dict | None) -> str:
    if not stat or stat.get("mean") is None:
        return ""
    mean, ci = stat["mean"], stat["ci95"]
    digits = 4 if abs(mean) < 0.1 else (3 if abs(mean) < 10 else 1)
    return f"{mean:.{digits}f} ± {ci:.{digits}f}" if ci else f"{mean:.{digits}f}"


def summary_table(result: dict, fmt: str = "markdown") -> str:
    """The table of :func:`evaluate`'s result: one row per method, mean ± 95 % CI per metric present.

    Args:
        fmt: ``"markdown"``, ``"csv"`` (``method,metric_mean,metric_ci95,...``) or ``"html"`` (a ``<table>``
            with escaped names, numbers right-aligned, no style or script).
    """
    if fmt not in ("markdown", "csv", "html"):
        raise ValueError(f"fmt must be 'markdown', 'csv' or 'html'; received {fmt!r}")
    present = [(key, label) for key, label in COLUMNS
               if any(key in row for row in result["methods"].values())]
    if fmt == "html":
        import html

        head = "".join(f"<th>{html.escape(label)}</th>" for _, label in present)
        rows = "".join(f"<tr><td>{html.escape(method)}</td>"
                       + "".join(f"<td class=num>{html.escape(_fmt(row.get(key)))}</td>" for key, _ in present)
                       + "</tr>" for method, row in result["methods"].items())
        return f"<table class=faithfulness><tr><th>method</th>{head}</tr>{rows}</table>\n"
    if fmt == "csv":
        lines = [",".join(["method"] + [f"{key}_{part}" for key, _ in present for part in ("mean", "ci95")])]
        for method, row in result["methods"].items():
            cells = [method]
            for key, _ in present:
                stat = row.get(key) or {}
                cells += ["" if stat.get("mean") is None else f"{stat['mean']:.6g}",
                          "" if stat.get("ci95") is None else f"{stat['ci95']:.6g}"]
            lines.append(",".join(cells))
        return "\n".join(lines) + "\n"
    lines = ["| method | " + " | ".join(label for _, label in present) + " |",
             "|---" * (len(present) + 1) + "|"]
    for method, row in result["methods"].items():
        lines.append(f"| {method} | " + " | ".join(_fmt(row.get(key)) for key, _ in present) + " |")
    return "\n".join(lines) + "\n"


def _plots(result: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    if result["curves"]:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for method, curve in result["curves"].items():
            axes[0].plot(curve["fractions"], curve["deletion"], label=method)
            axes[1].plot(curve["fractions"], curve["insertion"], label=method)
        for ax, name in zip(axes, ("deletion", "insertion")):
            ax.set_xlabel("fraction of time-frequency bins"); ax.set_title(name); ax.grid(alpha=0.3)
        axes[0].set_ylabel("target probability (or score / original)")
        axes[1].legend(fontsize=7)
        fig.tight_layout(); fig.savefig(out / "curves.png", dpi=110); plt.close(fig)
        written.append("curves.png")
    keys = [(k, label) for k, label in COLUMNS if any(k in r for r in result["methods"].values())]
    if keys:
        methods = list(result["methods"])
        cols = 3
        rows = -(-len(keys) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
        for ax, (key, label) in zip(axes.ravel(), keys):
            means = [(result["methods"][m].get(key) or {}).get("mean") for m in methods]
            cis = [(result["methods"][m].get(key) or {}).get("ci95") or 0.0 for m in methods]
            ax.bar(range(len(methods)), [np.nan if v is None else v for v in means], yerr=cis, capsize=2)
            ax.set_xticks(range(len(methods)), methods, rotation=60, ha="right", fontsize=6)
            ax.set_title(label, fontsize=9)
        for ax in axes.ravel()[len(keys):]:
            ax.axis("off")
        fig.tight_layout(); fig.savefig(out / "bars.png", dpi=110); plt.close(fig)
        written.append("bars.png")
    if "randomisation" in result:
        fig, ax = plt.subplots(figsize=(7, 4))
        stages = result["randomisation"]["stages"]
        for method, r in result["randomisation"]["methods"].items():
            ax.plot(range(1, len(stages) + 1), r["spearman"], marker="o", label=method)
        ax.set_xticks(range(1, len(stages) + 1), stages, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("Spearman vs trained"); ax.set_title("cascading randomisation (top down)")
        ax.legend(fontsize=7); ax.grid(alpha=0.3)
        fig.tight_layout(); fig.savefig(out / "randomisation.png", dpi=110); plt.close(fig)
        written.append("randomisation.png")
    return written


def write_outputs(result: dict, explanations: dict, out, examples: int = 2) -> list[str]:
    """Write ``faithfulness.json``, ``faithfulness.md``, ``faithfulness.csv``, the plots and
    ``examples/clipK_input.wav`` + ``examples/clipK_<method>.wav`` (the first ``examples`` clips; waveform
    explanations peak-normalised to 0.9, masks applied to the input) into folder ``out``; returns the files."""
    from tfsonify.io.audio import write_wav

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "examples").mkdir(exist_ok=True)
    files = []
    for name, text in (("faithfulness.json", json.dumps(result, indent=1)),
                       ("faithfulness.md", summary_table(result, "markdown")),
                       ("faithfulness.csv", summary_table(result, "csv"))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out / name)
        files.append(name)
    files += _plots(result, out)
    rate = result["conditions"]["sample_rate"]
    first = next(iter(explanations.values()), None)
    for k in range(0 if first is None else min(examples, first.inputs.shape[0])):
        write_wav(out / "examples" / f"clip{k}_input.wav", _peak(first.inputs[k]), rate)
        files.append(f"examples/clip{k}_input.wav")
    for method, e in explanations.items():
        count = min(examples, e.values.shape[0])
        for k, sound in enumerate(listening_examples(e, range(count))):
            write_wav(out / "examples" / f"clip{k}_{method}.wav", sound, rate)
            files.append(f"examples/clip{k}_{method}.wav")
    return files


def listening_examples(explanation, clips=None, peak=0.9) -> np.ndarray:
    """An explanation as sounds: float32 ``[len(clips), T]`` (default every clip), each scaled to ``peak``.

    A waveform-domain explanation is played as it is (``values[k]``); a time-frequency one (``MASK_METHODS``) is
    resynthesised as its soft mask (:func:`tfsonify.explain.spectral.soft_mask`) applied to the explained input.
    Each sound is then scaled so that its largest absolute sample is ``peak`` (a float, or one per clip, e.g. the
    raw input's peak; an all-zero sound stays zero). Used for ``examples/*.wav``, the report's listening examples
    and the explorer's method picker.
    """
    e = explanation
    clips = list(range(e.values.shape[0])) if clips is None else [int(k) for k in clips]
    peaks = np.broadcast_to(np.asarray(peak, np.float64), (len(clips),))
    masks = soft_mask(e, e.spectral) if e.method in MASK_METHODS and clips else None
    sounds = []
    for k, target in zip(clips, peaks):
        sound = e.values[k] if masks is None else e.spectral.apply_mask(e.inputs[k : k + 1], masks[k : k + 1])[0]
        sounds.append(_peak(sound, float(target)))
    return np.stack(sounds) if sounds else np.zeros((0, e.inputs.shape[1]), np.float32)


def _peak(x: np.ndarray, target: float = 0.9) -> np.ndarray:
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return (x / peak * target if peak > 0 else x).astype(np.float32)
