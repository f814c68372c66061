"""Canary and shadow traffic on the local target: real model-server processes, real HTTP
requests to the endpoint's one URL. The serving version is deployed through the bot; a
candidate is started beside it through the target (as a canary rollout does), then the
endpoint's requests are split with it, and every answer names the version that gave it."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.registry.source import RegistrySource
from core.resources import Resources
from core.runtime import Runtime
from core.targets.base import Comparison, EndpointRef, quiet_step
from core.targets.local.control import call
from core.targets.local.target import LocalTarget, Zygote
from tests.clock import FakeClock
from tests.conftest import make_settings
from tests.local.twin import (
    FAILING,
    FAILS_ON_V5,
    OFF_BY_HALF,
    ROW,
    SAME,
    SAME_AGAIN,
    SLOW,
    TWIN,
    log_twin,
)
from tests.scenarios.test_deploy_scale_status import run

REF = EndpointRef("dev", TWIN)


@pytest.fixture(scope="module")
def twin_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("twin")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    assert log_twin(uri, root) == [1, 2, 3, 4, 5]
    return uri


@pytest.fixture
def rt(tmp_path: Path, twin_uri: str, zygote: Zygote) -> Iterator[Runtime]:
    runtime = Runtime(make_settings(tmp_path / "state", twin_uri), zygote=zygote, clock=FakeClock())
    outcome = run(runtime, f"/deploy {TWIN} v{SAME}")
    assert outcome.ok, outcome
    yield runtime
    runtime.shut_down_endpoints()
    runtime.close()


def _target(rt: Runtime) -> LocalTarget:
    target = rt.deployer.targets["dev"]
    assert isinstance(target, LocalTarget)
    return target


def _candidate(rt: Runtime, version: int, workers: int = 2) -> str:
    """Starts `version` beside what serves (built, started, smoke-tested, not serving)."""
    target = _target(rt)
    mv = rt.registry.resolve(TWIN, version=version)
    built = target.build(REF, mv, RegistrySource(rt.registry), quiet_step())
    deployment = f"candidate-v{version}"
    resources = Resources(cpu=workers, memory_mb=1024, replicas=1)
    started = target.start(REF, mv, built, resources, deployment, quiet_step())
    target.smoke_test(REF, started, built, quiet_step())
    return deployment


def _send(rt: Runtime, n: int, body: object = ROW) -> tuple[Counter[str], list[float]]:
    """`n` requests to the endpoint: who answered (X-Model) with what status, and each
    round trip in ms."""
    seen: Counter[str] = Counter()
    took = []
    url = _target(rt).url(REF)
    with httpx.Client(timeout=30) as client:
        for _ in range(n):
            began = time.perf_counter()
            answer = client.post(url, json=body)
            took.append((time.perf_counter() - began) * 1000)
            seen[f"{answer.headers['x-model']} {answer.status_code}"] += 1
    return seen, took


def _split(rt: Runtime, candidate: str, canary: int, shadow: int = 0, tol: float = 0.0) -> None:
    _target(rt).split(
        REF, candidate, canary=canary, shadow=shadow, tolerance=tol, step=quiet_step()
    )


def _compare(rt: Runtime, candidate: str) -> Comparison:
    return _target(rt).compare(REF, candidate)


def _settled(rt: Runtime, candidate: str, copies: int) -> Comparison:
    """The comparison once all of `copies` shadow copies are answered or dropped."""
    deadline = time.monotonic() + 30
    while True:
        found = _compare(rt, candidate)
        if found.shadowed.requests + _dropped(found) >= copies or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _p99(took: list[float]) -> float:
    return sorted(took)[int(len(took) * 0.99) - 1]


def _dropped(found: Comparison) -> int:
    """Copies dropped because too many waited for the candidate, as the detail says."""
    said = re.search(r"(\d+) shadow cop", found.detail)
    return int(said.group(1)) if said else 0


def test_the_candidate_answers_the_asked_share_and_the_counts_match_what_callers_saw(
    rt: Runtime,
) -> None:
    assert run(rt, f"/scale {TWIN} 2cpu 1gb").ok  # two serving processes, each dealing
    candidate = _candidate(rt, SAME_AGAIN)
    before = _compare(rt, candidate)
    assert not before.known and candidate in before.detail

    total: Counter[str] = Counter()
    for share in (10, 50):
        _split(rt, candidate, share)
        seen, _ = _send(rt, 2000)
        total.update(seen)
        to_candidate = seen[f"{TWIN}/{SAME_AGAIN} 200"]
        assert seen[f"{TWIN}/{SAME} 200"] + to_candidate == 2000, seen
        assert abs(to_candidate / 2000 * 100 - share) <= 3, seen

        found = _compare(rt, candidate)
        assert found.known and found.canary == share and found.shadow == 0
        assert found.serving is not None and found.candidate is not None
        assert (found.serving.version, found.candidate.version) == (SAME, SAME_AGAIN)
        assert found.candidate.deployment == candidate
        assert found.serving.requests == seen[f"{TWIN}/{SAME} 200"]
        assert found.candidate.requests == to_candidate
        assert found.serving.errors == found.candidate.errors == 0
        assert found.candidate.p50_ms is not None and found.candidate.p99_ms is not None
        assert found.since_s > 0

    # a bot restarted mid-canary asks for the same split again: the counts go on
    _split(rt, candidate, 50)
    again = _compare(rt, candidate)
    assert again.candidate is not None and again.candidate.requests == to_candidate

    # the endpoint's traffic (what /status shows) names the version that answered each
    answered = _target(rt).traffic(REF)
    assert answered.requests == 4000 and answered.by_version == {
        SAME: total[f"{TWIN}/{SAME} 200"],
        SAME_AGAIN: total[f"{TWIN}/{SAME_AGAIN} 200"],
    }


def test_shadow_copies_never_delay_callers_and_only_what_serves_answers(rt: Runtime) -> None:
    _, alone = _send(rt, 200)
    candidate = _candidate(rt, SLOW, workers=1)  # 200 ms a prediction, one at a time
    _split(rt, candidate, 0, shadow=100)
    seen, took = _send(rt, 200)

    assert seen == {f"{TWIN}/{SAME} 200": 200}
    # a caller that waited for the candidate would wait 200 ms at least: not even 1 in 100 did
    p99, p99_alone = _p99(took), _p99(alone)
    assert p99 < 200 and sorted(took)[100] < 50, (p99, p99_alone)
    found = _settled(rt, candidate, 200)
    copies = found.shadowed
    # at most 16 copies wait for the candidate at once: the others were dropped and said so
    assert copies.requests + _dropped(found) == 200 and _dropped(found) > 0
    assert copies.errors == 0 and copies.compared == copies.requests
    assert copies.agreement == 1.0
    assert copies.p50_ms is not None and copies.p50_ms >= 150
    assert found.serving is not None and found.serving.requests == 200
    assert found.candidate is not None and found.candidate.requests == 0


def test_agreement_counts_identical_predictions_and_numbers_within_the_tolerance(
    rt: Runtime,
) -> None:
    same = _candidate(rt, SAME_AGAIN, workers=1)
    _split(rt, same, 0, shadow=50)
    seen, _ = _send(rt, 100)
    assert seen == {f"{TWIN}/{SAME} 200": 100}
    # every other request copied (a machine too busy may drop some: they are said)
    found = _settled(rt, same, 50)
    assert found.shadowed.requests + _dropped(found) == 50
    assert found.shadowed.compared == found.shadowed.requests > 0
    assert found.shadowed.agreement == 1.0

    off = _candidate(rt, OFF_BY_HALF, workers=1)
    _split(rt, off, 0, shadow=100)
    _send(rt, 40)
    found = _settled(rt, off, 40)
    assert found.shadowed.compared > 0
    assert found.shadowed.agreement == 0.0  # 3.0 against 3.5, to the digit

    _split(rt, off, 0, shadow=100, tol=0.5)  # a new tolerance: a new split, counted anew
    _send(rt, 40)
    found = _settled(rt, off, 40)
    assert found.shadowed.requests + _dropped(found) == 40
    assert found.shadowed.compared > 0 and found.shadowed.agreement == 1.0


def test_a_failing_candidate_is_counted_so_and_callers_get_the_serving_answer(
    rt: Runtime,
) -> None:
    candidate = _candidate(rt, FAILING)
    _split(rt, candidate, 50)
    seen, _ = _send(rt, 100, FAILS_ON_V5)
    assert seen == {f"{TWIN}/{SAME} 200": 100}  # none of them saw the candidate's 500
    found = _compare(rt, candidate)
    assert found.candidate is not None and found.serving is not None
    assert (found.candidate.requests, found.candidate.errors) == (50, 50)
    assert found.candidate.error_rate == 1.0
    assert (found.serving.requests, found.serving.errors) == (100, 0)

    # what it answers well, callers get from it
    seen, _ = _send(rt, 100)
    assert seen == {f"{TWIN}/{SAME} 200": 50, f"{TWIN}/{FAILING} 200": 50}

    # a candidate whose processes are gone refuses: counted so, callers served all the same
    for pid in _pids(rt, candidate):
        os.kill(pid, signal.SIGKILL)
    seen, _ = _send(rt, 40)
    assert seen == {f"{TWIN}/{SAME} 200": 40}
    found = _compare(rt, candidate)
    assert found.candidate is not None and found.serving is not None
    assert (found.candidate.requests, found.candidate.errors) == (120, 70)
    assert (found.serving.requests, found.serving.errors) == (190, 0)


def _pids(rt: Runtime, deployment: str) -> list[int]:
    status = call(_target(rt).layout.control_path(REF), {"op": "status"}, what=TWIN)
    assert status is not None
    (dep,) = [d for d in status["deployments"] if d["deployment"] == deployment]
    return [w["pid"] for w in dep["workers"]]


def test_discard_and_switch_end_the_split(rt: Runtime) -> None:
    target = _target(rt)
    discarded = _candidate(rt, SAME_AGAIN, workers=1)
    _split(rt, discarded, 50)
    seen, _ = _send(rt, 20)
    assert seen[f"{TWIN}/{SAME_AGAIN} 200"] == 10

    target.discard(REF, discarded, quiet_step())
    seen, _ = _send(rt, 50)
    assert seen == {f"{TWIN}/{SAME} 200": 50}
    ended = _compare(rt, discarded)
    assert ended.known and "ended" in ended.detail and ended.canary == 0
    assert ended.candidate is not None and ended.candidate.requests == 10

    switched = _candidate(rt, OFF_BY_HALF, workers=1)
    _split(rt, switched, 10)
    target.switch(REF, switched, quiet_step())
    seen, _ = _send(rt, 50)
    assert seen == {f"{TWIN}/{OFF_BY_HALF} 200": 50}


def test_a_split_asked_wrongly_is_refused_and_changes_nothing(rt: Runtime) -> None:
    from core.errors import ChatOpsError

    candidate = _candidate(rt, SAME_AGAIN, workers=1)
    with pytest.raises(ChatOpsError, match="0 to 100"):
        _split(rt, candidate, 120)
    with pytest.raises(ChatOpsError, match="no deployment nobody"):
        _split(rt, "nobody", 10)
    seen, _ = _send(rt, 20)
    assert seen == {f"{TWIN}/{SAME} 200": 20}
