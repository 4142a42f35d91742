"""``tfsonify export savedmodel MODEL.keras --out models/NAME`` and ``tfsonify export tflite MODEL.keras --out F.tflite``."""
from __future__ import annotations

import argparse
from pathlib import Path

from tfsonify.commands import load_model, progress


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a model for TF Serving (SavedModel) or LiteRT (TFLite)",
                                   description="Export a trained model (CNN12, CREPE or your own Keras CNN) and its "
                                   "sonifier for deployment, with its geometry, sample rate and class names.")
    kinds = parser.add_subparsers(dest="kind", metavar="FORMAT")
    kinds.required = True

    saved = kinds.add_parser("savedmodel", help="TF Serving layout models/NAME/VERSION/ (next integer version, atomic)",
                             description="Signatures: serving_default, classify (with a head), sonify (runtime per-row "
                             "layer and feature), sonify_top_k. Also writes models.config and batching.config beside "
                             "models/NAME unless they exist.")
    saved.add_argument("model", help="a .keras file holding a tfsonify CNN12 (or a ContrastiveModel: its encoder is "
                                     "exported) or any model the deconvnet supports")
    saved.add_argument("--out", required=True, help="model base path models/NAME (created if missing)")
    saved.add_argument("--version", type=int, default=None, help="version number (default: next free integer)")
    saved.add_argument("--base-path", default=None,
                       help="base_path written into models.config (default: NAME, relative to models.config's folder, as "
                            "tfsonify serve reads it; TF Serving needs an absolute path: /models/NAME in Docker)")
    saved.set_defaults(func=run_savedmodel)

    lite = kinds.add_parser("tflite", help="builtin-only TFLite sonifier for LiteRT",
                            description="Signatures sonify_l{L} (waveform [1,T] float32, feature [1] int32 -> "
                            "sonification [1,T]) and top_k_l{L} (-> features, activations, sonifications [1,K,T]).")
    lite.add_argument("model", help="a .keras file holding a tfsonify CNN12 (or a ContrastiveModel: its encoder is "
                                    "exported) or any model the deconvnet supports")
    lite.add_argument("--out", required=True, help="output .tflite file")
    lite.add_argument("--length", type=int, default=None,
                      help="fixed clip length in samples (default: the model's fixed input length, else 1 s at its "
                           "sample rate; 3-5x faster on LiteRT); 0 = dynamic")
    lite.add_argument("--layers", default=None,
                      help="comma-separated block indices and/or layer names to export, e.g. 5,11 or conv2,conv4 "
                           "(default every block; CNN12: 1..11)")
    lite.add_argument("--top", type=int, default=4, help="K of the top_k_l{L} signatures (default 4)")
    lite.add_argument("--fp16", action="store_true", help="store float16 weights (half the file; = --quantize fp16)")
    lite.add_argument("--quantize", choices=("none", "fp16", "dynamic", "int8"), default="none",
                      help="none (float32, default), fp16 (float16 weights), dynamic (int8 weights) or int8 (int8 weights "
                           "and activations calibrated on espeak-ng speech clips; needs espeak-ng)")
    lite.set_defaults(func=run_tflite)


def run_savedmodel(args: argparse.Namespace) -> int:
    from tfsonify.export.savedmodel import export_saved_model, write_batching_parameters, write_model_config

    model = load_model(args.model, any_model=True)
    out = Path(args.out)
    with progress(f"exporting SavedModel to {out}/"):
        version_dir = export_saved_model(model, out, version=args.version)
    config = out.parent / "models.config"
    if not config.exists():
        write_model_config(config, {out.name: args.base_path or out.name})
    batching = out.parent / "batching.config"
    if not batching.exists():
        write_batching_parameters(batching)
    print(f"wrote {version_dir} (signatures in {version_dir}/assets.extra/tfsonify.json); server configs: {config}, {batching}")
    return 0


def run_tflite(args: argparse.Namespace) -> int:
    from tfsonify.export.tflite import export_tflite

    if args.length is not None and args.length < 0:
        raise ValueError(f"--length must be a positive number of samples or 0 for dynamic; received {args.length}")
    layers = None
    if args.layers:
        layers = [int(part) if part.strip().isdecimal() else part.strip() for part in args.layers.split(",") if part.strip()]
    from tfsonify.io.render import check_writable_dir

    check_writable_dir(Path(args.out).parent)  # before loading and converting (tens of seconds)
    model = load_model(args.model, any_model=True)
    length = "auto" if args.length is None else (args.length or None)
    quantize = "fp16" if args.fp16 else args.quantize
    if args.fp16 and args.quantize not in ("none", "fp16"):
        raise ValueError(f"--fp16 conflicts with --quantize {args.quantize}; give one of them")
    with progress(f"converting to TFLite ({'dynamic' if length is None else 'default' if length == 'auto' else length} "
                  f"samples, weights {quantize})"):
        path = export_tflite(model, args.out, length=length, layers=layers, top_k=args.top, quantize=quantize)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, builtin ops only)")
    return 0
