"""The steps of a rollout, each read top to bottom: what it tells people, what it asks of
the target, what it records. A step begins only while its operation is still wanted (see
`Run.step`); traffic moves only while it is still this run's and not cancelled."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from core import failpoints
from core.errors import ChatOpsError, RegistryError
from core.events import EventKind
from core.execution.run import Brief, Run
from core.marks import unmarked
from core.predictions import Measured, quality, rows_agreeing, storable
from core.registry import evaluation as evaluations
from core.registry.evaluation import EvaluationSet
from core.registry.mlflow import ModelVersion, Registry, serving_tag
from core.resources import Resources
from core.store.models import Endpoint, Operation, new_id
from core.targets.base import Built, EndpointRef, ModelSource, Started, Target
from core.versions import listed_metrics

log = logging.getLogger("chatops.core")

WRITE = "registry"  # the step that writes back to the registry what serves now
DIFF = "diff"  # the step that scores the new version beside what serves on the run's dataset


def serves(current: Endpoint, mv: ModelVersion, resources: Resources) -> bool:
    """Whether `current` is `mv` with `resources` already: a rollout to it changes nothing."""
    return (current.model, current.version) == (mv.model, mv.version) and (
        current.resources == resources
    )


def deployment_id(run: Run, op: Operation) -> str:
    # chosen once and recorded first: a resumed operation starts (finds) the same one
    deployment = str(op.remote.get("deployment") or "")
    if not deployment:
        deployment = new_id("dep")
        run.remember(deployment=deployment)
    return deployment


def resolve(run: Run, registry: Registry, op: Operation, brief: Brief) -> ModelVersion:
    # an alias resolved once stays resolved: a resumed run must not follow it if it moved
    version = brief.version if brief.version is not None else op.remote.get("resolved")
    alias = None if version is not None else brief.alias
    what = f"v{version}" if version is not None else f"@{alias}"
    with run.step("resolve", f"resolving {brief.model} {what} in the registry") as done:
        mv = registry.resolve(brief.model, version=version, alias=alias)
        run.remember(resolved=mv.version)
        metrics = listed_metrics(mv.metrics)
        run_ref = f"run {mv.run_id[:8]}" if mv.run_id else "no run"
        done(f"resolved {mv.label} ({run_ref}{', ' + metrics if metrics else ''})")
    return mv


def build(
    run: Run, target: Target, source: ModelSource, ep: EndpointRef, mv: ModelVersion
) -> Built:
    with run.step("build", f"building {mv.label} on {target.kind}") as done:
        built = target.build(ep, mv, source, run.target_step("build"))
        done(built.detail or f"{mv.label} built")
    return built


def start(
    run: Run,
    target: Target,
    ep: EndpointRef,
    mv: ModelVersion,
    built: Built,
    resources: Resources,
    deployment: str,
) -> Started:
    with run.step("start", f"starting {mv.label} with {resources.describe()}") as done:
        started = target.start(ep, mv, built, resources, deployment, run.target_step("start"))
        done(f"model servers up: {started.detail}")
    return started


def served_answer(
    run: Run, target: Target, ep: EndpointRef, built: Built, current: Endpoint | None, up: bool
) -> Any | None:
    """What serves the endpoint predicts for the input example, asked once before the new
    version starts (on some platforms it takes the traffic as soon as it is up) and recorded,
    so a resumed run compares with the same; None when there is nothing to compare with."""
    if current is None or not up or built.example is None:
        return None
    recorded = run.recall("served_prediction")
    if isinstance(recorded, dict):
        return recorded.get("prediction")
    prediction = storable(target.score(ep, built.example))
    run.remember(served_prediction={"prediction": prediction})
    return prediction


def evaluation(
    run: Run, registry: Registry, mv: ModelVersion, built: Built
) -> EvaluationSet | None:
    """The evaluation dataset `mv`'s run logged, for the prediction diff; None when it logged
    none, or the model has no input example to shape its rows by (its smoke test says so).
    One that cannot be read is told and the rollout goes on: the diff informs, it decides
    nothing."""
    if built.example is None:
        return None
    try:
        found = evaluations.logged(registry, mv)
        return evaluations.read(registry, found, built.example) if found is not None else None
    except ChatOpsError as exc:
        why = exc.message
    except Exception as exc:  # whatever the file holds, the rollout goes on
        log.exception("reading the evaluation dataset of %s failed", mv.label)
        why = f"reading it failed: {type(exc).__name__}"
    run.emit(EventKind.INFO, DIFF, f"no prediction diff on the evaluation dataset: {why}")
    return None


def served_scores(
    run: Run,
    target: Target,
    ep: EndpointRef,
    dataset: EvaluationSet | None,
    serving: int | None,
) -> list[Any] | None:
    """What serves (v`serving`) predicts for every row of `dataset`, asked once before the
    new version starts, as `served_answer` is, and recorded even when there is nothing to
    ask (no dataset): a resumed run never asks the endpoint again, which by then the new
    version may answer."""
    recorded = run.recall("served_scores")
    if isinstance(recorded, dict):
        return recorded.get("predictions")
    predictions = storable(scores(target, ep, dataset)) if dataset is not None else None
    if dataset is not None and predictions is None:
        run.emit(
            EventKind.INFO,
            DIFF,
            f"no prediction diff on the {dataset.described()}: v{serving} did not answer a "
            "prediction per row of it",
        )
    run.remember(served_scores={"predictions": predictions})
    return predictions


def scores(
    target: Target, ep: EndpointRef, dataset: EvaluationSet, started: Started | None = None
) -> list[Any] | None:
    """A prediction per row of `dataset`, from what serves or the `started` deployment;
    None when any request went unanswered or the answers are not one per row."""
    answers: list[Any] = []
    for body in dataset.bodies():
        got = target.score(ep, body, started)
        if not isinstance(got, list):
            return None
        answers += got
    return answers if len(answers) == len(dataset.rows) else None


def evaluation_diff(
    run: Run,
    target: Target,
    ep: EndpointRef,
    started: Started,
    dataset: EvaluationSet,
    versions: tuple[ModelVersion, int],
    served: list[Any],
    tolerance: float,
) -> None:
    """The new version (`versions`: new, serving) scored on `dataset` beside what served
    answered, row by row and against the dataset's targets; recorded for later plans (and
    what served answered let go: the operation's record stays small)."""
    mv, against = versions
    version = mv.version
    doing = f"scoring v{version} beside v{against} on the {dataset.described()}"
    with run.step(DIFF, doing) as done:
        recorded = Measured.of(run.recall("diff"))
        if recorded is not None:  # measured before this operation was taken over
            done(recorded.said())
            return
        mine = storable(scores(target, ep, dataset, started))
        if mine is None:
            done(f"no prediction diff: v{version} did not answer a prediction per row")
            return
        agreed, rows = rows_agreeing(served, mine, tolerance)
        targets = list(dataset.targets)
        now, before = quality(mine, targets), quality(served, targets)
        measured = Measured(
            model=mv.model,
            version=version,
            against=against,
            dataset=dataset.name,
            agreed=agreed,
            rows=rows,
            metric=now[0] if now and before else "",
            mine=now[1] if now and before else None,
            theirs=before[1] if now and before else None,
        )
        run.remember(diff=storable(measured.as_dict()), served_scores={"predictions": None})
        done(measured.said())


def smoke_test(
    run: Run,
    target: Target,
    ep: EndpointRef,
    started: Started,
    built: Built,
    served: tuple[int, Any] | None = None,
    tolerance: float = 0.0,
) -> float:
    """Health check and smoke test; with `served` (the version that serves and its answer to
    the input example), the prediction diff of the new version against it."""
    with run.step("check", "health check and smoke test on the input example") as done:
        tested = target.smoke_test(ep, started, built, run.target_step("check"))
        if built.example is None:
            done("health check passed (no input example to smoke-test with)")
        else:
            said = f"smoke test answered {short(tested.prediction)} in {tested.latency_ms:.0f} ms"
            done(said + diff(served, tested.prediction, tolerance))
    return tested.latency_ms


def diff(served: tuple[int, Any] | None, prediction: Any, tolerance: float) -> str:
    """`; as v1 on all 3 rows`, or how it differs from what serves; "" with nothing to
    compare with."""
    if served is None or served[1] is None or prediction is None:
        return ""
    version, answer = served
    agreed, rows = rows_agreeing(answer, prediction, tolerance)
    counted = "the row" if rows == 1 else f"all {rows} rows"
    if agreed == rows:
        return f"; it predicts as v{version} on {counted} of the example"
    return (
        f"; it predicts otherwise than v{version} on {rows - agreed} of {rows} row"
        f"{'s' if rows != 1 else ''} of the example (v{version} answered {short(answer)})"
    )


def switch(
    run: Run,
    target: Target,
    ep: EndpointRef,
    mv: ModelVersion,
    resources: Resources,
    started: Started,
    current: Endpoint | None,
    was_up: bool,
) -> str:
    # traffic moves next: only while the operation is still ours, and still wanted
    run.confirm()
    run.go_on()
    with run.step("switch", "switching traffic to the new deployment") as done:
        url = target.switch(ep, started.deployment, run.target_step("switch"))
        before = (
            f"; the previous deployment (v{current.version}) drains and stops"
            if current and was_up
            else ""
        )
        done(f"{ep.name} now serves v{mv.version} with {resources.describe()}{before}")
    return url


def serving_value(op: Operation, brief: Brief, since: datetime) -> str:
    """What the serving tag says (JSON): since when (UTC), who asked (and who approved),
    the operation, and its thread where a front recorded one (a Slack channel and message,
    which `chat.getPermalink` turns into a link)."""
    value: dict[str, Any] = {
        "since": since.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "by": unmarked(op.requested_by or brief.actor_name),
    }
    if brief.approver:
        value["approved_by"] = unmarked(brief.approver)
    value["operation"] = op.id
    where = op.reply_to or {}
    channel, ts = where.get("channel"), where.get("thread_ts") or where.get("ts")
    if channel and ts:
        value["thread"] = {"front": str(where.get("front") or ""), "channel": channel, "ts": ts}
    return json.dumps(value, separators=(",", ":"))


def write_back(
    run: Run,
    registry: Registry,
    *,
    env: str,
    alias: str,
    mv: ModelVersion,
    value: str,
    before: tuple[str, int] | None,
) -> str:
    """Move `@alias` to `mv`, tag it as serving `env` and untag what served `before` (model,
    version), once per operation (a resumed one reads what was recorded). "" when written,
    else why the registry refused: what serves stays as it is either way."""
    recorded = run.recall("written")
    if isinstance(recorded, str):
        return recorded
    tag = serving_tag(env)

    def write() -> str:
        registry.mark_serving(
            model=mv.model, version=mv.version, alias=alias, tag=tag, value=value, before=before
        )
        untagged = ""
        if before is not None and before != (mv.model, mv.version):
            model, version = before
            was = f"v{version}" if model == mv.model else f"{model} v{version}"
            untagged = f" (taken off {was})"
        return f"@{alias} now names {mv.label}, tagged {tag}{untagged}"

    doing = f"moving @{alias} to {mv.label} in the registry"
    return _written(run, doing, f"the registry refused to move @{alias} to v{mv.version}", write)


def unwrite(run: Run, registry: Registry, *, env: str, alias: str, served: Endpoint) -> str:
    """Take the serving tag off what a stop stopped, and `@alias` while it names it still,
    once per operation. "" when done, else why the registry refused."""
    recorded = run.recall("written")
    if isinstance(recorded, str):
        return recorded
    tag, label = serving_tag(env), f"{served.model} v{served.version}"

    def write() -> str:
        gone = registry.unmark_serving(
            model=served.model, version=served.version, alias=alias, tag=tag
        )
        if gone:
            return f"took {tag} and @{alias} off {label}"
        return f"took {tag} off {label} (@{alias} did not name it: left as it is)"

    doing = f"taking @{alias} and {tag} off {label} in the registry"
    return _written(run, doing, f"the registry refused to take @{alias} off {label}", write)


def _written(run: Run, doing: str, refusing: str, write: Callable[[], str]) -> str:
    """The registry step: `write` while the operation is still this run's; a registry that
    refuses is told in the thread and returned, never raised (traffic moved already)."""
    refused = ""
    try:
        with run.step(WRITE, doing, cancellable=False) as done:
            run.confirm()
            done(write())
    except RegistryError as exc:
        refused = f"{refusing}: {exc.message}"
    except ChatOpsError:
        raise  # the operation is no longer this run's, or the store failed: not the registry
    except Exception as exc:  # MLflow's client failing some other way is still its refusal
        log.error("writing back to the registry failed: %s", type(exc).__name__, exc_info=exc)
        refused = f"{refusing}: the MLflow client failed ({type(exc).__name__})"
    if refused:
        run.emit(EventKind.INFO, WRITE, f"{refused.rstrip('.')} (what serves is unchanged)")
    run.remember(written=refused)
    failpoints.hit("registry.written")
    return refused


def short(value: object, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
