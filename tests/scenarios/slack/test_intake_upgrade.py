"""A state directory of the version before the intake file, with jobs it acknowledged and did
not run in the state database's own table: `chatops run` of this version moves them to the
intake file and runs them, a job its dead worker held included."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, insert, pool

from bot.slack.intake.jobs import Query, SlashCommand
from core.store import migrate
from core.store.models import JobRow
from tests.scenarios.slack.conftest import ALICE, OPS
from tests.scenarios.slack.crash_support import Bot
from tests.slack_api.emulator import SlackEmulator

pytest_plugins = ["tests.scenarios.slack.crash_support"]


def test_jobs_left_in_the_state_database_by_the_version_before_are_run(
    slack_api: SlackEmulator, make_bot: Callable[..., Bot], slow_iris_uri: str
) -> None:
    bot = make_bot({"name": "dev"}, tracking_uri=slow_iris_uri, SLOW_IRIS_LOAD_S="0")
    url = f"sqlite:///{bot.state_dir / 'chatops.db'}"
    bot.state_dir.mkdir(parents=True)
    migrate.upgrade(url)
    status = Query(
        command="/mlops",
        text="status",
        user_id=ALICE,
        channel_id=OPS,
        response_url=slack_api.response_url("/mlops"),
    )
    deploy = SlashCommand(
        command="/deploy",
        text="iris v1",
        user_id=ALICE,
        channel_id=OPS,
        response_url=slack_api.response_url("/deploy"),
    )
    now = datetime.now(UTC)
    old = {"front": "slack", "created_at": now - timedelta(minutes=1), "finished_at": None}
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            insert(JobRow),
            [
                {  # acknowledged, never taken
                    **old,
                    "id": "job-old0000001",
                    "key": "command:old.1",
                    "kind": "query",
                    "payload": status.model_dump(mode="json"),
                    "state": "queued",
                    "owner": "",
                    "attempts": 0,
                    "lease_expires_at": None,
                },
                {  # taken by a worker that died before it recorded anything: its lease lapsed
                    **old,
                    "id": "job-old0000002",
                    "key": "command:old.2",
                    "kind": "command",
                    "payload": deploy.model_dump(mode="json"),
                    "state": "running",
                    "owner": "old-worker",
                    "attempts": 1,
                    "lease_expires_at": now - timedelta(seconds=30),
                },
            ],
        )
    engine.dispose()

    bot.start()
    bot.wait_for_op(lambda op: op["state"] == "succeeded", 120, "the deploy asked before")
    bot.wait_until(
        lambda: (
            sorted((j["id"], j["state"], j["attempts"]) for j in bot.rows("jobs"))
            == [("job-old0000001", "done", 1), ("job-old0000002", "done", 2)]
        ),
        30,
        "both jobs run from the intake file",
    )
    # the state database's own table is empty: nothing is left there to run twice
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM jobs").scalar_one() == 0
    engine.dispose()
    slack_api.wait_for(lambda api: any(p.name == "/mlops" for p in api.responses), timeout=30)
    (op,) = bot.operations()
    assert (op["kind"], op["env"], op["job_id"]) == ("deploy", "dev", "job-old0000002")
