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

import numpy as np

from tfsonify.commands import progress

LAYERS = (1, 4, 8, 11)


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="build the demo data, train a small CNN12, evaluate, sonify",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    parser.add_argument("--data", default=None, help="demo dataset folder (default: OUT/data; built if missing)")
    parser.add_argument("--width", type=float, default=0.25, help="CNN12 width multiplier (default 0.25)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    parser.add_argument("--batch-size", type=int, default=16, help="global batch size (default 16)")
    parser.add_argument("--dropout", type=float, default=0.1, help="dropout before the embedding (default 0.1)")
    parser.add_argument("--mixup", type=float, default=None, help="mixup alpha (default: off)")
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    parser.add_argument("--warmup-epochs", type=int, default=1, help="linear warm-up epochs (default 1)")
    parser.add_argument("--top", type=int, default=3, help="maps sonified per layer (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no per-step progress bar")
    parser.set_defaults(func=run)


class DemoAugment:
    """Speed perturbation (0.85-1.15) then the paper's gain / Gaussian noise / time-mask chain, per batch."""

    def __init__(self):
        from tfsonify.data.augment import Augmenter

        self.augmenter = Augmenter(gain_db=(-6, 6), noise_snr_db=(20, 40), mask_fraction=0.1)

    def __call__(self, waves, seed):
        from tfsonify.data.augment import _seed, _split, speed_perturb

        seeds = _split(_seed(seed), 2)
        return self.augmenter(speed_perturb(waves, seeds[0]), seeds[1])


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
    if not 0 <= args.warmup_epochs < args.epochs:
        raise ValueError(f"--warmup-epochs must be in [0, epochs); received {args.warmup_epochs} with --epochs {args.epochs}")


def ensure_demo_data(data_dir: Path) -> Path:
    """Build the demo dataset into ``data_dir`` unless a complete one (manifest.json) is already there."""
    from tfsonify.data.demo import build_demo_data

    if (data_dir / "manifest.json").is_file():
        print(f"using the demo dataset in {data_dir}/ (delete it to rebuild)", flush=True)
        return data_dir
    try:
        build_demo_data(data_dir)
    except RuntimeError as error:  # a missing Debian package: the message has the apt-get line
        raise ValueError(str(error)) from None
    return data_dir


def train_keywords(data_dir: Path, out_dir: Path, *, width: float, epochs: int, batch_size: int,
                   learning_rate: float, warmup_epochs: int, seed: int, dropout: float = 0.1,
                   mixup_alpha: float | None = None, verbose: int | str = "auto"):
    """Train CNN12(width) on the demo keyword task; return ``(model, decoded_splits, training_seconds)``.

    Training clips are the demo manifest's ``split == "train"`` keywords (espeak-ng voice variants other
    than m3/f4, flite kal/rms/slt); clips are 1 s at 8 kHz, so no cropping. Checkpoints, BackupAndRestore
    state and TensorBoard logs go to ``out_dir/training``.
    """
    import keras

    from tfsonify.cnn12 import CNN12
    from tfsonify.data.demo import read_demo
    from tfsonify.data.pipeline import decode_clips, training_dataset
    from tfsonify.train.supervised import compile_classifier, fit

    with progress("decoding the keyword clips (cached after the first run)"):
        decoded = decode_clips(read_demo(data_dir, "keywords"), cache_dir=data_dir / ".cache", verbose=False)
    splits = {name: decoded.select("split", [name]) for name in ("train", "heldout_voice", "heldout_engine")}
    if len(splits["train"]) == 0:
        raise ValueError(f"the demo dataset in {data_dir} has no training keyword clips")
    train = splits["train"]
    steps_per_epoch = len(train) // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"--batch-size {batch_size} is larger than the {len(train)} training clips")
    dataset = training_dataset(train, batch_size, augment=DemoAugment(), mixup_alpha=mixup_alpha, seed=seed,
                               one_hot=True)
    keras.utils.set_random_seed(seed)
    model = CNN12(width_multiplier=width, num_classes=train.num_classes, dropout=dropout)
    compile_classifier(model, multi_label=False, learning_rate=learning_rate, steps_per_epoch=steps_per_epoch,
                       epochs=epochs, warmup_epochs=warmup_epochs, jit_compile=False)
    print(f"training CNN12(width={width:g}, {model.count_params():,} parameters) on {len(train)} clips "
          f"({', '.join(train.class_names)}): {epochs} epochs x {steps_per_epoch} steps of {batch_size}", flush=True)
    started = time.perf_counter()
    fit(model, dataset, epochs=epochs, out_dir=out_dir / "training", verbose=verbose)
    return model, splits, time.perf_counter() - started


def _describe_split(clips) -> str:
    voices = sorted({f"{engine}:{voice}" for engine, voice in zip(clips.metadata["engine"], clips.metadata["voice"])})
    return f"{len(clips)} clips, voices {', '.join(voices[:6])}{' ...' if len(voices) > 6 else ''}"


def evaluate(model, splits: dict, data_dir: Path) -> dict:
    """Whole-clip accuracy on every held-out split (and the mixtures); prints one line each."""
    from tfsonify.data.demo import read_demo
    from tfsonify.data.pipeline import decode_clips
    from tfsonify.train.supervised import evaluate_clips

    results = {}
    try:
        splits = {**splits, "mixtures": decode_clips(read_demo(data_dir, "mixtures"), verbose=False)}
    except ValueError:
        pass
    for name, clips in splits.items():
        if len(clips) == 0:
            continue
        result = evaluate_clips(model, clips.dataset(), multi_label=False, class_names=clips.class_names)
        result["voices"] = sorted({f"{e}:{v}" for e, v in zip(clips.metadata["engine"], clips.metadata["voice"])})
        engines = sorted(set(clips.metadata["engine"]))
        if len(engines) > 1:
            result["by_engine"] = {engine: evaluate_clips(model, clips.select("engine", [engine]).dataset(),
                                                          multi_label=False)["accuracy"] for engine in engines}
        results[name] = result
    return results


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
    from tfsonify.audio import load_audio, write_wav
    from tfsonify.data.demo import read_demo
    from tfsonify.render import write_sonifications
    from tfsonify.sonifier import Sonifier

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
        info = {"model": "../../model.keras", "mixture": str(path), "role": choice["role"], "reason": choice["reason"],
                "folder": f"sonifications/{choice['role']}",
                "word": mixtures.class_names[int(mixtures.labels[index])],
                "predicted": mixtures.class_names[predicted[index]],
                "probability": float(probabilities[index].max()), "snr_db": mixtures.metadata["snr_db"][index],
                "voice": f"{mixtures.metadata['engine'][index]}:{mixtures.metadata['voice'][index]}",
                "components": {"speech": "component_speech.wav", "background": "component_background.wav"}}
        for layer in LAYERS:
            with progress(f"{choice['role']} mixture, block {layer}: sonifying the top {top} maps"):
                features, peaks, sounds = sonifier.sonify_top(waveform, layer, top)
                write_sonifications(folder, waveform, sounds, layer, list(features), list(peaks), sonifier.sample_rate,
                                    source=f"demo mixture {path.name}", extra=info)
        entries.append(info)
    return entries


def run(args: argparse.Namespace) -> int:
    import keras

    from tfsonify.render import check_writable_dir

    _check_args(args)
    started = time.perf_counter()
    out_dir = check_writable_dir(args.out)
    data_dir = Path(args.data) if args.data else out_dir / "data"
    ensure_demo_data(data_dir)
    model, splits, train_seconds = train_keywords(
        data_dir, out_dir, width=args.width, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, warmup_epochs=args.warmup_epochs, seed=args.seed,
        dropout=args.dropout, mixup_alpha=args.mixup, verbose=2 if args.quiet else "auto")
    model.save(out_dir / "model.keras")
    with progress("evaluating on whole held-out clips"):
        results = evaluate(model, splits, data_dir)
    titles = {"train": "training voices (seen)", "heldout_voice": "held-out voice variants (never trained on)",
              "heldout_engine": "held-out synthesis engine (never trained on)",
              "mixtures": "held-out voices over backgrounds (mixtures, 0-20 dB SNR)"}
    print(f"\nkeyword accuracy of CNN12(width={args.width:g}) on whole 1 s clips, {args.epochs} epochs, "
          f"{train_seconds / 60:.1f} min of training:")
    for name, result in results.items():
        shown = result["voices"] if name != "train" else result["voices"][:8]  # held-out voices: name them all
        voices = ", ".join(shown) + (" ..." if len(shown) < len(result["voices"]) else "")
        print(f"  {titles.get(name, name):58s} {100 * result['accuracy']:5.1f} %  ({result['clips']} clips; {voices})")
        for engine, accuracy in result.get("by_engine", {}).items():
            engine_voices = ", ".join(sorted({v.split(":", 1)[1].split("+")[-1] for v in result["voices"]
                                              if v.startswith(engine + ":")}))
            print(f"    {engine + ' (' + engine_voices + ')':56s} {100 * accuracy:5.1f} %")
    sonified = sonify_mixture(model, data_dir, out_dir, args.top)
    summary = {"width": args.width, "epochs": args.epochs, "batch_size": args.batch_size,
               "learning_rate": args.learning_rate, "seed": args.seed, "training_seconds": train_seconds,
               "total_seconds": time.perf_counter() - started, "parameters": int(model.count_params()),
               "keras_version": keras.__version__,
               "results": {k: {key: v[key] for key in ("accuracy", "clips", "voices", "per_class_accuracy", "by_engine")
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
