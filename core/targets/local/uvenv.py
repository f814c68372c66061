"""A model's own Python environment, built with uv from its requirements: the local
counterpart of a CML build, for models the bot's runtime does not satisfy.

One environment per set of requirements (and base interpreter), kept under
`<state>/local/uvenvs/<digest>` and reused by every endpoint and environment that needs the
same: the first deploy builds it (seconds to minutes, reported step by step), later ones
find it ready. A build runs under a file lock, so two bots or rollouts never build one
environment at once, and counts only once its `ready.json` is written.

Our model server runs in it from the bot's own `core` package, reached through a directory
that holds nothing else (`code/core`), so none of the runtime's packages leak in.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.utils import canonicalize_name

from core.errors import BuildFailed
from core.targets.base import Step
from core.targets.local import messages
from core.targets.local.requirements import Requirements, parse

# what our model server imports besides MLflow: installed at the runtime's versions unless
# the model asks for its own
SERVER_PACKAGES = ("mlflow", "psutil", "uvicorn", "httptools")
FORMAT = "2"  # bump when what goes into an environment changes, so old ones are not reused
# what a model server imports, imported once at build: it proves the environment can serve,
# and leaves the modules compiled, so servers started from it later import them fast
_CHECK = (
    "import mlflow.pyfunc.scoring_server, psutil, uvicorn, httptools, "
    "core.targets.local.envworker, core.targets.local.server"
)


@dataclass(frozen=True)
class ModelEnv:
    """A built environment: its interpreter, and the PYTHONPATH that reaches our server."""

    python: str
    code: str
    key: str

    @property
    def short(self) -> str:
        return self.key[:12]


class UvEnvs:
    def __init__(self, *, root: Path, base_python: str, timeout_s: float) -> None:
        self.root = root
        self.base_python = base_python
        self.timeout_s = timeout_s

    def key(self, reqs: Requirements) -> str:
        text = f"{FORMAT}\n{reqs.digest}\n{os.path.realpath(self.base_python)}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _env(self, key: str) -> ModelEnv:
        return ModelEnv(python=str(self.root / key / "bin" / "python"), code=self._code(), key=key)

    def find(self, reqs: Requirements) -> ModelEnv | None:
        """The ready environment for `reqs`, or None when none was built."""
        key = self.key(reqs)
        return self._env(key) if (self.root / key / "ready.json").is_file() else None

    def ensure(self, reqs: Requirements, step: Step) -> ModelEnv:
        """The environment for `reqs`, built now unless it is ready; `BuildFailed` with
        uv's own words when it cannot be built."""
        key = self.key(reqs)
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{key}.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                step.say(messages.ENV_WAITING)
                fcntl.flock(lock, fcntl.LOCK_EX)
            found = self.find(reqs)
            if found is not None:
                built = json.loads((self.root / key / "ready.json").read_text())
                step.say(messages.env_reused(found.short, built.get("built_at", "")))
                return found
            self._build(key, reqs, step)
        return self._env(key)

    def _build(self, key: str, reqs: Requirements, step: Step) -> None:
        begun = time.monotonic()
        target = self.root / key
        if target.exists():  # a build that died half-way
            shutil.rmtree(target)
        uv = _uv()
        step.say(messages.env_creating(key[:12], reqs.python))
        self._run([uv, "venv", "--quiet", "--python", self.base_python, str(target)], begun)
        wanted = _with_server_packages(reqs.lines)
        (target / "requirements.txt").write_text("\n".join(wanted) + "\n")
        names = [r.name for r in map(parse, reqs.lines) if r is not None]
        step.say(messages.env_installing(names))
        python = str(target / "bin" / "python")
        self._run(
            [uv, "pip", "install", "--python", python, "-r", str(target / "requirements.txt")],
            begun,
        )
        step.say(messages.ENV_CHECKING)
        self._run([python, "-c", _CHECK], begun, code=self._code())
        seconds = round(time.monotonic() - begun, 1)
        record = {
            "requirements": list(reqs.lines),
            "source": reqs.source,
            "built_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            "build_s": seconds,
        }
        (target / "ready.json").write_text(json.dumps(record, indent=1))
        step.say(messages.env_ready(key[:12], seconds))

    def _run(self, argv: list[str], begun: float, code: str = "") -> None:
        # bytecode is written even where the bot's own environment says not to (_CHECK)
        dropped = ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        env["UV_PYTHON_DOWNLOADS"] = "never"  # the base interpreter is the runtime's own
        if code:
            env["PYTHONPATH"] = code
        left = self.timeout_s - (time.monotonic() - begun)
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, env=env, timeout=max(left, 1.0)
            )
        except subprocess.TimeoutExpired:
            raise BuildFailed(messages.env_timeout(self.timeout_s)) from None
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()
            last = output.splitlines()[-1] if output else f"exit code {done.returncode}"
            raise BuildFailed(messages.env_failed(last), log_tail=output[-4000:])

    def _code(self) -> str:
        """A directory holding only a link to the running bot's `core` package, re-pointed
        on every use so an upgraded bot serves its own server code."""
        code = self.root / "code"
        code.mkdir(parents=True, exist_ok=True)
        package = str(Path(__file__).resolve().parents[2])
        link = code / "core"
        if not (link.is_symlink() and os.readlink(link) == package):
            partial = code / f"core.{os.getpid()}.partial"
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            partial.symlink_to(package, target_is_directory=True)
            os.replace(partial, link)
        return str(code)


def _with_server_packages(lines: tuple[str, ...]) -> list[str]:
    named = {canonicalize_name(r.name) for r in map(parse, lines) if r is not None}
    extra = []
    for name in SERVER_PACKAGES:
        if name in named:
            continue
        try:
            extra.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            extra.append(name)
    return [*lines, *extra]


def _uv() -> str:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise BuildFailed(messages.UV_MISSING) from None
        return found
