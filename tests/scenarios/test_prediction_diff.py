"""The prediction diff on a run's evaluation dataset, with real model servers: before the
switch, the new version and the serving one are scored on every row the run logged for
evaluation, and the thread says where they differ and how each meets the targets; a later
plan for the same two versions says what was found. A dataset that cannot be read is told,
and the deploy goes on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.events import EventKind, Outcome
from core.registry.demo import create_demo_model
from core.runtime import Runtime
from core.targets.base import EndpointRef
from core.targets.local.target import Zygote
from tests.conftest import FakeClock, Recorder, make_settings
from tests.scenarios.test_deploy_scale_status import run

# what the demo's v2 and v1 make of the 45 held-out iris rows (their runs' accuracy too)
V2_OVER_V1 = (
    "v2 predicts otherwise than v1 on 4 of 45 rows; accuracy 0.911 against v1's 0.822 (+0.089)"
)


def diffs(recorder: Recorder) -> list[str]:
    return [e.message for e in recorder.events if e.step == "diff"]


def test_a_deploy_scores_both_versions_on_the_evaluation_dataset_before_its_switch(
    runtime: Runtime,
) -> None:
    first = Recorder()
    assert run(runtime, "/deploy iris v1", first).ok
    assert diffs(first) == []  # nothing served to compare with

    said = Recorder()
    outcome = run(runtime, "/deploy iris v2", said)
    assert isinstance(outcome, Outcome) and outcome.ok, said.text
    begun, done = diffs(said)
    assert begun == (
        "scoring v2 beside v1 on the evaluation dataset `iris-test` (45 rows, target `species`)"
    )
    assert done.startswith(V2_OVER_V1 + " (")
    steps = [e.step for e in said.events if e.kind is EventKind.DONE]
    assert steps.index("diff") == steps.index("check") + 1  # scored before traffic moves
    assert steps.index("diff") < steps.index("switch")
    # kept: what was measured; let go: what v1 answered (the record stays small)
    assert outcome.operation is not None
    op = runtime.repos.operations.get(outcome.operation)
    assert op is not None and op.remote["diff"]["agreed"] == 41
    assert op.remote["served_scores"] == {"predictions": None}

    # the bot's own scoring is no traffic of the endpoint's callers
    seen = runtime.deployer.targets["dev"].traffic(EndpointRef("dev", "iris"))
    assert seen.requests == 0, seen

    # a plan for the same two versions says what this deploy found
    assert run(runtime, "/rollback iris").ok
    plan = run(runtime, "/plan deploy iris v2").text
    row = re.search(r"prediction diff: (.*)", plan)
    assert row is not None, plan
    assert row.group(1).startswith(
        "before the switch, v2 is scored beside v1 on the input example (when the model has one)"
        " and the evaluation dataset `iris-test` (45 rows); measured "
    )
    assert re.search(r"by the deploy in dev \(op-[0-9a-f]+\): " + re.escape(V2_OVER_V1), plan)


def test_a_plan_for_two_versions_never_scored_together_says_what_would_be_scored(
    runtime: Runtime,
) -> None:
    assert run(runtime, "/deploy iris v2").ok
    plan = run(runtime, "/plan deploy iris v1").text
    assert (
        "prediction diff: before the switch, v1 is scored beside v2 on the input example (when "
        "the model has one) and the evaluation dataset `iris-test` (45 rows)\n"
    ) in plan
    assert "prediction diff" not in run(runtime, "/plan deploy iris v2").text  # it serves


@pytest.fixture(scope="module")
def spoilt_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo model, whose runs' evaluation table was overwritten with rows that are not
    records (a list of lists)."""
    root = tmp_path_factory.mktemp("spoilt")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    create_demo_model(tracking_uri=uri, artifact_root=root / "artifacts")
    tables = sorted((root / "artifacts").glob("*/artifacts/evaluation.json"))
    assert len(tables) == 2
    for table in tables:
        table.write_text("[[1, 2, 3]]")
    return uri


@pytest.fixture
def spoilt(tmp_path: Path, spoilt_uri: str, zygote: Zygote, clock: FakeClock) -> Iterator[Runtime]:
    rt = Runtime(make_settings(tmp_path / "state", spoilt_uri), zygote=zygote, clock=clock)
    yield rt
    rt.shut_down_endpoints()
    rt.close()


def test_an_evaluation_dataset_that_cannot_be_read_is_told_and_the_deploy_goes_on(
    spoilt: Runtime,
) -> None:
    assert run(spoilt, "/deploy iris v1").ok
    said = Recorder()
    outcome = run(spoilt, "/deploy iris v2", said)
    assert isinstance(outcome, Outcome) and outcome.ok, said.text
    (told,) = [e for e in said.events if e.step == "diff"]
    assert told.kind is EventKind.INFO
    assert told.message == (
        "no prediction diff on the evaluation dataset: evaluation dataset `iris-test` (45 rows)"
        " is no table: a JSON table has `columns` and `data`, as mlflow.log_table writes it, "
        "and a CSV file a header row"
    )
    # the input example's diff is still made
    (checked,) = [e.message for e in said.events if e.kind is EventKind.DONE and e.step == "check"]
    assert "; it predicts otherwise than v1 on 1 of 3 rows of the example" in checked
