"""The Deployer's admission decisions, as an admin or the bot itself meets them: an unknown
environment, the limits, a held or frozen endpoint, what a viewer may do instead, what the
bot may do by itself, a rollback offered for a version that no longer serves. Every attempt
is audited; a refusal changes nothing and says what to do."""

from __future__ import annotations

import pytest

from core.admission.gates import Automatic
from core.admission.roles import Actor
from core.config import Limits
from core.events import Outcome
from core.marks import plain
from core.runtime import Core
from tests.conftest import Recorder
from tests.recording import RecordingTarget
from tests.unit.core.admission.conftest import (
    ADMIN_DEV,
    ADMIN_PROD,
    VIEWER,
    deployed,
    last_audit,
    refused,
    state,
)

BOT = Automatic(id="chatops", name="chatops", why="its watch found 40% of 50 requests failing")


def scale(core: Core, env: str = "prod", actor: Actor = ADMIN_PROD, **wanted: object) -> object:
    return core.deployer.scale(
        endpoint="iris",
        env=env,
        actor=actor,
        command=f"/scale iris in {env}",
        reporter=Recorder(),
        **wanted,  # type: ignore[arg-type]
    )


def test_an_unknown_environment_is_refused_naming_those_there_are(core: Core) -> None:
    text = refused(
        core.deployer.deploy(
            model="iris",
            version=1,
            env="staging",
            actor=ADMIN_PROD,
            command="/deploy iris v1 to staging",
            reporter=Recorder(),
        )
    )
    assert text == "there is no environment called `staging` (environments: dev, prod)"
    entry = last_audit(core)
    assert (entry.action, entry.env, entry.outcome) == ("deploy", "staging", "refused")
    assert core.repos.operations.recent() == []


@pytest.mark.parametrize(
    ("wanted", "said"),
    [
        ({"cpu": 3}, "3 cpu is over the limit of prod: at most 2 cpu per endpoint"),
        ({"memory_mb": 4096}, "4 GB is over the limit of prod: at most 2 GB per endpoint"),
        ({"replicas": 3}, "3 replicas is over the limit of prod: at most 2"),
        ({"gpus": 1}, "prod has no GPUs: leave out the gpu count"),
    ],
)
def test_what_goes_over_a_limit_is_refused_naming_the_limit(
    core: Core, wanted: dict[str, object], said: str
) -> None:
    deployed(core, 1, "prod")
    before = state(core)
    assert refused(scale(core, **wanted)) == said
    assert state(core) == before
    assert (last_audit(core).action, last_audit(core).outcome) == ("scale", "refused")


def test_a_gpu_over_a_limit_that_has_some_says_how_many(core: Core) -> None:
    prod = core.settings.environment("prod")
    assert prod is not None
    prod.limits = Limits(cpu=2, memory_mb=2048, replicas=2, gpus=1)
    deployed(core, 1, "prod")
    assert refused(scale(core, gpus=2)) == "2 gpu is over the limit of prod: at most 1"


def test_within_the_limits_it_scales(core: Core) -> None:
    deployed(core, 1, "prod")
    done = scale(core, cpu=2, memory_mb=2048, replicas=2)
    assert isinstance(done, Outcome) and done.ok, done
    endpoint = core.repos.endpoints.get("prod", "iris")
    assert endpoint is not None and (endpoint.cpu, endpoint.memory_mb, endpoint.replicas) == (
        2,
        2048,
        2,
    )
    entry = last_audit(core)
    assert (entry.action, entry.outcome, entry.operation_id) == (
        "scale",
        "succeeded",
        done.operation,
    )


def test_tightened_limits_refuse_a_redeploy_but_never_a_stop(core: Core) -> None:
    deployed(core, 1, "prod")
    assert scale(core, cpu=2).ok  # type: ignore[attr-defined]
    prod = core.settings.environment("prod")
    assert prod is not None
    prod.limits = Limits(cpu=1, memory_mb=2048, replicas=2)
    redeploy = core.deployer.deploy(
        model="iris",
        version=2,
        env="prod",
        actor=ADMIN_PROD,
        command="/deploy iris v2 to prod",
        reporter=Recorder(),
    )
    assert refused(redeploy) == "2 cpu is over the limit of prod: at most 1 cpu per endpoint"
    stopped = core.deployer.stop(
        endpoint="iris", env="prod", actor=ADMIN_PROD, command="/stop", reporter=Recorder()
    )
    assert isinstance(stopped, Outcome) and stopped.ok, stopped
    assert core.repos.endpoints.every("prod") == []


def test_a_viewer_is_told_who_can_ask_for_a_deploy(core: Core) -> None:
    text = refused(
        core.deployer.deploy(
            model="iris",
            version=2,
            env="prod",
            actor=VIEWER,
            command="/deploy iris v2 to prod",
            reporter=Recorder(),
        )
    )
    assert plain(text) == (
        "only admins of prod can deploy — you may look (`/status`, `/history`) but not ask "
        "for deploys in prod: a developer of prod can ask for it with `/promote iris v2 to "
        "prod`, or an admin deploy it"
    )


def test_an_endpoint_held_by_a_queued_operation_says_who_holds_it_and_how_to_stop_it(
    core: Core,
) -> None:
    queued = core.deployer.deploy(
        model="iris",
        version=1,
        env="dev",
        actor=ADMIN_DEV,
        command="/deploy iris v1 to dev",
        reporter=Recorder(),
        wait=False,
    )
    assert isinstance(queued, Outcome) and queued.ok and queued.data == {"queued": True}
    assert plain(queued.text) == "queued: ada is deploying iris v1 to dev"
    before = state(core)
    second = core.deployer.deploy(
        model="iris",
        version=2,
        env="dev",
        actor=ADMIN_DEV,
        command="/deploy iris v2 to dev",
        reporter=Recorder(),
    )
    text = plain(refused(second))
    assert text.startswith("iris in dev is locked by ada since ")
    assert text.endswith(
        "UTC for: ada is deploying iris v1 to dev. It is released when that operation ends; "
        "an admin can stop the operation with `/cancel iris in dev`."
    )
    assert state(core) == before

    cancelled = core.deployer.cancel(endpoint="iris", env="dev", actor=ADMIN_DEV, command="/c")
    assert plain(cancelled.text).startswith(
        f"asked ada's deploy of iris in dev ({queued.operation}, queued) to stop at its next step"
    )


def test_nothing_to_cancel_is_said(core: Core) -> None:
    text = refused(core.deployer.cancel(endpoint="iris", env="dev", actor=ADMIN_DEV, command="/c"))
    assert text == "nothing is under way on iris in dev: nothing to cancel"


def test_a_frozen_endpoint_says_who_froze_it_and_how_to_lift_it(core: Core) -> None:
    frozen = core.deployer.freeze(
        endpoint="iris", env="prod", reason="quarter close", actor=ADMIN_PROD, command="/lock"
    )
    assert plain(frozen.text) == (
        "iris in prod is frozen: quarter close. Nothing deploys or scales it until an admin "
        "types `/unlock iris in prod`."
    )
    text = plain(
        refused(
            core.deployer.deploy(
                model="iris",
                version=1,
                env="prod",
                actor=ADMIN_PROD,
                command="/deploy iris v1 to prod",
                reporter=Recorder(),
            )
        )
    )
    assert text.startswith("iris in prod is frozen by pat since ")
    assert text.endswith(": quarter close. An admin can lift it with `/unlock iris in prod`.")
    assert core.repos.operations.recent() == []
    assert core.deployer.unlock(endpoint="iris", env="prod", actor=ADMIN_PROD, command="/u").ok


# -- the bot by itself --------------------------------------------------------------------
def test_the_bot_rolls_back_by_itself_and_is_audited_as_automatic(
    core: Core, targets: dict[str, RecordingTarget]
) -> None:
    deployed(core, 1)
    deployed(core, 2)
    thread = Recorder()
    back = core.deployer.rollback(
        endpoint="iris", env="dev", actor=BOT, command="(automatic)", reporter=thread, serving=2
    )
    assert isinstance(back, Outcome) and back.ok, back
    endpoint = core.repos.endpoints.get("dev", "iris")
    assert endpoint is not None and endpoint.version == 1
    assert plain(thread.events[0].message) == (
        "chatops is rolling iris in dev back from v2 to v1 by itself: v2 its watch found 40% "
        "of 50 requests failing"
    )
    entry = last_audit(core)
    assert (entry.action, entry.actor_id, entry.outcome) == (
        "auto-rollback",
        "chatops",
        "succeeded",
    )


@pytest.mark.parametrize("asked", ["deploy", "scale", "stop"])
def test_the_bot_does_nothing_else_by_itself(core: Core, asked: str) -> None:
    deployed(core, 1)
    before = state(core)
    common = {"env": "dev", "actor": BOT, "command": "(automatic)", "reporter": Recorder()}
    if asked == "deploy":
        result = core.deployer.deploy(model="iris", version=2, **common)  # type: ignore[arg-type]
    elif asked == "scale":
        result = core.deployer.scale(endpoint="iris", replicas=2, **common)  # type: ignore[arg-type]
    else:
        result = core.deployer.stop(endpoint="iris", **common)  # type: ignore[arg-type]
    assert refused(result) == f"the bot does not {asked} by itself, only an admin does"
    assert state(core) == before
    assert (last_audit(core).action, last_audit(core).outcome) == (f"auto-{asked}", "refused")


def test_a_rollback_offered_for_a_version_that_no_longer_serves_does_nothing(
    core: Core,
) -> None:
    deployed(core, 1)
    deployed(core, 2)
    deployed(core, 3)  # the button was offered while v2 served
    before = state(core)
    text = refused(
        core.deployer.rollback(
            endpoint="iris",
            env="dev",
            actor=ADMIN_DEV,
            command="/rollback iris in dev",
            reporter=Recorder(),
            serving=2,
        )
    )
    assert text == "iris in dev no longer serves v2 (it serves v3 now): nothing was rolled back"
    text = refused(
        core.deployer.rollback(
            endpoint="iris",
            env="dev",
            actor=ADMIN_DEV,
            command="/rollback iris in dev",
            reporter=Recorder(),
            to=1,
        )
    )
    assert text == "iris in dev served v2 before, not v1: nothing was rolled back"
    assert state(core) == before


@pytest.mark.parametrize(
    ("version", "alias", "said"),
    [
        (9, None, "iris has no version 9 (versions: v1, v2, v3)"),
        (None, "nope", "iris has no alias @nope (aliases: @champion)"),
    ],
)
def test_a_version_the_registry_lacks_fails_at_the_first_step_saying_what_there_is(
    core: Core,
    targets: dict[str, RecordingTarget],
    version: int | None,
    alias: str | None,
    said: str,
) -> None:
    done = core.deployer.deploy(
        model="iris",
        version=version,
        alias=alias,
        env="dev",
        actor=ADMIN_DEV,
        command="/deploy iris",
        reporter=Recorder(),
    )
    assert isinstance(done, Outcome) and not done.ok
    assert said in plain(done.text)
    assert targets["dev"].calls == []  # nothing built, nothing started
    assert core.repos.endpoints.every("dev") == []
    assert core.repos.locks.get("dev", "iris") is None
    assert (last_audit(core).action, last_audit(core).outcome) == ("deploy", "failed")
