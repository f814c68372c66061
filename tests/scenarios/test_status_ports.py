"""/status answers for every endpoint, whatever the local target's ports: an endpoint this
bot has no port for (recorded by a bot with another state directory over the same database,
or a port range narrowed since) shows down, and is not given a port by being looked at."""

from __future__ import annotations

import socket
from pathlib import Path

from commands.base import Context, StatusReport
from commands.registry import execute
from core.admission.roles import Actor
from core.runtime import Runtime
from core.targets.local.target import Zygote
from tests.conftest import Recorder, make_settings

ADMIN = Actor(id="console", name="alice")


def run(runtime: Runtime, line: str):  # type: ignore[no-untyped-def]
    return execute(line, Context(core=runtime, actor=ADMIN, reporter=Recorder(), text=line))


def test_status_answers_for_every_endpoint_when_no_port_is_left_for_one(
    tmp_path: Path, registry_uri: str, zygote: Zygote
) -> None:
    first = Runtime(make_settings(tmp_path / "a", registry_uri), zygote=zygote)
    try:
        assert run(first, "/deploy iris v1").ok
        url = first.repos.endpoints.get("dev", "iris").url  # type: ignore[union-attr]

        # a second bot over the same database, its own state directory, and a dev range
        # narrowed to one port that something else holds
        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))
            held.listen()
            port = held.getsockname()[1]
            base = make_settings(
                tmp_path / "b", registry_uri, database_url=first.settings.database_url
            )
            dev, prod = base.environments
            dev = dev.model_copy(update={"port_range": (port, port)})
            second = Runtime(base.model_copy(update={"environments": [dev, prod]}), zygote=zygote)
            try:
                report = run(second, "/status in dev")
                assert isinstance(report, StatusReport), report.text
                ((ep),) = report.endpoints
                assert (ep.name, ep.version, ep.up, ep.url) == ("iris", 1, False, url)
                assert ep.detail == "no server process is running"
                # looking gave it no port: this bot's port book is as it was
                assert second.deployer.targets["dev"].ports.entries() == []  # type: ignore[attr-defined]
            finally:
                second.close()
    finally:
        first.shut_down_endpoints()
        first.close()
