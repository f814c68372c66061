"""What counting traffic costs a model server: the scoring application answering one request,
with and without its traffic tally, in one process.

    python bench/counting.py [--requests 10000] [--rounds 6] [--split]

The application is the one a worker serves (scoring.py), on the demo model iris v1 and a
1-row `dataframe_split` body, called as the HTTP server calls it but with no socket, so the
figure is the cost per answer of the application alone (a request over HTTP costs more, so
the share of counting there is smaller still). Rounds alternate with and without counting;
the table reports the median microseconds per answer of each and their ratio.

With `--split`, what reading the endpoint's split costs a counting application: no splitter
(the application before splits), a splitter with no split set, and a split of 0% set (canary 0,
shadow 0: the split is read, dealt and counted, every request answered by the application),
rounds rotating among the three.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.registry.demo import create_demo_model  # noqa: E402
from core.targets.local.scoring import Scorer, ScoringApp  # noqa: E402
from core.targets.local.split import Board, Splitter  # noqa: E402
from core.targets.local.traffic import Region, Tally  # noqa: E402

COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
BODY = json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}})
SCOPE: dict[str, Any] = {
    "type": "http",
    "path": "/invocations",
    "method": "POST",
    "headers": [(b"content-type", b"application/json")],
}


async def _answer(app: ScoringApp, n: int) -> float:
    """Microseconds per answer over `n` answers."""
    message = {"type": "http.request", "body": BODY.encode(), "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(_: dict[str, Any]) -> None:
        return None

    began = time.perf_counter()
    for _ in range(n):
        await app(SCOPE, receive, send)
    return (time.perf_counter() - began) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--split", action="store_true", help="what reading a split of 0%% costs")
    args = parser.parse_args()

    import mlflow.pyfunc

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        create_demo_model(tracking_uri=uri, artifact_root=Path(tmp) / "artifacts")
        mlflow.set_tracking_uri(uri)
        model = mlflow.pyfunc.load_model("models:/iris/1")
    app = ScoringApp(Scorer(model), model="iris", version=1, deployment="bench")
    region = Region()
    tally = Tally(os.dup(region.fd))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(_answer(app, 1000))  # warm
    if args.split:
        return split_cost(app, tally, loop, args)
    plain: list[float] = []
    counted: list[float] = []
    for i in range(args.rounds):
        for on in (i % 2 == 0, i % 2 == 1):
            app.tally = tally if on else None
            (counted if on else plain).append(loop.run_until_complete(_answer(app, args.requests)))
    without, with_ = statistics.median(plain), statistics.median(counted)
    print(f"{os.cpu_count()} cores, {args.rounds} rounds of {args.requests} answers, alternating")
    print("| | µs per answer |\n|---|---|")
    print(f"| without counting | {without:.1f} |\n| with counting | {with_:.1f} |")
    print(f"| ratio | **{with_ / without:.3f}x** |")
    return 0


def split_cost(
    app: ScoringApp, tally: Tally, loop: asyncio.AbstractEventLoop, args: argparse.Namespace
) -> int:
    board = Board()
    splitter = Splitter(os.dup(board.fd), tally.cells)
    app.tally = tally
    cases = ("no splitter", "no split set", "split of 0%")
    found: dict[str, list[float]] = {case: [] for case in cases}
    for i in range(args.rounds):
        for case in cases[i % 3 :] + cases[: i % 3]:
            app.splitter = None if case == "no splitter" else splitter
            if case == "split of 0%":
                board.set(i + 1, canary=0, shadow=0, tolerance=0.0, ports=[9])
            else:
                board.clear()
            found[case].append(loop.run_until_complete(_answer(app, args.requests)))
    base = statistics.median(found["no splitter"])
    print(f"{os.cpu_count()} cores, {args.rounds} rounds of {args.requests} answers, rotating")
    print("| | µs per answer | ratio |\n|---|---|---|")
    for case in cases:
        median = statistics.median(found[case])
        print(f"| {case} | {median:.1f} | {median / base:.3f}x |")
    # the split's own work per request at 0%, alone: read, deal, count the answer, deal a copy
    board.set(args.rounds + 1, canary=0, shadow=0, tolerance=0.0, ports=[9])
    n = 200_000
    began = time.perf_counter()
    for _ in range(n):
        split = splitter.current()
        assert split is not None
        split.canary_turn()
        split.served(200, began)
        split.shadow_turn()
    own = (time.perf_counter() - began) / n * 1e6
    print(f"| the split's own work at 0%, alone | {own:.2f} | {own / base:.4f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
