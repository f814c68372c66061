"""Takeover after kill -9: how soon the work of a dead bot process runs again.

    python bench/takeover.py [--runs 5] [--lease-s S [S ...]] [--postgres-url URL]
                             [--case worker|bot|both]

The bot runs as deployed (`chatops run` in HTTP mode: a front process and its worker process)
against the Slack Web API emulator, with a registry whose iris v1 takes seconds to load (the
kill -9 scenarios' slow iris), one local environment. Each run starts from nothing.

1. Worker killed, front alive (SQLite state): `/deploy iris v1` is caught while its model
   server loads; the worker process alone gets SIGKILL and a signed `/mlops status` is sent at
   once. Measured from the kill: the deploy taken over by the next worker (its `attempts` 2,
   another owner), and the status answered at its response_url. The front sees its worker
   exit, ends that worker's leases at once and starts a new one after a 1 s backoff, so this
   is mostly the new worker's start.
2. Bot killed, a second front alive (PostgreSQL): two `chatops run` on one database (a fresh
   schema per run, as tests/db.py makes it; `.ci/scripts/postgres.sh` prints the server's URL)
   and one state directory (one machine), on two ports; the whole process group of the bot
   whose worker runs the deploy gets SIGKILL. Measured: the deploy taken over by the other bot.
   Nothing is left to end the dead bot's leases, so this is bounded by the lease
   (`CHATOPS_LEASE_S`, the bot's default unless `--lease-s`; several values run in turn).

Every taken-over deploy must then succeed (the benchmark stops with the reason otherwise);
each run then ends with kill -9 of what is left and `chatops down`. The table gives p50 and max
over `--runs` runs; `--runs 3` took 4 minutes on 2 cores with the default lease.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config import Settings  # noqa: E402
from tests.conftest import free_port_range  # noqa: E402
from tests.db import ENV_VAR as POSTGRES_VAR  # noqa: E402
from tests.db import postgres_schema  # noqa: E402
from tests.scenarios.slack.conftest import (  # noqa: E402
    ALICE,
    BOT_TOKEN,
    OPS,
    bot_environment,
    post_command,
)
from tests.scenarios.slack.crash_support import Bot, log_slow_iris  # noqa: E402
from tests.slack_api.emulator import SlackEmulator  # noqa: E402

LOAD_S = 2.0  # how long the slow iris takes to load in its model server
DEFAULT_LEASE_S = float(Settings.model_fields["lease_s"].default)


@dataclass
class Case:
    name: str
    lease_s: float
    took: dict[str, list[float]] = field(default_factory=dict)

    def add(self, what: str, seconds: float) -> None:
        self.took.setdefault(what, []).append(seconds)


# -- the registry, the bots and what their database says ----------------------------------------
def slow_registry(root: Path) -> str:
    """A registry whose iris v1 takes LOAD_S seconds to load in its model server (as the
    kill -9 scenarios make it), so that a deploy is caught mid-start. MLflow's own words
    about it are kept out of the benchmark's output."""
    logging.disable(logging.WARNING)
    try:
        with (
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            return log_slow_iris(root)
    finally:
        logging.disable(logging.NOTSET)


def operations(engine: Engine) -> list[dict[str, Any]]:
    """The operations as the state database has them (none before it is created)."""
    try:
        with engine.connect() as db:
            rows = db.execute(text("SELECT id, state, step, owner, attempts FROM operations"))
            return [dict(r._mapping) for r in rows]
    except SQLAlchemyError:  # not created or migrated yet
        return []


def wait_for(what: str, timeout: float, check: Callable[[], Any]) -> Any:
    """`check()`'s first truthy answer, polled every 20 ms."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"not seen within {timeout:.0f} s: {what}")
        time.sleep(0.02)
    return found


def the_op(engine: Engine, holds: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    ops = operations(engine)
    return ops[0] if len(ops) == 1 and holds(ops[0]) else None


def start_all(bots: list[Bot]) -> None:
    """Start the bots side by side, then wait until each can run commands (`/readyz`: its
    worker warmed its model-server runtime)."""
    errors: list[Exception] = []

    def start(bot: Bot) -> None:
        try:
            bot.start()
        except Exception as exc:  # said below, whichever it was
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(bot,)) for bot in bots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"a bot did not start: {errors[0]}")
    for bot in bots:
        wait_for(
            "the bot ready", 180, lambda b=bot: _get(f"http://127.0.0.1:{b.port}/readyz") == 200
        )


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def worker_pid(bot: Bot) -> int | None:
    assert bot.proc is not None
    for child in psutil.Process(bot.proc.pid).children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if "bot.slack.worker" in " ".join(child.cmdline()):
                return child.pid
    return None


def owner_pid(owner: str) -> int:
    """The pid in an owner name (`host:pid:nonce`)."""
    return int(owner.split(":")[-2])


@contextlib.contextmanager
def running(bots: list[Bot]) -> Iterator[None]:
    """End the bots whatever happens: kill -9 of what is left of each (nothing more is
    measured; a graceful stop takes seconds a run), then `chatops down` for the endpoint
    hosts they started, which run in sessions of their own."""
    try:
        yield
    finally:
        for bot in bots:
            if bot.proc is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(bot.proc.pid, signal.SIGKILL)
                bot.proc.wait(10)
                bot.proc = None
        bots[0].stop()  # only `chatops down` now: they share one state directory


def deploy_until_loading(bot: Bot, api: SlackEmulator, engine: Engine) -> dict[str, Any]:
    """`/deploy iris v1`, and the operation once its model server is loading the model."""
    assert post_command(bot.events_url, api, "/deploy", "iris v1").status_code == 200
    op = wait_for(
        "the deploy starting its model server",
        120,
        lambda: the_op(engine, lambda op: op["state"] == "running" and op["step"] == "start"),
    )
    assert op["attempts"] == 1, op
    return dict(op)


def taken_over(engine: Engine, killed: dict[str, Any]) -> Callable[[], object]:
    return lambda: the_op(engine, lambda op: op["attempts"] == 2 and op["owner"] != killed["owner"])


def succeeded(engine: Engine, what: str) -> None:
    op = wait_for(
        what, 120, lambda: the_op(engine, lambda op: op["state"] in ("succeeded", "failed"))
    )
    if op["state"] != "succeeded":
        raise RuntimeError(f"{what}: the taken-over deploy ended {op['state']}")


# -- 1. the worker killed, its front alive --------------------------------------------------------
def worker_killed(api: SlackEmulator, uri: str, root: Path, case: Case) -> None:
    low, _ = free_port_range()
    state = root / "state"
    env = bot_environment(
        api,
        port=low,
        state_dir=state,
        tracking_uri=uri,
        environments=[{"name": "dev", "port_range": [low + 1, low + 9], "admins": [ALICE]}],
        SLOW_IRIS_LOAD_S=str(LOAD_S),
    )
    bot = Bot(env=env, state_dir=state, log=root / "bot.log", port=low)
    engine = create_engine(f"sqlite:///{state / 'chatops.db'}")
    try:
        with running([bot]):
            start_all([bot])
            op = deploy_until_loading(bot, api, engine)
            worker = worker_pid(bot)
            assert worker is not None and owner_pid(op["owner"]) == worker, (op, worker)
            killed_at = time.monotonic()
            os.kill(worker, signal.SIGKILL)
            acked = post_command(bot.events_url, api, "/mlops", "status")
            assert acked.status_code == 200, acked.text

            def status_answered() -> float | None:
                for post in api.responses:
                    if post.name == "/mlops" and post.at >= killed_at:
                        return post.at
                return None

            wait_for("the deploy taken over", 120, taken_over(engine, op))
            case.add("deploy taken over", time.monotonic() - killed_at)
            answered = wait_for("/mlops status answered", 120, status_answered)
            case.add("/mlops status answered (sent at the kill)", answered - killed_at)
            succeeded(engine, "the deploy's end")
    finally:
        engine.dispose()


# -- 2. a whole bot killed, a second front alive --------------------------------------------------
def bot_killed(api: SlackEmulator, uri: str, root: Path, case: Case, lease_s: float | None) -> None:
    with postgres_schema() as database:
        low, _ = free_port_range()
        state = root / "state"  # one machine: both bots share its endpoints
        environments = [{"name": "dev", "port_range": [low + 1, low + 9], "admins": [ALICE]}]
        lease = {} if lease_s is None else {"CHATOPS_LEASE_S": f"{lease_s:g}"}
        bots = [
            Bot(
                env=bot_environment(
                    api,
                    port=port,
                    state_dir=state,
                    tracking_uri=uri,
                    environments=environments,
                    CHATOPS_DATABASE_URL=database,
                    SLOW_IRIS_LOAD_S=str(LOAD_S),
                    **lease,
                ),
                state_dir=state,
                log=root / f"bot-{name}.log",
                port=port,
            )
            for name, port in (("a", low), ("b", low + 10))
        ]
        engine = create_engine(database)
        try:
            with running(bots):
                start_all(bots)
                op = deploy_until_loading(bots[0], api, engine)
                # whichever worker took the deploy's job runs it: its bot is the one killed
                (holder,) = [b for b in bots if worker_pid(b) == owner_pid(op["owner"])]
                killed_at = time.monotonic()
                holder.kill9()
                wait_for("the deploy taken over", case.lease_s + 120, taken_over(engine, op))
                case.add("deploy taken over", time.monotonic() - killed_at)
                succeeded(engine, "the deploy's end")
        finally:
            engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--lease-s",
        type=float,
        nargs="+",
        default=[None],
        help="CHATOPS_LEASE_S of the two bots of case 2 (default: the bot's own)",
    )
    parser.add_argument(
        "--postgres-url",
        help=f"PostgreSQL server (default: ${POSTGRES_VAR}, else .ci/scripts/postgres.sh's)",
    )
    parser.add_argument("--case", choices=("worker", "bot", "both"), default="both")
    args = parser.parse_args()
    if args.postgres_url:
        os.environ[POSTGRES_VAR] = args.postgres_url
    # the bots get only what this benchmark sets (no fail point, lease or database of the shell)
    for name in [n for n in os.environ if n.startswith(("CHATOPS_", "SLACK_"))]:
        if name != POSTGRES_VAR:
            del os.environ[name]

    cases: list[Case] = []
    with tempfile.TemporaryDirectory() as tmp, SlackEmulator(bot_token=BOT_TOKEN) as api:
        api.add_channel(OPS, name="ops", member=True)
        api.add_user(ALICE, name="alice")
        (Path(tmp) / "registry").mkdir()
        uri = slow_registry(Path(tmp) / "registry")
        try:
            if args.case in ("worker", "both"):
                case = Case("worker killed, front alive (SQLite)", DEFAULT_LEASE_S)
                cases.append(case)
                for run in range(args.runs):
                    with tempfile.TemporaryDirectory(dir=tmp, prefix=f"worker-{run}-") as root:
                        worker_killed(api, uri, Path(root), case)
            if args.case in ("bot", "both"):
                for lease_s in args.lease_s:
                    case = Case(
                        "bot killed, second front alive (PostgreSQL)", lease_s or DEFAULT_LEASE_S
                    )
                    cases.append(case)
                    for run in range(args.runs):
                        with tempfile.TemporaryDirectory(dir=tmp, prefix=f"bot-{run}-") as root:
                            bot_killed(api, uri, Path(root), case, lease_s)
        except (pytest.skip.Exception, pytest.fail.Exception) as exc:  # tests/db.py's words
            print(f"no PostgreSQL: {exc.msg}", file=sys.stderr)
            return 1

    table = Table(title=f"Takeover after kill -9, {args.runs} runs each, seconds from the kill")
    for column in ("case", "lease", "measured until", "p50", "max"):
        table.add_column(column, justify="right" if column in ("lease", "p50", "max") else "left")
    for case in cases:
        for what, took in case.took.items():
            table.add_row(
                case.name,
                f"{case.lease_s:g} s",
                what,
                f"{statistics.median(took):.2f} s",
                f"{max(took):.2f} s",
            )
    console = Console()
    if not console.is_terminal:  # a pipe or a file: wide enough for one line a row
        console = Console(width=120)
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
