"""The MLflow webhook route answers whatever it is sent with a status MLflow can act on."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from bot.slack.transport.webhook import RegistryWebhook
from core.store.jobs import JobQueue
from core.store.repos import Repositories


def _post(app: RegistryWebhook, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mlflow/webhook",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_a_content_length_that_is_no_ascii_number_is_a_bad_request(tmp_path: Path) -> None:
    repos = Repositories.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        queue = JobQueue(repos.db)
        app = RegistryWebhook(queue=queue, nudge=lambda: None, secret="whsec-test-8c1f")
        status, answer = _post(app, {"content-length": "\u00b2"}, b"{}")
        assert (status, answer["detail"]) == (400, "bad content-length")
        assert queue.unfinished(frozenset({"slack"})) == 0
    finally:
        repos.close()
