"""`chatops`: run the bot or a worker, drive it from a console, seed the demo, stop endpoints."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import faulthandler
import getpass
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from rich.console import Console

    from bot.slack.transport.doorkeeper import Doorkeeper
    from bot.stopping import Stopping
    from core.config import Settings
    from core.runtime import Runtime

# Nothing heavy is imported before `main` runs: a Slack front binds its port first (see
# `_door`), and its settings, SQLAlchemy, Bolt and uvicorn load while it answers `/healthz`.


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatops",
        description=("Deploy MLflow model versions to live endpoints from Slack or a console."),
    )
    parser.add_argument(
        "--state-dir",
        help="where state, registry and logs live (default: $CHATOPS_STATE_DIR or ./.state)",
    )
    sub = parser.add_subparsers(dest="cmd")
    run = sub.add_parser(
        "run",
        help="run the bot: Socket Mode, HTTP or the console, by the "
        "Slack settings found (see README)",
    )
    run.add_argument(
        "--mode",
        choices=["auto", "socket", "http", "console"],
        default="auto",
        help="force a front instead of choosing it from the environment",
    )
    console = sub.add_parser("console", help="type commands in a terminal")
    console.add_argument(
        "-c",
        "--command",
        action="append",
        default=[],
        metavar="TEXT",
        help="run this command and exit (repeatable); exit code 1 if any failed",
    )
    console.add_argument(
        "--as",
        dest="actor",
        default=None,
        help="who the console acts as (default: CHATOPS_CONSOLE_USER, set or in .env)",
    )
    demo = sub.add_parser("demo", help="create the demo model iris (v1, v2) in the registry")
    demo.add_argument(
        "--target",
        choices=["local", "cml"],
        default="local",
        help="cml: also run deploy, scale and status against two local CML "
        "API v2 emulators (dev and prod workspaces sharing the registry)",
    )
    sub.add_parser("down", help="stop every local endpoint of the state directory")
    sub.add_parser(
        "check",
        help="prove every environment, the registry, Slack and the state database ready "
        "(a table; exit code 1 on any problem). Example: chatops check",
    )
    sub.add_parser(
        "worker",
        help="run queued operations, and take over those whose bot process died, until "
        "interrupted (several may share one PostgreSQL)",
    )
    sub.add_parser(
        "cml-emulator",
        add_help=False,
        help="serve a CML API v2 emulator (for tests and the offline demo); --help for options",
    )
    sub.add_parser(
        "manifest",
        add_help=False,
        help="print the Slack app manifest for these commands; --help for options",
    )
    db = sub.add_parser("db", help="the state database")
    db_sub = db.add_subparsers(dest="db_cmd", required=True)
    db_sub.add_parser("upgrade", help="bring the schema to this version (also done at start)")
    audit = sub.add_parser("audit", help="the audit trail")
    audit_sub = audit.add_subparsers(dest="audit_cmd", required=True)
    export = audit_sub.add_parser("export", help="write every attempt, allowed or refused")
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    export.add_argument(
        "--since",
        type=_moment,
        default=None,
        help="only entries at or after this time (ISO 8601, e.g. 2026-11-01 or "
        "2026-11-01T09:00:00+00:00; UTC when no offset is given)",
    )
    export.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    return parser


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time, e.g. 2026-11-01 or 2026-11-01T09:00:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run() -> NoReturn:
    """The `chatops` command: `main`, then out at once once it returned. Its threads are
    joined and its exit functions run as the interpreter would (logs flushed, temporary
    directories removed, the state database's pools closed); the interpreter's own teardown
    of MLflow's and SQLAlchemy's modules, which would follow, only costs time (over half a
    second of a one-line `chatops console -c`), so it is skipped. A failure leaves the usual
    way, traceback and all."""
    code = main()
    shutdown = getattr(threading, "_shutdown", None)  # what the interpreter runs first
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken pipe: nothing to say it to
            stream.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["cml-emulator"]:
        from emulators.cml import main as emulator

        return emulator(argv[1:])
    if argv[:1] == ["manifest"]:
        from bot.slack.manifest import main as manifest

        return manifest(argv[1:])
    args = _parser().parse_args(argv)
    stopping, door = _door(args)
    try:
        return _main(args, stopping=stopping, door=door)
    finally:
        if door is not None:
            door.close()  # a front that did not start: its port closes, what it held with it


def _door(args: argparse.Namespace) -> tuple[Stopping | None, Doorkeeper | None]:
    """For `chatops run` as a Slack front: its port held and `/healthz` answered from now on,
    and SIGTERM and SIGINT taken (the front ends cleanly once it sees them); else nothing."""
    if args.cmd != "run":
        return None, None
    from bot.slack.transport.doorkeeper import STARTING, Doorkeeper, wanted
    from bot.stopping import Stopping

    stopping = Stopping()
    door = Doorkeeper.open(
        wanted(args.mode, os.environ), unready=lambda: stopping.reason or STARTING
    )
    if door is None:
        return None, None
    return stopping.install(), door


def _main(args: argparse.Namespace, *, stopping: Stopping | None, door: Doorkeeper | None) -> int:
    from rich.console import Console
    from rich.markup import escape

    from core.config import Settings
    from core.errors import ChatOpsError
    from core.scrub import install_log_filter, scrub

    with contextlib.suppress(OSError, ValueError):  # a stderr with no file (captured): none
        faulthandler.enable()  # a crash in a library's C code leaves its Python stack in the log
    install_log_filter()  # what is logged before logging is configured goes out scrubbed too
    if args.state_dir:
        os.environ["CHATOPS_STATE_DIR"] = args.state_dir
    out = Console(highlight=False, soft_wrap=True)
    if not out.is_terminal:
        out.width = max(out.width, 160)  # piped output: do not squeeze tables into 80 columns
    try:
        settings = Settings()
    except ValueError as exc:
        out.print(f"[red]cannot start, the settings are wrong: {escape(scrub(str(exc)))}[/]")
        return 2
    if args.cmd == "db":
        from core.store import migrate

        try:
            migrate.prepare(settings.database_url)  # the SQLite folder, if needed
            migrate.upgrade(settings.database_url)
        except ChatOpsError as exc:
            out.print(f"[red]{exc.message}[/]")
            return 1
        out.print(f"The state database is at revision {migrate.current(settings.database_url)}.")
        return 0
    if args.cmd == "check":
        return _check(settings, out)
    if args.cmd == "run":
        from bot import serve
        from bot.slack.settings import Mode, SlackSettings

        try:
            slack = SlackSettings()
        except ValueError as exc:  # PORT=http, say: nothing starts (a port held is closed)
            said = escape(scrub(str(exc)))
            out.print(f"[red]cannot start, the Slack settings are wrong: {said}[/]")
            return 2
        mode = slack.mode if args.mode == "auto" else Mode(args.mode)
        if (missing := serve.missing(slack, mode)) is not None:
            out.print(f"[red]cannot start: {missing}[/]")
            return 2
        if mode is not Mode.CONSOLE:
            # The front records and acks; its worker process builds the core, runs jobs and
            # logs the readiness checks (they import MLflow, which the front never loads).
            return serve.run_slack(settings, slack, mode, out, stopping=stopping, door=door)
        if stopping is not None:  # the console takes Ctrl-C itself
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from bot.check import log_readiness

        log_readiness(settings, slack, mode)
    if args.cmd == "console" and args.command:
        # commands typed on the command line: this process talks to the registry and never
        # loads a model (its model-server runtime does), so MLflow loads without pandas
        from core.mlflow_imports import registry_only

        registry_only()
    from core.targets.local.spawner import Zygote  # alone: the runtime starts first

    zygote = Zygote(state_dir=settings.state_dir)
    if args.cmd in (None, "run", "console") and settings.serves_locally:
        # Warm the model-server runtime while this process imports the rest, MLflow with it:
        # both take seconds (nothing but the settings is imported before, for this).
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        zygote.prewarm()
    from core.runtime import Runtime

    try:
        runtime = Runtime(settings, zygote=zygote)
    except ChatOpsError as exc:
        out.print(f"[red]cannot start: {exc.message}[/]")
        zygote.close()
        return 2
    try:
        return _console(args, runtime, out)
    except ChatOpsError as exc:
        out.print(f"[red]{exc.message}[/]")
        return 1
    finally:
        runtime.close()
        zygote.close()


def _console(args: argparse.Namespace, runtime: Runtime, out: Console) -> int:
    from bot.console.app import ConsoleApp
    from core.oncall.alerts import LogAlerts

    actor = getattr(args, "actor", None) or runtime.settings.console_user or _login()
    app = ConsoleApp(runtime, actor=actor, console=out)
    if args.cmd == "demo":
        if runtime.registry_is_empty():
            app.create_demo()
        else:
            out.print(f"The registry already has models: {', '.join(runtime.registry.models())}")
        return _cml_demo(runtime.settings, out) if args.target == "cml" else 0
    if args.cmd == "audit":
        text = runtime.deployer.audit.export(fmt=args.format, since=args.since)
        if args.output == "-":
            sys.stdout.write(text)
        else:
            with open(args.output, "w", encoding="utf-8", newline="") as f:
                f.write(text)
        return 0
    if args.cmd == "worker":
        from bot import serve

        return serve.worker(runtime, out)
    if args.cmd == "down":
        stopped = runtime.shut_down_endpoints()
        out.print(f"Stopped: {', '.join(stopped)}" if stopped else "No local endpoints.")
        return 0
    runtime.warm_up()
    if args.cmd == "console" and args.command:
        return 0 if app.run_lines(args.command) else 1
    settings = runtime.settings
    envs = ", ".join(f"{e.name} ({e.target})" for e in settings.environments)
    out.print(
        f"chatops console — state in {settings.state_dir}; environments: {envs}; acting as {actor}"
    )
    app.offer_demo(ask=sys.stdin.isatty())
    # an operation a console (or bot) that died left unfinished is finished here; watch
    # windows and endpoints that go down are told here as they happen
    from bot.process import background

    running = background(
        runtime,
        reporter_for=lambda _op: app.reporter,
        alerts=LogAlerts(say=lambda text: out.print(text, markup=False, highlight=False)),
    ).start()
    try:
        app.interactive()
    finally:
        running.hand_over()
    return 0


def _check(settings: Settings, out: Console) -> int:
    from bot.check import render, slack_findings
    from bot.slack.settings import SlackSettings
    from core.oncall.checks.readiness import readiness
    from core.scrub import register_settings

    register_settings(settings)
    slack = SlackSettings()
    slack.register_secrets()
    report = readiness(settings, front=slack_findings(slack, slack.mode))
    out.print(render(report))
    out.print(report.summary())
    return 0 if report.ok else 1


def _cml_demo(settings: Settings, out: Console) -> int:
    """The CML flow end to end, offline: two emulated workspaces over the same registry."""
    import secrets

    from bot.console.app import ConsoleApp
    from core.config import CONSOLE_USER, Environment, Settings
    from core.runtime import Runtime
    from emulators.cml import start_emulator

    key_var = "CHATOPS_DEMO_CML_API_KEY"
    os.environ[key_var] = secrets.token_urlsafe(24)
    workspaces = {
        name: start_emulator(
            tracking_uri=settings.mlflow_tracking_uri,
            api_key=os.environ[key_var],
            projects=[{"name": "demo", "id": "demo-project"}],
        )
        for name in ("dev", "prod")
    }
    try:
        environments = [
            Environment(
                name=name,
                target="cml",
                url=ws.url,
                api_key_env=key_var,
                project_id="demo-project",
                admins=[CONSOLE_USER],
            )
            for name, ws in workspaces.items()
        ]
        for name, ws in workspaces.items():
            out.print(f"CML API v2 emulator for {name}: {ws.url}")
        cml = settings.model_copy(
            update={
                "environments": environments,
                "state_dir": settings.state_dir / "cml-demo",
                "database_url": "",
            }
        )
        runtime = Runtime(Settings.model_validate(cml.model_dump()))
        try:
            app = ConsoleApp(runtime, actor=settings.console_user or _login(), console=out)
            ok = app.run_lines(
                [
                    "/deploy iris v1",
                    "/scale iris 2cpu 2gb 2 replicas",
                    "/deploy iris v2 to prod",
                    "/status",
                ]
            )
        finally:
            runtime.close()
    finally:
        for ws in workspaces.values():
            ws.stop()
    return 0 if ok else 1


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "console"


if __name__ == "__main__":
    run()
