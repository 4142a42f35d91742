"""The explorer's web app (Starlette): JSON, PNG and WAV endpoints behind one page.

Routes (``M`` model index 0/1, ``C`` opaque clip id, ``L`` layer id, ``F`` map index):

- ``GET /``, ``/static/...``: the page and its assets (shipped in the package; no network).
- ``GET /api/info``: models (name, head, layers, sample rate) and limits.
- ``GET /api/clips``; ``POST /api/upload?name=N`` (raw file bytes; size-capped, must decode as audio).
- ``GET /api/clips/C/audio.wav``, ``/waveform``, ``/spectrogram.png``: the input.
- ``GET /api/models/M/clips/C/prediction``, ``/coherence`` (per-layer curve of the clip).
- ``GET /api/models/M/clips/C/layers/L/overview`` (+ ``.png``): maps x time, ordered by max activation.
- ``GET /api/models/M/clips/C/layers/L/top?k=K``: the top ``K`` maps sonified in one batched pass.
- ``GET /api/models/M/clips/C/layers/L/maps/F``: sonify map ``F`` (cached), its activation over time;
  ``.../maps/F/{sonification,residual}.{wav,png}`` (``?float=1``: 32-bit float WAV for download).
- ``GET /api/explain?clip=C&layer=L&feature=F&method=NAME[&model=M][&format=png][&float=1]``: map ``F`` explained
  by another method of :mod:`tfsonify.explain.methods` (the page's method picker), as a WAV scaled to the clip's
  peak (cached) or its spectrogram; ``method=sonification`` is the map's sonification. Unknown method: 400 naming
  the valid ones.

Errors are ``{"error": message}``: 400 bad layer/map/parameter, 404 unknown clip/model/route (never echoing a
path), 413 upload or clip too large, 415 not decodable audio, 422 unreadable or too short clip, 503 worker queue
full (``Retry-After: 1``; the page retries). Model work runs on one worker thread, rendering on another, each with a
bounded queue, so the event loop keeps serving while a heavy request runs.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tfsonify.explore.cache import LRUCache
from tfsonify.explore.clips import ClipError, ClipLibrary
from tfsonify.explore.images import envelope, overview_png, spectrogram_db, spectrogram_png, wav_bytes
from tfsonify.explore.session import ModelSession
from tfsonify.explore.worker import Busy, Worker

__all__ = ["Explorer", "build_app", "ExplorerServer", "STATIC_DIR", "DEFAULT_MAX_UPLOAD_BYTES", "DEFAULT_MAX_SECONDS"]

STATIC_DIR = Path(str(resources.files("tfsonify.explore") / "static"))
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
"""20 MiB: two minutes of 44.1 kHz stereo 16-bit WAV."""
DEFAULT_MAX_SECONDS = 3600.0
"""Longest clip the explorer takes (1 hour; ``--max-seconds``). Long clips run through exact windows and only what
is looked at is computed, but every sonified map is a float32 copy of the clip (115 MB per map for an hour at
8 kHz) that the cache and the browser must hold."""
SOUND_BUDGET_BYTES = 256 * 2**20
"""Most float32 sonification samples one "top k" request makes (k is capped for long clips: 4 maps of an hour)."""
MAX_TOP_K = 32
log = logging.getLogger("tfsonify.explore")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Explorer:
    """State shared by the routes: model sessions, the clip library, caches and the two workers.

    Args:
        sessions: one or two :class:`ModelSession` (compared side by side).
        library: the clips.
        cache_bytes: bound of the result cache (decoded clips, activations, sonifications, images).
        max_upload_bytes: largest upload accepted (413 beyond).
        max_pending: jobs queued or running per worker before requests get 503.
    """

    def __init__(self, sessions: Sequence[ModelSession], library: ClipLibrary, cache_bytes: int = 512 * 2**20,
                 max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, max_pending: int = 16):
        if not 1 <= len(sessions) <= 2:
            raise ValueError(f"the explorer compares one or two models; received {len(sessions)}")
        self.sessions = list(sessions)
        self.library = library
        self.cache = LRUCache(cache_bytes)
        self.max_upload_bytes = int(max_upload_bytes)
        self.model_worker = Worker("model", max_pending)
        self.render_worker = Worker("render", max_pending)
        self.started = time.time()

    def warm_up(self, layers: Sequence[str] = ("8",)) -> None:
        """Trace the graphs of ``layers`` (and the head) on the model worker in the background, so the first click
        on them does not pay for tracing. Returns at once; failures are ignored (the real request reports them)."""
        def run(session: ModelSession):
            rate = session.sample_rate
            noise = np.random.default_rng(0).normal(0.0, 0.1, rate).astype(np.float32)
            session.predict(noise)
            for layer in layers:
                try:
                    session.activations(noise, layer)
                    session.sonify(noise, layer, [0])
                except ValueError:
                    pass
        for session in self.sessions:
            try:
                self.model_worker.submit(None, lambda s=session: run(s))
            except Busy:
                pass

    # -------------------------------------------------------------- lookups
    def session(self, model: str) -> ModelSession:
        if not (model.isdecimal() and int(model) < len(self.sessions)):
            raise ApiError(404, f"no model {model[:8]!r}; models are 0..{len(self.sessions) - 1}")
        return self.sessions[int(model)]

    def _cached(self, key, compute):
        value = self.cache.get(key)
        if value is None:
            value = self.cache.put(key, compute())
        return value

    def waveform(self, clip_id: str, rate: int) -> np.ndarray:
        """Decoded clip (cached; call from a worker thread)."""
        return self._cached(("wave", clip_id, rate), lambda: self.library.load(clip_id, rate))

    def input_db(self, clip_id: str, rate: int) -> tuple[np.ndarray, float]:
        def compute():
            db = spectrogram_db(self.waveform(clip_id, rate), rate)
            return db, float(db.max())
        return self._cached(("db", clip_id, rate), compute)

    def activations(self, model: int, clip_id: str, layer: str) -> dict:
        session = self.sessions[model]

        def compute():
            view = session.overview(self.waveform(clip_id, session.sample_rate), layer)  # pooled for long clips
            order = np.argsort(-view["maxima"], kind="stable").astype(np.int32)
            return {**view, "order": order}
        return self._cached(("acts", model, clip_id, layer), compute)

    def sonifications(self, model: int, clip_id: str, layer: str, features: Sequence[int]) -> list[np.ndarray]:
        """Sonifications of ``features`` (cached per map; the missing ones in one batched pass)."""
        session = self.sessions[model]
        keys = [("sound", model, clip_id, layer, int(f)) for f in features]
        found = [self.cache.get(key) for key in keys]
        missing = [int(f) for f, sound in zip(features, found) if sound is None]
        if missing:
            maps = session.layer(layer).maps
            bad = [f for f in missing if not 0 <= f < maps]
            if bad:
                raise ApiError(400, f"map {bad[0]} is outside {session.layer(layer).label}'s {maps} maps (0..{maps - 1})")
            sounds = session.sonify(self.waveform(clip_id, session.sample_rate), layer, missing)
            computed = {f: self.cache.put(("sound", model, clip_id, layer, f), sound) for f, sound in zip(missing, sounds)}
            found = [sound if sound is not None else computed[int(f)] for f, sound in zip(features, found)]
        return found

    def explanation(self, model: int, clip_id: str, layer: str, feature: int, method: str) -> np.ndarray:
        """Map ``feature`` explained by ``method`` as a sound (cached per method; the sonification's own cache for
        ``"sonification"``), see :meth:`ModelSession.explain`."""
        if method == "sonification":
            return self.sonifications(model, clip_id, layer, [feature])[0]
        session = self.sessions[model]
        return self._cached(("explain", model, clip_id, layer, int(feature), method),
                            lambda: session.explain(self.waveform(clip_id, session.sample_rate), layer, int(feature), method))

    def map_summary(self, model: int, clip_id: str, layer: str, feature: int) -> dict:
        """What the page shows of one map (cached): rank, maxima, activation over time, coherence, media URLs."""
        return self._cached(("summary", model, clip_id, layer, int(feature)),
                            lambda: self._map_summary(model, clip_id, layer, int(feature)))

    def _map_summary(self, model: int, clip_id: str, layer: str, feature: int) -> dict:
        from tfsonify.analysis.coherence import top_k_coherence

        session = self.sessions[model]
        acts = self.activations(model, clip_id, layer)
        sound = self.sonifications(model, clip_id, layer, [feature])[0]
        x = self.waveform(clip_id, session.sample_rate)
        series = acts["acts"][:, feature]
        times = acts["times"]
        rank = int(np.nonzero(acts["order"] == feature)[0][0])
        coherence = (float(top_k_coherence(x, sound, 5, session.sample_rate)) if np.any(sound) and x.size >= 16 else 0.0)
        base = f"/api/models/{model}/clips/{clip_id}/layers/{layer}/maps/{feature}"
        return {"model": model, "clip": clip_id, "layer": layer, "feature": int(feature), "rank": rank,
                "max": float(acts["maxima"][feature]), "layer_max": float(acts["maxima"].max()),
                "activation": np.round(series, 5).tolist(), "times": [float(times[0]), float(times[1])],
                "pooled": bool(acts["pooled"]),
                "silent": not bool(np.any(sound)), "coherence": coherence,
                "urls": {kind: f"{base}/{kind}" for kind in ("sonification.wav", "residual.wav", "sonification.png",
                                                             "residual.png")}}

    def signal(self, model: int, clip_id: str, layer: str, feature: int, kind: str) -> np.ndarray:
        session = self.sessions[model]
        sound = self.sonifications(model, clip_id, layer, [feature])[0]
        if kind == "sonification":
            return sound
        return self.waveform(clip_id, session.sample_rate) - sound


# ------------------------------------------------------------------ helpers
def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _clip_id(request: Request, clip_id: str | None = None) -> str:
    clip_id = request.path_params["clip"] if clip_id is None else clip_id
    if not (len(clip_id) == 12 and all(c in "0123456789abcdef" for c in clip_id.lower().lstrip("u"))):
        raise ApiError(404, "no such clip")
    return clip_id


def _feature(request: Request, text: str | None = None) -> int:
    text = request.path_params["feature"] if text is None else text
    if not text.isdecimal() or len(text) > 7:
        raise ApiError(400, f"map index must be a non-negative integer; received {text[:12]!r}")
    return int(text)


async def _run(explorer: Explorer, worker: Worker, key, fn):
    try:
        return await worker.run(key, fn)
    except (ApiError, Busy, ClipError):
        raise
    except ValueError as error:  # bad layer / too short clip / bad map: say so
        raise ApiError(400, str(error)) from None


def build_app(explorer: Explorer) -> Starlette:
    """The Starlette app serving ``explorer``'s page and API."""
    from tfsonify.explain.methods import METHODS

    index_html = (STATIC_DIR / "index.html").read_bytes()

    def cache_headers(seconds: int = 3600) -> dict:
        return {"Cache-Control": f"private, max-age={seconds}"}

    async def index(request: Request):
        return Response(index_html, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    async def info(request: Request):
        return JSONResponse({"models": [s.describe() for s in explorer.sessions], "methods": list(METHODS),
                             "limits": {"max_seconds": explorer.library.max_seconds,
                                        "max_upload_bytes": explorer.max_upload_bytes, "max_top_k": MAX_TOP_K}})

    async def status(request: Request):
        return JSONResponse({"cache": explorer.cache.stats(), "uptime_s": time.time() - explorer.started,
                             "pending": {"model": explorer.model_worker.pending, "render": explorer.render_worker.pending},
                             "rejected": {"model": explorer.model_worker.rejected, "render": explorer.render_worker.rejected}})

    async def clips(request: Request):
        return JSONResponse({"clips": [clip.to_json() for clip in explorer.library.clips()]})

    async def upload(request: Request):
        length = request.headers.get("content-length")
        limit = explorer.max_upload_bytes
        if length is not None and length.isdecimal() and int(length) > limit:
            raise ApiError(413, f"upload is {int(length) / 2**20:.1f} MiB; the limit is {limit / 2**20:g} MiB")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"upload exceeds the {limit / 2**20:g} MiB limit")
            chunks.append(chunk)
        name = request.query_params.get("name", "upload")
        clip = await _run(explorer, explorer.render_worker, None, lambda: explorer.library.add_upload(b"".join(chunks), name))
        return JSONResponse(clip.to_json(), status_code=201)

    def input_rate() -> int:
        return explorer.sessions[0].sample_rate

    async def clip_audio(request: Request):
        clip_id, rate = _clip_id(request), input_rate()
        as_float = request.query_params.get("float") == "1"
        data = await _run(explorer, explorer.render_worker, ("in.wav", clip_id, as_float),
                          lambda: _wav(explorer.waveform(clip_id, rate), rate, as_float))
        return _wav_response(data, f"{explorer.library.get(clip_id).name}", "input", as_float)

    async def clip_waveform(request: Request):
        clip_id, rate = _clip_id(request), input_rate()

        def compute():
            x = explorer.waveform(clip_id, rate)
            return {**envelope(x), "samples": int(x.size), "sample_rate": rate, "duration": x.size / rate}
        return JSONResponse(await _run(explorer, explorer.render_worker, ("env", clip_id), compute))

    async def clip_spectrogram(request: Request):
        clip_id, rate = _clip_id(request), input_rate()

        def compute():
            return explorer._cached(("in.png", clip_id, rate), lambda: spectrogram_png(*explorer.input_db(clip_id, rate)))
        return Response(await _run(explorer, explorer.render_worker, ("in.png", clip_id), compute),
                        media_type="image/png", headers=cache_headers())

    async def prediction(request: Request):
        model, clip_id = request.path_params["model"], _clip_id(request)
        session = explorer.session(model)

        def compute():
            return explorer._cached(("pred", model, clip_id),
                                    lambda: {"prediction": session.predict(explorer.waveform(clip_id, session.sample_rate)),
                                             "head": bool(session.num_classes)})
        return JSONResponse(await _run(explorer, explorer.model_worker, ("pred", model, clip_id), compute))

    async def coherence(request: Request):
        model, clip_id = request.path_params["model"], _clip_id(request)
        session = explorer.session(model)

        def compute():
            return explorer._cached(("coh", model, clip_id),
                                    lambda: session.coherence(explorer.waveform(clip_id, session.sample_rate)))
        return JSONResponse(await _run(explorer, explorer.model_worker, ("coh", model, clip_id), compute))

    def layer_of(request: Request) -> tuple[int, str, str]:
        model, clip_id, layer = request.path_params["model"], _clip_id(request), request.path_params["layer"]
        try:
            explorer.session(model).layer(layer)
        except ValueError as error:
            raise ApiError(400, str(error)) from None
        return int(model), clip_id, layer

    async def overview(request: Request):
        model, clip_id, layer = layer_of(request)
        session = explorer.sessions[model]

        def compute():
            acts = explorer.activations(model, clip_id, layer)
            times = acts["times"]
            return {"layer": layer, "label": session.layer(layer).label, "maps": int(acts["acts"].shape[1]),
                    "steps": int(acts["acts"].shape[0]), "layer_steps": acts["steps"], "pooled": bool(acts["pooled"]),
                    "order": acts["order"].tolist(),
                    "maxima": np.round(acts["maxima"][acts["order"]], 5).tolist(),
                    "times": [float(times[0]), float(times[1])],
                    "image": f"/api/models/{model}/clips/{clip_id}/layers/{layer}/overview.png"}
        return JSONResponse(await _run(explorer, explorer.model_worker, ("ov", model, clip_id, layer), compute))

    async def overview_image(request: Request):
        model, clip_id, layer = layer_of(request)

        def activations():
            return explorer.activations(model, clip_id, layer)

        acts = await _run(explorer, explorer.model_worker, ("acts", model, clip_id, layer), activations)

        def render():
            return explorer._cached(("ov.png", model, clip_id, layer), lambda: overview_png(acts["acts"], acts["order"]))
        return Response(await _run(explorer, explorer.render_worker, ("ov.png", model, clip_id, layer), render),
                        media_type="image/png", headers=cache_headers())

    async def top(request: Request):
        model, clip_id, layer = layer_of(request)
        text = request.query_params.get("k", "8")
        maps = explorer.sessions[model].layer(layer).maps
        if not text.isdecimal() or not 1 <= int(text) <= min(MAX_TOP_K, maps):
            raise ApiError(400, f"k must be an integer in 1..{min(MAX_TOP_K, maps)}; received {text[:12]!r}")
        k = int(text)
        clip_info = explorer.library.get(clip_id)
        if clip_info.duration:
            samples = clip_info.duration * explorer.sessions[model].sample_rate
            most = max(1, int(SOUND_BUDGET_BYTES // (4 * samples)))
            if k > most:
                raise ApiError(400, f"k={k} maps of this {clip_info.duration / 60:.1f}-minute clip would make "
                                    f"{k * 4 * samples / 2**20:.0f} MB of sonifications; at most {most} at once for a "
                                    f"clip this long (click single maps to hear others)")

        def compute():
            order = explorer.activations(model, clip_id, layer)["order"][:k].tolist()
            explorer.sonifications(model, clip_id, layer, order)  # one batched pass for the missing ones
            return [explorer.map_summary(model, clip_id, layer, f) for f in order]
        return JSONResponse({"maps": await _run(explorer, explorer.model_worker, ("top", model, clip_id, layer, k), compute)})

    async def map_info(request: Request):
        model, clip_id, layer = layer_of(request)
        feature = _feature(request)
        return JSONResponse(await _run(explorer, explorer.model_worker, ("map", model, clip_id, layer, feature),
                                       lambda: explorer.map_summary(model, clip_id, layer, feature)))

    async def map_file(request: Request):
        model, clip_id, layer = layer_of(request)
        feature, kind, ext = _feature(request), request.path_params["kind"], request.path_params["ext"]
        if kind not in ("sonification", "residual") or ext not in ("wav", "png"):
            raise ApiError(404, "no such file")
        session = explorer.sessions[model]
        signal = await _run(explorer, explorer.model_worker, ("sig", model, clip_id, layer, feature, kind),
                            lambda: explorer.signal(model, clip_id, layer, feature, kind))
        rate = session.sample_rate
        if ext == "wav":
            as_float = request.query_params.get("float") == "1"
            name = f"{explorer.library.get(clip_id).name}"
            return _wav_response(_wav(signal, rate, as_float), name,
                                 f"{session.layer(layer).label.replace(' ', '')}_map{feature}_{kind}", as_float)

        def render():
            return explorer._cached(("png", model, clip_id, layer, feature, kind),
                                    lambda: spectrogram_png(spectrogram_db(signal, rate), explorer.input_db(clip_id, rate)[1]))
        return Response(await _run(explorer, explorer.render_worker, ("png", model, clip_id, layer, feature, kind), render),
                        media_type="image/png", headers=cache_headers())

    async def explanation(request: Request):
        query = request.query_params
        model, clip_id = query.get("model", "0"), _clip_id(request, query.get("clip", ""))
        session = explorer.session(model)
        layer = query.get("layer", "")
        try:
            session.layer(layer)
        except ValueError as error:
            raise ApiError(400, str(error)) from None
        feature, method, fmt = _feature(request, query.get("feature", "")), query.get("method", ""), query.get("format", "wav")
        if method not in METHODS:
            raise ApiError(400, f"unknown method {method[:40]!r}; valid: {', '.join(METHODS)}")
        if fmt not in ("wav", "png"):
            raise ApiError(400, f"format must be 'wav' or 'png'; received {fmt[:12]!r}")
        model, rate = int(model), session.sample_rate
        key = ("explain", model, clip_id, layer, feature, method)
        sound = await _run(explorer, explorer.model_worker, key,
                           lambda: explorer.explanation(model, clip_id, layer, feature, method))
        if fmt == "wav":
            as_float = query.get("float") == "1"
            return _wav_response(_wav(sound, rate, as_float), explorer.library.get(clip_id).name,
                                 f"{session.layer(layer).label.replace(' ', '')}_map{feature}_{method}", as_float)

        def render():
            return explorer._cached(("explain.png",) + key[1:],
                                    lambda: spectrogram_png(spectrogram_db(sound, rate), explorer.input_db(clip_id, rate)[1]))
        return Response(await _run(explorer, explorer.render_worker, ("explain.png",) + key[1:], render),
                        media_type="image/png", headers=cache_headers())

    async def api_error(request: Request, error: ApiError):
        return _error(error.status, error.message)

    async def clip_error(request: Request, error: ClipError):
        return _error(error.status, str(error))

    async def busy(request: Request, error: Busy):
        return _error(503, str(error), {"Retry-After": "1"})

    async def http_error(request: Request, error: HTTPException):
        message = {404: "not found", 405: "method not allowed"}.get(error.status_code, str(error.detail))
        return _error(error.status_code, message)

    async def server_error(request: Request, error: Exception):
        log.exception("explore: unexpected error on %s", request.url.path)
        return _error(500, f"internal error ({type(error).__name__}); the server keeps running")

    clip = "/api/clips/{clip}"
    layer = "/api/models/{model}/clips/{clip}/layers/{layer}"
    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/status", status),
        Route("/api/clips", clips),
        Route("/api/upload", upload, methods=["POST"]),
        Route(clip + "/audio.wav", clip_audio),
        Route(clip + "/waveform", clip_waveform),
        Route(clip + "/spectrogram.png", clip_spectrogram),
        Route("/api/models/{model}/clips/{clip}/prediction", prediction),
        Route("/api/models/{model}/clips/{clip}/coherence", coherence),
        Route(layer + "/overview", overview),
        Route(layer + "/overview.png", overview_image),
        Route(layer + "/top", top),
        Route(layer + "/maps/{feature}", map_info),
        Route(layer + "/maps/{feature}/{kind}.{ext}", map_file),
        Route("/api/explain", explanation),
        Mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={ApiError: api_error, ClipError: clip_error, Busy: busy,
                                                        HTTPException: http_error, Exception: server_error})


def _wav(signal: np.ndarray, rate: int, as_float: bool) -> bytes:
    if not as_float:
        return wav_bytes(signal, rate)
    import io

    from tfsonify.io.audio import open_float_wav

    buffer = io.BytesIO()
    with open_float_wav(buffer, rate) as file:  # no PEAK chunk: the same samples give the same bytes
        file.write(np.asarray(signal, np.float32))
    return buffer.getvalue()


def _wav_response(data: bytes, clip_name: str, what: str, as_float: bool) -> Response:
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(clip_name).stem)[:60] or "clip"
    headers = {"Cache-Control": "private, max-age=3600"}
    if as_float:
        headers["Content-Disposition"] = f'attachment; filename="{stem}_{what}.wav"'
    return Response(data, media_type="audio/wav", headers=headers)


class ExplorerServer:
    """Run an app on uvicorn in a background thread (tests, benchmarks, the screenshot script).

    ``with ExplorerServer(app) as url: ...`` binds ``host:port`` (port 0: a free one), serves until the block ends.
    """

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.host, self.port = host, self.socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the explorer server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()
        return False
