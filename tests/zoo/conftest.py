"""The zoo battery's per-model fixture (``zoo``), shared by ``test_battery.py`` and ``test_artefacts.py``."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import soundfile

from zoo.models import BY_NAME, ZOO, test_clip


@pytest.fixture(scope="module", params=[entry.name for entry in ZOO])
def zoo(request, tmp_path_factory):
    """The saved model, its clips (three 0.6 s clips and one too short for the deep layer) and its Sonifier."""
    import tfsonify
    from tfsonify.models.checkpoint import load_checkpoint

    entry = BY_NAME[request.param]
    root = tmp_path_factory.mktemp(entry.name)
    path = entry.save(root)
    clips = root / "clips"
    clips.mkdir()
    for seed in range(3):
        soundfile.write(clips / f"c{seed}.wav", test_clip(entry.sample_rate, seed=seed), entry.sample_rate, subtype="FLOAT")
    model = load_checkpoint(path)
    sonifier = tfsonify.Sonifier(model)
    return SimpleNamespace(entry=entry, root=root, path=path, clips=clips, wav=clips / "c0.wav", model=model,
                           sonifier=sonifier, rate=entry.sample_rate, layer=entry.layer,
                           wave=test_clip(entry.sample_rate, seed=0))
