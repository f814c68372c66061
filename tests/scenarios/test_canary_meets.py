"""Where a canary meets the rest of the bot, with real model-server processes and real
traffic: every other change to the endpoint refused while it runs (saying who holds it),
`/cancel` aborting it cleanly; the registry alias moved only at the switch; the watch after a
canary-promoted switch judging the new version from the switch on; `/status` and `/metrics`
during and after; `/canary` aimed at the wrong environment or step."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Callable

from mlflow import MlflowClient

from commands.base import StatusReport
from core.config import Rollout, Thresholds
from core.events import EventKind, Notice, Refusal
from core.marks import plain
from core.metrics.page import Exposition
from core.oncall.alerts import LogAlerts
from core.oncall.watching import CHECK_S
from core.runtime import Runtime
from core.store.models import WatchState
from core.targets.base import EndpointRef
from core.targets.local.host import MAX_RESTARTS
from tests.clock import FakeClock
from tests.conftest import Recorder
from tests.local.twin import FAILING, FAILS_ON_V5, SAME, SAME_AGAIN, TWIN
from tests.scenarios.test_canary import (
    _as_bob,
    _deploy,
    _finished,
    _send,
)
from tests.scenarios.test_deploy_scale_status import run

ALIAS = "dev-serving"


def _aliases(uri: str) -> dict[str, str]:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return {k: str(v) for k, v in (client.get_registered_model(TWIN).aliases or {}).items()}


def _metrics(rt: Runtime) -> str:
    return Exposition(rt.repos.db).render().decode()


def test_while_a_canary_runs_every_other_change_is_refused_and_cancel_ends_it_cleanly(
    make: Callable[..., Runtime],
) -> None:
    rt = make(Rollout(bake_s=3600))
    cards, worker, result = _deploy(rt, f"/deploy {TWIN} v{SAME_AGAIN} --canary 10")
    cards.card(share=10)
    for line in (
        f"/deploy {TWIN} v{FAILING}",
        f"/scale {TWIN} 2 replicas",
        f"/rollback {TWIN}",
        f"/stop {TWIN}",
        f"/lock {TWIN} for the audit",
    ):
        refused = _as_bob(rt, line)
        assert isinstance(refused, Refusal), (line, refused)
        assert f"{TWIN} in dev is locked by" in plain(refused.text), (line, refused.text)
    kept = _as_bob(rt, f"/unlock {TWIN}")
    assert isinstance(kept, Refusal)
    assert "That operation is still running in a live bot process" in plain(kept.text)
    # the canary goes on as it was: still splitting, still at its first step
    seen = _send(rt, 200)
    assert set(seen) == {f"{TWIN}/{SAME} 200", f"{TWIN}/{SAME_AGAIN} 200"}, seen

    cancelled = _as_bob(rt, f"/cancel {TWIN}")
    assert isinstance(cancelled, Notice), cancelled
    outcome = _finished(worker, result)
    assert not outcome.ok
    assert f"{TWIN} v{SAME} still serves" in plain(outcome.text)
    assert _send(rt, 100) == Counter({f"{TWIN}/{SAME} 200": 100})
    endpoint = rt.repos.endpoints.get("dev", TWIN)
    assert endpoint is not None and endpoint.version == SAME
    assert rt.repos.locks.get("dev", TWIN) is None
    assert "chatops_canary_share_percent{" not in _metrics(rt)
    status = run(rt, f"/status {TWIN}")
    assert isinstance(status, StatusReport)
    assert "canary" not in plain(status.endpoints[0].underway)
    # what the canary asked of the endpoint is over: a next deploy runs as any other
    assert run(rt, f"/deploy {TWIN} v{SAME_AGAIN} --canary 0").ok
    assert _send(rt, 20) == Counter({f"{TWIN}/{SAME_AGAIN} 200": 20})


def test_the_alias_moves_only_at_the_switch_and_an_aborted_canary_writes_nothing(
    make: Callable[..., Runtime],
    twin_uri: str,
) -> None:
    rt = make(Rollout(bake_s=3600), alias=ALIAS)
    assert _aliases(twin_uri)[ALIAS] == str(SAME)

    cards, worker, result = _deploy(rt, f"/deploy {TWIN} v{SAME_AGAIN} --canary 10,50")
    cards.card(share=10)
    assert _aliases(twin_uri)[ALIAS] == str(SAME)
    assert isinstance(_as_bob(rt, f"/canary {TWIN} promote at 10%"), Notice)
    cards.card(share=50)
    assert _aliases(twin_uri)[ALIAS] == str(SAME)  # a step is no switch
    assert isinstance(_as_bob(rt, f"/canary {TWIN} abort at 50%"), Notice)
    assert not _finished(worker, result).ok
    assert _aliases(twin_uri)[ALIAS] == str(SAME)  # aborted: nothing written

    cards, worker, result = _deploy(rt, f"/deploy {TWIN} v{SAME_AGAIN} --canary 10")
    cards.card(share=10)
    assert _aliases(twin_uri)[ALIAS] == str(SAME)
    assert isinstance(_as_bob(rt, f"/canary {TWIN} promote at 10%"), Notice)
    assert _finished(worker, result).ok
    assert _aliases(twin_uri)[ALIAS] == str(SAME_AGAIN)


def test_the_watch_after_a_canary_judges_the_new_version_from_its_switch_on(
    make: Callable[..., Runtime], clock: FakeClock
) -> None:
    # not aborted on errors: what it failed in its canary callers never saw (v1 answered)
    rt = make(Rollout(bake_s=3600, abort=Thresholds(error_rate=None)))
    cards, worker, result = _deploy(rt, f"/deploy {TWIN} v{FAILING} --canary 50")
    cards.card(share=50)
    assert _send(rt, 60, FAILS_ON_V5) == Counter({f"{TWIN}/{SAME} 200": 60})
    cards.card(share=50, when=lambda c: (c["sides"][1] or {}).get("errors", 0) >= 20)  # type: ignore[index,union-attr]
    assert isinstance(_as_bob(rt, f"/canary {TWIN} promote"), Notice)
    assert _finished(worker, result).ok

    watcher = rt.watcher(alerts=LogAlerts(say=lambda _: None), runner=rt.runner)
    watcher.tick()
    # after the switch v5 answers what it can: its canary-time failures are not its watch's
    assert _send(rt, 40) == Counter({f"{TWIN}/{FAILING} 200": 40})
    clock.advance(CHECK_S)
    watcher.tick()
    assert watcher.settle(60)
    watch = rt.repos.watches.of("dev", TWIN)[0]
    assert watch.state not in (WatchState.ROLLED_BACK, WatchState.FAILED), watch
    assert rt.repos.endpoints.get("dev", TWIN).version == FAILING  # type: ignore[union-attr]

    # and what it fails from its switch on is judged: rolled back by itself to v1
    assert set(_send(rt, 30, FAILS_ON_V5)) == {f"{TWIN}/{FAILING} 500"}
    clock.advance(CHECK_S)
    watcher.tick()
    assert watcher.settle(120)
    assert rt.repos.endpoints.get("dev", TWIN).version == SAME  # type: ignore[union-attr]
    assert _send(rt, 10, FAILS_ON_V5) == Counter({f"{TWIN}/{SAME} 200": 10})


def test_status_and_metrics_show_the_canary_while_it_runs_and_forget_it_after(
    make: Callable[..., Runtime],
) -> None:
    rt = make(Rollout(bake_s=3600))
    cards, worker, result = _deploy(rt, f"/deploy {TWIN} v{SAME_AGAIN} --shadow 50")
    cards.card(share=0)
    _send(rt, 100)
    cards.card(share=0, when=lambda c: (c["shadowed"] or {}).get("compared", 0) >= 20)  # type: ignore[union-attr]
    page = _metrics(rt)
    labels = f'endpoint="{TWIN}",env="dev",version="{SAME_AGAIN}"'
    assert f"chatops_canary_share_percent{{{labels}}} 0.0" in page, [
        line for line in page.splitlines() if "canary" in line
    ]
    assert f"chatops_canary_shadow_percent{{{labels}}} 50.0" in page
    assert f"chatops_canary_agreement_ratio{{{labels}}} 1.0" in page
    status = run(rt, f"/status {TWIN}")
    assert isinstance(status, StatusReport)
    assert "in its canary" in plain(status.endpoints[0].underway)

    # a shadow-only step is at 0%: a click on its card says so
    assert isinstance(_as_bob(rt, f"/canary {TWIN} promote at 0%"), Notice)
    assert _finished(worker, result).ok
    page = _metrics(rt)
    assert "chatops_canary_share_percent{" not in page
    assert "chatops_canary_requests{" not in page
    status = run(rt, f"/status {TWIN}")
    assert isinstance(status, StatusReport)
    assert status.endpoints[0].version == SAME_AGAIN
    assert not plain(status.endpoints[0].underway)


def test_canary_aimed_at_another_environment_or_step_changes_nothing(
    make: Callable[..., Runtime],
) -> None:
    rt = make(Rollout(bake_s=3600))
    cards, worker, result = _deploy(rt, f"/deploy {TWIN} v{SAME_AGAIN} --canary 10")
    cards.card(share=10)
    for line, said in (
        (f"/canary {TWIN} abort in prod", f"no canary is under way on {TWIN} in prod"),
        (f"/canary {TWIN} abort in nowhere", "nowhere"),
        (f"/canary {TWIN} abort at 50%", "is at 10% now, no longer at 50%"),
        (f"/canary {TWIN}x abort", f"no canary is under way on {TWIN}x in dev"),
    ):
        refused = _as_bob(rt, line)
        assert isinstance(refused, Refusal), (line, refused)
        assert said in plain(refused.text), (line, refused.text)
    op = next(o for o in rt.repos.operations.running() if o.endpoint == TWIN)
    assert op.gate is None and op.canary_share == 10  # nothing decided
    assert isinstance(_as_bob(rt, f"/canary {TWIN} promote at 10%"), Notice)
    assert _finished(worker, result).ok
    done = [e.message for e in cards.events if e.kind is EventKind.DONE and e.step == "canary"]
    assert [d.split(" after ")[0] for d in done] == ["10% promoted by bob"]


def _kill_serving(rt: Runtime) -> None:
    """SIGKILL twin's model servers until their host gives up restarting them."""
    target = rt.targets["dev"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = target._call(EndpointRef("dev", TWIN), {"op": "status"})  # type: ignore[attr-defined]
        (dep,) = [d for d in status["deployments"] if d["state"] == "active"]
        alive = [w["pid"] for w in dep["workers"] if w["alive"]]
        if not alive and all(w["restarts"] >= MAX_RESTARTS for w in dep["workers"]):
            return
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    raise AssertionError("the model servers kept coming back")


def test_a_canary_asked_for_beside_a_version_that_is_down_says_why_it_has_none(
    make: Callable[..., Runtime],
) -> None:
    rt = make(Rollout(bake_s=3600))
    _kill_serving(rt)
    recorder = Recorder()
    outcome = run(rt, f"/deploy {TWIN} v{SAME_AGAIN} --canary 10", recorder)
    assert outcome.ok, outcome.text
    said = [e.message for e in recorder.events if e.kind is EventKind.INFO]
    assert (
        f"no canary: v{SAME}, which served {TWIN} in dev, is down: no requests to share with it, "
        f"so v{SAME_AGAIN} takes every request at the switch"
    ) in said, said
    assert _send(rt, 10) == Counter({f"{TWIN}/{SAME_AGAIN} 200": 10})
