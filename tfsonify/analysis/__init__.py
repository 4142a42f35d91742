"""Analyses of sonifications (paper §3.3-4.2, Appendix B) and beyond.

Modules:
    coherence   mean top-k magnitude-squared coherence of inputs and sonifications per layer (§4.2.1)
    residual    metric drop when the most active map's sonification is removed (§4.1) + random control
    invariance  sonify(shifted x) == shifted sonify(x) for pool-aligned shifts (Figure B.3)
    topk        bounded-memory streaming top-k maximally activating clips per map (§3.3)
    evolution   feature evolution across checkpoints (§3.4) and a TensorBoard callback
    mixture     which maps separate speech from background in mixtures with known parts
    sonify_dataset  the most active map(s) of every clip of a dataset as WAVs + a JSON-lines manifest
    beam        top-k, coherence and dataset sonification as Apache Beam pipelines (extra [beam])

All take mono float32 waveforms ``[time]`` at the model's rate (8 kHz).
"""
