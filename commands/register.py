"""`register <experiment> [run <run_id>] [as <model>]`"""

from __future__ import annotations

import re

from pydantic import BaseModel

from commands.base import Context, Reply, UsageError, check_name, shown, tokens

NAME = "register"
SUMMARY = "register the newest finished run of an experiment as a model version"
USAGE = "register <experiment> [run <run_id>] [as <model>]"
EXAMPLES = ["register iris-demo", "register churn run 4f1c9a0e2b7d4e6f as churn-model"]
DETAILS = """\
For developers and admins. Without `run`, the newest run of the experiment that finished
successfully (by end time) and logged a model; failed, killed and running runs are skipped.
The model defaults to the experiment's name. The answer comes when the version is ready, with
its number and the run's metrics; `/promote` it next."""

_RUN = re.compile(r"^[0-9a-f]{8,64}$")


class Register(BaseModel):
    experiment: str
    run_id: str | None = None
    model: str | None = None


def _error(problem: str) -> UsageError:
    return UsageError(problem, USAGE, EXAMPLES[0])


def parse(text: str) -> Register | UsageError:
    words = tokens(text)
    if not words:
        return _error("Say which experiment to register a run of.")
    experiment, rest = words[0], words[1:]
    if len(experiment) > 256 or "`" in experiment:
        return _error(f"`{shown(experiment)}` is not an experiment name.")
    run_id = model = None
    while rest:
        keyword = rest[0].lower()
        if keyword not in ("run", "as"):
            return _error(
                f"Unexpected `{shown(rest[0])}`: after the experiment come "
                "`run <run_id>` and `as <model>`."
            )
        if len(rest) == 1:
            return _error(f"Say what comes after `{keyword}`.")
        value, rest = rest[1], rest[2:]
        if keyword == "run":
            if run_id is not None or not _RUN.match(value):
                return _error(f"`{shown(value)}` is not a run id (hexadecimal, as MLflow shows).")
            run_id = value
        else:
            if model is not None:
                return _error("`as` is given twice: name one model.")
            if bad := check_name(value, "model name", USAGE, EXAMPLES[1]):
                return bad
            model = value
    return Register(experiment=experiment, run_id=run_id, model=model)


def run(cmd: Register, ctx: Context) -> Reply:
    return ctx.core.registration.register(
        experiment=cmd.experiment,
        run_id=cmd.run_id,
        model=cmd.model,
        actor=ctx.actor,
        command=ctx.text,
    )
