"""Failures: transient ones are retried with backoff, others surface at once as the bot's own
errors, and the API key never shows in any of it."""

from __future__ import annotations

import json
import logging
import socket
import traceback

import httpx
import pytest
from cml_support import API_KEY, PROJECT_ID, RecordingTransport

from core.errors import ChatOpsError, ConfigError, TargetError, TargetUnavailable
from core.targets.cml import (
    CMLAPIError,
    CMLAuthError,
    CMLClient,
    CMLNotFound,
    CMLServerError,
    CMLUnreachable,
    iter_all,
)
from emulators.cml import RunningEmulator


def _everything_said(exc: BaseException, caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        [str(exc), repr(exc), *map(str, exc.args), *traceback.format_exception(exc), caplog.text]
    )


def test_a_burst_of_5xx_is_ridden_out_by_retries(
    client: CMLClient,
    emulator: RunningEmulator,
    traffic: RecordingTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator.faults.fail_next = 3

    projects = client.list_projects()

    assert [p.name for p in projects.projects] == ["demo", "other"]
    assert [e.status for e in traffic.exchanges] == [503, 503, 503, 200]
    assert "(try 4 of 4)" in caplog.text
    assert API_KEY not in caplog.text


def test_429_is_retried_too(
    client: CMLClient, emulator: RunningEmulator, traffic: RecordingTransport
) -> None:
    emulator.faults.fail_status, emulator.faults.fail_next = 429, 2

    assert client.get_project(PROJECT_ID).name == "demo"
    assert [e.status for e in traffic.exchanges] == [429, 429, 200]


def test_5xx_outlasting_the_retries_means_the_target_is_unavailable(
    client: CMLClient, emulator: RunningEmulator, traffic: RecordingTransport
) -> None:
    emulator.faults.fail_next = 100

    with pytest.raises(CMLServerError) as failed:
        client.get_project(PROJECT_ID)

    assert isinstance(failed.value, TargetUnavailable) and failed.value.status_code == 503
    assert "still failing after 4 tries" in str(failed.value)
    assert "injected failure" in failed.value.cml_message
    assert len(traffic.exchanges) == 4


def test_random_5xx_at_a_steady_rate_never_reach_the_caller(
    emulator: RunningEmulator, traffic: RecordingTransport
) -> None:
    emulator.faults.update({"error_rate": 0.3, "seed": 7})
    with CMLClient(
        base_url=emulator.url, api_key=API_KEY, transport=traffic, retries=8, backoff=0.001
    ) as patient:
        names = [patient.get_project(PROJECT_ID).name for _ in range(20)]

    assert names == ["demo"] * 20
    assert 503 in {e.status for e in traffic.exchanges}


def test_a_4xx_is_not_retried(client: CMLClient, traffic: RecordingTransport) -> None:
    with pytest.raises(CMLNotFound) as missing:
        client.get_model(PROJECT_ID, "no-such-model")
    with pytest.raises(CMLAPIError) as refused:
        client.list_models(PROJECT_ID, sort="colour")

    assert missing.value.status_code == 404 and "no-such-model" in missing.value.cml_message
    assert refused.value.status_code == 400 and not isinstance(refused.value, TargetUnavailable)
    assert [e.status for e in traffic.exchanges] == [404, 400]


def test_a_wrong_api_key_is_a_clear_error_that_never_shows_the_key(
    emulator: RunningEmulator, traffic: RecordingTransport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_key = "wrongkey-9e8d7c6b5a4f3e2d"
    with (
        CMLClient(
            base_url=emulator.url, api_key=wrong_key, transport=traffic, retries=3, backoff=0.001
        ) as client,
        pytest.raises(CMLAuthError) as denied,
    ):
        client.list_projects()

    said = _everything_said(denied.value, caplog)
    assert "401" in str(denied.value) and "API key" in str(denied.value)
    assert isinstance(denied.value, TargetError) and isinstance(denied.value, ChatOpsError)
    assert wrong_key not in said and API_KEY not in said
    assert wrong_key not in repr(client)
    assert len(traffic.exchanges) == 1


def test_an_unreachable_workspace_is_retried_then_reported_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    caplog.set_level(logging.WARNING, logger="core.targets.cml")

    with (
        CMLClient(
            base_url=f"http://127.0.0.1:{port}", api_key=API_KEY, retries=2, backoff=0.001
        ) as client,
        pytest.raises(CMLUnreachable) as unreachable,
    ):
        client.list_projects()

    assert isinstance(unreachable.value, TargetUnavailable)
    assert "cannot be reached" in str(unreachable.value) and "3 tries" in str(unreachable.value)
    assert len([r for r in caplog.records if "ConnectError" in r.getMessage()]) == 2
    assert API_KEY not in _everything_said(unreachable.value, caplog)


def test_a_workspace_slower_than_the_timeout_is_unavailable_until_it_recovers(
    emulator: RunningEmulator,
) -> None:
    emulator.faults.latency = 0.3
    with CMLClient(
        base_url=emulator.url, api_key=API_KEY, timeout=0.05, retries=1, backoff=0.001
    ) as impatient:
        with pytest.raises(CMLUnreachable, match="timed out"):
            impatient.get_project(PROJECT_ID)
        emulator.faults.latency = 0.0
        assert impatient.get_project(PROJECT_ID).name == "demo"


def test_faults_can_be_switched_over_http(
    client: CMLClient, emulator: RunningEmulator, traffic: RecordingTransport
) -> None:
    switched = httpx.post(f"{emulator.url}/_emulator/faults", json={"fail_next": 2})
    unknown = httpx.post(f"{emulator.url}/_emulator/faults", json={"fail_evrything": True})

    assert switched.json()["fail_next"] == 2
    assert unknown.status_code == 400 and "fail_evrything" in unknown.json()["error"]
    assert client.get_project(PROJECT_ID).name == "demo"
    assert [e.status for e in traffic.exchanges] == [503, 503, 200]
    assert httpx.get(f"{emulator.url}/_emulator/faults").json()["fail_next"] == 0


# -- edges the emulator cannot produce ----------------------------------------------------


def _client_answering(handler: httpx.MockTransport) -> CMLClient:
    return CMLClient(base_url="https://cml.example", api_key=API_KEY, transport=handler)


def test_a_server_echoing_the_key_in_its_message_has_it_redacted() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        message = f"token {request.headers['authorization']} lacks scope"
        return httpx.Response(403, json={"error": message, "code": 7, "message": message})

    with pytest.raises(CMLAuthError) as denied:
        _client_answering(httpx.MockTransport(echo)).list_projects()

    assert API_KEY not in str(denied.value) and API_KEY not in denied.value.cml_message
    assert "token Bearer <redacted> lacks scope" in str(denied.value)


@pytest.mark.parametrize(
    ("body", "complaint"),
    [(b"<html>gateway</html>", "not JSON"), (b'{"projects": 5}', "not a ListProjectsResponse")],
)
def test_an_unusable_answer_is_an_api_error_not_a_crash(body: bytes, complaint: str) -> None:
    answer = httpx.MockTransport(lambda request: httpx.Response(200, content=body))

    with pytest.raises(CMLAPIError, match=complaint):
        _client_answering(answer).list_projects()


def test_paging_stops_when_the_server_repeats_a_page_token() -> None:
    page = {"projects": [{"id": "p1", "name": "loop"}], "next_page_token": "same"}
    answer = httpx.MockTransport(lambda request: httpx.Response(200, content=json.dumps(page)))

    with pytest.raises(CMLAPIError, match="already given"):
        list(iter_all(_client_answering(answer).list_projects))


def test_an_unusable_api_key_is_a_config_error_that_does_not_echo_it() -> None:
    with pytest.raises(ConfigError, match="API key"):
        CMLClient(base_url="https://cml.example", api_key="")
    for key in ("two words-5f2a9c", "line\nbreak-5f2a9c"):
        with pytest.raises(ConfigError) as refused:
            CMLClient(base_url="https://cml.example", api_key=key)
        assert "API key" in str(refused.value)
        assert key not in str(refused.value)
        assert "5f2a9c" not in str(refused.value)
