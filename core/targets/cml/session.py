"""Which client a CML environment uses: ours, or the `cmlapi` package of a CML session.

Inside a CML session the workspace sets `$CDSW_API_URL` and `$CDSW_APIV2_KEY`, and its
`cmlapi` package (Cloudera's client, served by each workspace at `/api/v2/python.tar.gz`,
not on PyPI) is usually installed: there it is the default. Elsewhere our client is.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Literal

from core.config import Environment
from core.errors import ConfigError

SESSION_URL = "CDSW_API_URL"
SESSION_KEY = "CDSW_APIV2_KEY"

ClientKind = Literal["builtin", "cmlapi"]


def load_cmlapi(asker: str = "an environment") -> ModuleType:
    """The installed `cmlapi` package, or a `ConfigError` saying where to get it."""
    try:
        return importlib.import_module("cmlapi")
    except ImportError:
        raise ConfigError(
            f'{asker} asks for "client": "cmlapi", but the cmlapi package is not '
            "installed: install the one your workspace serves (pip install "
            "https://<workspace>/api/v2/python.tar.gz), or remove that setting to use the "
            "built-in client"
        ) from None


def in_cml_session() -> bool:
    """Inside a CML session: its URL and API v2 key are set, and `cmlapi` is importable."""
    if not (os.environ.get(SESSION_URL) and os.environ.get(SESSION_KEY)):
        return False
    try:
        load_cmlapi()
    except ConfigError:
        return False
    return True


def client_kind(env: Environment) -> ClientKind:
    """The client `env`'s target uses: the one it names, else cmlapi inside a CML session,
    else the built-in one."""
    if env.client == "cmlapi":
        load_cmlapi(f"environment {env.name}")  # fail now, naming who asked
    if env.client is not None:
        return env.client
    return "cmlapi" if in_cml_session() else "builtin"


def workspace_root(url: str) -> str:
    """The workspace's root from its URL, its API v1 URL (`$CDSW_API_URL`) or its v2 URL."""
    root = url.rstrip("/")
    for suffix in ("/api/v2", "/api/v1"):
        if root.endswith(suffix):
            root = root[: -len(suffix)]
    return root
