"""Integrated gradients: tfsonify against captum on PyTorch twins with the same weights, side by side (issue 24).

Two models, each timed ``--repeats`` times after a warm-up call of the same shape, alternating tfsonify and
captum (so a machine that gets busier slows both):

* the small twin of ``tests/test_explain_captum.py`` (two convs of 6 and 5 channels, 32 clips of 8,000 samples);
* CNN12 (width ``--width``, 1 s at 8 kHz, a 10-class softmax head, He-initialised as the demo builds it, or
  ``--model`` a trained ``.keras`` CNN12): its PyTorch twin is conv-ReLU-[maxpool 2] x 11, mean over time, the
  embedding and the classifier's logits, on the peak-normalised input ``z`` tfsonify explains; captum attributes
  the logit, as tfsonify does.

Both sides: 32 steps, baseline silence, batches of 64 rows (captum's ``internal_batch_size``); tfsonify's nodes are
Gauss-Legendre (captum's default). Before timing, the attributions are checked equal (<= 1e-4 after normalising
each clip by its largest magnitude) so the two are doing the same work. Also printed: one plain gradient batch
in each framework (``tf.GradientTape`` / ``torch.autograd``, no tfsonify or captum code) — the floor each side
stands on.

Usage: python benchmarks/ig_vs_captum.py [--repeats 3] [--width 0.25] [--clips 32] [--model M.keras]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def cnn12_twin(model):
    """A PyTorch module equal to a CNN12 (with a classifier) from its peak-normalised input to the class logits."""
    import torch

    nn = torch.nn
    convs = [layer for layer in model.layers if layer.name.startswith("conv")]
    pooled = {layer.name.replace("pool", "conv") for layer in model.layers if layer.name.startswith("pool")}
    embedding, classifier = model.get_layer("embedding"), model.get_layer("classifier")

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList()
            for layer in convs:
                kernel = layer.kernel.numpy()  # [k, in, out]
                conv = nn.Conv1d(kernel.shape[1], kernel.shape[2], kernel.shape[0])
                with torch.no_grad():
                    conv.weight.copy_(torch.from_numpy(np.transpose(kernel, (2, 1, 0)).copy()))
                    conv.bias.copy_(torch.from_numpy(layer.bias.numpy()))
                self.convs.append(conv)
            self.pool = [layer.name in pooled for layer in convs]
            self.embedding, self.classifier = nn.Linear(*embedding.kernel.shape), nn.Linear(*classifier.kernel.shape)
            with torch.no_grad():
                for module, layer in ((self.embedding, embedding), (self.classifier, classifier)):
                    module.weight.copy_(torch.from_numpy(layer.kernel.numpy().T.copy()))
                    module.bias.copy_(torch.from_numpy(layer.bias.numpy()))

        def forward(self, z):
            x = z[:, None, :]
            for conv, pool in zip(self.convs, self.pool):
                x = torch.relu(conv(x))
                if pool:
                    x = torch.nn.functional.max_pool1d(x, 2)
            return self.classifier(self.embedding(x.mean(dim=2)))

    return Twin().eval()


def _normalised(a):
    a = np.asarray(a, np.float64)
    return a / np.maximum(np.abs(a).max(axis=1, keepdims=True), 1e-30)


def compare(name, keras_model, net, z, target, repeats: int) -> dict:
    """Time tfsonify's and captum's IG on ``z`` [n, T] (already what the twin takes); check they agree first."""
    import tensorflow as tf
    import torch
    from captum.attr import IntegratedGradients

    from tfsonify.explain.methods import explain
    from tfsonify.explain.targets import Target, explained

    state = explained(keras_model)
    zt = torch.from_numpy(z)
    ig = IntegratedGradients(net)

    def ours():
        return explain("integrated_gradients", state, z, Target.unit(target), steps=32, batch_size=64)

    def theirs():
        return ig.attribute(zt, baselines=torch.zeros_like(zt), target=target, n_steps=32, internal_batch_size=64)

    scaled = state.scale(z)
    if not np.allclose(scaled, z, atol=1e-6):
        raise SystemExit(f"{name}: the clips must already be what the model explains (peak-normalised)")
    a, b = ours().values, theirs().detach().numpy()
    error = float(np.max(np.abs(_normalised(a) - _normalised(b))))
    mine, captums = [], []
    for _ in range(repeats):
        started = time.perf_counter(); ours(); mine.append(time.perf_counter() - started)
        started = time.perf_counter(); theirs(); captums.append(time.perf_counter() - started)
    rows = z[:64]
    @tf.function
    def tape_gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(state.graph("all_scores", Target.unit(target))(x)[:, target])
        return tape.gradient(y, x)

    tape_gradient(tf.constant(rows))
    started = time.perf_counter()
    for _ in range(8):
        tape_gradient(tf.constant(rows))
    tf_floor = (time.perf_counter() - started) / 8
    rows_t = torch.from_numpy(rows).requires_grad_(True)
    started = time.perf_counter()
    for _ in range(8):
        torch.autograd.grad(net(rows_t)[:, target].sum(), rows_t)
    torch_floor = (time.perf_counter() - started) / 8
    mine, captums = np.median(mine), np.median(captums)
    print(f"| {name} | {z.shape[0]} x {z.shape[1]} | {error:.1e} | {mine:.3f} | {captums:.3f} | {captums / mine:.2f}x "
          f"| {1000 * tf_floor:.1f} | {1000 * torch_floor:.1f} |", flush=True)
    return {"ours": mine, "captum": captums, "error": error}


def header(repeats: int) -> None:
    """The conditions line and the head of the table :func:`compare` prints rows of."""
    import captum
    import tensorflow as tf
    import torch

    print(f"# integrated gradients, 32 steps, batches of 64 rows; median of {repeats} calls after a warm-up; "
          f"TensorFlow {tf.__version__} ({tf.config.threading.get_intra_op_parallelism_threads() or 'all'} threads), "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), captum {captum.__version__}\n")
    print("| model | clips x samples | max diff (normalised) | tfsonify s | captum s | captum / tfsonify "
          "| TF gradient of 64 rows, ms | torch gradient of 64 rows, ms |")
    print("|---|---|---|---|---|---|---|---|")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--model", default=None, help="a trained CNN12 .keras with a classifier (default: a new one)")
    args = parser.parse_args()
    try:
        import captum  # noqa: F401
        import torch  # noqa: F401
    except ImportError as error:
        print(f"needs torch and captum ({error})")
        return 2

    from explain_models import small_classifier
    from test_explain_captum import torch_twin

    from tfsonify.explain.targets import explained

    header(args.repeats)
    rng = np.random.default_rng(0)
    small = small_classifier(0)
    compare("small twin (tests)", small, torch_twin(small),
            rng.standard_normal((args.clips, 8000)).astype("float32"), 1, args.repeats)
    if args.model:
        from tfsonify.models.checkpoint import load_checkpoint

        cnn = load_checkpoint(args.model)
        label = f"CNN12 {Path(args.model).name}"
    else:
        from tfsonify.train.demo import build_demo_model

        cnn = build_demo_model(args.width, 10, 0.1, 0)
        label = f"CNN12 x{args.width:g} (He init)"
    raw = rng.standard_normal((args.clips, 8000)).astype("float32")
    z = explained(cnn).scale(raw)
    compare(label, cnn, cnn12_twin(cnn), z, 1, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
