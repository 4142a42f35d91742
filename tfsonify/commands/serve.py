"""``tfsonify serve models/ | --model_config_file models.config [--port 8501] [--grpc-port 8500]``: TF Serving's APIs.

Serves the newest version of every models/NAME/VERSION/ (or what --model_config_file selects) on
/v1/models/NAME[/versions/V|/labels/L][:predict|/metadata] (REST) and PredictionService Predict/GetModelMetadata,
ModelService GetModelStatus/HandleReloadConfigRequest (gRPC). New versions are loaded and warmed up while the old
one serves, then swapped in. Ctrl-C / SIGTERM drain in-flight requests, then exit.
"""
from __future__ import annotations

import argparse

from tfsonify.commands import add_command


def register(subparsers) -> None:
    parser = add_command(subparsers, "serve",
                         "serve exported SavedModels over TF Serving's REST and gRPC APIs", __doc__)
    parser.add_argument("models", nargs="?", default=None,
                        help="folder holding NAME/VERSION/saved_model.pb (or one models/NAME); or use --model_config_file")
    parser.add_argument("--model_config_file", "--model-config-file", dest="model_config_file", default=None,
                        help="TF Serving ModelServerConfig text proto (the models.config the exporter writes): several "
                        "models, model_version_policy latest/all/specific, version_labels (relative base_path: "
                        "relative to the file)")
    parser.add_argument("--file_system_poll_wait_seconds", "--poll-seconds", dest="poll_seconds", type=float, default=1.0,
                        help="seconds between polls of the base paths for new versions (default 1, as TF Serving; "
                        "0 = load once)")
    parser.add_argument("--no-warmup", action="store_true", help="serve versions without calling every signature first")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default loopback; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=8501, help="REST port (default 8501, as TF Serving)")
    parser.add_argument("--grpc-port", type=int, default=8500, help="gRPC port (default 8500; -1 disables gRPC)")
    parser.add_argument("--max-body-mb", type=float, default=64.0, help="REST request size limit in MiB (default 64)")
    parser.add_argument("--max-concurrency", type=int, default=64, help="concurrent REST requests before 503 (default 64)")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds in-flight requests get on shutdown")
    parser.add_argument("--idle-timeout", type=float, default=30.0, help="seconds a REST connection may stay open "
                        "without sending a byte before it is closed (default 30)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tfsonify.serving.ports import check_port_free, listen

    if args.max_body_mb <= 0 or args.max_concurrency < 1:
        raise ValueError("--max-body-mb must be > 0 and --max-concurrency >= 1")
    if args.poll_seconds < 0:
        raise ValueError(f"--file_system_poll_wait_seconds must be >= 0; received {args.poll_seconds}")
    if (args.models is None) == (args.model_config_file is None):
        raise ValueError("give either a models folder or --model_config_file (exactly one)")
    from tfsonify.serving.config import read_model_config, specs_from_folder

    specs = read_model_config(args.model_config_file) if args.model_config_file else specs_from_folder(args.models)
    rest_socket = listen(args.host, args.port)  # a port in use is found before any model is loaded
    try:
        if args.grpc_port >= 0:
            check_port_free(args.host, args.grpc_port)
        return _load_and_serve(args, specs, rest_socket)
    finally:
        rest_socket.close()


def _load_and_serve(args: argparse.Namespace, specs, rest_socket) -> int:
    from tfsonify.commands import progress
    from tfsonify.serving.lifecycle import ModelManager
    from tfsonify.serving.server import Server

    with progress(f"loading {', '.join(spec.name for spec in specs)}"):
        repository = ModelManager(specs, warmup=not args.no_warmup, poll_seconds=args.poll_seconds)
    failed = [spec.name for spec in specs if not repository.models.get(spec.name)]
    if failed:
        details = "; ".join(f"{state.version}: {state.error_message}" for name in failed for state in repository.status(name))
        repository.close()
        searched = ", ".join(str(spec.base_path) for spec in specs if spec.name in failed)
        raise ValueError(f"no version of {failed} could be loaded from {searched} "
                         f"({details or 'no version folders: expected BASE_PATH/1/saved_model.pb'})")
    server = Server(repository, host=args.host, port=args.port, grpc_port=None if args.grpc_port < 0 else args.grpc_port,
                    max_body_bytes=int(args.max_body_mb * 1024 * 1024), max_concurrency=args.max_concurrency,
                    grace=args.grace, rest_socket=rest_socket, idle_seconds=args.idle_timeout)
    for name, versions in repository.models.items():
        print(f"serving {name} version{'s' if len(versions) > 1 else ''} {','.join(map(str, sorted(versions)))}: http://{args.host}:{server.rest_port}/v1/models/{name}"
              + (f"  grpc://{args.host}:{server.grpc_port}/{name}" if server.grpc_port else ""), flush=True)
    server.serve_forever()  # Ctrl-C / SIGTERM: uvicorn drains, then re-raises the signal (tfsonify.cli: one line)
    return 0
