"""No secret ever reaches a Slack message, a log line or an error text."""

from __future__ import annotations

import json
import logging

import pytest

from tests.scenarios.slack.conftest import BOT_TOKEN, RANDOM, SIGNING_SECRET, RunningFront


def test_no_secret_in_anything_the_flows_produce(
    running_front: RunningFront, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        running_front.post("/deploy", "iris v1")  # success
        running_front.post("/deploy", "crasher v1")  # failure with a log tail
        running_front.post("/scale", "iris 99cpu")  # refusal
        running_front.post("/deploy", "iris v2", channel=RANDOM)  # not in the channel: DM
        running_front.post("/status", "public")
        running_front.post("/scale", "iris 4")  # usage error
        running_front.post("/deploy", "iris v1", secret="forged")  # 401
        running_front.drain()

    api = running_front.api
    produced = [
        *(json.dumps(c.args) for c in api.calls),
        *(json.dumps(r.body) for r in api.responses),
        *(caplog.text.splitlines()),
        *(
            e.message
            for op in running_front.runtime.store.operations()
            for e in running_front.runtime.store.events(op.id)
        ),
        *(a.detail + a.command for a in running_front.runtime.store.audit_entries(limit=100)),
    ]
    assert len(api.calls) > 20 and caplog.records  # the flows did run and log
    for secret in (BOT_TOKEN, SIGNING_SECRET):
        leaks = [text for text in produced if secret in text]
        assert leaks == []
