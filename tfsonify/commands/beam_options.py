"""``--runner`` and ``--beam-option`` for the dataset commands (``analyze topk|coherence``, ``sonify-dataset``).

Without ``--runner`` a command keeps its single-process path. With it, the work runs as an Apache Beam pipeline
(``tfsonify.analysis.beam``, extra ``tfsonify[beam]``) on that runner; ``--beam-option=--flag=value`` (repeat) passes
Beam pipeline options through, e.g. ``--beam-option=--direct_num_workers=2
--beam-option=--direct_running_mode=multi_processing`` or ``--beam-option=--project=my-project``; everything after a
bare ``--`` is passed through the same way (``tfsonify analyze topk CLIPS --model M --runner DirectRunner --
--direct_num_workers=2 --direct_running_mode=multi_processing``). Unknown options are a usage error (Beam itself
would only log and drop them).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

RUNNERS = ("DirectRunner", "FlinkRunner", "SparkRunner", "DataflowRunner", "PortableRunner", "PrismRunner")
GLOB = set("*?[")
PIPELINE_COMMANDS: set[tuple[str, ...]] = set()  # ("analyze", "topk"), ...: the commands that take --runner


def add_arguments(parser: argparse.ArgumentParser) -> None:
    PIPELINE_COMMANDS.add(tuple(parser.prog.split()[1:]))  # "tfsonify analyze topk" -> ("analyze", "topk")
    group = parser.add_argument_group("Apache Beam (optional: pip install 'tfsonify[beam]')")
    group.add_argument("--runner", choices=RUNNERS, default=None,
                       help="run as a Beam pipeline on this runner (default: the single-process path)")
    group.add_argument("--beam-option", action="append", default=[], metavar="--FLAG=VALUE",
                       help="Beam pipeline option passed through, e.g. --beam-option=--direct_num_workers=2 (repeat); "
                       "or put them all after a bare --: ... --runner DirectRunner -- --direct_num_workers=2")


def split_pipeline_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(tfsonify arguments, Beam pipeline arguments)``: for a command that takes ``--runner``, what follows the first
    bare ``--`` is Beam's; any other command keeps its whole ``argv`` (argparse's own ``--`` meaning)."""
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    head = argv[:cut]
    words = tuple(a for a in head if not a.startswith("-"))
    if not any(words[: len(command)] == command for command in PIPELINE_COMMANDS):
        return argv, []
    return head, argv[cut + 1 :]


def finish(parser: argparse.ArgumentParser, args: argparse.Namespace, pipeline_args: list[str]) -> None:
    """Add the arguments after ``--`` to ``args.beam_option``; a usage error (exit 2) if there is no ``--runner``,
    Beam is not installed or an option is unknown or invalid."""
    if not hasattr(args, "beam_option"):
        return
    args.beam_option = list(args.beam_option) + list(pipeline_args)
    if args.beam_option and not args.runner:
        parser.error(f"Beam pipeline options ({' '.join(args.beam_option)}) need --runner "
                     f"({'|'.join(RUNNERS)}); without it the command runs in this process")
    if args.runner:  # check the options before the command creates any output folder
        try:
            options(args)
        except ValueError as error:
            parser.error(str(error))


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
