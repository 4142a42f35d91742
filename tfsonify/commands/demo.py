"""``tfsonify demo --out DIR``: the main job end to end, on real synthesised and sampled audio.

1. builds the demo dataset (:mod:`tfsonify.data.demo`: keywords from espeak-ng, flite and SVOX Pico,
   instruments, drums, backgrounds, speech-over-background mixtures) into ``DIR/data`` (reused if built);
2. trains a small CNN12 (width 0.25) on the 10-word keyword task with the paper's recipe scaled down
   (AdamW, weight decay 1e-3 not on biases, warm-up then cosine decay, random gain / noise / time-mask
   augmentation plus speed perturbation; mixup optional), resumable (rerun the same command after an
   interruption);
3. evaluates on whole clips: voice variants never seen in training (espeak-ng ``+m3`` and ``+f4`` in every
   accent, the flite voice ``awb``), one whole synthesis engine never seen (SVOX Pico), and the mixtures;
4. saves ``DIR/model.keras`` and ``DIR/results.json``;
5. sonifies the top maps of blocks 1, 4, 8 and 11 for a held-out mixture clip into ``DIR/sonifications``
   (WAVs, spectrogram PNGs, manifest.json), with the mixture's speech and background components.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from tfsonify.commands import progress

LAYERS = (1, 4, 8, 11)


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="build the demo data, train a small CNN12, evaluate, sonify",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    parser.add_argument("--data", default=None, help="demo dataset folder (default: OUT/data; built if missing)")
    from tfsonify.train.demo_config import DEMO_CONFIG  # numpy, no TensorFlow

    config = DEMO_CONFIG
    parser.add_argument("--width", type=float, default=config.width,
                        help=f"CNN12 width multiplier (default {config.width:g})")
    parser.add_argument("--epochs", type=int, default=config.epochs, help=f"training epochs (default {config.epochs})")
    parser.add_argument("--batch-size", type=int, default=config.per_replica_batch_size,
                        help=f"global batch size (default {config.per_replica_batch_size})")
    parser.add_argument("--dropout", type=float, default=config.dropout,
                        help=f"dropout before the embedding (default {config.dropout:g})")
    parser.add_argument("--mixup", type=float, default=config.mixup_alpha, help="mixup alpha (default: off)")
    parser.add_argument("--learning-rate", type=float, default=config.base_learning_rate,
                        help=f"peak learning rate (default {config.base_learning_rate:g})")
    parser.add_argument("--warmup-epochs", type=int, default=config.warmup_epochs,
                        help=f"linear warm-up epochs (default {config.warmup_epochs})")
    parser.add_argument("--held-out-engine", default="auto",
                        help="speech engine never trained on, evaluated whole: espeak-ng, mbrola, flite, festival, rhvoice, "
                             "pico, or 'none' (default auto: the one the data was built with, SVOX Pico)")
    parser.add_argument("--engines", default=None,
                        help="comma-separated speech engines to build the data from (default: every installed one; "
                             "only used when the data is built)")
    parser.add_argument("--top", type=int, default=3, help="maps sonified per layer (default 3)")
    parser.add_argument("--no-xla", action="store_true",
                        help="train without XLA (the train step is XLA-compiled by default: ~1.9x faster on CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no per-step progress bar")
    parser.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    for name in ("epochs", "batch_size", "top"):
        value = getattr(args, name)
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1; received {value}")
    if not 0 < args.width <= 4:
        raise ValueError(f"--width must be in (0, 4]; received {args.width}")
    if not 0 <= args.dropout < 1:
        raise ValueError(f"--dropout must be in [0, 1); received {args.dropout}")
    if args.mixup is not None and not args.mixup > 0:
        raise ValueError(f"--mixup must be > 0 (or left out); received {args.mixup}")
    if not args.learning_rate > 0:
        raise ValueError(f"--learning-rate must be > 0; received {args.learning_rate}")
    if args.engines is not None:
        args.engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    if args.held_out_engine is not None and args.held_out_engine.lower() == "none":
        args.held_out_engine = None
    if not 0 <= args.warmup_epochs < args.epochs:
        raise ValueError(f"--warmup-epochs must be in [0, epochs); received {args.warmup_epochs} with --epochs {args.epochs}")


def choose_mixtures(predicted, labels, snr_db, names) -> list[dict]:
    """Pick the mixtures to sonify and say why: the hardest one, and one with the other outcome.

    Args:
        predicted: predicted class per mixture (int ``[n]``); labels: true class (int ``[n]``);
        snr_db: SNR per mixture in dB; names: tie-break keys (paths), ``[n]``.

    Returns:
        Up to two ``{"index", "role" ("correct"/"misclassified"), "reason"}``: the lowest-SNR mixture
        (whatever its outcome), then the lowest-SNR mixture with the opposite outcome (if any), so a
        correctly classified clip can be heard next to a misclassified one.
    """
    order = sorted(range(len(labels)), key=lambda i: (float(snr_db[i]), str(names[i])))
    if not order:
        return []
    correct = [i for i in order if int(predicted[i]) == int(labels[i])]
    wrong = [i for i in order if int(predicted[i]) != int(labels[i])]
    first = order[0]
    first_ok = int(predicted[first]) == int(labels[first])
    chosen = [{"index": first, "role": "correct" if first_ok else "misclassified",
               "reason": "the lowest-SNR held-out mixture: the hardest case to listen to"
               + ("" if first_ok else ", which the model gets wrong")}]
    other = wrong if first_ok else correct
    if other:
        chosen.append({"index": other[0], "role": "misclassified" if first_ok else "correct",
                       "reason": ("the lowest-SNR mixture the model gets wrong" if first_ok else
                                  "the lowest-SNR mixture the model classifies correctly")
                       + ", to compare with the one above"})
    return chosen


def sonify_mixture(model, data_dir: Path, out_dir: Path, top: int) -> list[dict]:
    """Sonify the top ``top`` maps of blocks 1, 4, 8, 11 of the mixtures :func:`choose_mixtures` picks.

    Each goes to ``out_dir/sonifications/<role>/`` (``correct`` or ``misclassified``); returns their entries.
    """
    import numpy as np

    from tfsonify.io.audio import load_audio, write_wav
    from tfsonify.data.demo import read_demo
    from tfsonify.io.manifest import relative_path, stored_paths
    from tfsonify.io.render import write_sonifications
    from tfsonify.engine.sonifier import Sonifier

    mixtures = read_demo(data_dir, "mixtures")
    waveforms = [load_audio(path, model.sample_rate) for path in mixtures.paths]
    probabilities = [np.asarray(model(w[None], training=False))[0] for w in waveforms]
    predicted = [int(p.argmax()) for p in probabilities]
    root = out_dir / "sonifications"
    if root.exists():
        shutil.rmtree(root)
    sonifier = Sonifier(model)
    entries = []
    for choice in choose_mixtures(predicted, [int(v) for v in mixtures.labels], mixtures.metadata["snr_db"],
                                  [str(p) for p in mixtures.paths]):
        index, path, waveform = choice["index"], mixtures.paths[choice["index"]], waveforms[choice["index"]]
        folder = root / choice["role"]
        folder.mkdir(parents=True)
        for name in ("speech", "background"):
            write_wav(folder / f"component_{name}.wav", load_audio(data_dir / mixtures.metadata[name][index],
                                                                    model.sample_rate), model.sample_rate)
        info = {"model": str(out_dir / "model.keras"), "mixture": str(path), "role": choice["role"],
                "reason": choice["reason"], "word": mixtures.class_names[int(mixtures.labels[index])],
                "predicted": mixtures.class_names[predicted[index]],
                "probability": float(probabilities[index].max()), "snr_db": mixtures.metadata["snr_db"][index],
                "voice": f"{mixtures.metadata['engine'][index]}:{mixtures.metadata['voice'][index]}",
                "components": {"speech": "component_speech.wav", "background": "component_background.wav"}}
        for layer in LAYERS:
            with progress(f"{choice['role']} mixture, block {layer}: sonifying the top {top} maps"):
                features, peaks, sounds = sonifier.sonify_top(waveform, layer, top)
                write_sonifications(folder, waveform, sounds, layer, list(features), list(peaks), sonifier.sample_rate,
                                    source=str(path), extra=info)  # paths stored relative to the manifest
        entries.append({**stored_paths(out_dir, info), "folder": relative_path(folder, out_dir)})  # for results.json
    return entries


def check_held_out_engine(data_dir: Path, engines, held_out_engine) -> None:
    """Fail before any synthesis when the engine choice cannot work (unknown, not installed, nothing left to train on)."""
    from tfsonify.data.demo import check_engines, check_held_out

    manifest_path = data_dir / "manifest.json"
    if manifest_path.is_file():  # the data exists: the engine must be in it, with another engine to train on
        built = sorted({c["engine"] for c in json.loads(manifest_path.read_text())["clips"] if c["task"] == "keywords"})
        if held_out_engine not in (None, "auto"):
            check_held_out(held_out_engine, built, f"the engines of the demo dataset in {data_dir}")
        return
    check_engines(engines, held_out_engine, quiet=True)  # bad names fail here, before any work; the build notes skips


def summary_lines(results: dict, held_out_engine: str | None) -> list[str]:
    """The demo's printed summary: training voices, then held-out voices, held-out engine and mixtures, one line each."""
    lines = []
    def voices(result, limit=None):
        shown = result["voices"][:limit] if limit else result["voices"]
        return ", ".join(shown) + (" ..." if len(shown) < len(result["voices"]) else "")
    if "train" in results:
        r = results["train"]
        lines.append(f"{'training voices (seen)':40s} {100 * r['accuracy']:5.1f} %  ({r['clips']} clips of "
                     f"{', '.join(sorted(r.get('by_engine', {}) or {v.split(':')[0] for v in r['voices']}))})")
    if "heldout_voice" in results:
        r = results["heldout_voice"]
        variants = sorted({v.split(":", 1)[1].split("+")[-1] for v in r["voices"]})
        engines = sorted({v.split(":", 1)[0] for v in r["voices"]})
        lines.append(f"{'held-out voices (never trained on)':40s} {100 * r['accuracy']:5.1f} %  ({r['clips']} clips: "
                     f"{', '.join(engines)} {', '.join('+' + v for v in variants)}, every accent)")
    if "heldout_engine" in results:
        r = results["heldout_engine"]
        lines.append(f"{'held-out engine: ' + str(held_out_engine):40s} {100 * r['accuracy']:5.1f} %  ({r['clips']} clips; "
                     f"{voices(r)})")
    else:
        lines.append(f"{'held-out engine':40s}   n/a    (none held out)")
    if "mixtures" in results:
        r = results["mixtures"]
        by_snr = ", ".join(f"{snr} dB {100 * acc:.0f} %" for snr, acc in r.get("by_snr", {}).items())
        lines.append(f"{'mixtures (held-out voices over music/drums)':40s} {100 * r['accuracy']:5.1f} %  "
                     f"({r['clips']} clips; {by_snr})")
    return lines


def run(args: argparse.Namespace) -> int:
    import keras

    from tfsonify.data.demo import ensure_demo_data
    from tfsonify.train.demo import evaluate, train_keywords
    from tfsonify.models.checkpoint import save_model
    from tfsonify.io.render import check_writable_dir

    _check_args(args)
    started = time.perf_counter()
    out_dir = check_writable_dir(args.out)
    data_dir = Path(args.data) if args.data else out_dir / "data"
    check_held_out_engine(data_dir, args.engines, args.held_out_engine)  # before any synthesis
    ensure_demo_data(data_dir, engines=args.engines, held_out_engine=args.held_out_engine)
    model, splits, train_seconds = train_keywords(
        data_dir, out_dir, width=args.width, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, warmup_epochs=args.warmup_epochs, seed=args.seed,
        dropout=args.dropout, mixup_alpha=args.mixup, verbose=2 if args.quiet else "auto",
        held_out_engine=args.held_out_engine, jit_compile=not args.no_xla)
    held_out_engine = splits.pop("held_out_engine")
    save_model(model, out_dir / "model.keras", class_names=list(splits["train"].class_names))  # shown by every surface
    with progress("evaluating on whole held-out clips"):
        results = evaluate(model, splits, data_dir)
    print(f"\nkeyword accuracy of CNN12(width={args.width:g}) on whole 1 s clips, {args.epochs} epochs, "
          f"{train_seconds / 60:.1f} min of training:")
    for line in summary_lines(results, held_out_engine):
        print("  " + line)
    sonified = sonify_mixture(model, data_dir, out_dir, args.top)
    summary = {"width": args.width, "epochs": args.epochs, "held_out_engine": held_out_engine, "batch_size": args.batch_size,
               "learning_rate": args.learning_rate, "seed": args.seed, "training_seconds": train_seconds,
               "total_seconds": time.perf_counter() - started, "parameters": int(model.count_params()),
               "keras_version": keras.__version__,
               "results": {k: {key: v[key] for key in ("accuracy", "clips", "voices", "per_class_accuracy", "by_engine", "by_snr")
                               if key in v}
                           for k, v in results.items()},
               "sonified": sonified}
    (out_dir / "results.json").write_text(json.dumps(summary, indent=2))
    print("\nsonified mixtures (top maps of blocks " + ", ".join(map(str, LAYERS)) + "):")
    for entry in sonified:
        verdict = "correctly classified" if entry["role"] == "correct" else "MISCLASSIFIED"
        print(f"  {entry['folder']}/: {entry['word']!r} ({entry['voice']}) at {entry['snr_db']:g} dB SNR, "
              f"predicted {entry['predicted']!r} (p={entry['probability']:.2f}), {verdict}; chosen as {entry['reason']}")
    print(f"results in {out_dir}/: model.keras, results.json, sonifications/{{correct,misclassified}}/ (manifest.json, WAVs, spectrogram PNGs), "
          f"training/ (checkpoints, TensorBoard logs: tensorboard --logdir {out_dir / 'training' / 'logs'}) "
          f"[{(time.perf_counter() - started) / 60:.1f} min]")
    return 0
