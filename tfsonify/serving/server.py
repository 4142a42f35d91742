"""A server speaking TensorFlow Serving's REST and gRPC APIs over exported SavedModels.

REST (Starlette app on uvicorn), as documented for ``tensorflow_model_server --rest_api_port``:

- ``GET /v1/models/NAME[/versions/V]``: version status;
- ``GET /v1/models/NAME[/versions/V]/metadata``: SignatureDefs (same JSON as TF Serving);
- ``POST /v1/models/NAME[/versions/V]:predict`` with ``signature_name`` and either row
  ``instances`` (response ``predictions``) or columnar ``inputs`` (response ``outputs``).

Errors are ``{"error": "..."}`` with 400 (bad request), 404 (unknown model/version), 405,
413 (body larger than ``max_body_bytes``) or 503 (over ``max_concurrency`` requests in flight, or over
``MAX_CONNECTIONS`` open connections).

gRPC: ``tensorflow.serving.PredictionService`` ``Predict`` and ``GetModelMetadata`` with the
generated stubs of the ``tensorflow-serving-api`` package, so TF Serving clients work
unchanged. Model calls run on worker threads (TensorFlow releases the GIL), so requests
are served concurrently; SIGINT/SIGTERM stop accepting, finish in-flight requests
(``grace`` seconds) and exit.
"""
from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_management_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc)
from tensorflow.core.protobuf import error_codes_pb2  # tensorflow.error.Code, as in TF Serving's StatusProto

from tfsonify.serving.ports import listen, port_taken
from tfsonify.serving.lifecycle import ModelRepository
from tfsonify.serving.repository import ServingError

__all__ = ["DEFAULT_MAX_BODY_BYTES", "build_app", "parse_predict_body", "Server"]

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
"""64 MiB: about 2 minutes of 8 kHz audio as JSON text per request."""


# ------------------------------------------------------------------ REST body format
def parse_predict_body(body: dict, input_names: list[str]) -> tuple[dict, str]:
    """Turn a TF Serving REST predict body into named inputs.

    Returns:
        ``(inputs, format)`` with ``format`` "row" (``instances``) or "columnar" (``inputs``).
    """
    if not isinstance(body, dict):
        raise ServingError("request body must be a JSON object with 'instances' or 'inputs'")
    has_rows, has_columns = "instances" in body, "inputs" in body
    if has_rows and has_columns:
        raise ServingError("request has both 'instances' (row format) and 'inputs' (columnar format); send exactly one")
    if not has_rows and not has_columns:
        raise ServingError("request is missing 'instances' (row format) or 'inputs' (columnar format)")
    if has_columns:
        columns = body["inputs"]
        if not isinstance(columns, dict):
            if len(input_names) != 1:
                raise ServingError(f"'inputs' must be an object naming the inputs {input_names}")
            columns = {input_names[0]: columns}
        return columns, "columnar"
    rows = body["instances"]
    if not isinstance(rows, list) or not rows:
        raise ServingError("'instances' must be a non-empty list, one entry per clip")
    if all(isinstance(row, dict) for row in rows):
        keys = set(rows[0])
        if any(set(row) != keys for row in rows):
            raise ServingError("every instance must name the same inputs")
        return {name: [row[name] for row in rows] for name in keys}, "row"
    if any(isinstance(row, dict) for row in rows):
        raise ServingError("'instances' mixes objects and bare values")
    if len(input_names) != 1:
        raise ServingError(f"bare 'instances' values need a single-input signature; this one takes {input_names}: "
                           "send objects like {\"waveform\": [...], ...}")
    return {input_names[0]: rows}, "row"


def _jsonable(name: str, value: np.ndarray):
    """Nested lists for JSON; DT_STRING outputs named ``*_bytes`` become ``{"b64": ...}``, others UTF-8 text."""
    if value.dtype != object and value.dtype.kind not in "SU":
        return value.tolist()
    if name.endswith("_bytes"):
        convert = lambda item: {"b64": base64.b64encode(bytes(item)).decode("ascii")}  # noqa: E731
    else:
        convert = lambda item: bytes(item).decode("utf-8", errors="replace") if isinstance(item, (bytes, np.bytes_)) else str(item)  # noqa: E731

    def walk(item):
        return [walk(x) for x in item] if isinstance(item, np.ndarray) and item.ndim else convert(item)

    return walk(value)


def format_predict_response(outputs: dict[str, np.ndarray], layout: str) -> dict:
    """TF Serving's response: ``predictions`` (row) or ``outputs`` (columnar); one output is unwrapped."""
    lists = {name: _jsonable(name, value) for name, value in outputs.items()}
    if layout == "columnar":
        return {"outputs": next(iter(lists.values())) if len(lists) == 1 else lists}
    if len(lists) == 1:
        return {"predictions": next(iter(lists.values()))}
    batch = len(next(iter(lists.values())))
    return {"predictions": [{name: value[i] for name, value in lists.items()} for i in range(batch)]}


def metadata_dict(version) -> dict:
    """REST ``/metadata`` response (same JSON shape as TF Serving's)."""
    proto = get_model_metadata_pb2.SignatureDefMap()
    for name, signature_def in version.signature_defs.items():
        proto.signature_def[name].CopyFrom(signature_def)
    metadata = {"signature_def": json_format.MessageToDict(proto, preserving_proto_field_name=True)}
    if version.metadata:  # tfsonify's record (rate, class and layer names); TF Serving clients ignore the extra key
        metadata["tfsonify"] = version.metadata
    return {"model_spec": {"name": version.name, "signature_name": "", "version": str(version.version)},
            "metadata": metadata}


def _status_dict(repository, name: str, version: int | None) -> dict:
    """``GET /v1/models/NAME[/versions/V]``: every known version's state (TF Serving's JSON)."""
    return {"model_version_status": [state.as_json() for state in repository.status(name, version)]}


def _parse_model_path(path: str) -> tuple[str, int | str | None, str]:
    """``NAME[/versions/V | /labels/LABEL][:predict|/metadata]`` -> (name, version or label, action)."""
    action = "status"
    if path.endswith(":predict"):
        path, action = path[: -len(":predict")], "predict"
    elif path.endswith("/metadata"):
        path, action = path[: -len("/metadata")], "metadata"
    parts = path.split("/")
    if len(parts) == 1 and parts[0]:
        return parts[0], None, action
    if len(parts) == 3 and parts[1] == "versions":
        if not parts[2].isdecimal():
            raise ServingError(f"version must be an integer; received {parts[2]!r}")
        return parts[0], int(parts[2]), action
    if len(parts) == 3 and parts[1] == "labels" and parts[2]:
        return parts[0], parts[2], action
    raise ServingError(f"malformed model path {path!r}: expected "
                       "/v1/models/NAME[/versions/V|/labels/LABEL][:predict|/metadata]", 404)


def _lookup(repository, name: str, selector):
    """The served version for an integer version, a label (str) or None (newest)."""
    if isinstance(selector, str):
        return repository.get(name, label=selector)
    return repository.get(name, selector)


def _predict_json(version, name: str, raw: bytes) -> str:
    """Decode a REST predict body, validate, run and encode the response (raises :class:`ServingError`)."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ServingError(f"request body is not valid JSON: {exc}") from None
    signature = body.get("signature_name", "serving_default") if isinstance(body, dict) else "serving_default"
    if not isinstance(signature, str):
        raise ServingError("signature_name must be a string")
    if signature not in version.signatures:
        raise ServingError(f"signature_name {signature!r} not found in model {name!r}; "
                           f"available: {sorted(version.signatures)}")
    inputs, layout = parse_predict_body(body, sorted(version.input_specs(signature)))
    outputs = version.run(signature, version.check_inputs(signature, inputs))
    return json.dumps(format_predict_response(outputs, layout), separators=(",", ":"))


BODY_IDLE_SECONDS = 30.0
"""A request body that sends nothing for this long is answered 408 (a slow-loris sender frees its slot)."""


def build_app(repository: ModelRepository, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
              body_idle_seconds: float = BODY_IDLE_SECONDS) -> Starlette:
    """The REST app (Starlette) over ``repository``: bodies over ``max_body_bytes`` get 413, bodies that stall for
    ``body_idle_seconds`` get 408."""

    def error(exc: ServingError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdecimal() and int(declared) > max_body_bytes:
            raise ServingError(f"request body of {declared} bytes exceeds the limit of {max_body_bytes} bytes", 413)
        chunks, size = [], 0
        stream = request.stream().__aiter__()
        while True:
            try:
                chunk = await asyncio.wait_for(stream.__anext__(), body_idle_seconds)
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:
                raise ServingError(f"request body stalled: nothing received for {body_idle_seconds:g} s "
                                   f"({size} bytes so far)", 408) from None
            size += len(chunk)
            if size > max_body_bytes:
                raise ServingError(f"request body exceeds the limit of {max_body_bytes} bytes", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    async def models(request: Request) -> Response:
        try:
            name, selector, action = _parse_model_path(request.path_params["rest"])
            if request.method == "GET":
                if action == "predict":
                    raise ServingError("predict needs POST", 405)
                if action == "status":
                    if isinstance(selector, str):  # a label: the status of the version it names
                        selector = _lookup(repository, name, selector).version
                    return JSONResponse(_status_dict(repository, name, selector))
                return JSONResponse(metadata_dict(_lookup(repository, name, selector)))
            if action != "predict":
                raise ServingError(f"POST is only for :predict; received {request.url.path}", 405)
            version = _lookup(repository, name, selector)
            raw = await read_body(request)
            # JSON decoding, validation, the model call and JSON encoding all run on a worker thread,
            # so the event loop keeps accepting and answering other requests meanwhile.
            text = await run_in_threadpool(_predict_json, version, name, raw)
            return Response(text, media_type="application/json")
        except ServingError as exc:
            return error(exc)

    return Starlette(routes=[Route("/v1/models/{rest:path}", models, methods=["GET", "POST"])])


# ------------------------------------------------------------------------ gRPC
def _tensor_from_proto(name: str, proto) -> np.ndarray:
    """A request's ``TensorProto`` as an array, or a :class:`ServingError` naming the input when its content does
    not fill its declared shape (or its dtype cannot be decoded)."""
    try:
        return tf.make_ndarray(proto)
    except (ValueError, TypeError) as exc:
        shape = [dim.size for dim in proto.tensor_shape.dim]
        raise ServingError(f"input {name!r}: its content does not match its tensor_shape {shape} ({exc})") from None


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``tensorflow.serving.PredictionService``: Predict and GetModelMetadata."""

    def __init__(self, repository: ModelRepository):
        self.repository = repository

    def _version(self, model_spec, context):
        version = model_spec.version.value if model_spec.HasField("version") else None
        label = model_spec.version_label if model_spec.WhichOneof("version_choice") == "version_label" else None
        try:
            return self.repository.get(model_spec.name, version, label=label)
        except ServingError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, exc.message)

    def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        version = self._version(request.model_spec, context)
        signature = request.model_spec.signature_name or "serving_default"
        try:
            if signature not in version.signatures:
                raise ServingError(f"signature_name {signature!r} not found; available: {sorted(version.signatures)}")
            inputs = {name: _tensor_from_proto(name, proto) for name, proto in request.inputs.items()}
            arrays = version.check_inputs(signature, inputs)
            outputs = version.run(signature, arrays)
        except ServingError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = version.name
        response.model_spec.version.value = version.version
        response.model_spec.signature_name = signature
        filter_names = set(request.output_filter) or set(outputs)
        for name, value in outputs.items():
            if name in filter_names:
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802
        version = self._version(request.model_spec, context)
        fields = list(request.metadata_field)
        if fields != ["signature_def"]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"metadata_field must be ['signature_def'] (the only one served); received {fields}")
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in version.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature_def)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = version.name
        response.model_spec.version.value = version.version
        response.metadata["signature_def"].Pack(signature_map)
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService``: GetModelStatus and HandleReloadConfigRequest."""

    def __init__(self, repository):
        self.repository = repository

    def GetModelStatus(self, request, context):  # noqa: N802
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        try:
            if spec.WhichOneof("version_choice") == "version_label":
                version = self.repository.get(spec.name, label=spec.version_label).version
            states = self.repository.status(spec.name, version)
        except ServingError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, exc.message)
        response = get_model_status_pb2.GetModelStatusResponse()
        for state in states:
            entry = response.model_version_status.add()
            entry.version = state.version
            entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(state.state)
            entry.status.error_code = error_codes_pb2.Code.Value(state.error_code)
            entry.status.error_message = state.error_message
        return response

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        from tfsonify.serving.config import specs_from_proto

        response = model_management_pb2.ReloadConfigResponse()
        if not hasattr(self.repository, "reload"):
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this server's models are fixed")
        try:
            problems = self.repository.reload(specs_from_proto(request.config))
        except ValueError as exc:
            response.status.error_code = error_codes_pb2.INVALID_ARGUMENT
            response.status.error_message = str(exc)
            return response
        if problems:
            response.status.error_code = error_codes_pb2.UNKNOWN
            response.status.error_message = "; ".join(problems)
        return response


GRPC_MESSAGE_BYTES = 256 * 1024 * 1024


MAX_CONNECTIONS = 1024
"""Open REST connections :class:`Server` accepts before answering 503 (idle ones included)."""


IDLE_SECONDS = 30.0
"""A REST connection that has not sent a request's complete headers this many seconds after it opened (or after
the first byte of a later request on a kept-alive connection) is closed; between requests uvicorn's own
keep-alive timeout, 5 s, applies."""


def idle_closing_protocol(idle_seconds: float):
    """uvicorn's h11 HTTP protocol with a header deadline (nginx's ``client_header_timeout``): a connection that
    sends no byte, or only part of a request's headers, within ``idle_seconds`` is disconnected. uvicorn itself
    waits forever for a first request, and its keep-alive timer is cancelled by the first byte, so a client that
    sends half a header line and stalls would hold its socket for good. The deadline starts when the connection
    opens and again at the first byte of each later request; complete headers cancel it, and from then on the
    body timer of :func:`build_app` (408) bounds a stalled request."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class IdleClosingH11Protocol(H11Protocol):
        _header_deadline = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._header_deadline = self.loop.call_later(idle_seconds, self._headers_late)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # complete headers: the body timer takes over
                if self._header_deadline is not None:
                    self._header_deadline.cancel()
                    self._header_deadline = None
            elif self.conn.trailing_data[0] and self._header_deadline is None:  # part of a later request's headers
                self._header_deadline = self.loop.call_later(idle_seconds, self._headers_late)

        def _headers_late(self) -> None:
            self._header_deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

        def connection_lost(self, exc) -> None:  # type: ignore[override]
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None
            super().connection_lost(exc)

    return IdleClosingH11Protocol


class InFlightLimit:
    """ASGI middleware: at most ``limit`` HTTP requests in flight, 503 with a JSON error beyond. uvicorn's own
    ``limit_concurrency`` counts open connections too, so 64 idle sockets would turn every real request away."""

    def __init__(self, app, limit: int):
        self.app, self.limit, self.active = app, int(limit), 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.active >= self.limit:
            busy = JSONResponse({"error": f"server busy: {self.limit} requests in flight (--max-concurrency); retry"},
                                status_code=503, headers={"Retry-After": "1"})
            return await busy(scope, receive, send)
        self.active += 1  # one event loop: no lock needed
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:  # shutdown cut a request whose client was still sending after the grace
            pass  # period: the connection closes; no traceback in the server's log
        finally:
            self.active -= 1


class Server:
    """REST + gRPC server over a :class:`ModelRepository`.

    Args:
        repository: the loaded models.
        host: interface to bind (``127.0.0.1`` for loopback, ``0.0.0.0`` for all).
        port: REST port (0 = any free port; see ``rest_port`` after :meth:`start`).
        grpc_port: gRPC port (0 = any free port, None = no gRPC).
        max_body_bytes: REST request size limit (413 beyond).
        max_concurrency: REST requests in flight before 503 (:class:`InFlightLimit`; idle and keep-alive
            connections do not count, so idle clients cannot lock normal ones out).
        body_idle_seconds: a request body stalled this long gets 408 (:data:`BODY_IDLE_SECONDS`).
        max_connections: open REST connections before uvicorn answers 503 (bounds the file descriptors idle or
            slow clients can hold).
        idle_seconds: a REST connection that sends nothing for this long after opening is closed
            (:data:`IDLE_SECONDS`; :func:`idle_closing_protocol`; REST is served by uvicorn's h11 protocol).
        workers: gRPC worker threads.
        grace: seconds given to in-flight requests on shutdown.
        rest_socket: a listening REST socket from :func:`listen` (``tfsonify serve`` binds before loading models),
            else one is bound to ``host:port`` here.
    """

    def __init__(self, repository: ModelRepository, host: str = "127.0.0.1", port: int = 8501, grpc_port: int | None = 8500,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, max_concurrency: int = 64, workers: int = 8, grace: float = 10.0,
                 rest_socket: socket.socket | None = None, max_connections: int = MAX_CONNECTIONS,
                 body_idle_seconds: float = BODY_IDLE_SECONDS, idle_seconds: float = IDLE_SECONDS):
        import uvicorn

        if isinstance(idle_seconds, bool) or not isinstance(idle_seconds, (int, float)) or not 0 < idle_seconds < 1e6:
            raise ValueError(f"idle_seconds must be a positive number of seconds; received {idle_seconds!r}")

        self.repository = repository
        self.host, self.grace = host, grace
        self._socket = rest_socket if rest_socket is not None else listen(host, port, "REST")
        self.rest_port = self._socket.getsockname()[1]
        # log_config=None: uvicorn's logging.config.dictConfig would close every handler already installed (the
        # embedding application's, pytest's); its warnings go through the standard logging hierarchy instead
        app = InFlightLimit(build_app(repository, max_body_bytes, body_idle_seconds), max_concurrency)
        config = uvicorn.Config(app, log_level="warning", access_log=False, log_config=None,
                                limit_concurrency=max(max_connections, max_concurrency),
                                http=idle_closing_protocol(float(idle_seconds)),
                                timeout_graceful_shutdown=int(grace) or 1)
        self._uvicorn = uvicorn.Server(config)
        self._grpc = None
        self.grpc_port = None
        if grpc_port is not None:
            options = [("grpc.max_receive_message_length", GRPC_MESSAGE_BYTES),
                       ("grpc.max_send_message_length", GRPC_MESSAGE_BYTES)]
            self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)
            prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(repository), self._grpc)
            model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(repository), self._grpc)
            address = f"[{host}]:{grpc_port}" if ":" in host else f"{host}:{grpc_port}"
            try:
                self.grpc_port = self._grpc.add_insecure_port(address)
            except RuntimeError:  # grpcio: "Failed to bind to address ..."
                self._socket.close()
                raise ValueError(port_taken(host, grpc_port, "gRPC", "--grpc-port")) from None
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        """Serve in this thread until SIGINT/SIGTERM, then drain and stop both front ends."""
        if self._grpc is not None:
            self._grpc.start()
        try:
            self._uvicorn.run(sockets=[self._socket])
        finally:
            if self._grpc is not None:
                self._grpc.stop(self.grace).wait()
            self._close_repository()

    def _close_repository(self) -> None:
        close = getattr(self.repository, "close", None)  # stop polling for new versions
        if close is not None:
            close()

    def start(self) -> "Server":
        """Serve from a background thread (for tests and notebooks); returns when ready."""
        if self._grpc is not None:
            self._grpc.start()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._uvicorn.serve(sockets=[self._socket])), daemon=True)
        self._thread.start()
        while not self._uvicorn.started:
            if not self._thread.is_alive():
                raise RuntimeError("REST server failed to start")
            threading.Event().wait(0.02)
        return self

    def stop(self) -> None:
        """Graceful stop of a :meth:`start`-ed server: in-flight requests finish first."""
        self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(self.grace + 5)
        if self._grpc is not None:
            self._grpc.stop(self.grace).wait()
        self._close_repository()
