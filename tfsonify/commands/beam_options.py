"""``--runner`` and ``--beam-option`` for the dataset commands (``analyze topk|coherence``, ``sonify-dataset``).

Without ``--runner`` a command keeps its single-process path. With it, the work runs as an Apache Beam pipeline
(``tfsonify.analysis.beam``, extra ``tfsonify[beam]``) on that runner; ``--beam-option=--flag=value`` (repeat) passes
Beam pipeline options through, e.g. ``--beam-option=--direct_num_workers=2
--beam-option=--direct_running_mode=multi_processing`` or ``--beam-option=--project=my-project``.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

RUNNERS = ("DirectRunner", "FlinkRunner", "SparkRunner", "DataflowRunner", "PortableRunner", "PrismRunner")
GLOB = set("*?[")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Apache Beam (optional: pip install 'tfsonify[beam]')")
    group.add_argument("--runner", choices=RUNNERS, default=None,
                       help="run as a Beam pipeline on this runner (default: the single-process path)")
    group.add_argument("--beam-option", action="append", default=[], metavar="--FLAG=VALUE",
                       help="Beam pipeline option passed through, e.g. --beam-option=--direct_num_workers=2 (repeat)")


def options(args: argparse.Namespace):
    """``PipelineOptions`` for ``args.runner`` and ``args.beam_option``; ``ValueError`` if Beam is missing."""
    try:
        from tfsonify.analysis.beam import pipeline_options
    except ImportError as error:
        raise ValueError(f"--runner needs Apache Beam: pip install 'tfsonify[beam]' ({error})") from None
    return pipeline_options(args.runner, args.beam_option)


def clip_patterns(paths: list[str]) -> list[str]:
    """CLI clip arguments as Beam file patterns: a local folder -> ``folder/**`` (recursive), a local file as is,
    a URL (``gs://...``) or glob pattern as is; ``ValueError`` for a local path that does not exist."""
    patterns = []
    for name in paths:
        path = Path(name)
        if "://" in name or GLOB & set(name):
            patterns.append(name)
        elif path.is_dir():
            patterns.append(os.path.join(name, "**"))
        elif path.is_file():
            patterns.append(name)
        else:
            raise ValueError(f"clip {name!r} is neither an audio file, a folder nor a file pattern")
    return patterns
