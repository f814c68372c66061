"""Odd Slack payloads (missing fields, huge or strange text) never break the front: each gets
an answer, and nothing fails unexpectedly behind the ack."""

from __future__ import annotations

import logging
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.scenarios.slack.conftest import ALICE, OPS, RunningFront, signed_post

FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "command": st.sampled_from(
            [
                "/mlops",
                "/status",
                "/help",
                "/history",
                "/scale",
                "/promote",
                "/approve",
                "/deploy",
                "/nope",
                "",
            ]
        ),
        "text": st.one_of(
            st.text(max_size=300),
            st.text(min_size=3000, max_size=3100),
            st.sampled_from(["ghost v1", "iris v99", "<script>", "'; --"]),
        ),
        "user_id": st.sampled_from([ALICE, "", "U0NOBODY", "💥"]),
        "channel_id": st.sampled_from([OPS, "", "C0MISSING"]),
        "response_url": st.sampled_from(["", "not a url"]),
        "team_id": st.sampled_from(["T0001", ""]),
    },
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(fields=FIELDS)
def test_any_payload_gets_an_answer(
    running_front: RunningFront, caplog: pytest.LogCaptureFixture, fields: dict[str, str]
) -> None:
    with caplog.at_level(logging.ERROR):
        response = signed_post(running_front.url, urllib.parse.urlencode(fields))
        running_front.drain()
    if "command" not in fields:  # a signed form that is no slash command is not Slack's
        assert response.status_code == 400
    elif not fields.get("team_id"):  # Slack always names the team: without one, nothing is served
        assert response.status_code == 403
    else:  # answered, or acked empty when no listener takes it
        assert response.status_code == 200
    if response.content:
        assert response.headers["content-type"].startswith(("application/json", "text/plain"))
    unexpected = [r.getMessage() for r in caplog.records if "unexpectedly" in r.getMessage()]
    assert unexpected == []
