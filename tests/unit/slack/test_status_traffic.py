"""Traffic in the Slack status message and the App Home: shown for each endpoint, escaped,
and within Slack's limits however many endpoints and versions there are (checked by the
emulator's rules, which are slack_sdk's block models)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from bot.slack.rendering.blocks import status
from bot.slack.rendering.home import home_view
from commands.base import StatusReport
from core.events import EndpointStatus
from core.oncall.overview import Overview
from core.targets.base import Traffic
from tests.slack_api.limits import check_blocks, check_message

NOW = datetime(2024, 5, 1, tzinfo=UTC)
BUSY = Traffic(
    window_s=300,
    known=True,
    requests=9000,
    errors=45,
    p50_ms=3.1,
    p99_ms=1250.0,
    version=12,
    by_version={v: 9000 // 12 for v in range(1, 13)},
    span_s=300,
)
UNKNOWN = Traffic(window_s=300, detail="the API says <!channel> *nothing* & more " + "x" * 3000)


def endpoint(i: int, traffic: Traffic) -> EndpointStatus:
    return EndpointStatus(
        env="dev", name=f"model-{i}", model=f"model-{i}", version=12, resources="1 cpu, 1 GB",
        replicas=1, up=True, since=NOW, url=f"http://127.0.0.1:{5000 + i}", target="local",
        traffic=traffic,
    )  # fmt: skip


def test_each_endpoint_shows_its_traffic_in_one_line() -> None:
    report = StatusReport(endpoints=[endpoint(1, BUSY)], detail=False, env=None)
    text, blocks = status(report)
    check_message(text, blocks)
    line = blocks[1]["text"]["text"].splitlines()[2]
    assert line.startswith(":bar_chart: 1800 req/min over the last 5 min · 0.5% errors (45 of ")
    assert "p50 3.1 ms · p99 1.2 s · served by v12 (750), v11 (750)" in line


def test_what_a_target_says_instead_is_escaped_and_fits() -> None:
    eps = [endpoint(i, UNKNOWN if i % 2 else BUSY) for i in range(60)]
    for detail in (False, True):
        text, blocks = status(StatusReport(endpoints=eps, detail=detail, env=None))
        check_message(text, blocks)
        shown = str(blocks)
        assert "<!channel>" not in shown
        assert "the API says &lt;!channel&gt; *nothing* &amp;" in shown


def test_the_home_tab_shows_traffic_too() -> None:
    eps = [endpoint(i, UNKNOWN if i % 2 else BUSY) for i in range(120)]
    seen = Overview(endpoints=eps, to_decide=[], requests=[], operations=[])
    view = home_view(seen, production=frozenset())
    check_blocks(view["blocks"], limit=100)
    texts = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"]
    assert any(":bar_chart: 1800 req/min" in t for t in texts)
    assert not any("<!channel>" in t for t in texts)
    quiet = replace(BUSY, requests=0, errors=0, by_version={}, span_s=42)
    _, blocks = status(StatusReport(endpoints=[endpoint(1, quiet)], detail=False, env=None))
    assert ":bar_chart: no requests over the last 42s" in blocks[1]["text"]["text"]


def test_status_and_the_home_mark_an_endpoint_whose_alias_drifted() -> None:
    drifted = replace(endpoint(1, BUSY), env="prod", drift="@prod names v13")
    eps = [drifted, endpoint(2, BUSY)]
    _, blocks = status(StatusReport(endpoints=eps, detail=False, env=None))
    shown = str(blocks)
    assert shown.count(":warning: @prod names v13") == 1
    seen = Overview(endpoints=eps, to_decide=[], requests=[], operations=[])
    view = home_view(seen, production=frozenset())
    texts = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"]
    assert sum(":warning: @prod names v13" in t for t in texts) == 1
