"""What the local target tells people about a model's requirements and its own environment."""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.targets.local.requirements import Unmet


def unmet(label: str, problems: Sequence[Unmet], env: str, source: str) -> str:
    listed = "\n".join(f"  • {p.describe()}" for p in problems)
    install = " ".join(shlex.quote(p.requirement) for p in problems)
    return (
        f"{label} needs packages the bot's runtime does not have (from its {source}):\n"
        f"{listed}\n"
        f"Nothing was started. Either install them where the bot runs "
        f"(pip install {install}) and restart the bot, or set "
        f'"env_manager": "uv" on environment {env} to serve this model from its own '
        f"environment, built from its requirements."
    )


def other_python(logged: str) -> str:
    served = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"logged with Python {logged}, served with Python {served}"


def missing_modules(label: str, modules: Sequence[str]) -> str:
    names = ", ".join(f"`{m}`" for m in modules)
    return (
        f"{label} refers to code in {names}, which is neither shipped with the model nor "
        f'installed where the bot runs, so it would fail with "No module named '
        f"'{modules[0]}'\". Nothing was started. Log the model again with "
        f"code_paths=[<the file or package that defines {names}>], "
        f"or install that module in the bot's runtime."
    )


_NO_MODULE = re.compile(r"No module named '([^']+)'")


def module_hint(text: str) -> str:
    """A hint for a model server that died of "No module named …", or ""."""
    found = _NO_MODULE.search(text)
    if found is None:
        return ""
    module = found.group(1)
    return (
        f" — the model needs module `{module}`: if it is the model's own code, log the model "
        f"again with code_paths=[<the file or package of `{module}`>]; if it is a package, add "
        f'it to the model\'s pip_requirements and serve it with "env_manager": "uv", or install '
        f"it in the bot's runtime"
    )


def env_gone(label: str) -> str:
    return f"the environment built for {label} is gone: deploy it again to rebuild it"


ENV_WAITING = "another rollout is building the same model environment: waiting for it"
ENV_CHECKING = "checking that the model environment loads MLflow and the model server"
UV_MISSING = (
    "uv is not installed where the bot runs, so no model environment can be built: "
    "pip install uv, or serve the model from the bot's runtime"
)


def env_reused(short: str, built_at: str) -> str:
    when = f", built {built_at}" if built_at else ""
    return f"reusing the model environment {short}{when}"


def env_creating(short: str, python: str) -> str:
    logged = f" (the model was logged with Python {python})" if python else ""
    return f"building the model environment {short} with uv: creating it{logged}"


def env_installing(names: Sequence[str]) -> str:
    return f"installing the model's {len(names)} requirement(s): {', '.join(names)}"


def env_ready(short: str, seconds: float) -> str:
    return f"model environment {short} ready in {seconds:.0f}s; later deploys reuse it"


def env_failed(last: str) -> str:
    return f"uv could not build the model environment: {last}"


def env_timeout(limit_s: float) -> str:
    return f"the model environment was not built within {limit_s:.0f}s (build_timeout_s)"


TRAFFIC_NO_HOST = "nothing was counted: no server process of it is running"
TRAFFIC_OLD_HOST = (
    "not counted: its server host started before the bot counted traffic; "
    "stop the endpoint and deploy it again to count it"
)


def traffic_unreadable(problem: str) -> str:
    return f"not counted: its server host did not say ({problem})"


SPLIT_NO_HOST = "no server process of it is running"
SPLIT_OLD_HOST = (
    "its server host started before the bot could split traffic between two versions; "
    "stop the endpoint and deploy it again to use canary or shadow traffic"
)


def split_refused(endpoint: str, problem: str) -> str:
    return f"could not split the requests of {endpoint}: {problem}"


def split_bad(canary: object, shadow: object, tolerance: object) -> str:
    return (
        f"canary and shadow are whole percents from 0 to 100 and the tolerance a number of 0 "
        f"or more (asked: canary {canary}, shadow {shadow}, tolerance {tolerance})"
    )


def split_unreadable(problem: str) -> str:
    return f"not counted: its server host did not say ({problem})"


def split_none(candidate: str) -> str:
    return f"no requests of the endpoint are split with {candidate}"


SPLIT_ENDED = "the split has ended (a switch or discard): counts until then"


def shadow_dropped(n: int) -> str:
    return f"{n} shadow cop{'y' if n == 1 else 'ies'} dropped: too many waited for the candidate"


def split_set(endpoint: str, candidate: str, canary: int, shadow: int) -> str:
    if not canary and not shadow:
        return f"every request of {endpoint} is answered by the serving version again"
    if not canary:
        return f"{candidate} gets a copy of {shadow}% of the requests of {endpoint}"
    said = f"{candidate} answers {canary}% of the requests of {endpoint}"
    return said + (f" and gets a copy of {shadow}% of the others" if shadow else "")
