"""The machinery of the kill -9 scenarios: a real `chatops run` in HTTP mode (front and
worker processes) that a test kills with SIGKILL and starts again, the slow model that gives it
time to, and the checks every scenario makes afterwards."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import ProgrammingError

from emulators.cml import RunningEmulator, start_emulator
from tests.conftest import free_port_range
from tests.scenarios.slack.conftest import (
    ALICE,
    BOT_TOKEN,
    OPS,
    SIGNING_SECRET,
    bot_environment,
    post_command,
)
from tests.slack_api.emulator import SlackEmulator
from tests.slack_api.workspace import Message

ROOT = Path(__file__).parents[3]
CML_KEY_VAR = "CHATOPS_TEST_CML_API_KEY"
CML_PROJECT = "crash-project"
IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
SETOSA = {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}}
LOAD_S = 4.0  # how long the slow iris takes to load in its model server

Op = dict[str, Any]

_SLOW_MODEL = '''
import os
import time

import mlflow.pyfunc


class SlowIris(mlflow.pyfunc.PythonModel):
    """An iris classifier whose servers take seconds to load it, as a large model's do
    ($SLOW_IRIS_LOAD_S of the serving process: logging it stays quick)."""

    def __init__(self, estimator):
        self.estimator = estimator

    def load_context(self, context):
        time.sleep(float(os.environ.get("SLOW_IRIS_LOAD_S", "0")))

    def predict(self, context, model_input, params=None):
        return self.estimator.predict(model_input)
'''


@pytest.fixture(scope="module")
def slow_iris_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A registry whose iris v1 takes LOAD_S seconds to load, so a deploy is caught mid-start."""
    return log_slow_iris(tmp_path_factory.mktemp("slow-registry"))


def log_slow_iris(root: Path) -> str:
    """The URI of a new registry in `root` whose iris v1 is the slow-loading model
    ($SLOW_IRIS_LOAD_S seconds in its serving process)."""
    import mlflow
    import mlflow.pyfunc
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    uri = f"sqlite:///{root / 'mlflow.db'}"
    module = root / "slow_iris_model.py"
    module.write_text(textwrap.dedent(_SLOW_MODEL))
    x, y = load_iris(return_X_y=True, as_frame=True)
    x = x.astype("float64")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    sys.path.insert(0, str(root))
    try:
        import slow_iris_model

        experiment = mlflow.create_experiment(
            "slow-iris", artifact_location=(root / "artifacts").as_uri()
        )
        with mlflow.start_run(experiment_id=experiment), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.pyfunc.log_model(
                name="model",
                python_model=slow_iris_model.SlowIris(LogisticRegression(max_iter=500).fit(x, y)),
                code_paths=[str(module)],
                input_example=x.head(3),
                registered_model_name="iris",
                pip_requirements=["mlflow", "scikit-learn"],
            )
    finally:
        sys.path.remove(str(root))
        mlflow.set_tracking_uri(previous)
    return uri


# -- the bot as deployed, killed and started again ---------------------------------------------
@dataclass
class Bot:
    """`chatops run` as deployed, in its own process group, with its state database."""

    env: dict[str, str]
    state_dir: Path
    log: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    tree: Path = ROOT  # the checkout whose bot runs (a benchmark's "before" runs another)

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def start(self) -> None:
        with open(self.log, "a") as out:  # both lives of the bot write one log
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "run"],
                env=self.env,
                cwd=self.tree,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, for kill -9 of all of it
            )
        # /healthz answers at once; /readyz once the worker is ready (and has its signals)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the bot did not answer /readyz\n" + self.text
            time.sleep(0.1)

    def kill9(self) -> None:
        """SIGKILL to the front, its worker and the worker's model-server runtime at once (the
        bot's process group), so no part of the bot gets to finish anything. Endpoint hosts
        run in sessions of their own and outlive it, as they are meant to."""
        assert self.proc is not None
        every = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(True)]
        # an endpoint host being started is a descendant for an instant, in a session of its own
        group = [p for p in every if _session_of(p) == os.getsid(self.proc.pid)]
        assert any("bot.slack.worker" in " ".join(p.cmdline()) for p in group), group
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in group):
            assert time.monotonic() < deadline, f"still running after SIGKILL: {group}"
            time.sleep(0.02)
        self.proc = None

    def stop(self) -> None:
        """SIGINT as an operator would; kill -9 whatever is left of it after 30 s."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            self.proc = None
        subprocess.run(
            [sys.executable, "-m", "bot.cli", "down"],
            env=self.env,
            cwd=self.tree,
            capture_output=True,
            check=False,
            timeout=120,
        )

    @property
    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    # -- what the state database says --------------------------------------------------------
    def rows(self, table: str) -> list[dict[str, Any]]:
        url = self.env.get("CHATOPS_DATABASE_URL")
        if url:  # PostgreSQL, shared with other bots
            engine = create_engine(url, poolclass=pool.NullPool)
            try:
                with engine.connect() as db:
                    found = db.execute(text(f"SELECT * FROM {table}"))
                    return [dict(r._mapping) for r in found]
            except ProgrammingError:  # not created or migrated yet
                return []
            finally:
                engine.dispose()
        # on SQLite, the jobs fronts record before they ack live in a file of their own
        name = "chatops-intake.db" if table == "jobs" else "chatops.db"
        try:
            with closing(sqlite3.connect(self.state_dir / name, timeout=10)) as db:
                db.row_factory = sqlite3.Row
                return [dict(r) for r in db.execute(f"SELECT * FROM {table}")]
        except sqlite3.OperationalError as exc:  # not created or migrated yet
            if "no such table" in str(exc) or "unable to open" in str(exc):
                return []
            raise

    def operations(self) -> list[Op]:
        ops = self.rows("operations")
        for op in ops:
            for column in ("remote", "reply_to"):  # SQLite keeps JSON as text
                if not isinstance(op[column], dict):
                    op[column] = json.loads(op[column] or "{}")
        return ops

    def wait_for_op(self, predicate: Callable[[Op], bool], timeout: float, what: str) -> Op:
        """The (only) operation, once `predicate` holds for it."""
        found: list[Op] = []

        def seen() -> bool:
            found[:] = self.operations()
            return bool(found) and predicate(found[0])

        self.wait_until(seen, timeout, what)
        return found[0]

    def wait_until(self, predicate: Callable[[], object], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not seen within {timeout} s: {what}; {self.operations()}\n{self.text}"
                )
            time.sleep(0.02)


def serving_processes(port: int) -> list[psutil.Process]:
    """What runs behind a local endpoint's port: its host and the model servers the host
    forked, all of one process group (the host's own session)."""
    (pid,) = {
        c.pid
        for c in psutil.net_connections("tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
    }
    assert pid is not None
    group = os.getpgid(pid)
    return [p for p in psutil.process_iter() if _group_of(p) == group and _alive(p)]


def _session_of(process: psutil.Process) -> int | None:
    try:
        return os.getsid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None


def _group_of(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except ProcessLookupError:
        return None


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def make_bot(slack_api: SlackEmulator, tmp_path: Path) -> Iterator[Callable[..., Bot]]:
    """A bot for one environment, configured only through the environment, as deployed."""
    made: list[Bot] = []

    def make(
        environment: dict[str, Any],
        *,
        tracking_uri: str,
        more: tuple[dict[str, Any], ...] = (),
        name: str = "",
        **extra: str,
    ) -> Bot:
        """`name` tells apart several bots of one test (their state directories, logs)."""
        low, _ = free_port_range()
        environment.setdefault("port_range", [low + 1, low + 9])
        for other in more:  # a second local environment
            other.setdefault("port_range", [low + 10, low + 19])
        env = bot_environment(
            slack_api,
            port=low,
            state_dir=tmp_path / f"state{name}",
            tracking_uri=tracking_uri,
            environments=[{**e, "admins": [ALICE]} for e in (environment, *more)],
            # a dead bot's operations are taken over 2 s after its last heartbeat
            CHATOPS_LEASE_S="2",
            CHATOPS_RUNNER_POLL_S="0.2",
            **extra,
        )
        bot = Bot(
            env=env, state_dir=tmp_path / f"state{name}", log=tmp_path / f"bot{name}.log", port=low
        )
        made.append(bot)
        return bot

    yield make
    for bot in made:
        bot.stop()


@pytest.fixture
def cml(registry_uri: str) -> Iterator[RunningEmulator]:
    """An emulated CML workspace over the session registry; each test sets its timings."""
    running = start_emulator(
        tracking_uri=registry_uri,
        api_key=secrets.token_urlsafe(24),
        projects=[{"name": "demo", "id": CML_PROJECT}],
    )
    yield running
    running.stop()


def cml_environment(cml: RunningEmulator) -> dict[str, Any]:
    return {
        "name": "dev",
        "target": "cml",
        "url": cml.url,
        "api_key_env": CML_KEY_VAR,
        "project_id": CML_PROJECT,
    }


# -- what users see ----------------------------------------------------------------------------
def crash_and_resume(
    bot: Bot,
    slack_api: SlackEmulator,
    *,
    step: str,
    when: Callable[[Op], bool],
    what: str,
    timeout: float = 90,
) -> tuple[Op, Op]:
    """Deploy iris v1, kill -9 the bot once the operation is in `step` and `when` holds, then
    start the bot again; the operation as it was when killed, and as it ended."""
    bot.start()
    assert post_command(bot.events_url, slack_api, "/deploy", "iris v1").status_code == 200
    bot.wait_for_op(lambda op: op["step"] == step and when(op), timeout, what)
    bot.kill9()
    (killed,) = bot.operations()
    # the kill landed mid-step: nothing after `step` had begun
    assert (killed["state"], killed["step"], killed["attempts"]) == ("running", step, 1), killed
    assert killed["reply_to"].get("ts"), killed  # where its thread is, for whoever resumes it

    bot.start()
    ended = bot.wait_for_op(
        lambda op: op["state"] in ("succeeded", "failed"), timeout, "the operation's end"
    )
    assert ended["state"] == "succeeded", (ended, bot.text)
    assert ended["attempts"] == 2
    assert ended["id"] == killed["id"]
    assert len(bot.operations()) == 1
    assert ended["owner"] != killed["owner"]  # taken over by the restarted bot's worker
    # the endpoint is free again, and the deploy was audited once, when it ended (both come
    # a moment after the operation's row says it succeeded)
    bot.wait_until(lambda: bot.rows("locks") == [], 10, "the endpoint lock released")
    bot.wait_until(lambda: bot.rows("audit"), 10, "the deploy audited")
    audit = [(a["action"], a["outcome"], a["operation_id"]) for a in bot.rows("audit")]
    assert audit == [("deploy", "succeeded", ended["id"])]
    return killed, ended


def assert_one_thread(slack_api: SlackEmulator, op: Op) -> Message:
    """One parent message for the deploy, begun by the killed bot and finished by the new
    one, with every reply (the resume note too) in its thread."""
    slack_api.wait_for(
        lambda api: any(":white_check_mark:" in m.text for m in api.messages(OPS)), timeout=30
    )
    messages = slack_api.messages(OPS)
    parents = [m for m in messages if m.thread_ts is None]
    assert len(parents) == 1, messages
    (parent,) = parents
    assert parent.ts == op["reply_to"]["ts"]
    assert ":white_check_mark:" in parent.text and "iris v1 is live at" in parent.text
    assert "resumed after the bot process running it stopped" not in parent.text
    replies = [m for m in messages if m.thread_ts == parent.ts]
    assert len(replies) == len(messages) - 1, messages
    resumed = [m for m in replies if "resumed after the bot process running it stopped" in m.text]
    assert len(resumed) == 1 and "(attempt 2)" in resumed[0].text, replies
    # the taken-over operation's progress went to that parent, not to a new message
    assert {c.args.get("ts") for c in slack_api.calls_to("chat.update")} == {parent.ts}
    return parent


def assert_no_secret(bot: Bot, slack_api: SlackEmulator, *secrets_: str) -> None:
    """No secret in the bot's logs (both lives, model servers too) or its Slack messages;
    a failure names where, never the secret."""
    said = {str(p): p.read_text(errors="replace") for p in bot.state_dir.rglob("*.log")}
    said[str(bot.log)] = bot.text
    said.update({f"Slack message {m.ts}": m.text for m in slack_api.messages(OPS)})
    for n, secret in enumerate((BOT_TOKEN, SIGNING_SECRET, *secrets_)):
        leaked = [where for where, text in said.items() if secret in text]
        assert leaked == [], f"secret #{n} appears in {leaked}"


# -- local target --------------------------------------------------------------------------------
