"""``tfsonify serve models/ [--port 8501] [--grpc-port 8500]``: TF Serving's REST and gRPC APIs."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve exported SavedModels over TF Serving's REST and gRPC APIs",
        description="Loads the newest version of every models/NAME/VERSION/ and serves "
        "/v1/models/NAME[:predict|/metadata] (REST) and PredictionService Predict/GetModelMetadata (gRPC). "
        "Ctrl-C / SIGTERM drain in-flight requests, then exit.")
    parser.add_argument("models", help="folder holding NAME/VERSION/saved_model.pb (or one models/NAME)")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default loopback; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=8501, help="REST port (default 8501, as TF Serving)")
    parser.add_argument("--grpc-port", type=int, default=8500, help="gRPC port (default 8500; -1 disables gRPC)")
    parser.add_argument("--max-body-mb", type=float, default=64.0, help="REST request size limit in MiB (default 64)")
    parser.add_argument("--max-concurrency", type=int, default=64, help="concurrent REST requests before 503 (default 64)")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds in-flight requests get on shutdown")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tfsonify.commands import progress
    from tfsonify.serving.repository import ModelRepository
    from tfsonify.serving.server import Server

    if args.max_body_mb <= 0 or args.max_concurrency < 1:
        raise ValueError("--max-body-mb must be > 0 and --max-concurrency >= 1")
    with progress(f"loading models from {args.models}"):
        repository = ModelRepository(args.models)
    server = Server(repository, host=args.host, port=args.port, grpc_port=None if args.grpc_port < 0 else args.grpc_port,
                    max_body_bytes=int(args.max_body_mb * 1024 * 1024), max_concurrency=args.max_concurrency,
                    grace=args.grace)
    for name, versions in repository.models.items():
        print(f"serving {name} version {max(versions)}: http://{args.host}:{server.rest_port}/v1/models/{name}"
              + (f"  grpc://{args.host}:{server.grpc_port}/{name}" if server.grpc_port else ""), flush=True)
    server.serve_forever()
    return 0
