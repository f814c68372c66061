"""MLflow's deployments plugin for the chatops bot: `mlflow deployments … -t chatops:/<env>` and
`mlflow.deployments.get_deploy_client("chatops:/<env>")` go to a running bot over its HTTP API
(`/api/v1`), as the user whose personal token it is (`/mlops token` in Slack), through the
same admission as a command typed in Slack.

    export CHATOPS_URL=https://chatops.example.com  CHATOPS_TOKEN=chatops_…
    mlflow deployments create -t chatops:/prod --name iris -m models:/iris/3
    mlflow deployments create -t chatops:/prod --name iris -m models:/iris/3 -C wait=true

An admin's create deploys and answers once the rollout ended, with its Slack thread; a
developer's create in an environment where they may only ask opens a promotion request and
answers that it is pending (with `-C wait=true`: once it was decided). A refusal is raised
with the very text Slack shows. `predict` calls the endpoint the bot serves.

It runs in users' notebooks and jobs, so it imports only httpx and MLflow's deployments
interface, never the bot (an import contract keeps it so). No text it raises holds the token.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

import httpx
from mlflow.deployments import BaseDeploymentClient, PredictionsResponse
from mlflow.exceptions import MlflowException

__all__ = ["ChatOpsDeploymentClient", "run_local", "target_help"]

# under MLflow's logger: its CLI shows what is said here
log = logging.getLogger("mlflow.deployments.chatops")
URL_VARIABLE, TOKEN_VARIABLE = "CHATOPS_URL", "CHATOPS_TOKEN"
FLAVOR = "python_function"
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"  # the bot's rule for names (core.config.NAME)
_TARGET = re.compile(rf"chatops:/+({_NAME})/?")
# a call that deploys answers when the rollout ended: minutes; connecting stays quick
TIMEOUT = httpx.Timeout(30.0, read=None)


def target_help() -> str:
    return f"""\
Target `chatops:/<env>`: deploy through a running chatops bot, as yourself.

Set {URL_VARIABLE} to the bot's address (its HTTP front) and {TOKEN_VARIABLE} to your personal
token (`/mlops token` in Slack shows one, once). Each call is the command you would type in
Slack, with your roles: an admin's create deploys (and answers when the rollout ended, with
its Slack thread), a developer's opens a promotion request in Slack and answers that it is
pending. The endpoint is named after its model: --name iris -m models:/iris/3 (or
models:/iris@champion).

Config (-C): wait=true: a developer's create answers once the request was decided.
"""


def run_local(
    target: str, name: str, model_uri: str, flavor: str | None = None, config: Any = None
) -> None:
    raise MlflowException(
        "chatops serves models where the bot runs them, not on this machine: "
        f"use `mlflow models serve -m {model_uri}` to try one locally."
    )


class ChatOpsDeploymentClient(BaseDeploymentClient):
    """`chatops:/<env>`: the deployments of one environment of the bot."""

    def __init__(self, target_uri: str) -> None:
        super().__init__(target_uri)  # type: ignore[no-untyped-call]
        found = _TARGET.fullmatch(target_uri)
        if found is None:
            raise MlflowException(
                f"`{target_uri[:80]}` is not a chatops target: use chatops:/<env>, e.g. "
                "chatops:/prod."
            )
        self.env = found.group(1)
        url = os.environ.get(URL_VARIABLE, "").rstrip("/")
        token = os.environ.get(TOKEN_VARIABLE, "").strip()
        if not url or not token:
            missing = [v for v, x in ((URL_VARIABLE, url), (TOKEN_VARIABLE, token)) if not x]
            raise MlflowException(
                f"{' and '.join(missing)} not set: {URL_VARIABLE} is the bot's address, "
                f"{TOKEN_VARIABLE} your personal token (`/mlops token` in Slack)."
            )
        if not (token.isascii() and token.isprintable()) or " " in token:
            # never shown: a garbled token is still most of a secret
            raise MlflowException(
                f"{TOKEN_VARIABLE} holds characters no token has (quotes, spaces or another "
                "character pasted with it?): set it to the token alone, `chatops_…`."
            )
        self.url = re.sub(r"//[^/@]*@", "//", url, count=1)  # shown in errors: no password
        self._http = httpx.Client(
            base_url=f"{url}/api/v1/{self.env}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )

    # -- MLflow's interface ------------------------------------------------------------------
    def create_deployment(
        self,
        name: str,
        model_uri: str,
        flavor: str | None = None,
        config: dict[str, Any] | None = None,
        endpoint: str | None = None,
    ) -> dict[str, Any]:
        _flavor(flavor)
        body = {"name": name, "model_uri": model_uri, "config": config or {}}
        return {"flavor": FLAVOR, **_told(self._call("POST", "/deployments", json=body))}

    def update_deployment(
        self,
        name: str,
        model_uri: str | None = None,
        flavor: str | None = None,
        config: dict[str, Any] | None = None,
        endpoint: str | None = None,
    ) -> dict[str, Any]:
        _flavor(flavor)
        name = _named(name)
        if not model_uri:
            raise MlflowException(
                "Say which version to serve (-m models:/<model>/<version>); resources change "
                "with `/mlops scale` in Slack."
            )
        body = {"name": name, "model_uri": model_uri, "config": config or {}}
        return {"flavor": FLAVOR, **_told(self._call("PUT", f"/deployments/{name}", json=body))}

    def delete_deployment(
        self, name: str, config: dict[str, Any] | None = None, endpoint: str | None = None
    ) -> None:
        self._call("DELETE", f"/deployments/{_named(name)}")

    def list_deployments(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        return list(self._call("GET", "/deployments").get("deployments") or [])

    def get_deployment(self, name: str, endpoint: str | None = None) -> dict[str, Any]:
        return self._call("GET", f"/deployments/{_named(name)}")

    def predict(
        self, deployment_name: str | None = None, inputs: Any = None, endpoint: str | None = None
    ) -> PredictionsResponse:
        """`inputs` (a DataFrame, or a payload of MLflow's scoring protocol) scored by the
        endpoint the bot serves for `deployment_name`."""
        name = deployment_name or endpoint
        if not name:
            raise MlflowException("Say which deployment predicts: --name <model>.")
        url = str(self.get_deployment(name).get("url") or "")
        if not url:
            raise MlflowException(f"{name} in {self.env} serves at no address the bot knows.")
        if hasattr(inputs, "to_json"):  # a DataFrame, without importing pandas here
            content = '{"dataframe_split": ' + inputs.to_json(orient="split") + "}"
        elif isinstance(inputs, dict):
            content = json.dumps(inputs)
        else:
            content = json.dumps({"inputs": inputs})
        try:
            answer = httpx.post(
                _scoring(url),
                content=content,
                headers={"Content-Type": "application/json"},
                timeout=TIMEOUT,
            )
        except httpx.HTTPError as exc:
            raise MlflowException(
                f"{name} in {self.env} did not answer: {type(exc).__name__}"
            ) from None
        if answer.status_code != 200:
            raise MlflowException(
                f"{name} in {self.env} answered HTTP {answer.status_code}: {answer.text[:500]}"
            )
        predictions: PredictionsResponse = PredictionsResponse.from_json(  # type: ignore[no-untyped-call]
            answer.text
        )
        return predictions

    # -- the bot's API ---------------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:  # its type only: nothing of the request is shown
            raise MlflowException(
                f"The chatops bot at {self.url} did not answer: {type(exc).__name__}."
            ) from None
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if answer.status_code == 401:
            raise MlflowException(
                f"The bot did not take {TOKEN_VARIABLE}: it is unknown, revoked or expired. "
                "`/mlops token` in Slack makes a new one."
            )
        if answer.status_code == 429:
            wait = answer.headers.get("Retry-After", "a few")
            raise MlflowException(f"Too many calls with this token: try again in {wait} s.")
        if answer.status_code >= 400:
            said = body.get("error") or body.get("message") or f"HTTP {answer.status_code}"
            raise MlflowException(str(said))
        return body


def _scoring(url: str) -> str:
    """Where an endpoint scores: the URL the bot gives is that of MLflow's scoring path
    (`…/invocations`, CML's `…/model`) or of the server it is under."""
    url = url.rstrip("/")
    return url if url.endswith(("/invocations", "/model")) else f"{url}/invocations"


def _named(name: str) -> str:
    """`name` as the bot takes it, else refused here: a name with `/`, `..`, `?` or `#` would
    reach another path than this target's (`../../dev/deployments/iris` from chatops:/prod)."""
    if not isinstance(name, str) or re.fullmatch(_NAME, name) is None:
        shown = str(name)[:40].replace("`", "'")
        raise MlflowException(
            f"`{shown}` is not a valid deployment name: use letters, digits, `.`, `_` or `-`, "
            "starting with a letter or digit (the model's name, e.g. --name iris)."
        )
    return name


def _flavor(flavor: str | None) -> None:
    if flavor not in (None, "", FLAVOR, "pyfunc"):
        raise MlflowException(
            f"The bot serves registered models as {FLAVOR}, not as {flavor[:40]}."
        )


def _told(answer: dict[str, Any]) -> dict[str, Any]:
    """`answer`, once what it means for the caller was said: a request pending or decided is
    no deployment yet."""
    state = answer.get("state")
    if state in ("pending", "approved", "expired"):
        where = f" ({answer['link']})" if answer.get("link") else ""
        log.warning(
            "Promotion request %s is %s%s: %s",
            answer.get("request", ""),
            state,
            where,
            answer.get("message", "") if state == "pending" else "see its Slack thread",
        )
    elif answer.get("link"):
        log.info("%s (%s)", answer.get("message", ""), answer["link"])
    return answer
