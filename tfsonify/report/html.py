"""Build the HTML report: per layer the top maps of each clip with audio, spectrograms, activation and coherence;
the coherence-per-layer plot; the residual table (see :mod:`tfsonify.report`)."""
from __future__ import annotations

import contextlib
import html
import json
import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import soundfile

from tfsonify.analysis.coherence import layer_coherence, min_coherence_length, plot_coherence, top_k_coherence
from tfsonify.analysis.residual import residual_experiment
from tfsonify.io.audio import atomic_path
from tfsonify.io.manifest import output_folder, remove_stale_temporaries
from tfsonify.models.checkpoint import sonifiable_of
from tfsonify.models.metadata import class_label, class_names_of, sample_rate_of
from tfsonify.io.render import check_writable_dir, plot_pair
from tfsonify.progress import iterate, progress as step_timer

__all__ = ["build_report", "write_pcm16"]

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{font-size:1em;margin:1em 0 .3em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.3em .6em;vertical-align:middle;font-size:.9em}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;display:block}audio{width:230px;height:32px}
.note{color:#666;font-size:.85em}.maps td img{width:420px}
nav a{margin-right:.6em}
"""


def write_pcm16(path: Path, waveform: np.ndarray, sample_rate: int) -> None:
    """Write mono ``[time]`` as 16-bit PCM WAV (scaled down only if it would clip), atomically."""
    waveform = np.asarray(waveform, np.float32)
    peak = float(np.max(np.abs(waveform))) if waveform.size else 0.0
    if peak > 1.0:
        waveform = waveform / peak
    with atomic_path(path, suffix=".wav") as temporary:
        soundfile.write(str(temporary), waveform, int(sample_rate), subtype="PCM_16", format="WAV")


def _audio(src: str) -> str:
    return f'<audio controls preload="metadata" src="{html.escape(src)}"></audio>'


def _has_head(model, class_names) -> bool:
    """Whether ``model``'s output is class scores: class names stored with it, or a tfsonify head (``num_classes``)."""
    return bool(class_names) or bool(getattr(model, "num_classes", None))


def predictions(model, waves: list[np.ndarray], class_names, needed: int) -> list[dict | None]:
    """Per clip, the head's top class ``{"class", "label", "score"}`` (None for a clip the model cannot take whole:
    shorter than ``needed`` samples, its deepest layer's minimum, or not its fixed input length). ``waves`` float32
    ``[time]`` at the model's rate."""
    fixed = model.inputs[0].shape[1]
    result = []
    for wave in waves:
        if (fixed is not None and wave.size != fixed) or wave.size < needed:
            result.append(None)
            continue
        scores = np.asarray(model(wave[None].astype(np.float32), training=False))[0]
        best = int(np.argmax(scores))
        result.append({"class": best, "label": class_label(class_names, best), "score": float(scores[best])})
    return result


def _number(value: float | None) -> str:
    """A score in a table: three decimals, or a dash where it cannot be measured."""
    return "–" if value is None else f"{value:.3f}"


def _coherence_section(model, sonifier, waves, layers, coherence_k: int, media: Path, data: dict) -> tuple[str, str]:
    """The coherence-per-layer rows (a dash where no clip could be scored) and their note; fills ``data``."""
    try:
        coherence = layer_coherence(sonifier, waves, layers, k=coherence_k, batch_size=1)
    except ValueError:  # no clip can be scored on any layer
        coherence = None
    clips = coherence.clips if coherence else [0] * len(layers)
    if coherence is not None:
        plot_coherence({model.name: coherence}, media / "coherence.png")
        data["coherence"] = {"layers": coherence.layers, "mean": coherence.mean, "low": coherence.low,
                             "high": coherence.high, "clips": coherence.clips, "skipped": coherence.skipped}
    rows = []
    for i, layer in enumerate(layers):
        if clips[i]:
            cells = f"{coherence.mean[i]:.3f}</td><td class=num>[{coherence.low[i]:.3f}, {coherence.high[i]:.3f}]"
        else:
            cells = "–</td><td class=num>–"
        rows.append(f"<tr><td class=num>{layer}</td><td class=num>{cells}</td><td class=num>{clips[i]}</td></tr>")
    note = ""
    if not all(clips):
        note = (f'<p class="note">–: no clip could be scored for that layer: every clip is shorter than the layer needs '
                f'or than {min_coherence_length()} samples (two Welch segments; one segment gives a coherence of 1 '
                'whatever the signals), or silent.</p>')
    return "".join(rows), note


def build_report(model, clips: Mapping[str, np.ndarray], out_dir: str | os.PathLike, layers: Iterable[int | str] | None = None,
                 top: int = 3, title: str = "", coherence_k: int = 5, residual: bool = True,
                 class_names: list[str] | None = None, faithfulness: Iterable[str] | bool | None = None,
                 faithfulness_seconds: float = 1.0, progress: bool = False) -> Path:
    """Write the report folder and return the path of ``index.html``.

    Args:
        model: a :class:`tfsonify.CNN12` (with or without a classifier head; a contrastive model's encoder) or
            any model :class:`tfsonify.Sonifier` supports (CREPE, your own Keras CNN).
        clips: ``name -> waveform``, mono float32 ``[time]`` at the model's rate. Clips shorter than a
            block needs are left out of that block (the page says how many).
        out_dir: folder to write (created if missing).
        layers: block indices or layer names (:meth:`tfsonify.Sonifier.layers`; default all blocks).
        top: most active maps shown per clip and block.
        title: page title (default the model's name).
        coherence_k: frequencies averaged in the coherence score (5 in the paper).
        residual: run the residual experiment (agreement with the clean prediction for a model with a
            head, output cosine otherwise) with its random-segment control; a model it cannot score (e.g. a fixed
            input length none of the clips has) gets a note saying why.
        class_names: names of the head's classes (default the ones stored with the model,
            :func:`tfsonify.models.metadata.class_names_of`); the clips table shows each clip's predicted class.
        faithfulness: explanation methods to compare in a "Faithfulness" section (``True``: the cheap default set
            :data:`tfsonify.report.faithfulness.DEFAULT_METHODS`; None/False: no section, the page as without it):
            :func:`tfsonify.explain.evaluate.evaluate` on the clips cut or zero-padded to ``faithfulness_seconds``
            (deletion/insertion, cost, and the L-MAC protocol for a model with a head, whose target is the predicted
            class; otherwise the most active map of the deepest layer), its table and one listening example per
            method. Names are checked before any work.
        progress: show progress on stderr (:mod:`tfsonify.progress`): a line (or a bar on a terminal) per block
            sonified, then a timed line per later step (coherence, residual experiment, faithfulness).
    """
    out_dir = Path(out_dir)
    # a failed or interrupted run removes the folders it created (when empty): no empty --out is left behind
    with output_folder(out_dir), output_folder(out_dir / "media"):
        return _build_report(model, clips, out_dir, layers, top, title, coherence_k, residual, class_names,
                             faithfulness, faithfulness_seconds, progress)


def _build_report(model, clips, out_dir, layers, top, title, coherence_k, residual, class_names, faithfulness,
                  faithfulness_seconds, progress) -> Path:
    from tfsonify.analysis.clip_batches import as_clip, check_layers, describe_layer
    from tfsonify.engine.sonifier import Sonifier

    if not clips:
        raise ValueError("the report needs at least one clip")
    model = sonifiable_of(model)  # a contrastive model's CNN12 encoder; any other model as it is
    sonifier = Sonifier(model, sample_rate=sample_rate_of(model))
    class_names = class_names_of(model) if class_names is None else list(class_names)
    layers = check_layers(layers, sonifier=sonifier)
    min_length = sonifier.min_length
    faith_plan = None
    if faithfulness is not None and faithfulness is not False:
        from tfsonify.report import faithfulness as faith

        faith_plan = faith.plan(sonifier, layers, None if faithfulness is True else list(faithfulness),
                                faithfulness_seconds, classes=_has_head(model, class_names))
    out_dir = check_writable_dir(out_dir)
    media = check_writable_dir(out_dir / "media")
    remove_stale_temporaries(out_dir, recursive=True)  # what a killed run left; its finished files are complete
    rate = sonifier.sample_rate
    names = list(clips)
    waves = [as_clip(clips[name], i) for i, name in enumerate(names)]
    if all(w.size < min_length(layers[0]) for w in waves):
        raise ValueError(f"every clip is shorter than the {min_length(layers[0])} samples {describe_layer(layers[0])} needs")
    title = title or f"tfsonify report: {model.name}"
    data: dict = {"title": title, "sample_rate": rate, "clips": [], "layers": {}}

    needed = max(info.min_length for info in sonifier.layers())
    predicted = predictions(model, waves, class_names, needed) if _has_head(model, class_names) else [None] * len(waves)
    for index, (name, wave) in enumerate(zip(names, waves)):
        write_pcm16(media / f"c{index:02d}_input.wav", wave, rate)
        data["clips"].append({"name": name, "samples": int(wave.size), "wav": f"media/c{index:02d}_input.wav",
                              "prediction": predicted[index]})

    sections = []
    step = (lambda what: step_timer(f"report: {what}")) if progress else (lambda what: contextlib.nullcontext())
    for layer in iterate(layers, "report: sonifying the top maps", enabled=progress, label=describe_layer):
        tag = f"L{layer:02d}" if isinstance(layer, int) else f"L_{layer}"
        what = describe_layer(layer)
        rows, skipped = [], 0
        k = min(top, sonifier.num_features(layer))
        entries = []
        for index, wave in enumerate(waves):
            if wave.size < min_length(layer):
                skipped += 1
                continue
            features, activations, sounds = sonifier.sonify_top(wave, layer, k)
            coherences = (top_k_coherence(np.broadcast_to(wave, sounds.shape), sounds, coherence_k, rate)
                          if wave.size >= min_coherence_length() else [None] * len(features))  # None: meaningless
            for rank, (feature, activation, sound, coherence) in enumerate(zip(features, activations, sounds, coherences)):
                stem = f"c{index:02d}_{tag}_f{int(feature):04d}"
                write_pcm16(media / f"{stem}.wav", sound, rate)
                plot_pair(media / f"{stem}.png", wave, sound, rate, f"{names[index]}: {what}, map {int(feature)}")
                entries.append({"clip": index, "rank": rank, "feature": int(feature), "activation": float(activation),
                                "coherence": None if coherence is None else float(coherence), "wav": f"media/{stem}.wav", "png": f"media/{stem}.png"})
                rows.append(
                    f"<tr><td>{html.escape(names[index])}</td><td class=num>{rank + 1}</td><td class=num>{int(feature)}</td>"
                    f"<td class=num>{activation:.4g}</td><td class=num>{_number(coherence)}</td>"
                    f"<td>input<br>{_audio(f'media/c{index:02d}_input.wav')}<br>sonification<br>{_audio(f'media/{stem}.wav')}</td>"
                    f"<td><img src=\"media/{stem}.png\" alt=\"log spectrograms, {html.escape(names[index])}, {html.escape(what)} map {int(feature)}\"></td></tr>")
        data["layers"][str(layer)] = {"maps": entries, "skipped_short": skipped}
        note = f'<p class="note">{skipped} clip(s) shorter than {min_length(layer)} samples left out.</p>' if skipped else ""
        if any(e["coherence"] is None for e in entries):
            note += (f'<p class="note">MSC "–": the clip is shorter than {min_coherence_length()} samples (two Welch '
                     'segments); one segment gives a coherence of 1 whatever the signals.</p>')
        body = ("<table class=maps><tr><th>clip</th><th>rank</th><th>map</th><th>max activation</th>"
                f"<th>top-{coherence_k} MSC</th><th>listen</th><th>log spectrogram: input / sonification</th></tr>"
                + "".join(rows) + "</table>") if rows else "<p>No clip is long enough for this block.</p>"
        heading = f"Block {layer}" if isinstance(layer, int) else f"Layer {html.escape(layer)}"
        sections.append(f'<h2 id="L{html.escape(str(layer))}">{heading}</h2>{note}{body}')

    with step(f"coherence per layer ({len(layers)} layer(s), {len(waves)} clip(s))"):
        coherence_rows, coherence_note = _coherence_section(model, sonifier, waves, layers, coherence_k, media, data)

    residual_html = ""
    if residual:
        metric = "agreement" if _has_head(model, class_names) else "cosine"
        deepest = max(layers, key=min_length)
        usable = [w for w in waves if w.size >= min_length(deepest)]
        result, why = None, f"No clip is long enough for {html.escape(describe_layer(deepest))}."
        if usable:
            try:
                with step(f"residual experiment ({metric}, {len(usable)} clip(s))"):
                    result = residual_experiment(model, usable, layers=layers, metric=metric)
            except ValueError as error:  # e.g. a fixed-length model and clips of other lengths
                why = f"Not run: {html.escape(str(error))}."
        if result is not None:
            data["residual"] = {"metric": metric, "baseline": result.baseline, "layers": result.layers, "residual": result.residual,
                                "control": result.control, "energy_ratio": result.energy_ratio, "clips": result.clips}
            residual_rows = "".join(
                f"<tr><td class=num>{layer}</td><td class=num>{result.residual[i]:.3f}</td><td class=num>{result.drop[i]:+.3f}</td>"
                f"<td class=num>{result.control[i]:.3f}</td><td class=num>{result.control_drop[i]:+.3f}</td>"
                f"<td class=num>{result.energy_ratio[i]:.3f}</td></tr>" for i, layer in enumerate(result.layers))
            explain = ("top-1 agreement with the prediction on the clean clip" if metric == "agreement"
                       else "cosine similarity of the embedding with the clean clip's")
            residual_html = (f"<h2 id=residual>Residual experiment</h2><p>Metric: {explain}; baseline {result.baseline:.3f} "
                             f"over {result.clips} clip(s). <i>Residual</i> removes the sonification of the block's most active map "
                             "from the input (paper §4.1); <i>control</i> zeroes a random segment of the same energy.</p>"
                             "<table><tr><th>layer</th><th>residual</th><th>drop</th><th>control</th><th>control drop</th>"
                             f"<th>E<sub>s</sub>/E<sub>x</sub></th></tr>{residual_rows}</table>")
        else:
            residual_html = f"<h2 id=residual>Residual experiment</h2><p>{why}</p>"

    faithfulness_html = ""
    if faith_plan is not None:
        with step("faithfulness of the explanation methods"):
            faithfulness_html, data["faithfulness"] = faith.section(sonifier, faith_plan, waves, names, media, write_pcm16)

    def prediction_cell(clip) -> str:
        p = clip["prediction"]
        return "<td></td>" if p is None else f"<td>{html.escape(p['label'])} {100 * p['score']:.0f} %</td>"

    head = "<th>prediction</th>" if any(c["prediction"] for c in data["clips"]) else ""
    clip_rows = "".join(f"<tr><td>{html.escape(c['name'])}</td><td class=num>{c['samples'] / rate:.2f} s</td><td>{_audio(c['wav'])}</td>"
                        f"{prediction_cell(c) if head else ''}</tr>" for c in data["clips"])
    nav = " ".join(f'<a href="#L{html.escape(str(layer))}">{html.escape(describe_layer(layer))}</a>' for layer in layers)
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class=note>Model {html.escape(model.name)}"
            + (f", width multiplier {model.width_multiplier}" if hasattr(model, "width_multiplier") else "")
            + f", {rate} Hz" + (f", classes {html.escape(', '.join(class_names))}" if class_names else "") + f". For every block, the {top} most active maps of each clip "
            "(largest activation over time) are sonified with the deconvnet (paper §3.2).</p>"
            f"<nav>{nav} <a href=#coherence>coherence</a> <a href=#residual>residual</a>"
            + (" <a href=#faithfulness>faithfulness</a>" if faithfulness_html else "") + "</nav>"
            f"<h2>Clips</h2><table><tr><th>clip</th><th>length</th><th>listen</th>{head}</tr>{clip_rows}</table>"
            + "".join(sections)
            + f"<h2 id=coherence>Coherence per layer</h2><p>Mean top-{coherence_k} magnitude-squared coherence between each clip and "
            "the sonification of its most active map (paper §4.2.1), 95 % t-interval over clips.</p>"
            + ("<img src=\"media/coherence.png\" alt=\"coherence per layer\" style=\"max-width:600px\">"
               if "coherence" in data else "")
            + f"{coherence_note}<table><tr><th>layer</th><th>M<sub>c</sub></th><th>95 % CI</th><th>clips</th></tr>"
            f"{coherence_rows}</table>"
            + residual_html + faithfulness_html + "</body></html>")
    with atomic_path(out_dir / "report.json", suffix=".json") as temporary:
        temporary.write_text(json.dumps(data, indent=1))
    index = out_dir / "index.html"
    with atomic_path(index, suffix=".html") as temporary:
        temporary.write_text(page, encoding="utf-8")
    return index
