"""A self-contained, offline HTML report of a model's sonifications (``tfsonify report``).

Layout written by :func:`build_report`::

    OUT/index.html                 the page (inline CSS, no scripts, no network)
    OUT/media/c00_input.wav        each clip at the model's rate (16-bit PCM, plays in every browser)
    OUT/media/c00_L05_f0012.wav    sonification of block 5, map 12 on clip 0
    OUT/media/c00_L05_f0012.png    log spectrograms of the input (top) and the sonification (bottom)
    OUT/media/coherence.png        mean top-5 coherence per layer with 95 % CI
    OUT/media/faith_c00_gradient.wav  with --faithfulness: each method's explanation of the first clip
    OUT/report.json                every number on the page

Open ``OUT/index.html`` from the folder; every file it uses is in ``OUT/media``.
"""
from tfsonify.report.html import build_report

__all__ = ["build_report"]
