"""The grammar every front shares: what is accepted, and the exact answer to what is not."""

from __future__ import annotations

import pytest

from commands.base import UsageError
from commands.deploy import Deploy
from commands.history import History
from commands.registry import parse, split
from commands.scale import Scale
from commands.status import Status
from core.marks import plain


def parsed(line: str) -> object:
    found = parse(*split(line))
    return found if isinstance(found, UsageError) else found[1]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/deploy iris v3", Deploy(model="iris", version=3)),
        ("/deploy iris V3", Deploy(model="iris", version=3)),
        ("/deploy iris 3 to prod", Deploy(model="iris", version=3, env="prod")),
        ("/deploy iris @champion", Deploy(model="iris", alias="champion")),
        (
            "/deploy fraud-model.v2 v12 in dev",
            Deploy(model="fraud-model.v2", version=12, env="dev"),
        ),
        ("  /DEPLOY   iris   v1  ", Deploy(model="iris", version=1)),
        # Slack clients turn `--` into a long dash: every flag is taken either way
        (
            '/deploy iris v1 to prod \u2014override "hotfix \u2014 incident 42" \u2014dry-run',
            Deploy(
                model="iris",
                version=1,
                env="prod",
                override="hotfix \u2014 incident 42",
                dry_run=True,
            ),
        ),
        (
            "/deploy iris v1 to prod \u2013override hotfix \u2014 now \u2014dry-run",
            Deploy(model="iris", version=1, env="prod", override="hotfix \u2014 now", dry_run=True),
        ),
        (
            '/deploy iris v1 --Override "hotfix" --DRY-RUN',
            Deploy(model="iris", version=1, override="hotfix", dry_run=True),
        ),
    ],
)
def test_deploy_accepts(line: str, expected: Deploy) -> None:
    assert parsed(line) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/scale iris 4cpu 8gb", Scale(endpoint="iris", cpu=4, memory_mb=8192)),
        ("/scale iris 4 cpu 8GB", Scale(endpoint="iris", cpu=4, memory_mb=8192)),
        (
            "/scale iris 4 cpus 8 gb 2 replicas",
            Scale(endpoint="iris", cpu=4, memory_mb=8192, replicas=2),
        ),
        ("/scale iris 0.5vcpu 512mb", Scale(endpoint="iris", cpu=0.5, memory_mb=512)),
        ("/scale iris 512 MB", Scale(endpoint="iris", memory_mb=512)),
        ("/scale iris 1.5gb", Scale(endpoint="iris", memory_mb=1536)),
        ("/scale iris 2 cores 8g", Scale(endpoint="iris", cpu=2, memory_mb=8192)),
        ("/scale iris x3", Scale(endpoint="iris", replicas=3)),
        ("/scale iris 1 replica in prod", Scale(endpoint="iris", replicas=1, env="prod")),
        ("/scale iris 8cpu 32gb 1gpu", Scale(endpoint="iris", cpu=8, memory_mb=32768, gpus=1)),
        (
            "/scale iris 2CPU 1GiB 2 Replicas",
            Scale(endpoint="iris", cpu=2, memory_mb=1024, replicas=2),
        ),
    ],
)
def test_scale_accepts_the_common_spellings(line: str, expected: Scale) -> None:
    assert parsed(line) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/status", Status()),
        ("/status iris", Status(endpoint="iris")),
        ("/status in prod", Status(env="prod")),
        ("/status iris in prod", Status(endpoint="iris", env="prod")),
        ("/status public", Status(public=True)),
        ("/status iris in prod public", Status(endpoint="iris", env="prod", public=True)),
    ],
)
def test_status_accepts(line: str, expected: Status) -> None:
    assert parsed(line) == expected


MALFORMED = [
    ("/deploy", "Say which model and version to deploy."),
    ("/deploy iris", "Say which version of `iris` to deploy: v<N>, <N> or @<alias>."),
    ("/deploy iris latest", "`latest` is not a version: use v<N> (e.g. v3), <N> or @<alias>."),
    ("/deploy iris v0", "`v0` is not a version: versions start at v1."),
    ("/deploy iris -2", "`-2` is not a version: versions start at v1."),
    ("/deploy iris v000", "`v000` is not a version: versions start at v1."),
    (
        "/deploy iris v" + "9" * 40,
        "`v" + "9" * 38 + "…` is not a version: MLflow numbers them up to v2147483647.",
    ),
    (
        "/deploy iris 2147483648",
        "`2147483648` is not a version: MLflow numbers them up to v2147483647.",
    ),
    ("/deploy iris to prod", "Say which version of `iris` to deploy before `to`."),
    ("/deploy iris v3 to", "Say which environment after `to`, e.g. `to prod`."),
    ("/deploy iris v3 prod", "Unexpected `prod`: after the version comes `to <env>`."),
    ("/deploy iris v3 to prod now", "Unexpected `now` after the environment."),
    ("/deploy ir!s v3", "`ir!s` is not a valid model name"),
    ("/deploy iris @", "`@` is not a version"),
    ("/deploy iris v3 to pr/od", "`pr/od` is not a valid environment name"),
    ("/scale", "Say which endpoint to scale and to what."),
    ("/scale iris", "Say what to give `iris`: cpu, memory and/or replicas."),
    ("/scale iris 4", "`4` needs a unit: 4cpu, 4gb, 4mb or 4 replicas."),
    ("/scale iris 4tb", "`4tb` has an unknown unit `tb`: use cpu, gb, mb, replicas or gpu."),
    ("/scale iris 0cpu", "`0cpu`: cpu must be more than 0."),
    ("/scale iris -1gb", "`-1gb`: memory must be more than 0."),
    ("/scale iris 0 replicas", "`0 replicas`: replicas must be more than 0."),
    ("/scale iris 1.5 replicas", "`1.5 replicas`: replicas must be a whole number."),
    ("/scale iris 2cpu 4cpu", "cpu is given twice (`4cpu`): give each once."),
    ("/scale iris 1gb 512mb", "memory is given twice (`512mb`): give each once."),
    (
        "/scale iris fast",
        "Unexpected `fast`: expected an amount such as 2cpu, 4gb, 512mb or 2 replicas.",
    ),
    ("/scale iris 2cpu in", "Say which environment after `in`, e.g. `in prod`."),
    ("/scale iris 2cpu in prod please", "Unexpected `please` after the environment."),
    ("/scale iris 0.5gpu", "`0.5gpu`: the gpu count must be a whole number, 0 or more."),
    ("/status iris prod", "Unexpected `prod`: after the endpoint comes `in <env>`."),
    ("/status in", "Say which environment after `in`, e.g. `in prod`."),
    ("/help deploy now", "There is no command `deploy now` to explain"),
    (
        "/help fly",
        "There is no command `fly` to explain (commands: deploy, scale, rollback, stop, "
        "plan, status, register, promote, approve, reject, lock, unlock, cancel, canary, alias, "
        "history, token, help).",
    ),
    (
        "/launch iris",
        "There is no command `launch` (commands: deploy, scale, rollback, stop, plan, "
        "status, register, promote, approve, reject, lock, unlock, cancel, canary, alias, "
        "history, token, help).",
    ),
    ("/deploy " + "x" * 600, "That is 600 characters: commands are at most 500."),
    ("/deploy `rm -rf /` v1", "`'rm` is not a valid model name"),
    ("/register", "Say which experiment to register a run of."),
    ("/register churn run xyz", "`xyz` is not a run id (hexadecimal, as MLflow shows)."),
    ("/register churn as", "Say what comes after `as`."),
    ("/register churn now", "Unexpected `now`: after the experiment come `run <run_id>` and"),
    ("/promote iris", "Say which version of `iris` to promote, e.g. `v2`."),
    ("/promote iris @champion to prod", "`@champion` is not a version: use v<N> (e.g. v2)"),
    ("/promote iris v2", "Say where to promote `iris` v2: `to <env>`."),
    ("/promote iris v2 to prod since", "Unexpected `since`: a reason comes as `because <reason>`."),
    ("/approve", "Say which request, e.g. the `apr-…` id in the request message."),
    ("/approve 42", "`42` is not a request id: they look like `apr-1a2b3c4d5e`."),
    ("/approve apr-1a2b3c4d5e now", "Unexpected `now`: approving takes only the request id."),
    ("/lock iris in prod", "Say why `iris` is frozen: the reason is shown to whoever tries"),
    ("/lock", "Say which endpoint."),
    ("/unlock iris in", "Say which environment after `in`, e.g. `in prod`."),
    ("/unlock iris now", "Unexpected `now`: unlocking takes only the endpoint and `in <env>`."),
    ("/cancel iris now", "Unexpected `now`: cancelling takes only the endpoint and `in <env>`."),
    ("/rollback iris to v1", "Unexpected `to v1`: a rollback goes to the previous version"),
    ("/stop iris now", "Unexpected `now`: stopping takes only the endpoint and `in <env>`."),
    ("/history iris 500", "`500` is not a number of entries from 1 to 50."),
    ("/history iris 5 more", "Unexpected `more` after the number of entries."),
    ("/history iris --at teatime", "`teatime` is not a moment: use an ISO date-time"),
    ("/history iris --at", "Say which moment after `--at`: use an ISO date-time"),
    ('/history iris --at "2h ago', "The moment after `--at` has no closing quote."),
    ("/history --at 2h ago", "Say which endpoint: `history <endpoint> --at <moment>`."),
    ("/history iris 5 --at now", "Unexpected `5`: `--at` takes no N."),
]


@pytest.mark.parametrize(
    ("line", "endpoint", "moment"),
    [
        ('/history iris --at "2026-12-01 14:00"', "iris", "2026-12-01 14:00"),
        ("/history iris --at 2h ago", "iris", "2h ago"),
        # a chat client's long dash and curly quotes, and the flag before the endpoint
        ("/history \u2014at \u201cyesterday 14:00\u201d iris", "iris", "yesterday 14:00"),
        ("/history iris --AT 2026-12-01T14:00Z", "iris", "2026-12-01T14:00Z"),
    ],
)
def test_history_at_takes_a_moment_however_it_was_typed(
    line: str, endpoint: str, moment: str
) -> None:
    found = parsed(line)
    assert isinstance(found, History), found
    assert found.endpoint == endpoint and found.at is not None and found.at.text == moment


@pytest.mark.parametrize(("line", "expected"), MALFORMED)
def test_malformed_text_gets_a_specific_answer_with_usage_and_example(
    line: str, expected: str
) -> None:
    error = parsed(line)
    assert isinstance(error, UsageError)
    assert expected in error.problem
    # usage and example are commands, which each front names as it registers them
    assert "Usage: `/" in plain(error.text) and "Example: `/" in plain(error.text)


def test_every_malformed_text_has_its_own_answer() -> None:
    answers = [parsed(line).text for line, _ in MALFORMED]  # type: ignore[union-attr]
    assert len(set(answers)) == len(answers) >= 20
