"""Steady over time: the memory and the state of the Slack bot over a soak of signed commands.

    python bench/soak.py [--commands 20000] [--concurrency 20] [--deploy-every 500]
                         [--every 1000] [--tracemalloc DIR] [--log FILE]
                         [--tree PATH] [--json FILE]

Starts `chatops run --mode http` (a front process and its worker process, as deployed) against
the Slack Web API emulator, with a registry holding the demo model and one local environment,
and sends `--commands` signed slash commands on `--concurrency` connections (bench/slack_ack.py's
loader): a `/deploy iris` every `--deploy-every` (v1 and v2 in turn, so each one switches),
the others quick answers in turn (`/mlops status`, `/mlops status iris`, `/mlops history iris`,
`/mlops help`). Every `--every` commands it waits until the bot has answered all of them, then
prints the resident memory (RSS) of the front, of its worker, of the model-server runtime (the
zygote) and of the model servers, and the state database's size and row counts.
`--tracemalloc DIR` has the worker trace its allocations (CHATOPS_TRACEMALLOC) and write a
snapshot after the first `--every` commands and after the last, with what grew in between.
`--commands 3000` takes a few minutes on 2 cores. `--tree` starts the bot of another checkout
(an older commit, for a before/after figure); `--json` also writes the rows to a file.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import psutil
from slack_sdk.signature import SignatureVerifier

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.slack_ack import load, slash  # noqa: E402
from bench.takeover import worker_pid  # noqa: E402
from core.registry.demo import create_demo_model  # noqa: E402
from tests.conftest import free_port_range  # noqa: E402
from tests.scenarios.slack.conftest import (  # noqa: E402
    ALICE,
    BOT_TOKEN,
    OPS,
    SIGNING_SECRET,
    bot_environment,
)
from tests.scenarios.slack.crash_support import Bot  # noqa: E402
from tests.slack_api.emulator import SlackEmulator  # noqa: E402

QUICK = [
    ("/mlops", "status"),
    ("/mlops", "status iris"),
    ("/mlops", "history iris"),
    ("/mlops", "help"),
]
TABLES = ("jobs", "outbox", "deliveries", "operations", "events", "audit")
SETTLE_S = 600.0  # the longest wait for the bot to answer what was sent


def command(i: int, deploy_every: int) -> tuple[str, str]:
    if i % deploy_every == 0:
        return "/deploy", f"iris v{1 + (i // deploy_every) % 2}"
    return QUICK[i % len(QUICK)]


def processes(bot: Bot, state: Path) -> dict[str, list[psutil.Process]]:
    """The bot's processes by role: its front, its worker, the worker's model-server runtime,
    and the model servers (endpoint hosts and their workers, in sessions of their own; known
    by the state directory they inherited)."""
    assert bot.proc is not None
    front = psutil.Process(bot.proc.pid)
    pid = worker_pid(bot)
    worker = psutil.Process(pid) if pid is not None else None
    runtime = worker.children(recursive=True) if worker is not None else []
    known = {front.pid, *(p.pid for p in runtime), *([worker.pid] if worker else [])}
    servers = []
    for p in psutil.process_iter():
        if p.pid in known:
            continue
        try:
            if p.environ().get("CHATOPS_STATE_DIR") == str(state):
                servers.append(p)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return {
        "front": [front],
        "worker": [worker] if worker is not None else [],
        "zygote": runtime,
        "servers": servers,
    }


def rss_mb(group: list[psutil.Process]) -> float:
    total = 0
    for p in group:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def intake_of(db: Path) -> Path:
    """The file the jobs live in on SQLite, next to the state database (in it, for a bot of
    a version before the intake file: `--tree`)."""
    intake = db.with_name(f"{db.stem}-intake{db.suffix}")
    return intake if intake.exists() else db


def state_size(db: Path) -> tuple[float, dict[str, int]]:
    """The state database's size in MB with its intake file (WALs included) and the rows of
    `TABLES`."""
    files = {*db.parent.glob(db.name + "*"), *db.parent.glob(intake_of(db).name + "*")}
    size = sum(p.stat().st_size for p in files if p.is_file())
    rows = {}
    for t in TABLES:
        where = intake_of(db) if t == "jobs" else db
        with closing(sqlite3.connect(f"file:{where}?mode=ro", uri=True, timeout=30)) as conn:
            rows[t] = int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
    return size / 2**20, rows


def unanswered(db: Path) -> int:
    """Jobs queued or running, and operations not ended: what the bot still owes."""
    unfinished = "WHERE state IN ('queued', 'running')"
    count = 0
    for where, table in ((intake_of(db), "jobs"), (db, "operations")):
        with closing(sqlite3.connect(f"file:{where}?mode=ro", uri=True, timeout=30)) as conn:
            count += int(conn.execute(f"SELECT count(*) FROM {table} {unfinished}").fetchone()[0])
    return count


def wait_for(what: str, timeout: float, check: Callable[[], object]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not seen within {timeout:.0f} s: {what}")
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--deploy-every", type=int, default=500)
    parser.add_argument("--every", type=int, default=1_000, help="print a row every N commands")
    parser.add_argument("--tracemalloc", type=Path, help="the worker's snapshots go here")
    parser.add_argument("--log", type=Path, help="keep the bot's log here")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="more for the bot"
    )
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to start")
    parser.add_argument("--json", type=Path, help="write the rows here too")
    args = parser.parse_args()
    tree = args.tree.resolve()
    # the bot gets only what this benchmark sets (no database, lease or fail point of the shell)
    for name in [n for n in os.environ if n.startswith(("CHATOPS_", "SLACK_"))]:
        del os.environ[name]

    with tempfile.TemporaryDirectory() as tmp, SlackEmulator(bot_token=BOT_TOKEN) as api:
        api.add_channel(OPS, name="ops", member=True)
        api.add_user(ALICE, name="alice")
        root = Path(tmp)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        create_demo_model(tracking_uri=uri, artifact_root=root / "artifacts")
        low, _ = free_port_range()
        state = root / "state"
        extra = (
            {"CHATOPS_TRACEMALLOC": str(args.tracemalloc.absolute())} if args.tracemalloc else {}
        )
        env = bot_environment(
            api,
            port=low,
            state_dir=state,
            tracking_uri=uri,
            environments=[{"name": "dev", "port_range": [low + 1, low + 9], "admins": [ALICE]}],
            CHATOPS_SLACK_UPDATE_INTERVAL="1.0",
            **extra,
            **dict(pair.split("=", 1) for pair in args.env),
        )
        env["PYTHONPATH"] = str(tree)
        log = args.log or root / "bot.log"
        bot = Bot(env=env, state_dir=state, log=log, port=low, tree=tree)
        db = state / "chatops.db"
        verifier = SignatureVerifier(SIGNING_SECRET)
        triggers = itertools.count(1)
        began = time.monotonic()
        try:
            bot.start()
            wait_for("the bot ready", 180, lambda: _ready(low))
            header = (
                f"{'commands':>8} {'min':>5} {'front':>7} {'worker':>7} {'zygote':>7} "
                f"{'servers':>7} {'db MB':>6} " + " ".join(f"{t:>10}" for t in TABLES)
            )
            print(header, flush=True)
            kept: list[dict[str, float]] = []
            sent = 0
            while sent < args.commands:
                batch = min(args.every, args.commands - sent)
                requests = []
                for i in range(sent, sent + batch):
                    name, text = command(i, args.deploy_every)
                    requests.append(
                        slash(
                            name,
                            text,
                            trigger=f"{next(triggers)}.soak",
                            response_url=api.response_url(name),
                            verifier=verifier,
                            user=ALICE,
                            channel=OPS,
                        )
                    )
                results = asyncio.run(load(bot.events_url, requests, args.concurrency))
                refused = [r for r in results if r[2] != 200]
                if refused:
                    raise RuntimeError(f"{len(refused)} requests not acked: {refused[:3]}")
                sent += batch
                wait_for("every command answered", SETTLE_S, lambda: unanswered(db) == 0)
                procs = processes(bot, state)
                if args.tracemalloc and (
                    sent == min(args.every, args.commands) or sent == args.commands
                ):
                    snapshot(procs, args.tracemalloc, sent)
                size, rows = state_size(db)
                kept.append(
                    {"commands": sent, "state_mb": size, **{k: rss_mb(procs[k]) for k in procs}}
                )
                print(
                    f"{sent:>8} {(time.monotonic() - began) / 60:>5.1f} "
                    + " ".join(f"{rss_mb(procs[k]):>7.1f}" for k in procs)
                    + f" {size:>6.1f} "
                    + " ".join(f"{rows[t]:>10}" for t in TABLES),
                    flush=True,
                )
        finally:
            bot.stop()
    if args.json:
        args.json.write_text(json.dumps({"rows": kept}, indent=1))
    return 0


def _ready(port: int) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def snapshot(procs: dict[str, list[psutil.Process]], directory: Path, sent: int) -> None:
    """Have the worker write a snapshot (SIGUSR1) and wait until it is written (after the
    first, with what grew since the first)."""
    (worker,) = procs["worker"]
    n = len(list(directory.glob(f"worker-{worker.pid}-*.snapshot"))) + 1
    os.kill(worker.pid, signal.SIGUSR1)
    wanted = [directory / f"worker-{worker.pid}-{n}.snapshot"]
    if n > 1:
        wanted.append(directory / f"worker-{worker.pid}-{n}.top.txt")
    wait_for(
        f"the worker's snapshot after {sent} commands",
        600,
        lambda: all(path.exists() for path in wanted),
    )


if __name__ == "__main__":
    sys.exit(main())
