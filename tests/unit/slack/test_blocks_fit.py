"""Every message the front builds is one Slack accepts (checked by the emulator's rules,
which are slack_sdk's block models), however much there is to show."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.slack.rendering.blocks import approval, history, registered, status
from bot.slack.rendering.canary import card as canary_card
from bot.slack.rendering.mrkdwn import SECTION, escape, fit, shown, tail
from commands.base import HistoryReport, StatusReport
from commands.naming import DEFAULT
from commands.registry import split
from core.admission.approvals import ApprovalRequested
from core.events import EndpointStatus
from core.marks import person
from core.oncall.checks import Finding
from core.oncall.status import Problems
from core.registry.runs import Registered
from core.store.models import ApprovalRow, AuditRow
from core.versions import ModelVersion
from tests.slack_api.limits import check_message

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def endpoint(i: int, env: str) -> EndpointStatus:
    return EndpointStatus(
        env=env, name=f"model-{i}", model=f"model-{i}", version=1, resources="1 CPU",
        replicas=1, up=True, since=NOW, url=f"http://127.0.0.1:{5000 + i}", target="local",
    )  # fmt: skip


def test_status_of_60_endpoints_shows_what_fits_and_how_to_see_the_rest() -> None:
    eps = [endpoint(i, "prod" if i % 2 else "dev") for i in range(60)]
    text, blocks = status(StatusReport(endpoints=eps, detail=False, env=None))
    check_message(text, blocks)
    assert len(blocks) == 50
    assert blocks[0]["text"]["text"] == "Endpoints (page 1 of 2)"
    assert blocks[-1]["elements"][0]["text"] == "… and 12 more endpoints: `/mlops status page 2`"
    _, rest = status(StatusReport(endpoints=eps, detail=False, env=None, page=2))
    assert [b["text"]["text"].split("*")[1] for b in rest[1:]] == [
        f"model-{i}" for i in range(48, 60)
    ]
    _, past = status(StatusReport(endpoints=eps, detail=False, env="prod", page=7))
    assert past[1]["elements"][0]["text"] == (
        "There is no page 7: the list has 2; this is the last."
    )


def test_status_with_60_endpoints_and_40_problems_still_fits_and_escapes_them() -> None:
    eps = [endpoint(i, "dev") for i in range(60)]
    found = tuple(
        Finding.problem(f"env <!channel>{i}", "runtime", "r" * 900, "set `runtime_identifier`")
        for i in range(40)
    )
    report = StatusReport(
        endpoints=eps, detail=False, env=None, problems=Problems(findings=found, at=NOW)
    )
    text, blocks = status(report)
    check_message(text, blocks)
    assert len(blocks) == 50
    told = blocks[-1]["text"]["text"]
    assert told.startswith(":warning: The readiness check of")
    assert "found 40 problem(s)" in told and "*env &lt;!channel&gt;0* · runtime: rrr" in told
    assert told.endswith("more: `chatops check` shows them all")
    assert "<!channel>" not in text + str(blocks)
    assert blocks[-2]["elements"][0]["text"] == "… and 13 more endpoints: `/mlops status page 2`"


def test_history_of_50_long_entries_fits_in_one_message() -> None:
    rows = [
        AuditRow(
            at=NOW, actor_id="U1", actor_name="<@U1>", action="deploy", command="/deploy x v1",
            env="prod", endpoint="x", outcome="refused", detail="d" * 900, operation_id="",
            approver="",
        )
        for _ in range(50)
    ]  # fmt: skip
    text, blocks = history(HistoryReport(entries=rows, endpoint=None))
    check_message(text, blocks)
    assert blocks[0]["text"]["text"] == "Last 50 attempts"
    assert "<@U1>" in blocks[1]["text"]["text"]  # the recorded actor is a mention


def test_1100_metrics_show_the_shared_ones_first_and_how_many_more() -> None:
    many = {f"m{i:04d}": float(i) for i in range(1100)}
    live = ModelVersion("iris", 1, "s", None, "READY", NOW, metrics={"zeta": 1.0, "m1099": 2.0})
    req = ApprovalRequested(
        approval=ApprovalRow(
            id="r1", model="iris", version=2, env="prod", requester_id="U1",
            requester_name="<@U1>", reason="", command="", expires_at=NOW,
        ),
        candidate=ModelVersion("iris", 2, "s", None, "READY", NOW, metrics={**many, "zeta": 3.0}),
        live=live,
    )  # fmt: skip
    text, blocks = approval(req)
    check_message(text, blocks)
    candidate = blocks[1]["fields"][0]["text"]
    assert candidate.startswith("*Candidate: v2*\nm1099 1099, zeta 3, m0000 0")
    assert "more" in candidate.rsplit("…", 1)[-1]
    reg = Registered("iris", 3, "abcdef123", "exp", many, NOW, 0.0)
    check_message(*registered(reg))


def test_a_log_tail_is_cut_at_a_line_boundary() -> None:
    log = "\n".join(f"line {i}" for i in range(1000))
    cut = tail(log, 100)
    first, *kept = cut.split("\n")
    assert cut.endswith("line 999") and first == f"… ({1000 - len(kept)} earlier lines)"
    assert len(cut) <= 100 and all(line.startswith("line ") for line in kept)


def test_escape_keeps_placeholders_and_drops_hidden_characters() -> None:
    assert escape("/deploy <model> v<N> & more") == "/deploy &lt;model&gt; v&lt;N&gt; &amp; more"
    assert escape("ir\u202eis\u200b") == "iris"
    # only the mention the bot means (a person the core marked) pings; a typed one never
    text = f"{person('<@U1>')} asks; <@U2> typed <!here>"
    assert shown(text, DEFAULT) == "<@U1> asks; &lt;@U2&gt; typed &lt;!here&gt;"


def test_a_long_line_is_cut_at_a_word_saying_how_many_characters_it_left_out() -> None:
    text = "accuracy 0.93, " + ", ".join(f"class_{i:04d} 0.93" for i in range(1420))
    cut = fit(text, SECTION)
    head, note = cut.rsplit(" … (", 1)
    assert len(cut) <= SECTION and head.endswith("0.93")  # a whole number, not half of one
    assert note == f"{len(text) - len(head):,} more characters)"


def test_marks_a_user_types_are_not_the_bots() -> None:
    forged = f"/lock iris in dev {person('<@U0CAROL>')} asked"
    name, rest = split(forged)
    assert (name, rest) == ("lock", "iris in dev <@U0CAROL> asked")
    assert shown(rest, DEFAULT) == "iris in dev &lt;@U0CAROL&gt; asked"


def test_what_served_in_60_environments_fits_escaped_with_its_threads_linked() -> None:
    from bot.slack.rendering.served import served_at
    from core.moments import zone_named
    from core.oncall.timemachine import ServedAt, Switch

    zone = zone_named("Asia/Kolkata")
    assert zone is not None
    envs = tuple(f"env-{i}" for i in range(60))
    served = tuple(
        Switch(
            env=env, model="iris", version=i + 1, since=NOW, until=None, operation=f"op-{i:010x}",
            requester="<!channel> " + "r" * 400, approver="<@U0CAROL>",
            where={"front": "slack", "channel": "C0OPS", "ts": "1.2"},
        )
        for i, env in enumerate(envs) if i % 2
    )  # fmt: skip
    report = ServedAt(
        endpoint="iris", at=NOW, now=NOW, zone=zone, envs=envs, served=served, begins=NOW
    )
    links = {"op-0000000001": "https://acme.slack.com/archives/C0OPS/p12"}
    text, blocks = served_at(report, links)
    check_message(text, blocks)
    shown_text = str(blocks)
    assert "<!channel>" not in shown_text and "&lt;!channel&gt;" in shown_text
    assert "approved by <@U0CAROL>" in shown_text  # the bot means the approver
    assert "<https://acme.slack.com/archives/C0OPS/p12|its thread>" in shown_text
    assert "its thread is in <#C0OPS>" in shown_text  # no permalink: the channel
    assert "nothing served iris in env-0 at 2024-05-01 05:30 IST." in shown_text
    assert blocks[-2]["elements"][0]["text"] == "… and 13 more environments"
    assert blocks[-1]["elements"][0]["text"] == "Times in Asia/Kolkata"


LONGEST = 128  # the longest name of a model, an endpoint or an environment (config.NAME)


def _canary_card_data(name: str, env: str) -> dict[str, object]:
    side = {"requests": 10**9, "errors": 10**8, "error_rate": 0.1, "p50_ms": 1.5, "p99_ms": 9e5}
    return {
        "env": env, "endpoint": name, "model": name, "version": 99999, "serving_version": 99998,
        "share": 50, "shadow": 100, "step": 5, "steps": 5, "next": 100, "baked_s": 10**7,
        "bake_s": 10**7, "auto_promote": False, "held_by": "<@U1> " * 40, "known": False,
        "detail": "<!channel> " + "d" * 5000,
        "sides": [{**side, "version": 99998}, {**side, "version": 99999}],
        "shadowed": {"requests": 10**9, "errors": 1, "compared": 10**9, "agreement": 0.5,
                     "p50_ms": 1.0, "p99_ms": 2.0},
        "metrics": [{"name": f"{'k' * 250}{i}", "value": 1e300, "delta": -1e300} for i in range(6)],
    }  # fmt: skip


def test_a_canary_card_with_the_longest_names_is_one_slack_accepts_with_or_without_buttons() -> (
    None
):
    data = _canary_card_data("m" * LONGEST, "e" * LONGEST)
    text, blocks = canary_card(data)
    check_message(text, blocks)
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    (abort,) = [e for e in buttons if "confirm" in e]
    said = abort["confirm"]["text"]["text"]
    assert said.startswith("Send every request of mmm") and "characters)" in said
    check_message(*canary_card(data, ended="promoted by <@U1>"))
    assert "<!channel>" not in str(blocks)


def test_approving_in_production_with_the_longest_names_asks_in_a_dialog_slack_accepts() -> None:
    req = ApprovalRequested(
        approval=ApprovalRow(
            id="r1", model="m" * LONGEST, version=99999, env="e" * LONGEST, requester_id="U1",
            requester_name="<@U1>", reason="r" * 3000, command="", expires_at=NOW,
        ),
        candidate=ModelVersion("m" * LONGEST, 99999, "s", None, "READY", NOW),
        live=None,
        production=True,
    )  # fmt: skip
    check_message(*approval(req))
