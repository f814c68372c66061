"""The one place that makes an environment's CML client: the one it names (`client_kind`),
its every request tallied on a `CallCounter`. The target, and `chatops check`, both call
this, so a workspace is always spoken to the same way."""

from __future__ import annotations

from core.config import Environment
from core.targets.cml.api import CMLApi
from core.targets.cml.calls import CallCounter
from core.targets.cml.client import CMLClient
from core.targets.cml.service_api import CMLServiceAdapter
from core.targets.cml.session import client_kind


def open_client(
    env: Environment,
    *,
    api_key: str,
    calls: CallCounter,
    timeout: float = 30.0,
    retries: int = 4,
    backoff: float = 0.5,
) -> CMLApi:
    """`env`'s client; `ConfigError` when the key is unusable or `cmlapi` is asked for but
    not installed. Our client sends through `calls` (wrap a test transport in it)."""
    if client_kind(env) == "cmlapi":
        return CMLServiceAdapter.connect(
            url=env.url,
            api_key=api_key,
            calls=calls,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
        )
    return CMLClient(
        base_url=env.url,
        api_key=api_key,
        transport=calls,
        timeout=timeout,
        retries=retries,
        backoff=backoff,
    )
