"""tfsonify's deletion curves against Quantus's PixelFlipping on the same model, clips and explanations (issue 24).

Quantus 0.6's TensorFlow extra pins ``keras<3``, so Quantus cannot take a Keras 3 model. Here it sees the model
through a ``torch.nn.Module`` whose input is a time-frequency *keep-mask* ``[n, 1, frames, bins]`` (all ones for
the clip as it is) and whose forward filters each clip with tfsonify's STFT mask
(:meth:`tfsonify.explain.spectral.Spectral.apply_mask`) and runs the Keras model, returning class probabilities
(softmax head) or logits. Quantus's PixelFlipping then does its own bookkeeping: order the bins by the
explanation's relevance map (:func:`tfsonify.explain.spectral.relevance_map`), set ``features_in_step`` of them to
0 per step, read the target's output, integrate. What is compared is therefore the *metric* — deletion order,
counts per step, replacement value, curve, area — not a second implementation of the model or of the STFT.

Conventions differ and are converted, not hidden: tfsonify's curve starts at fraction 0 (nothing deleted) and its
area is the trapezoid over fractions 0..1; Quantus's curve starts after the first step and its area is the
trapezoid with ``dx = 1`` over steps 1..S. So tfsonify ``deletion[:, 1:]`` must equal Quantus's curve, and
``S * auc_tfsonify == auc_quantus + (c_0 + c_1) / 2`` with ``c_k`` tfsonify's curve at step ``k``. Quantus orders
with ``np.argsort`` (not stable): bins of exactly equal relevance may be deleted in another order than tfsonify's
stable one; the table reports how many relevance maps have ties at a step boundary.

Usage (Quantus in the environment: ``python -m pip install quantus``, its base install)::

    python benchmarks/faithfulness_quantus.py [--model M.keras --data DEMO_DATA] [--clips 16] [--steps 20]

Without ``--model``: a small CNN with a softmax head trained here for a few seconds on espeak-ng keywords, or
failing that the tests' small classifier (logits; curves divided by the clip's score, as tfsonify does).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

METHODS = ("sonification", "guided_backprop", "gradient", "gradient_x_input", "integrated_gradients", "nmf",
           "occlusion_band")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a trained keyword model (.keras), e.g. tfsonify demo's")
    parser.add_argument("--data", default=None, help="with --model: its demo dataset (the held-out mixtures)")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--steps", type=int, default=None,
                        help="deletion steps; must divide frames x bins (default: the divisor nearest 20)")
    args = parser.parse_args()
    try:
        import quantus
        import torch
    except ImportError as error:
        print(f"needs quantus and torch: python -m pip install quantus ({error})")
        return 2

    from tfsonify.explain.methods import explain
    from tfsonify.explain.metrics import deletion_insertion
    from tfsonify.explain.spectral import relevance_map, spectral_for
    from tfsonify.explain.targets import Target, explained

    if args.model:
        from faithfulness_bench import demo_mixtures

        from tfsonify.models.checkpoint import load_checkpoint

        model = load_checkpoint(args.model)
        clips = demo_mixtures(Path(args.data), model)[0]
        clips = clips[np.linspace(0, len(clips) - 1, args.clips).round().astype(int)]
        described = f"{args.model} on {len(clips)} of its held-out demo mixtures (1 s, 8 kHz)"
    else:
        from explain_models import small_classifier

        model = small_classifier(0, length=None)
        clips = np.random.default_rng(0).standard_normal((args.clips, 4000)).astype("float32")
        described = f"the tests' small classifier (logits) on {len(clips)} noise clips of 4,000 samples"
    state = explained(model)
    spectral = spectral_for(state.sample_rate)
    target = Target.unit("top")
    batch = state.check_clips(clips, target)
    z = state.scale(batch)  # what the model sees; explanation.inputs
    index = state.indices(target, z)
    fixed = Target(None, index)
    frames, bins = spectral.frames(z.shape[1]), spectral.n_fft // 2 + 1
    size = frames * bins
    if args.steps is None:
        args.steps = min((s for s in range(2, 101) if size % s == 0), key=lambda s: abs(s - 20), default=1)
    if size % args.steps:
        divisors = [s for s in range(2, 65) if size % s == 0]
        raise SystemExit(f"--steps {args.steps} does not divide the {frames} x {bins} = {size} bins; try one of {divisors}")
    softmax = state.activation != "none"

    class MaskedModel(torch.nn.Module):
        """Keep-mask ``[n, 1, frames, bins]`` -> the Keras model's outputs ``[n, classes]`` on the masked clips."""

        def forward(self, mask):  # noqa: D401 - torch's name
            masks = mask.detach().cpu().numpy()[:, 0]
            waves = np.concatenate([spectral.apply_mask(z[i : i + 1], masks[i : i + 1]) for i in range(len(masks))])
            logits = state.run_all(target, waves)
            out = np.exp(logits - logits.max(axis=1, keepdims=True)) if softmax else logits
            return torch.from_numpy((out / out.sum(axis=1, keepdims=True) if softmax else out).astype(np.float32))

    net = MaskedModel().eval()
    ones = np.ones((len(z), 1, frames, bins), np.float32)
    reference = state.run("score", fixed, z, index)
    print(f"# {described}; target: the predicted class; {args.steps} deletion steps of {size // args.steps} of "
          f"{frames} x {bins} bins; curves: {'probability' if softmax else 'logit / the clip logit'}")
    print(f"# quantus {quantus.__version__}, torch {torch.__version__}\n")
    print("| method | max abs curve diff | same, ties broken as tfsonify | tfsonify AUC x S | Quantus AUC (ties broken) + (c0+c1)/2 "
          "| maps with ties at a step edge | s |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for method in METHODS:
        started = time.perf_counter()
        explanation = explain(method, state, batch, fixed, spectral=spectral)
        assert np.array_equal(explanation.inputs, z)
        ours = deletion_insertion(state, explanation, args.steps)
        relevance = relevance_map(explanation, spectral)[:, None]
        metric = quantus.PixelFlipping(features_in_step=size // args.steps, perturb_baseline=0.0, disable_warnings=True,
                                       display_progressbar=False)
        # the same order as tfsonify's stable argsort, without ties: relevance replaced by size - rank (positive, no ties)
        flat = relevance.reshape(len(z), -1)
        ranks = np.empty_like(flat)
        for row, values in zip(ranks, flat):
            row[np.argsort(-values, kind="stable")] = np.arange(values.size, 0, -1, dtype=np.float32)
        curves = []
        try:
            for a_batch in (relevance, ranks.reshape(relevance.shape)):
                theirs = np.asarray(metric(model=net, x_batch=ones, y_batch=index, a_batch=a_batch, device="cpu",
                                           batch_size=len(z), softmax=False, channel_first=True), np.float64)
                curves.append(theirs if softmax else theirs / np.where(np.abs(reference) > 0, reference, 1.0)[:, None])
        except AssertionError as refused:  # Quantus's own input checks, e.g. an all-zero explanation
            print(f"| {method} | Quantus refused: {str(refused).split('.')[0]} | | | | | |", flush=True)
            continue
        theirs, untied = curves
        curve = ours["deletion"][:, 1:]
        diff = float(np.max(np.abs(curve - theirs)))
        diff_untied = float(np.max(np.abs(curve - untied)))
        worst = max(worst, diff_untied)
        ours_area = args.steps * ours["deletion_auc"]
        their_area = np.trapezoid(untied, dx=1, axis=1) + (ours["deletion"][:, 0] + ours["deletion"][:, 1]) / 2
        ties = 0
        for row in flat:
            ordered = np.sort(row)[::-1]
            edges = np.arange(1, args.steps) * (size // args.steps)
            ties += int(np.any(ordered[edges - 1] == ordered[edges]))
        print(f"| {method} | {diff:.2e} | {diff_untied:.2e} | {ours_area.mean():.4f} | {their_area.mean():.4f} | {ties} of {len(z)} | "
              f"{time.perf_counter() - started:.1f} |", flush=True)
    print(f"\nlargest difference over all methods and clips, ties broken as tfsonify breaks them: {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
