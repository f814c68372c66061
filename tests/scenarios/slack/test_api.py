"""The HTTP API (`/api/v1`) as a token's owner calls it: the same admission, refusals and
texts as a typed command; 401 with no detail for any token that opens nothing; a rate per
token."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sqlalchemy
from mlflow.deployments import get_deploy_client
from mlflow.exceptions import MlflowException

from bot.slack.app import EVENTS_PATH, SlackFront
from bot.slack.settings import SlackSettings
from core.admission.roles import Actor
from core.config import Settings
from core.runtime import Runtime
from tests.clock import FakeClock
from tests.scenarios.slack.conftest import ALICE, OPS, RunningFront, post_command
from tests.slack_api.emulator import SlackEmulator

BOB, CAROL = "U0BOB", "U0CAROL"  # a developer of prod; a viewer
IRIS = [{"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4}]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    for env in settings.environments:
        env.developers = [BOB]
    return settings


@pytest.fixture
def api_front(
    runtime: Runtime,
    slack_api: SlackEmulator,
    monkeypatch: pytest.MonkeyPatch,
    slack_settings: SlackSettings,
) -> Iterator[RunningFront]:
    slack_api.add_user(BOB, name="bob")
    slack_api.add_user(CAROL, name="carol")
    monkeypatch.setenv("CHATOPS_API_RATE", "30")
    monkeypatch.setenv("CHATOPS_API_CHANNEL", OPS)
    front = SlackFront(SlackSettings(), runtime=runtime)
    server = front.http_server(host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield RunningFront(
        front=front,
        url=f"http://127.0.0.1:{server.port}",
        api=slack_api,
        runtime=runtime,
    )
    server.close()
    front.close()


def token(runtime: Runtime, user: str) -> str:
    return runtime.tokens.issue(Actor(id=user, name=user)).secret


def call(
    front: RunningFront, method: str, path: str, secret: str | None, **kwargs: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
    return httpx.request(
        method, f"{front.url}/api/v1/{path}", headers=headers, timeout=120, **kwargs
    )


def test_an_admin_deploys_lists_gets_and_stops_as_in_slack(api_front: RunningFront) -> None:
    secret = token(api_front.runtime, ALICE)
    listed = call(api_front, "GET", "dev/deployments", secret)
    assert listed.status_code == 200 and listed.json() == {"deployments": []}

    body = {"name": "iris", "model_uri": "models:/iris/1"}
    created = call(api_front, "POST", "dev/deployments", secret, json=body)
    assert created.status_code == 200, created.text
    answer = created.json()
    assert answer["state"] == "succeeded" and "iris v1 is live at" in answer["message"]
    assert answer["link"].startswith("https://"), answer
    # it reported in its Slack thread like a typed deploy
    assert any("is deploying iris v1 to dev" in m.text for m in api_front.api.messages(OPS))

    got = call(api_front, "GET", "dev/deployments/iris", secret).json()
    assert (got["name"], got["version"], got["state"]) == ("iris", 1, "up")
    assert got["url"].startswith("http://127.0.0.1:")
    assert [
        d["name"] for d in call(api_front, "GET", "dev/deployments", secret).json()["deployments"]
    ] == ["iris"]

    # update: another version on the same endpoint, named in the path
    updated = call(
        api_front, "PUT", "dev/deployments/iris", secret, json={"model_uri": "models:/iris/2"}
    )
    assert updated.status_code == 200 and updated.json()["state"] == "succeeded", updated.text
    assert call(api_front, "GET", "dev/deployments/iris", secret).json()["version"] == 2
    elsewhere = call(
        api_front, "PUT", "dev/deployments/roses", secret, json={"model_uri": "models:/iris/1"}
    )
    assert elsewhere.status_code == 400 and "name it iris" in elsewhere.json()["error"]

    stopped = call(api_front, "DELETE", "dev/deployments/iris", secret)
    assert stopped.status_code == 200 and stopped.json()["state"] == "succeeded", stopped.text
    missing = call(api_front, "GET", "dev/deployments/iris", secret)
    assert missing.status_code == 403, missing.text
    assert "iris" in missing.json()["error"]


def test_a_developer_asks_and_a_viewer_is_refused_as_in_slack(api_front: RunningFront) -> None:
    body = {"name": "iris", "model_uri": "models:/iris/2"}
    asked = call(api_front, "POST", "prod/deployments", token(api_front.runtime, BOB), json=body)
    assert asked.status_code == 202, asked.text
    request = asked.json()
    assert request["state"] == "pending" and request["request"].startswith("apr-")
    assert f"/approve {request['request']}" in request["message"]
    # the admins see the request with its buttons where the API's calls report
    shown = [m for m in api_front.api.messages(OPS) if request["request"] in str(m.blocks)]
    assert shown, [m.text for m in api_front.api.messages(OPS)]

    # an update is the same ask
    again = call(
        api_front, "PUT", "prod/deployments/iris", token(api_front.runtime, BOB), json=body
    )
    assert again.status_code == 202 and again.json()["request"] != request["request"]
    refused = call(
        api_front, "POST", "prod/deployments", token(api_front.runtime, CAROL), json=body
    )
    assert refused.status_code == 403
    # the very text a viewer reads in Slack for the typed command
    post_command(
        api_front.url + EVENTS_PATH, api_front.api, "/deploy", "iris v2 to prod", user=CAROL
    )
    api_front.api.wait_for(lambda api: len(api.responses) == 1, timeout=30)
    assert refused.json()["error"] == api_front.api.responses[0].body["text"]
    assert "/promote iris v2 to prod" in refused.json()["error"]


def test_tokens_that_open_nothing_get_401_with_no_detail(
    api_front: RunningFront, clock: FakeClock
) -> None:
    runtime = api_front.runtime
    secret = token(runtime, ALICE)
    revoked = runtime.tokens.issue(Actor(id=ALICE, name=ALICE))
    runtime.tokens.revoke(Actor(id=ALICE, name=ALICE), revoked.id)
    forged = secret[:-3] + ("xyz" if not secret.endswith("xyz") else "abc")
    for header in (
        None,
        f"Bearer {forged}",
        f"Bearer {revoked.secret}",
        f"Basic {secret}",
        "Bearer",
        f"Bearer {secret[:-1]}",
    ):
        headers = {"Authorization": header} if header is not None else {}
        answer = httpx.get(f"{api_front.url}/api/v1/dev/deployments", headers=headers)
        assert answer.status_code == 401 and answer.json() == {"error": "unauthorized"}, header
    assert call(api_front, "GET", "dev/deployments", secret).status_code == 200
    clock.advance(runtime.settings.api_token_ttl_s + 1)
    expired = call(api_front, "GET", "dev/deployments", secret)
    assert expired.status_code == 401 and expired.json() == {"error": "unauthorized"}


def test_bad_calls_are_told_what_was_wrong_and_change_nothing(api_front: RunningFront) -> None:
    secret = token(api_front.runtime, ALICE)
    cases = [
        ({"name": "iris", "model_uri": "runs:/abc/model"}, 400, "models:/<model>/<version>"),
        ({"name": "roses", "model_uri": "models:/iris/1"}, 400, "name it iris"),
        ({"name": "iris v1 to prod", "model_uri": "models:/iris/1"}, 400, "not a valid"),
        ({"model_uri": "models:/iris/1", "config": {"replicas": 9}}, 400, "Unknown config"),
        ({"model_uri": "models:/iris/1", "config": {"wait": "maybe"}}, 400, "wait is"),
    ]
    for body, status, text in cases:
        answer = call(api_front, "POST", "dev/deployments", secret, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert text in answer.json()["error"], (body, answer.text)
    assert call(api_front, "POST", "dev/deployments", secret, content=b"[").status_code == 400
    assert (
        call(api_front, "POST", "nowhere/deployments", secret, json=cases[0][0]).status_code == 400
    )
    assert call(api_front, "PATCH", "dev/deployments/iris", secret).status_code == 405
    assert call(api_front, "GET", "dev/elsewhere", secret).status_code == 404
    assert call(api_front, "GET", "dev/deployments", secret).json() == {"deployments": []}


def test_a_deeply_nested_body_is_told_it_is_not_json(api_front: RunningFront) -> None:
    """JSON nested deeper than Python parses (a few KiB of `[`) is a 400, not a 500."""
    secret = token(api_front.runtime, ALICE)
    for body in (b"[" * 60_000, b'{"model_uri": ' * 4_000):
        answer = call(api_front, "POST", "dev/deployments", secret, content=body)
        assert answer.status_code == 400, answer.text[:200]
        assert answer.json() == {"error": "The body is not JSON."}
    assert call(api_front, "GET", "dev/deployments", secret).json() == {"deployments": []}


def test_an_update_deploys_only_the_endpoint_its_path_names(api_front: RunningFront) -> None:
    """`PUT …/deployments/roses` whose body says iris is refused, not run as a deploy of iris."""
    secret = token(api_front.runtime, ALICE)
    body = {"name": "iris", "model_uri": "models:/iris/1"}
    answer = call(api_front, "PUT", "dev/deployments/roses", secret, json=body)
    assert answer.status_code == 400, answer.text
    assert "name it iris" in answer.json()["error"] and "not roses" in answer.json()["error"]
    assert call(api_front, "GET", "dev/deployments", secret).json() == {"deployments": []}


def test_the_plugin_keeps_a_deployment_name_inside_its_target(
    api_front: RunningFront, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name such as `../../dev/deployments/iris` given to a `chatops:/prod` client is
    refused on the caller's machine: it never reaches (nor stops) iris in dev."""
    secret = token(api_front.runtime, ALICE)
    body = {"model_uri": "models:/iris/1"}
    assert call(api_front, "POST", "dev/deployments", secret, json=body).status_code == 200
    monkeypatch.setenv("CHATOPS_URL", api_front.url)
    monkeypatch.setenv("CHATOPS_TOKEN", secret)
    prod = get_deploy_client("chatops:/prod")
    for name in ("../../dev/deployments/iris", "iris/..", "iris?x=1", "iris#x", "ïris", "x" * 200):
        for act, kwargs in (
            (prod.delete_deployment, {}),
            (prod.get_deployment, {}),
            (prod.update_deployment, {"model_uri": "models:/iris/2"}),
            (prod.predict, {"inputs": IRIS}),
        ):
            with pytest.raises(MlflowException, match="is not a valid deployment name"):
                act(name, **kwargs)
    served = call(api_front, "GET", "dev/deployments/iris", secret).json()
    assert (served["state"], served["version"]) == ("up", 1)


def test_the_plugin_says_a_pasted_token_is_garbled_without_showing_it(
    api_front: RunningFront, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token pasted with typographic quotes or a non-breaking space: a clear error that
    names CHATOPS_TOKEN and does not show it, not a UnicodeEncodeError."""
    secret = token(api_front.runtime, ALICE)
    monkeypatch.setenv("CHATOPS_URL", api_front.url)
    for garbled in (f"\u201c{secret}\u201d", f"{secret}\u00a0x", f"{secret} {secret}"):
        monkeypatch.setenv("CHATOPS_TOKEN", garbled)
        with pytest.raises(MlflowException, match="CHATOPS_TOKEN") as raised:
            get_deploy_client("chatops:/dev").list_deployments()
        assert secret[8:] not in str(raised.value)
    monkeypatch.setenv("CHATOPS_TOKEN", f"  {secret}\n")
    assert get_deploy_client("chatops:/dev").list_deployments() == []


def test_a_database_that_cannot_check_tokens_is_a_503_not_a_bad_token(
    api_front: RunningFront, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the state database cannot say whose a token is, the caller is told to try again
    (503), not that their token is unknown, revoked or expired (which has them make a new one)."""
    secret = token(api_front.runtime, ALICE)
    engine = api_front.runtime.repos.db.engine
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("ALTER TABLE api_tokens RENAME TO api_tokens_away"))
    answer = call(api_front, "GET", "dev/deployments", secret)
    assert answer.status_code == 503, answer.text
    assert "try again" in answer.json()["error"] and secret not in answer.text
    assert int(answer.headers["Retry-After"]) >= 1
    monkeypatch.setenv("CHATOPS_URL", api_front.url)
    monkeypatch.setenv("CHATOPS_TOKEN", secret)
    with pytest.raises(MlflowException) as raised:
        get_deploy_client("chatops:/dev").list_deployments()
    assert "revoked" not in str(raised.value) and "try again" in str(raised.value)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("ALTER TABLE api_tokens_away RENAME TO api_tokens"))
    assert call(api_front, "GET", "dev/deployments", secret).status_code == 200


def test_the_plugin_says_the_bot_is_down_without_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no bot at CHATOPS_URL, a clear error that shows neither the token nor a password
    in the URL (a bot behind a proxy's basic authentication)."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    secret = "chatops_" + "A" * 48
    monkeypatch.setenv("CHATOPS_URL", f"http://ops:proxy-password@127.0.0.1:{port}/")
    monkeypatch.setenv("CHATOPS_TOKEN", secret)
    with pytest.raises(MlflowException, match="did not answer") as raised:
        get_deploy_client("chatops:/dev").list_deployments()
    said = str(raised.value)
    assert f"http://127.0.0.1:{port}" in said, said
    assert "proxy-password" not in said and secret not in said, said


def test_a_token_used_from_two_places_at_once_works_within_its_rate(
    api_front: RunningFront,
) -> None:
    secret = token(api_front.runtime, ALICE)
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: call(api_front, "GET", "dev/deployments", secret), range(8))
        )
    assert [a.status_code for a in answers] == [200] * 8
    # over its rate (30 a minute here): told when to come back; another token is not held up
    statuses = [call(api_front, "GET", "dev/deployments", secret) for _ in range(30)]
    limited = [a for a in statuses if a.status_code == 429]
    assert limited and int(limited[0].headers["Retry-After"]) >= 1
    assert "Too many calls" in limited[0].json()["error"]
    other = token(api_front.runtime, BOB)
    assert call(api_front, "GET", "dev/deployments", other).status_code == 200


def test_a_developer_who_waits_hears_the_decision(api_front: RunningFront) -> None:
    secret = token(api_front.runtime, BOB)
    events = api_front.url + EVENTS_PATH
    with ThreadPoolExecutor(2) as pool:
        for verb, version, said in (
            ("reject", 1, "not before the freeze ends"),
            ("approve", 2, ""),
        ):
            body = {"model_uri": f"models:/iris/{version}", "config": {"wait": "true"}}
            waiting = pool.submit(call, api_front, "POST", "prod/deployments", secret, json=body)
            api_front.api.wait_for(
                lambda _api, version=version: asked(api_front, version), timeout=60
            )
            assert not waiting.done()  # it waits for the decision
            request = asked(api_front, version)
            assert request is not None
            post_command(events, api_front.api, f"/{verb}", f"{request.id} {said}".strip())
            answer = waiting.result(timeout=120)
            body = answer.json()
            assert body["request"] == request.id and body["decided_by"] == f"<@{ALICE}>"
            if verb == "reject":
                assert answer.status_code == 403 and body["state"] == "rejected"
                assert body["reason"] == said
            else:
                assert answer.status_code == 200 and body["state"] == "approved"


@pytest.fixture
def one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATOPS_SLACK_WORKERS", "1")


def test_a_developer_who_waits_holds_no_worker_while_the_request_is_open(
    one_worker: None, api_front: RunningFront
) -> None:
    """A call waiting for a decision (`-C wait=true`) does not hold one of the bot's workers:
    with a single one, the admin's `/approve` and every other command still run."""
    secret = token(api_front.runtime, BOB)
    events = api_front.url + EVENTS_PATH
    with ThreadPoolExecutor(1) as pool:
        body = {"model_uri": "models:/iris/1", "config": {"wait": "true"}}
        waiting = pool.submit(call, api_front, "POST", "prod/deployments", secret, json=body)
        api_front.api.wait_for(lambda _api: asked(api_front, 1) is not None, timeout=60)
        request = asked(api_front, 1)
        post_command(events, api_front.api, "/approve", request.id)
        answer = waiting.result(timeout=90)
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "approved" and answer.json()["request"] == request.id


def asked(front: RunningFront, version: int) -> Any:
    """Bob's pending request for iris `version`, once it is open."""
    mine = front.runtime.approvals.asked_by(Actor(id=BOB, name=BOB))
    return next((r for r in mine if r.version == version and r.state == "pending"), None)


def test_no_token_reaches_logs_audit_metrics_or_errors(
    api_front: RunningFront, caplog: pytest.LogCaptureFixture
) -> None:
    secret = token(api_front.runtime, ALICE)
    call(api_front, "POST", "dev/deployments", secret, json={"model_uri": f"models:/{secret}/1"})
    call(api_front, "GET", f"dev/deployments/{secret}", secret)
    call(api_front, "GET", "dev/deployments", secret + "x")
    call(api_front, "POST", "dev/deployments", secret, json={"model_uri": "models:/iris/1"})
    answers = [
        call(api_front, "GET", "dev/deployments", secret).text,
        httpx.get(f"{api_front.url}/metrics").text,
        api_front.runtime.deployer.audit.export(fmt="json"),
        caplog.text,
        "\n".join(m.text for m in api_front.api.messages(OPS)),
    ]
    for text in answers:
        assert secret not in text
