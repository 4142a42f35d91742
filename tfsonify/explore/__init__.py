"""``tfsonify explore``: an interactive page to pick a clip, a layer and a feature map, and to see and hear them.

    from tfsonify.explore import ModelSession, ClipLibrary, Explorer, build_app, ExplorerServer
    sessions = [ModelSession("model.keras")]
    explorer = Explorer(sessions, ClipLibrary(["clips/"], sessions[0].sample_rate))
    with ExplorerServer(build_app(explorer)) as url:   # a free loopback port; or `tfsonify explore ...`
        ...

Modules: :mod:`~tfsonify.explore.session` (the only code that touches the model), :mod:`~tfsonify.explore.clips`
(what may be read: ids, roots, uploads), :mod:`~tfsonify.explore.worker` (bounded background computation),
:mod:`~tfsonify.explore.cache` (byte-bounded LRU), :mod:`~tfsonify.explore.images` (PNG/WAV rendering),
:mod:`~tfsonify.explore.app` (routes); the page is ``static/`` (plain HTML, CSS and JS, shipped in the package).
"""
from tfsonify.explore.app import DEFAULT_MAX_SECONDS, DEFAULT_MAX_UPLOAD_BYTES, Explorer, ExplorerServer, build_app
from tfsonify.explore.clips import ClipError, ClipLibrary
from tfsonify.explore.session import LayerInfo, ModelSession, load_labels

__all__ = ["ClipError", "ClipLibrary", "DEFAULT_MAX_SECONDS", "DEFAULT_MAX_UPLOAD_BYTES", "Explorer", "ExplorerServer",
           "LayerInfo", "ModelSession", "build_app", "load_labels"]
