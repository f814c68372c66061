"""A local endpoint answers every request as MLflow's own scoring server does: the same
requests go to a real deployment (through the local target) and to
`mlflow.pyfunc.scoring_server`'s app for the same model files, and status, content type and
body must be equal."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from core.registry.mlflow import Registry
from core.targets.base import EndpointRef, quiet_step
from core.targets.local.target import LocalTarget
from tests.local.conftest import serve
from tests.scenarios.test_deploy_scale_status import COLUMNS, ROWS

IRIS = EndpointRef("dev", "iris")
JSON = {"Content-Type": "application/json"}
SPLIT = {"columns": COLUMNS, "data": ROWS}
RECORDS = [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]
CSV = (",".join(COLUMNS) + "\n" + "\n".join(",".join(map(str, r)) for r in ROWS)).encode()


def _same_in_every_process(text: str) -> str:
    """MLflow names the input fields as a Python set, whose order differs between any two
    processes (string hashing is seeded per process): compare them sorted."""
    return re.sub(
        r"\{('[a-z_]+'(?:, '[a-z_]+')*)\}",
        lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}",
        text,
    )


def _json(payload: Any) -> dict[str, Any]:
    return {"json": payload}


def _chunks() -> Iterator[bytes]:
    text = httpx.Request("POST", "/", json={"dataframe_split": SPLIT}).content
    yield from (text[i : i + 7] for i in range(0, len(text), 7))


# (name, method, path, request keyword arguments): what clients of MLflow's server send
CASES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("dataframe_split", "POST", "/invocations", _json({"dataframe_split": SPLIT})),
    ("dataframe_records", "POST", "/invocations", _json({"dataframe_records": RECORDS})),
    ("instances", "POST", "/invocations", _json({"instances": RECORDS})),
    ("inputs", "POST", "/invocations", _json({"inputs": RECORDS})),
    ("inputs as columns", "POST", "/invocations", _json({"inputs": {c: [1.0] for c in COLUMNS}})),
    ("params", "POST", "/invocations", _json({"dataframe_split": SPLIT, "params": {"k": 1}})),
    ("csv", "POST", "/invocations", {"content": CSV, "headers": {"Content-Type": "text/csv"}}),
    ("query string", "POST", "/invocations?x=1", _json({"dataframe_split": SPLIT})),
    ("chunked body", "POST", "/invocations", {"content": _chunks, "headers": JSON}),
    (
        "charset utf-8",
        "POST",
        "/invocations",
        {
            "json": {"dataframe_split": SPLIT},
            "headers": {"Content-Type": "application/json; charset=utf-8"},
        },
    ),
    (
        "charset latin-1",
        "POST",
        "/invocations",
        {"content": b"{}", "headers": {"Content-Type": "application/json; charset=latin-1"}},
    ),
    (
        "unknown content-type parameter",
        "POST",
        "/invocations",
        {"content": b"{}", "headers": {"Content-Type": "application/json; format=pandas-split"}},
    ),
    (
        "unsupported content type",
        "POST",
        "/invocations",
        {"content": b"a", "headers": {"Content-Type": "text/plain"}},
    ),
    ("malformed JSON", "POST", "/invocations", {"content": b"{not json", "headers": JSON}),
    ("invalid UTF-8", "POST", "/invocations", {"content": b'{"\xff": 1}', "headers": JSON}),
    ("JSON list", "POST", "/invocations", {"content": b"[1, 2]", "headers": JSON}),
    ("JSON number", "POST", "/invocations", {"content": b"3", "headers": JSON}),
    ("empty body", "POST", "/invocations", {"content": b"", "headers": JSON}),
    ("no format key", "POST", "/invocations", _json({"rows": ROWS})),
    (
        "two format keys",
        "POST",
        "/invocations",
        _json({"dataframe_split": SPLIT, "dataframe_records": RECORDS}),
    ),
    (
        "missing column",
        "POST",
        "/invocations",
        _json({"dataframe_split": {"columns": COLUMNS[:3], "data": [r[:3] for r in ROWS]}}),
    ),
    (
        "wrong type",
        "POST",
        "/invocations",
        _json({"dataframe_split": {"columns": COLUMNS, "data": [["a", "b", "c", "d"]]}}),
    ),
    (
        "malformed split",
        "POST",
        "/invocations",
        _json({"dataframe_split": {"columns": COLUMNS, "data": 5}}),
    ),
    (
        "malformed CSV",
        "POST",
        "/invocations",
        {"content": b'"', "headers": {"Content-Type": "text/csv"}},
    ),
    ("GET /ping", "GET", "/ping", {}),
    ("GET /health", "GET", "/health", {}),
    ("GET /version", "GET", "/version", {}),
    ("HEAD /ping", "HEAD", "/ping", {}),
    ("GET /invocations", "GET", "/invocations", {}),
    ("POST /ping", "POST", "/ping", {"content": b""}),
    ("unknown path", "GET", "/predict", {}),
    ("unknown path, POST", "POST", "/v1/models/iris:predict", _json({"instances": RECORDS})),
]


@pytest.fixture(scope="module")
def endpoints(
    tmp_path_factory: pytest.TempPathFactory, zygote: Any, registry_uri: str
) -> Iterator[tuple[httpx.Client, TestClient]]:
    """(a client of a real local endpoint serving iris v1, MLflow's app on the same files)."""
    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    from core.config import Environment
    from tests.conftest import free_port_range

    target = LocalTarget(
        env=Environment(name="dev", port_range=free_port_range()),
        state_dir=tmp_path_factory.mktemp("protocol") / "state",
        zygote=zygote,
        start_timeout_s=30,
    )
    try:
        registry = Registry(tracking_uri=registry_uri)
        url = target.switch(IRIS, serve(target, registry, IRIS, 1, "dep-one"), quiet_step())
        files = target.layout.artifacts(IRIS, "iris", 1)
        app = scoring_server.init(mlflow.pyfunc.load_model(str(Path(files))))  # type: ignore[no-untyped-call]
        base = url.removesuffix("/invocations")
        with (
            httpx.Client(base_url=base, timeout=10) as ours,
            TestClient(app, raise_server_exceptions=False) as theirs,
        ):
            yield ours, theirs
    finally:
        target.stop(IRIS, quiet_step())
        target.close()


@pytest.mark.parametrize(
    ("method", "path", "kwargs"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_the_endpoint_answers_as_mlflows_scoring_server(
    endpoints: tuple[httpx.Client, TestClient], method: str, path: str, kwargs: dict[str, Any]
) -> None:
    ours, theirs = endpoints
    ours_kwargs = (
        {**kwargs, "content": kwargs["content"]()} if callable(kwargs.get("content")) else kwargs
    )
    theirs_kwargs = (
        {**kwargs, "content": b"".join(kwargs["content"]())}
        if callable(kwargs.get("content"))
        else kwargs
    )
    answer = ours.request(method, path, **ours_kwargs)
    expected = theirs.request(method, path, **theirs_kwargs)

    assert (
        answer.status_code,
        answer.headers.get("content-type"),
        _same_in_every_process(answer.text),
    ) == (
        expected.status_code,
        expected.headers.get("content-type"),
        _same_in_every_process(expected.text),
    )
    assert answer.headers["x-model"] == "iris/1"


def test_a_chunked_request_reaches_the_model_whole(
    endpoints: tuple[httpx.Client, TestClient],
) -> None:
    ours, _ = endpoints
    answer = ours.post("/invocations", content=_chunks(), headers=JSON)

    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert len(answer.json()["predictions"]) == len(ROWS)
