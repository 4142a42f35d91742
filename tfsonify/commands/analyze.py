"""``tfsonify analyze {coherence,residual,invariance,evolution,topk,mixture,relevance} ...``: the paper's analyses from the shell."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tfsonify.commands import beam_options, load_model, progress


def audio_files(paths: list[str]) -> list[Path]:
    """Expand files and folders (recursively, sorted) into audio file paths; ``ValueError`` if none."""
    from tfsonify.io.audio import AUDIO_EXTENSIONS

    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS))
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"clip {name!r} is neither an audio file nor a folder")
    if not files:
        raise ValueError(f"no audio files (.wav .flac .ogg .mp3) found in {paths}")
    return files


def load_clips(paths: list[str], sample_rate: int) -> tuple[list[str], list[np.ndarray]]:
    from tfsonify.io.audio import load_audio

    files = audio_files(paths)
    with progress(f"reading {len(files)} clip(s)"):
        return [str(f) for f in files], [load_audio(f, sample_rate) for f in files]


def parse_layers(text: str | None) -> list[int | str] | None:
    """``"1,4,8-11"`` -> ``[1, 4, 8, 9, 10, 11]``; layer names stay names (``"conv4_pool,6"`` ->
    ``["conv4_pool", 6]``); None -> all blocks."""
    if not text:
        return None
    layers: list[int | str] = []
    try:
        for part in text.split(","):
            part = part.strip()
            low, _, high = part.partition("-")
            if not low.isdecimal() or (high and not high.isdecimal()):
                if not part or part[0].isdecimal():
                    raise ValueError(part)
                layers.append(part)  # a layer name (the analyses check it against the model)
                continue
            layers.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        raise ValueError(f"--layers must look like 1,4,8-11 or name layers (conv4,conv6_pool); received {text!r}") from None
    return layers


def _layer_arg(text: str) -> int | str:
    """``--layer``: a block index or a layer name."""
    return int(text) if text.isdecimal() else text


def _common(parser, model: bool = True, clips: bool = True) -> None:
    if clips:
        parser.add_argument("clips", nargs="+", help="audio files or folders (searched recursively)")
    if model:
        parser.add_argument("--model", required=True, help="a .keras file: a tfsonify CNN12, CREPE or your own Keras CNN")
    parser.add_argument("--layers", default=None, help="blocks or layer names, e.g. 1,4,8-11 or conv4_pool (default all blocks)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per forward pass (default 8)")


def register(subparsers) -> None:
    parser = subparsers.add_parser("analyze", help="coherence, residual, invariance, evolution, top-k and mixture analyses",
                                   description="The paper's analyses (§3.3-4.2, Appendix B) and the mixture check.")
    commands = parser.add_subparsers(dest="analysis", metavar="ANALYSIS")
    commands.required = True

    p = commands.add_parser("coherence", help="mean top-k MSC of input vs. most active map's sonification per layer (Fig. 7)")
    p.add_argument("clips", nargs="+", help="audio files or folders")
    p.add_argument("--model", required=True, action="append",
                   help="LABEL=MODEL.keras (or MODEL.keras); repeat to compare models on one plot")
    p.add_argument("--layers", default=None, help="blocks, e.g. 1,4,8-11 (default all)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--k", type=int, default=5, help="most coherent frequencies averaged (default 5)")
    p.add_argument("--nperseg", type=int, default=256, help="Welch segment length in samples (default 256)")
    p.add_argument("--out", required=True, help="folder for coherence.png and coherence_<label>.json")
    beam_options.add_arguments(p)
    p.set_defaults(func=run_coherence)

    p = commands.add_parser("residual", help="metric drop when the most active map's sonification is removed (Fig. 6)")
    _common(p)
    p.add_argument("--metric", choices=["agreement", "cosine", "accuracy", "map"], default=None,
                   help="agreement (default with a head), cosine (default without), accuracy or map (need --labels)")
    p.add_argument("--labels", default=None, help="JSON file: a list with one label per clip (int, or multi-hot list for map)")
    p.add_argument("--no-control", action="store_true", help="skip the random equal-energy segment control")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write residual.json here")
    p.set_defaults(func=run_residual)

    p = commands.add_parser("invariance", help="check sonify(shifted x) == shifted sonify(x) (Fig. B.3)")
    p.add_argument("clip", help="one audio file")
    p.add_argument("--model", required=True)
    p.add_argument("--layer", type=_layer_arg, required=True, help="block index or layer name")
    p.add_argument("--feature", type=int, default=None, help="map (default the most active)")
    p.add_argument("--shifts", default=None, help="comma-separated sample shifts (default: pool period, twice it, +1, 3)")
    p.set_defaults(func=run_invariance)

    p = commands.add_parser("evolution", help="sonify fixed maps at every checkpoint (§3.4, Fig. 5)")
    p.add_argument("clips", nargs="+", help="audio files or folders to pick each map's best clip from")
    p.add_argument("--checkpoints", nargs="+", required=True, help=".keras checkpoints in training order (last picks the clips)")
    p.add_argument("--map", action="append", required=True, help="LAYER:FEATURE (block index or layer name); repeat")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", required=True, help="folder for one strip PNG and WAVs per map")
    p.set_defaults(func=run_evolution)

    p = commands.add_parser("topk", help="stream a dataset once; sonify each map's top-k clips (§3.3)")
    _common(p)
    p.add_argument("--k", type=int, default=3, help="clips kept per map (default 3)")
    p.add_argument("--maps-per-layer", type=int, default=4,
                   help="sonify this many maps per block, those with the highest top-1 activation (default 4; 0 = all)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--out", required=True)
    beam_options.add_arguments(p)
    p.set_defaults(func=run_topk)

    p = commands.add_parser("relevance", help="guided-backprop and spectral relevance of an output unit (Muckenhirn et al.)")
    p.add_argument("clip", help="one audio file at least as long as the model's receptive field")
    p.add_argument("--model", required=True)
    p.add_argument("--unit", type=int, default=None, help="output unit, or with --layer the map (default the largest)")
    p.add_argument("--layer", type=_layer_arg, default=None,
                   help="relevance of this layer's map (sum over time) instead of an output unit (block index or name)")
    p.add_argument("--out", required=True, help="folder for relevance.wav, relevance.png and relevance.json")
    p.set_defaults(func=run_relevance)

    p = commands.add_parser("mixture", help="maps whose sonifications keep speech and drop background (demo mixtures)")
    p.add_argument("--model", required=True)
    p.add_argument("--demo", required=True, help="demo data folder from tfsonify build-demo-data (uses its mixtures)")
    p.add_argument("--limit", type=int, default=None, help="use at most this many mixtures")
    p.add_argument("--layers", default=None)
    p.add_argument("--candidates", type=int, default=8, help="most active maps scored per mixture and block")
    p.add_argument("--top", type=int, default=5, help="best maps listed per block")
    p.add_argument("--min-count", type=int, default=3, help="list only maps scored on at least this many mixtures (default 3)")
    p.add_argument("--out", default=None, help="also write mixture.json here")
    p.set_defaults(func=run_mixture)


def _write_json(out: str | None, name: str, data) -> None:
    if out is None:
        return
    from tfsonify.io.audio import atomic_path
    from tfsonify.io.render import check_writable_dir

    folder = check_writable_dir(out)
    with atomic_path(folder / name, suffix=".json") as temporary:
        temporary.write_text(json.dumps(data, indent=1))


def run_coherence(args: argparse.Namespace) -> int:
    from tfsonify.analysis.coherence import layer_coherence, plot_coherence
    from tfsonify.io.render import check_writable_dir
    from tfsonify.engine.sonifier import Sonifier

    out = check_writable_dir(args.out)
    results = {}
    for spec in args.model:
        label, _, path = spec.rpartition("=") if "=" in spec else (Path(spec).stem, "", spec)
        if args.runner:  # the same measurement as a Beam pipeline (tfsonify.analysis.beam)
            from tfsonify.analysis.beam import run_coherence as run_on_beam

            options = beam_options.options(args)
            with progress(f"{label}: coherence on {args.runner}"):
                result, _, dead = run_on_beam(beam_options.clip_patterns(args.clips), path, str(out), label,
                                              parse_layers(args.layers), args.k, args.nperseg, args.batch_size, options)
            print(f"{label}:\n{result.table()}\n{len(dead)} clip(s) in the dead letter ({out}/dead_letter-00000-of-00001.jsonl)")
            results[label] = result
            continue
        sonifier = Sonifier(load_model(path, any_model=True))
        names, clips = load_clips(args.clips, sonifier.sample_rate)
        with progress(f"{label}: coherence over {len(clips)} clip(s)"):
            result = layer_coherence(sonifier, clips, parse_layers(args.layers), k=args.k, nperseg=args.nperseg, batch_size=args.batch_size)
        result.to_json(out / f"coherence_{label}.json")
        print(f"{label}:\n{result.table()}")
        results[label] = result
    plot_coherence(results, out / "coherence.png")
    print(f"wrote {out}/coherence.png")
    return 0


def run_residual(args: argparse.Namespace) -> int:
    from tfsonify.analysis.residual import residual_experiment

    from tfsonify.models.metadata import sample_rate_of

    model = load_model(args.model, any_model=True)
    _, clips = load_clips(args.clips, sample_rate_of(model))
    labels = None
    if args.labels:
        try:
            labels = json.loads(Path(args.labels).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read --labels {args.labels!r} as a JSON list: {error}") from None
    from tfsonify.models.metadata import class_names_of

    has_head = bool(getattr(model, "num_classes", None) or class_names_of(model))  # CNN12's head or stored class names
    metric = args.metric or ("agreement" if has_head else "cosine")
    with progress(f"residual experiment ({metric}) on {len(clips)} clip(s)"):
        result = residual_experiment(model, clips, labels, parse_layers(args.layers), metric=metric, control=not args.no_control,
                                     seed=args.seed, batch_size=args.batch_size)
    print(result.table())
    _write_json(args.out, "residual.json", {"metric": result.metric, "baseline": result.baseline, "layers": result.layers,
                                            "residual": result.residual, "drop": result.drop, "control": result.control,
                                            "control_drop": result.control_drop, "energy_ratio": result.energy_ratio,
                                            "clips": result.clips, "skipped": result.skipped})
    return 0


def run_invariance(args: argparse.Namespace) -> int:
    from tfsonify.analysis.invariance import pool_period, time_invariance
    from tfsonify.io.audio import load_audio
    from tfsonify.engine.sonifier import Sonifier

    sonifier = Sonifier(load_model(args.model, any_model=True))
    waveform = load_audio(args.clip, sonifier.sample_rate)
    period = pool_period(args.layer, sonifier)  # the layer's stride in input samples
    try:
        shifts = [int(s) for s in args.shifts.split(",")] if args.shifts else [period, 2 * period, period + 1, 3]
    except ValueError:
        raise ValueError(f"--shifts must be comma-separated integers; received {args.shifts!r}") from None
    checks = time_invariance(sonifier, waveform, args.layer, args.feature, shifts)
    what = f"layer {args.layer!r}" if isinstance(args.layer, str) else f"block {args.layer}"
    print(f"{what}: pool period (stride) {period} samples")
    print(f"{'shift':>6}  {'aligned':>7}  {'peak kept':>9}  {'max error':>10}  {'rel. RMS':>9}  samples")
    for c in checks:
        print(f"{c.shift:>6}  {str(c.aligned):>7}  {str(c.peak_kept):>9}  {c.max_error:10.3g}  {c.relative_rms_error:9.3g}  {c.compared_samples}")
    return 0


def run_evolution(args: argparse.Namespace) -> int:
    from tfsonify.analysis.evolution import feature_evolution, plot_evolution_strip
    from tfsonify.io.audio import write_wav
    from tfsonify.io.render import check_writable_dir

    out = check_writable_dir(args.out)
    from tfsonify.analysis.sonify_dataset import layer_tag
    from tfsonify.models.metadata import sample_rate_of

    maps = []
    for text in args.map:
        layer, _, feature = text.rpartition(":")
        if not layer or not feature.isdecimal():
            raise ValueError(f"--map must be LAYER:FEATURE like 5:12 or conv4:3; received {text!r}")
        maps.append((_layer_arg(layer), int(feature)))
    for path in args.checkpoints:
        if Path(path).is_dir():
            raise ValueError(f"checkpoint {path!r} is a directory, not a .keras file")
        if not Path(path).is_file():
            raise ValueError(f"checkpoint {path!r} does not exist")
    final = load_model(args.checkpoints[-1], any_model=True)  # its rate reads the clips
    names, clips = load_clips(args.clips, sample_rate_of(final))
    with progress(f"sonifying {len(maps)} map(s) at {len(args.checkpoints)} checkpoint(s)"):
        result = feature_evolution(list(args.checkpoints[:-1]) + [final], clips, maps, batch_size=args.batch_size,
                                   labels=[Path(path).stem for path in args.checkpoints])
    manifest = []
    for i, (layer, feature) in enumerate(result.maps):
        stem = f"{layer_tag(layer)}_f{feature:04d}"
        plot_evolution_strip(result, i, out / f"{stem}_evolution.png")
        write_wav(out / f"{stem}_input.wav", result.inputs[i], result.sample_rate)
        for label, sound in zip(result.labels, result.sonifications[i]):
            write_wav(out / f"{stem}_{label}.wav", sound, result.sample_rate)
        manifest.append({"layer": layer, "feature": feature, "clip": names[result.clip_ids[i]], "checkpoints": result.labels,
                         "activations": result.activations[i].tolist(), "strip": f"{stem}_evolution.png"})
    _write_json(str(out), "evolution.json", manifest)
    print(f"wrote {len(maps)} strip(s) to {out}/")
    return 0


def run_topk(args: argparse.Namespace) -> int:
    import numpy as np
    from tfsonify.analysis.topk import sonify_top_inputs, top_activating_inputs
    from tfsonify.io.render import check_writable_dir, write_sonifications
    from tfsonify.engine.sonifier import Sonifier

    out = check_writable_dir(args.out)
    if args.runner:  # stream on a Beam runner; only the few top clips are read again here to sonify them
        from tfsonify.analysis.beam import _sonifier as beam_sonifier, clip_reader, run_topk as run_on_beam

        sonifier = beam_sonifier(args.model)  # the driver's copy the pipeline checks arguments with
        with progress(f"top {args.k} per map on {args.runner}"):
            beam_result = run_on_beam(beam_options.clip_patterns(args.clips), args.model, str(out), parse_layers(args.layers),
                                      args.k, args.batch_size, beam_options.options(args))
        result, names = beam_result.result, beam_result.names
        clips = clip_reader(names, sonifier.sample_rate)
        print(f"{len(beam_result.dead_letter)} clip(s) in the dead letter ({out}/dead_letter-00000-of-00001.jsonl)")
    else:
        sonifier = Sonifier(load_model(args.model, any_model=True))
        names, clips = load_clips(args.clips, sonifier.sample_rate)
        with progress(f"streaming {len(clips)} clip(s) for the top {args.k} per map"):
            result = top_activating_inputs(sonifier, clips, parse_layers(args.layers), k=args.k, batch_size=args.batch_size)
    summary = {}
    for layer, ids in result.ids.items():
        order = np.argsort(-result.scores[layer][:, 0], kind="stable")
        features = order if args.maps_per_layer <= 0 else order[: args.maps_per_layer]
        what = f"layer {layer!r}" if isinstance(layer, str) else f"block {layer}"
        with progress(f"{what}: sonifying {len(features)} map(s) x {args.k} clip(s)"):
            for entry in sonify_top_inputs(sonifier, result, clips, layer, [int(f) for f in features]):
                tag = f"L{layer:02d}" if isinstance(layer, int) else str(layer)
                folder = out / f"{tag}_f{entry['feature']:04d}_rank{entry['rank']}"
                write_sonifications(folder, entry["input"], entry["sonification"][None], layer, [entry["feature"]],
                                    [entry["activation"]], sonifier.sample_rate, source=names[entry["clip"]], plots=not args.no_plots)
        summary[str(layer)] = {"ids": ids.tolist(), "scores": result.scores[layer].tolist(), "skipped": result.skipped[layer]}
    if not args.runner:  # the pipeline wrote topk.json (its "clips" lists only the clips in some top-k)
        _write_json(str(out), "topk.json", {"k": result.k, "clips": names, "layers": summary})
    print(f"wrote top-{args.k} sonifications to {out}/ (topk.json)")
    return 0


def run_mixture(args: argparse.Namespace) -> int:
    from tfsonify.analysis.mixture import load_demo_mixtures, mixture_check
    from tfsonify.engine.sonifier import Sonifier

    from tfsonify.models.metadata import sample_rate_of

    model = load_model(args.model, any_model=True)
    sonifier = Sonifier(model, sample_rate=sample_rate_of(model))
    with progress(f"reading mixtures from {args.demo}"):
        mixtures = load_demo_mixtures(args.demo, args.limit, sample_rate=sonifier.sample_rate)
    with progress(f"scoring {len(mixtures)} mixture(s)"):
        result = mixture_check(sonifier, mixtures, parse_layers(args.layers), candidates=args.candidates,
                               min_count=args.min_count)
    print(result.table(args.top))
    _write_json(args.out, "mixture.json", {"mixtures": result.mixtures, "skipped": result.skipped,
                                           "best": {str(layer): [m.__dict__ for m in maps[: args.top]] for layer, maps in result.best.items()}})
    return 0


def run_relevance(args: argparse.Namespace) -> int:
    import numpy as np
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tfsonify.io.audio import atomic_path, load_audio, write_wav
    from tfsonify.explain.relevance import (cumulative_frequency_response, guided_backprop, short_time_spectral_relevance,
                                    spectral_relevance)
    from tfsonify.io.render import check_writable_dir, log_spectrogram

    out = check_writable_dir(args.out)
    from tfsonify.models.metadata import sample_rate_of

    model = load_model(args.model, any_model=True)
    rate = sample_rate_of(model)
    waveform = load_audio(args.clip, rate)
    fixed = model.inputs[0].shape[1]
    if args.layer is None and fixed is not None and waveform.size > fixed:  # e.g. CREPE's 1024-sample frame
        print(f"the model takes {fixed}-sample inputs: relevance of the clip's first {fixed} samples "
              f"(pass --layer for a feature map of the whole clip)")
        waveform = waveform[:fixed]
    relevance, unit = guided_backprop(model, waveform, args.unit, layer=args.layer)
    freqs, spectral = spectral_relevance(relevance, rate)
    _, input_spectrum = spectral_relevance(waveform, rate)
    st_freqs, st_times, st_relevance = short_time_spectral_relevance(relevance, rate)
    cum_freqs, cumulative = cumulative_frequency_response(model, sample_rate=rate)
    peak = float(np.max(np.abs(relevance)))
    write_wav(out / "relevance.wav", relevance / peak * 0.9 if peak > 0 else relevance, rate)
    figure, axes = plt.subplots(3, 1, figsize=(7, 7), constrained_layout=True)
    axes[0].semilogy(freqs, input_spectrum / input_spectrum.max(), label="input |DFT|", alpha=0.7)
    axes[0].semilogy(freqs, spectral / max(spectral.max(), 1e-30), label="spectral relevance |DFT^-1 f|", alpha=0.7)
    axes[0].semilogy(cum_freqs, cumulative / cumulative.max(), label="conv1 cumulative response (Eq. 1)")
    axes[0].set_xlabel("Hz")
    axes[0].legend(fontsize=7)
    for axis, (f, t, db), label in ((axes[1], log_spectrogram(waveform, rate), "input"),
                                    (axes[2], (st_freqs, st_times, 20 * np.log10(st_relevance.T + 1e-30)), "short-time spectral relevance")):
        axis.pcolormesh(t, f / 1000, db, shading="auto", vmin=db.max() - 80, vmax=db.max(), cmap="magma")
        axis.set_ylabel("kHz")
        axis.set_title(label, fontsize=9, loc="left")
    axes[2].set_xlabel("time (s)")
    target = f"output unit {int(unit)}" if args.layer is None else f"map {int(unit)} of {args.layer}"
    figure.suptitle(f"guided backprop of {target}", fontsize=10)
    with atomic_path(out / "relevance.png", suffix=".png") as temporary:
        figure.savefig(temporary, dpi=90, format="png")
    plt.close(figure)
    from scipy.signal import find_peaks

    peaks, _ = find_peaks(spectral, distance=max(1, int(round(50.0 / (freqs[1] - freqs[0])))))  # peaks >= 50 Hz apart
    top = freqs[peaks[np.argsort(-spectral[peaks])][:5]]
    _write_json(str(out), "relevance.json", {"unit": int(unit), "layer": args.layer, "peak_frequencies_hz": [float(f) for f in top],
                                             "spectral_centroid_hz": float((freqs * spectral).sum() / max(spectral.sum(), 1e-30))})
    print(f"{target}: spectral relevance peaks at {', '.join(f'{f:.0f}' for f in top)} Hz; wrote {out}/relevance.png")
    return 0
