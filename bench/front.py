"""Every figure of the Slack front's targets in one run, with the goal beside each.

    python bench/front.py [--before REV] [--runs 3] [--soak 20000] [--only NAME ...]

Runs, each for this checkout and (with `--before`) for the commit REV checked out beside it,
one right after the other so a busy machine loads both alike:
- `start`: bench/front_start.py --restart, a local environment: a bot restarted on its state
  database, start -> `/healthz`, start -> `/readyz` and a first command answered, RSS of the
  front, its worker and the model-server runtime;
- `cml`: the same with --environments cml: the RSS of a bot whose environments are all on
  CML, all its processes together;
- `ack`: bench/slack_ack.py: signed slash commands acked while deploys run, p50/p99/max;
- `cold`: bench/deploy_vs_mlflow_serve.py --cold-only: `chatops console -c "/deploy iris v1"`
  to the first prediction, against `mlflow models serve` to its first `/ping`;
- `soak`: bench/soak.py --commands N: how much each process grew between the first 1,000
  commands and the last (`--soak 0` leaves it out: 20,000 commands take minutes).
Prints one table: what, before, now, goal, and whether now meets it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCHES = ("start", "cml", "ack", "cold", "soak")


@dataclass(frozen=True)
class Row:
    what: str
    bench: str
    value: Callable[[dict[str, Any]], float | None]
    goal: float
    unit: str
    ratio: bool = False  # shown as 0.65x, not 0.65 s

    def shown(self, figures: dict[str, Any] | None) -> str:
        value = self.of(figures)
        if value is None:
            return "—"
        return f"{value:.2f}x" if self.ratio else f"{value:,.{1 if value < 10 else 0}f} {self.unit}"

    def of(self, figures: dict[str, Any] | None) -> float | None:
        if not figures:
            return None
        try:
            return self.value(figures)
        except (KeyError, TypeError, IndexError):
            return None


def _growth(rows: list[dict[str, float]]) -> float:
    first, last = rows[0], rows[-1]
    return max(last[k] - first[k] for k in ("front", "worker", "zygote", "servers"))


ROWS = (
    Row("ack p99 while deploys run", "ack", lambda f: f["all"]["p99_ms"], 20, "ms"),
    Row("start -> /healthz answers", "start", lambda f: f["healthz"], 0.5, "s"),
    Row(
        "start -> /readyz and a first command answered",
        "start",
        lambda f: max(f["readyz"], f.get("answered", f["readyz"])),
        3,
        "s",
    ),
    Row("RSS of the front", "start", lambda f: f["front_mb"], 80, "MB"),
    Row(
        "RSS of a bot with only CML environments",
        "cml",
        lambda f: f["front_mb"] + f["worker_mb"] + f["rest_mb"],
        300,
        "MB",
    ),
    Row(
        "cold console deploy -> prediction, vs mlflow models serve",
        "cold",
        lambda f: f["cold_ratio"],
        0.8,
        "",
        ratio=True,
    ),
    Row("most any process grew over the soak", "soak", lambda f: _growth(f["rows"]), 5, "MB"),
)


def measure(bench: str, tree: Path, out: Path, args: argparse.Namespace) -> dict[str, Any] | None:
    """One benchmark of `tree`'s bot, run by this checkout's bench scripts; its figures."""
    runs = str(args.runs)
    command = {
        "start": ["front_start.py", "--runs", runs, "--restart"],
        "cml": ["front_start.py", "--runs", runs, "--restart", "--environments", "cml"],
        "ack": ["slack_ack.py"],
        "cold": ["deploy_vs_mlflow_serve.py", "--cold-only", "--runs", runs],
        "soak": ["soak.py", "--commands", str(args.soak)],
    }[bench]
    script, *rest = command
    print(f"-- {bench}: {tree}", flush=True)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *rest, "--tree", str(tree), "--json", out],
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0 or not out.exists():
        print(f"   {bench} failed for {tree} (exit {done.returncode})", flush=True)
        return None
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a commit to measure beside this checkout")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--soak", type=int, default=20_000, help="commands; 0 leaves it out")
    parser.add_argument("--only", nargs="*", choices=BENCHES, default=list(BENCHES))
    args = parser.parse_args()
    benches = [b for b in args.only if b != "soak" or args.soak > 0]
    with tempfile.TemporaryDirectory(prefix="chatops-front-") as tmp:
        work = Path(tmp)
        trees = {"now": ROOT}
        if args.before:
            before = work / "before"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(before), args.before],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            trees = {"before": before, "now": ROOT}
        figures: dict[tuple[str, str], dict[str, Any] | None] = {}
        try:
            for bench in benches:
                for name, tree in trees.items():
                    figures[name, bench] = measure(bench, tree, work / f"{name}-{bench}.json", args)
        finally:
            if args.before:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(trees["before"])],
                    cwd=ROOT,
                    check=False,
                )
    width = max(len(r.what) for r in ROWS)
    print(f"\n{'':{width}}  {'before':>10}  {'now':>10}  {'goal':>8}")
    met = True
    for row in ROWS:
        if row.bench not in benches:
            continue
        now = row.of(figures.get(("now", row.bench)))
        ok = now is not None and now <= row.goal
        met = met and ok
        goal = f"<= {row.goal:g}{'x' if row.ratio else ' ' + row.unit}"
        print(
            f"{row.what:{width}}  {row.shown(figures.get(('before', row.bench))):>10}  "
            f"{row.shown(figures.get(('now', row.bench))):>10}  {goal:>8}  "
            f"{'met' if ok else 'NOT met'}"
        )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
