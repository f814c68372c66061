"""The one error tree of the bot. Refusals are values (see ``core.results``), not errors.

ChatOpsError
├── ConfigError          settings that cannot work (unknown target kind, bad limits)
├── RegistryError        the model registry failed or answered something unusable
│   └── NotFound         a model, version or alias that does not exist
├── TargetError          a serving target failed a step
│   ├── BuildFailed      the model could not be loaded or built (log tail attached)
│   ├── DeployFailed     the server did not come up healthy (log tail attached)
│   ├── TargetUnavailable the target cannot be reached at all
│   └── StepTimeout      a remote wait ran past its deadline
├── StoreError           the state database failed
├── LeaseLost            another bot process took over the operation this one was running
│   └── HandedOver       this process is stopping: it left the operation at a step boundary
└── Cancelled            an admin cancelled the operation (`/cancel`): it stops at its next step
"""

from __future__ import annotations

from core.scrub import scrub


class ChatOpsError(Exception):
    """Root of every error the bot raises on purpose. Its message and log tail are scrubbed
    when it is made, so wherever it is shown or stored it carries no credential."""

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        message = scrub(message)
        super().__init__(message)
        self.message = message
        self.log_tail = scrub(log_tail)


class ConfigError(ChatOpsError):
    pass


class RegistryError(ChatOpsError):
    pass


class NotFound(RegistryError):
    pass


class TargetError(ChatOpsError):
    pass


class BuildFailed(TargetError):
    pass


class DeployFailed(TargetError):
    pass


class TargetUnavailable(TargetError):
    pass


class StepTimeout(TargetError):
    pass


class StoreError(ChatOpsError):
    pass


class LeaseLost(ChatOpsError):
    pass


class HandedOver(LeaseLost):
    pass


class Cancelled(ChatOpsError):
    pass
