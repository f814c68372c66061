"""The HTTP API meets a canary: a deploy asked through the API in an environment with a
rollout policy runs the canary (its card in the API's channel) and is answered when an admin
promotes it; meanwhile `GET` says where it stands, and a second deploy or a stop through the
API is refused with who holds the endpoint, as a typed command is."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import httpx
import pytest

from core.config import Rollout, Settings
from core.runtime import Runtime
from tests.conftest import make_settings
from tests.scenarios.slack.conftest import ALICE, EVENTS_PATH, RunningFront
from tests.scenarios.slack.test_api import api_front, call, token  # noqa: F401 (a fixture)
from tests.scenarios.slack.test_canary_card import _buttons, _card, _click, _until

BOB = "U0BOB"


@pytest.fixture
def settings(tmp_path: Path, registry_uri: str) -> Settings:
    base = make_settings(tmp_path / "state", registry_uri, canary_look_s=0.05)
    base.environments[0] = base.environments[0].model_copy(
        update={"admins": [ALICE], "developers": [BOB], "rollout": Rollout(steps=[10], bake_s=3600)}
    )
    return base


def test_an_api_deploy_runs_the_canary_and_other_calls_are_refused_meanwhile(
    api_front: RunningFront,  # noqa: F811 (the fixture imported above)
    runtime: Runtime,
) -> None:
    secret = token(runtime, ALICE)
    first = call(api_front, "POST", "dev/deployments", secret, json={"model_uri": "models:/iris/1"})
    assert first.status_code == 200 and first.json()["state"] == "succeeded", first.text

    try:
        # the call is answered when the deploy ends: after the canary an admin promotes
        body = {"model_uri": "models:/iris/2"}
        answers: list[httpx.Response] = []
        asking = threading.Thread(
            target=lambda: answers.append(
                call(api_front, "PUT", "dev/deployments/iris", secret, json=body)
            ),
            daemon=True,
        )
        asking.start()
        card = _until(lambda: _card(api_front.api), "the canary's card")

        got = call(api_front, "GET", "dev/deployments/iris", secret)
        assert got.status_code == 200
        assert got.json()["version"] == 1
        assert "in its canary: v2 answers 10% of requests" in got.json()["underway"], got.json()
        for method, path, payload in (
            ("PUT", "dev/deployments/iris", {"model_uri": "models:/iris/3"}),
            ("DELETE", "dev/deployments/iris", None),
        ):
            refused = call(api_front, method, path, secret, json=payload)
            assert refused.status_code == 403, refused.text
            assert "iris in dev is locked by" in refused.json()["error"], refused.text
        assert runtime.repos.endpoints.get("dev", "iris").version == 1  # type: ignore[union-attr]

        slack = dataclasses.replace(api_front, url=f"{api_front.url}{EVENTS_PATH}")
        _click(slack, ALICE, card, "canary_promote", _buttons(card)["canary_promote"]["value"])
        asking.join(120)
        (updated,) = answers
        assert updated.status_code == 200 and updated.json()["state"] == "succeeded", updated.text
        got = call(api_front, "GET", "dev/deployments/iris", secret).json()
        assert got["version"] == 2 and not got.get("underway"), got
    finally:  # a canary left waiting for an admin would hold the front's teardown
        for op in runtime.repos.operations.running():
            runtime.repos.operations.decide(op.id, decision="abort", by="test", at=10)
