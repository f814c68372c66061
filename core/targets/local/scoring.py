"""The MLflow scoring protocol as an ASGI application, answering as MLflow's scoring server does.

Same routes, status codes, bodies and content types as `mlflow.pyfunc.scoring_server.init`
(a FastAPI app), without what costs time per request there: no middleware, no hop to a thread
(a worker is one process with one event loop, and the model holds the interpreter anyway), and
JSON decoded once and encoded by the C encoder. Anything but plain `application/json` (CSV,
parquet, charsets, unified LLM input, type-hinted models) goes through MLflow's own
`invocations`, so the rare formats can never drift from MLflow.
"""

from __future__ import annotations

import inspect
import json
import os
import traceback
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

from core.targets.local.split import CANARY_HEADER, PROBE_HEADER

if TYPE_CHECKING:
    from core.targets.local.split import Splitter
    from core.targets.local.traffic import Tally

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON = b"application/json"
PLAIN = b"text/plain; charset=utf-8"
_NOT_FOUND = b'{"detail":"Not Found"}'
_NOT_ALLOWED = b'{"detail":"Method Not Allowed"}'
_FAILED = b"Internal Server Error"
# what of a candidate's answer is relayed to the caller (the length is set anew)
_RELAYED = frozenset((b"content-type", b"x-model", b"x-deployment", b"allow"))


class Scorer:
    """Predictions for request bodies, exactly as MLflow's `invocations` answers them."""

    def __init__(self, model: Any) -> None:
        from mlflow.environment_variables import _MLFLOW_IS_IN_SERVING_ENVIRONMENT

        # what MLflow's server sets before serving: some flavors read it
        os.environ[_MLFLOW_IS_IN_SERVING_ENVIRONMENT.name] = "true"
        self.model = model
        self.schema = model.metadata.get_input_schema()
        self._takes_params = "params" in inspect.signature(model.predict).parameters
        hinted = getattr(model.metadata, "_is_signature_from_type_hint", None)
        self._plain = not (hinted and hinted())

    def invoke(self, body: bytes, content_type: str | None) -> tuple[int, bytes, bytes]:
        """(status, content type, body); an MlflowException becomes its own JSON answer."""
        from mlflow.exceptions import MlflowException
        from mlflow.pyfunc import scoring_server

        try:
            if content_type == "application/json" and self._plain:
                payload = self._json(body)
                if payload is not None:
                    return 200, JSON, payload
            result = scoring_server.invocations(body, content_type, self.model, self.schema)  # type: ignore[no-untyped-call]
        except MlflowException as exc:
            status = exc.get_http_status_code()  # type: ignore[no-untyped-call]
            return status, JSON, exc.serialize_as_json().encode()  # type: ignore[no-untyped-call]
        mimetype = PLAIN if result.mimetype == "text/plain" else result.mimetype.encode()
        return result.status, mimetype, result.response.encode()

    def _json(self, body: bytes) -> bytes | None:
        """MLflow's JSON path, step for step; None where MLflow's own call must answer
        (unified LLM input, params the model ignores, a model that raised)."""
        from mlflow.exceptions import MlflowException
        from mlflow.pyfunc import scoring_server as ss
        from mlflow.pyfunc.utils.serving_data_parser import is_unified_llm_input
        from mlflow.utils.proto_json_utils import NumpyEncoder, _get_jsonable_obj

        decoded = ss._decode_json_input(body)  # type: ignore[no-untyped-call]
        if is_unified_llm_input(decoded):
            return None
        data, params = ss._split_data_and_params(decoded)  # type: ignore[no-untyped-call]
        data = ss.infer_and_parse_data(data, self.schema)
        try:
            if self._takes_params:
                raw = self.model.predict(data, params=params)
            else:
                if params:
                    return None  # MLflow warns in its log about ignored params: let it
                raw = self.model.predict(data)
        except MlflowException as exc:
            exc.message = f"Failed to predict data '{data}'. \nError: {exc.message}"
            raise
        except Exception:
            # MLflow's answer carries the traceback of its own call: ask it for that answer
            return None
        predictions = _get_jsonable_obj(raw, pandas_orient="records")  # type: ignore[no-untyped-call]
        # `json.dumps` writes what MLflow's `json.dump` writes, with the C encoder
        return json.dumps({"predictions": predictions}, cls=NumpyEncoder).encode()


class ScoringApp:
    """The routes of MLflow's scoring server: /ping, /health, /version, POST /invocations."""

    def __init__(self, scorer: Scorer, *, model: str, version: int, deployment: str) -> None:
        from mlflow.version import VERSION

        self.scorer = scorer
        self.draining = False  # set when the worker retires: every answer closes its connection
        # set when the worker takes the endpoint's traffic: the smoke test is not counted
        self.tally: Tally | None = None
        # the endpoint's split with a candidate, read per request once it takes the traffic
        self.splitter: Splitter | None = None
        # before it takes the traffic: counts the canary requests a serving worker relays
        self.standby: Tally | None = None
        self.version = VERSION.encode()
        self.extra = [
            (b"x-model", f"{model}/{version}".encode()),
            (b"x-deployment", deployment.encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/invocations":
            began = monotonic()
            if method != "POST":
                if self.tally is not None:
                    self.tally.record(405, began)
                await self._send(send, 405, JSON, _NOT_ALLOWED, allow=b"POST")
                return
            body = await _body(receive)
            content_type = next((v for k, v in scope["headers"] if k == b"content-type"), None)
            tally, total = self.tally, True
            split, copy = None, True
            if any(k == PROBE_HEADER for k, _ in scope["headers"]):
                tally = None  # the bot's own prediction diff: no caller's traffic, not split
            elif tally is not None and self.splitter is not None:
                split = self.splitter.current()
                if split is not None and split.canary_turn():
                    relayed = await split.forward(body, content_type)
                    if relayed is not None:  # else it failed, and what serves answers
                        # counted by the candidate, whose answer it is
                        await self._relay(send, *relayed)
                        return
                    copy = False  # no copy of a request the candidate just failed
            elif self.standby is not None and any(k == CANARY_HEADER for k, _ in scope["headers"]):
                tally, total = self.standby, False  # a canary request relayed for a caller
            try:
                status, mimetype, answer = self.scorer.invoke(
                    body, None if content_type is None else content_type.decode("latin-1")
                )
            except Exception:  # as MLflow's server: a plain 500, the traceback in the log
                traceback.print_exc()
                status, mimetype, answer = 500, PLAIN, _FAILED
            # counted before it is sent: an answer its caller got is counted, even when
            # the worker is killed the moment after
            if tally is not None:
                tally.record(status, began, total=total)
            if split is None:
                await self._send(send, status, mimetype, answer)
                return
            split.served(status, began)
            await self._send(send, status, mimetype, answer)
            if copy and status == 200 and split.shadow_turn():  # after the caller's answer
                split.mirror(body, content_type, answer)
        elif path in ("/ping", "/health", "/version"):
            if method != "GET":  # HEAD included, as there
                await self._send(send, 405, JSON, _NOT_ALLOWED, allow=b"GET")
                return
            answer = self.version if path == "/version" else b"\n"
            await self._send(send, 200, JSON, answer)
        else:
            await self._send(send, 404, JSON, _NOT_FOUND)

    async def _relay(
        self, send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """The candidate's answer, as it gave it (its own `X-Model` included)."""
        kept = [(k, v) for k, v in headers if k in _RELAYED]
        if self.draining:
            kept.append((b"connection", b"close"))
        kept.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": kept})
        await send({"type": "http.response.body", "body": body})

    async def _send(
        self,
        send: Send,
        status: int,
        content_type: bytes,
        body: bytes,
        *,
        allow: bytes | None = None,
    ) -> None:
        headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", content_type),
            *self.extra,
        ]
        if allow is not None:
            headers.append((b"allow", allow))
        if self.draining:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client left: what it sent is all there is
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
