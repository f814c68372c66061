"""What one `/metrics` scrape costs as the state database grows: the page rendered from a SQLite
state database holding N ended operations (of 4 kinds, 3 environments, 2 outcomes) and 50
Slack jobs waiting.

    .venv/bin/python bench/metrics_scrape.py [--operations 1000 10000 100000] [--repeat 20]

Operations are read at each scrape with one aggregate query (no row reaches Python), so the
cost grows with the table, not with what Prometheus is shown. Median and worst of `--repeat`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from core.metrics.page import Exposition
from core.store.db import Database
from core.store.models import JobRow, Operation

KINDS, ENVS, STATES = (
    ("deploy", "scale", "rollback", "stop"),
    ("dev", "staging", "prod"),
    (
        "succeeded",
        "failed",
    ),
)


def fill(db: Database, n: int) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rows = [
        {
            "id": f"op-{i:010d}",
            "kind": KINDS[i % 4],
            "env": ENVS[i % 3],
            "endpoint": f"m{i % 200}",
            "requested_by": "U1",
            "command": "/deploy m v1",
            "state": STATES[i % 7 == 0],
            "remote": {},
            "plan": {},
            "reply_to": {},
            "created_at": start + timedelta(minutes=i),
            "finished_at": start + timedelta(minutes=i, seconds=5 + i % 900),
        }
        for i in range(n)
    ]
    jobs = [
        {
            "id": f"job-{i}",
            "key": f"k{i}",
            "front": "slack",
            "kind": "command",
            "payload": {},
            "state": "queued",
            "created_at": start,
        }
        for i in range(50)
    ]
    with db.session() as s:
        for chunk in range(0, n, 10_000):
            s.execute(insert(Operation), rows[chunk : chunk + 10_000])
    with db.intake().session() as s:  # on SQLite the jobs live in a file of their own
        s.execute(insert(JobRow), jobs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--operations", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    for n in args.operations:
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite:///{Path(tmp) / 'chatops.db'}")
            fill(db, n)
            page = Exposition(db)
            page.render()  # warm: connections, statement cache
            took = []
            for _ in range(args.repeat):
                began = time.perf_counter()
                body = page.render()
                took.append(time.perf_counter() - began)
            db.close()
        print(
            f"{n:>7} operations: median {statistics.median(took) * 1000:6.1f} ms, "
            f"worst {max(took) * 1000:6.1f} ms, page {len(body)} bytes"
        )


if __name__ == "__main__":
    main()
