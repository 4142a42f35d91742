"""Client for a tfsonify SavedModel behind TF Serving's REST or gRPC API.

Works against ``tfsonify serve`` and a real ``tensorflow_model_server`` alike: REST uses
the documented JSON (columnar ``inputs``), gRPC the ``tensorflow-serving-api`` stubs.

URLs:
    ``http://HOST:8501/v1/models/NAME[/versions/V]`` (REST) or
    ``grpc://HOST:8500/NAME[/V]`` (gRPC).

Example:
>>> client = Client("http://localhost:8501/v1/models/cnn12")
>>> features, activations, sounds = client.sonify_top_k(waveform, layer=5, k=3)
"""
from __future__ import annotations

import base64
import http.client
import json
import re
import threading
import urllib.parse

import numpy as np

__all__ = ["Client", "ServingRequestError"]


class ServingRequestError(RuntimeError):
    """The server rejected a request; ``status`` is the HTTP status or the gRPC status code name."""

    def __init__(self, message: str, status):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class Client:
    """REST or gRPC client for one served model.

    Args:
        url: ``http(s)://host:port/v1/models/NAME[/versions/V]`` or ``grpc://host:port/NAME[/V]``.
        timeout: seconds per request.
    """

    def __init__(self, url: str, timeout: float = 60.0):
        self.timeout = timeout
        rest = re.fullmatch(r"(https?://[^/]+)/v1/models/([^/:]+)(?:/versions/(\d+))?/?", url)
        grpc_match = re.fullmatch(r"grpc://([^/]+)/([^/]+)(?:/(\d+))?/?", url)
        if rest:
            self.protocol, self.base, self.name = "rest", rest.group(1), rest.group(2)
            self.version = int(rest.group(3)) if rest.group(3) else None
        elif grpc_match:
            self.protocol, self.target, self.name = "grpc", grpc_match.group(1), grpc_match.group(2)
            self.version = int(grpc_match.group(3)) if grpc_match.group(3) else None
            import grpc
            from tensorflow_serving.apis import prediction_service_pb2_grpc

            size = 256 * 1024 * 1024
            self._channel = grpc.insecure_channel(self.target, options=[("grpc.max_receive_message_length", size),
                                                                        ("grpc.max_send_message_length", size)])
            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        else:
            raise ValueError(f"url must look like http://HOST:PORT/v1/models/NAME[/versions/V] or grpc://HOST:PORT/NAME[/V]; "
                             f"received {url!r}")

    # --------------------------------------------------------------- transport
    def _rest_path(self) -> str:
        suffix = f"/versions/{self.version}" if self.version is not None else ""
        return f"{self.base}/v1/models/{self.name}{suffix}"

    def _connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        """This thread's persistent (keep-alive) connection to the REST server."""
        local = self.__dict__.setdefault("_local", threading.local())
        connection = getattr(local, "connection", None)
        if connection is None or fresh:
            if connection is not None:
                connection.close()
            parts = urllib.parse.urlsplit(self.base)
            kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            connection = local.connection = kind(parts.hostname, parts.port, timeout=self.timeout)
            self.__dict__.setdefault("_connections", []).append(connection)
        return connection

    def _http(self, url: str, body: dict | None = None) -> dict:
        """One REST call on this thread's keep-alive connection (reconnects once if the server closed it)."""
        data = None if body is None else json.dumps(body).encode()
        path = urllib.parse.urlsplit(url)
        target = path.path + (f"?{path.query}" if path.query else "")
        for attempt in (0, 1):
            connection = self._connection(fresh=attempt == 1)
            try:
                connection.request("GET" if data is None else "POST", target, body=data,
                                   headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                text = response.read()
                break
            except (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError, BrokenPipeError):
                if attempt == 1:
                    raise
        if response.status >= 400:
            text = text.decode(errors="replace")
            try:
                message = json.loads(text).get("error", text)
            except (json.JSONDecodeError, AttributeError):
                message = text
            raise ServingRequestError(message, response.status)
        return json.loads(text)

    def status(self) -> dict:
        """REST model status (``GET /v1/models/NAME``)."""
        if self.protocol != "rest":
            raise ValueError("status() is REST-only; use metadata() over gRPC")
        return self._http(self._rest_path())

    def model_record(self) -> dict:
        """The tfsonify record a ``tfsonify serve`` server reports with the model (REST ``/metadata``'s
        ``"tfsonify"`` entry: ``sample_rate`` in Hz, ``class_names``, ``layer_names``...; see
        :func:`tfsonify.export.savedmodel.read_metadata`), or ``{}`` when the server reports none (TF Serving,
        gRPC)."""
        if self.protocol != "rest":
            return {}
        try:
            response = self._http(self._rest_path() + "/metadata")
        except ServingRequestError:  # a server without the endpoint (or one that refuses it) reports no record
            return {}
        return dict(response.get("metadata", {}).get("tfsonify") or {})

    def metadata(self) -> dict:
        """Signature definitions as a dict ``{signature: {"inputs": {...}, "outputs": {...}}}`` (REST JSON form)."""
        if self.protocol == "rest":
            return self._http(self._rest_path() + "/metadata")["metadata"]["signature_def"]["signature_def"]
        import grpc
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest()
        request.model_spec.name = self.name
        if self.version is not None:
            request.model_spec.version.value = self.version
        request.metadata_field.append("signature_def")
        try:
            response = self._stub.GetModelMetadata(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingRequestError(error.details(), error.code().name) from None
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return json_format.MessageToDict(signature_map, preserving_proto_field_name=True)["signature_def"]

    def predict(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call a signature with named inputs (batched on axis 0); returns named numpy outputs."""
        arrays = {name: np.asarray(value) for name, value in inputs.items()}
        if self.protocol == "rest":
            body = {"signature_name": signature_name, "inputs": {name: _to_json(value) for name, value in arrays.items()}}
            outputs = self._http(self._rest_path() + ":predict", body)["outputs"]
            if not isinstance(outputs, dict):  # TF Serving unwraps a single output
                outputs = {_SINGLE_OUTPUT.get(signature_name, "output"): outputs}
            return {name: _as_array(name, value) for name, value in outputs.items()}
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.name
        request.model_spec.signature_name = signature_name
        if self.version is not None:
            request.model_spec.version.value = self.version
        for name, value in arrays.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        try:
            response = self._stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingRequestError(error.details(), error.code().name) from None
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    # ------------------------------------------------------------ conveniences
    @staticmethod
    def _batch(waveform) -> np.ndarray:
        wave = np.asarray(waveform, np.float32)
        return wave[np.newaxis] if wave.ndim == 1 else wave

    def embed(self, waveform) -> dict[str, np.ndarray]:
        """``serving_default``: embedding (and scores with a head) for ``[time]`` or ``[batch, time]``."""
        return self.predict("serving_default", {"waveform": self._batch(waveform)})

    def sonify(self, waveform, layer: int, feature: int) -> np.ndarray:
        """Sonification of map ``feature`` of block ``layer``: float32 shaped like ``waveform``."""
        wave = self._batch(waveform)
        rows = wave.shape[0]
        out = self.predict("sonify", {"waveform": wave, "layer": np.full(rows, layer, np.int32),
                                      "feature": np.full(rows, feature, np.int32)})["sonification"]
        return out[0] if np.ndim(waveform) == 1 else out

    def sonify_top_k(self, waveform, layer: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``k`` most active maps: ``(features [k], activations [k], sonifications [k, time])`` (batch axis first for 2-D input)."""
        wave = self._batch(waveform)
        rows = wave.shape[0]
        out = self.predict("sonify_top_k", {"waveform": wave, "layer": np.full(rows, layer, np.int32),
                                            "k": np.full(rows, k, np.int32)})
        result = (out["features"], out["activations"], out["sonifications"])
        return tuple(r[0] for r in result) if np.ndim(waveform) == 1 else result

    def sonify_top_k_wav(self, wav: bytes, layer: int, k: int) -> dict:
        """Send one encoded 16-bit PCM WAV file (``sonify_top_k_wav``); returns the raw named outputs.

        ``sonifications_bytes`` (object ``[K]`` of WAV files, peak-normalised) and ``sonification_peaks``
        float32 ``[K]``, plus ``features`` and ``activations`` ``[K]``. Decode the sounds with
        :func:`tfsonify.export.wav_graph.decode_wav_files`.
        """
        out = self.predict("sonify_top_k_wav", {"wav_bytes": np.array([bytes(wav)], dtype=object),
                                                "layer": np.array([layer], np.int32), "k": np.array([k], np.int32)})
        return {name: value[0] for name, value in out.items()}

    def sonify_top_k_audio(self, waveform, layer: int, k: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`sonify_top_k` with WAV bytes on the wire both ways (a third of the JSON size over REST).

        ``waveform``: float32 ``[time]`` at ``sample_rate`` Hz (the model's rate), sent as 16-bit PCM.
        Returns ``(features [k], activations [k], sonifications float32 [k, time])``, the sonifications
        rescaled by their peaks (16-bit resolution of each one's peak).
        """
        from tfsonify.export.wav_graph import decode_wav_files, encode_wav_files

        out = self.sonify_top_k_wav(encode_wav_files(np.asarray(waveform, np.float32), sample_rate)[0], layer, k)
        return out["features"], out["activations"], decode_wav_files(out["sonifications_bytes"], out["sonification_peaks"])

    def close(self) -> None:
        if self.protocol == "grpc":
            self._channel.close()
        for connection in self.__dict__.pop("_connections", []):
            connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_SINGLE_OUTPUT = {"sonify": "sonification"}
_INT_OUTPUTS = {"features", "classes"}


def _to_json(value: np.ndarray):
    """Nested lists; bytes (DT_STRING) as TF Serving's ``{"b64": ...}``."""
    if value.dtype == object or value.dtype.kind == "S":
        def walk(item):
            if isinstance(item, np.ndarray) and item.ndim:
                return [walk(x) for x in item]
            data = item.encode() if isinstance(item, str) else bytes(item)
            return {"b64": base64.b64encode(data).decode("ascii")}
        return walk(value)
    return value.tolist()


def _from_json(value):
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value


def _as_array(name: str, value) -> np.ndarray:
    if name.endswith("_bytes"):
        decoded = _from_json(value)
        array = np.empty(np.shape(np.asarray(decoded, dtype=object)), dtype=object)
        array[...] = decoded
        return array
    return np.asarray(value, np.int32 if name in _INT_OUTPUTS else np.float32)
