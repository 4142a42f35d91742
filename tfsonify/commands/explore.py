"""``tfsonify explore MODEL.keras [MODEL2.keras] CLIPS... [--port 8080]``: the interactive listening page.

Starts a local web app (Starlette/uvicorn, loopback by default) and prints its URL. The page lists the clips (with
the model's prediction when it has a head), takes uploads and microphone recordings, shows waveform, log spectrogram
and the activation overview of a layer; clicking a map sonifies it on demand (cached) and plays it; input,
sonification and residual can be switched while listening and downloaded; a second model is shown side by side; the
per-layer coherence curve on request. Only files under CLIPS are read.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tfsonify.commands import add_command


def register(subparsers) -> None:
    parser = add_command(subparsers, "explore",
                         "interactive page: pick a clip, a layer and a map; see and hear its sonification", __doc__)
    parser.add_argument("paths", nargs="+", metavar="MODEL.keras [MODEL2.keras] CLIPS",
                        help="one or two tfsonify .keras files, then audio files or folders (searched recursively)")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default loopback; 0.0.0.0 exposes it)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    parser.add_argument("--labels", action="append", default=[], metavar="FILE",
                        help="class names of a model's head, one per line or a JSON list (give once per model, in order)")
    parser.add_argument("--max-seconds", type=float, default=3600.0,
                        help="longest clip accepted (default 3600; longer ones are listed but refused); long clips run "
                             "through exact windows, computing only the layer and maps looked at")
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MiB (default 20)")
    parser.add_argument("--cache-mb", type=float, default=512.0, help="result cache size in MiB (default 512)")
    parser.add_argument("--queue", type=int, default=16, help="jobs queued per worker before 503 (default 16)")
    parser.set_defaults(func=run)


def split_paths(paths: list[str]) -> tuple[list[str], list[str]]:
    """``(models, clip roots)``: the leading ``.keras`` paths (one or two), then the rest."""
    models = []
    for path in paths[:2]:
        if not path.lower().endswith(".keras"):
            break
        models.append(path)
    if not models:
        raise ValueError(f"the first argument must be a .keras model file; received {paths[0]!r}")
    return models, paths[len(models):]


def run(args: argparse.Namespace) -> int:
    from tfsonify.commands import progress
    from tfsonify.explore import ClipLibrary, Explorer, ExplorerServer, ModelSession, build_app, load_labels

    models, roots = split_paths(args.paths)
    if len(args.labels) > len(models):
        raise ValueError(f"{len(args.labels)} --labels files for {len(models)} model(s)")
    if args.max_seconds <= 0 or args.max_upload_mb <= 0 or args.cache_mb < 0 or args.queue < 1:
        raise ValueError("--max-seconds and --max-upload-mb must be > 0, --cache-mb >= 0, --queue >= 1")
    if not 0 <= args.port < 65536:
        raise ValueError(f"--port must be in 0..65535; received {args.port}")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # one traced graph per layer is by design; no retracing warnings in the console
    sessions = []
    for index, path in enumerate(models):
        with progress(f"loading {path}"):
            labels = load_labels(args.labels[index]) if index < len(args.labels) else None
            sessions.append(ModelSession(path, name=Path(path).name, labels=labels))
    rates = {s.sample_rate for s in sessions}
    if len(rates) > 1:
        raise ValueError(f"the two models expect different sample rates {sorted(rates)}; compare models of one rate")
    library = ClipLibrary(roots, sessions[0].sample_rate, max_seconds=args.max_seconds)
    explorer = Explorer(sessions, library, cache_bytes=int(args.cache_mb * 2**20),
                        max_upload_bytes=int(args.max_upload_mb * 2**20), max_pending=args.queue)
    try:
        server = ExplorerServer(build_app(explorer), host=args.host, port=args.port)
    except OSError as error:
        raise ValueError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    explorer.warm_up()
    usable = sum(1 for clip in library.clips() if clip.error is None)
    with server as url:
        print(f"tfsonify explore: {len(library.clips())} clip(s) ({usable} usable), "
              f"{' vs '.join(s.name for s in sessions)}", flush=True)
        print(f"open {url}/  (Ctrl-C to stop)", flush=True)
        try:
            server.thread.join()
        except KeyboardInterrupt:
            pass
    return 0
