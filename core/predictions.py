"""Whether two versions predict alike: a shadow copy's answer against the caller's, and a
new version's answers to the input example and the run's evaluation dataset against what
serves (the prediction diff), with each one's quality against the dataset's targets.

Only the standard library here: a model-server worker running in a model's own environment
imports this."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


def agree(a: Any, b: Any, tolerance: float) -> bool:
    """Whether two decoded predictions are the same, numbers within `tolerance`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        if a == b or (math.isnan(a) and math.isnan(b)):  # the same answer, NaN included
            return True
        return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tolerance
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(agree(x, y, tolerance) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(agree(a[k], b[k], tolerance) for k in a)
    return a is b or bool(a == b)


def rows_agreeing(a: Any, b: Any, tolerance: float) -> tuple[int, int]:
    """(rows that agree, rows compared): row by row when both are lists of one length (a
    prediction per input row), else the whole answer as one row."""
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and a:
        return sum(agree(x, y, tolerance) for x, y in zip(a, b, strict=True)), len(a)
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        columns = [rows_agreeing(a[k], b[k], tolerance) for k in a]
        if columns and len({n for _, n in columns}) == 1:
            return min(ok for ok, _ in columns), columns[0][1]
    return int(agree(a, b, tolerance)), 1


def quality(predictions: Any, targets: Any) -> tuple[str, float] | None:
    """How well `predictions` (one per row) meet the dataset's `targets`: ("accuracy", the
    share equal) for labels, ("mean absolute error", …) when the model predicts numbers that
    are not whole; None when they cannot be set side by side (other shapes, other lengths, a
    missing value)."""
    if not isinstance(predictions, list) or not isinstance(targets, list) or not targets:
        return None
    if len(predictions) != len(targets):
        return None
    scalar = (bool, int, float, str)
    if not all(isinstance(v, scalar) for v in [*predictions, *targets]):
        return None
    if any(isinstance(v, float) and not math.isfinite(v) for v in [*predictions, *targets]):
        return None  # a missing value: no figure rather than a NaN one
    # a regression predicts numbers that are not whole (whatever its targets look like)
    if any(isinstance(p, float) and not p.is_integer() for p in predictions):
        if not all(_number(v) for v in [*predictions, *targets]):
            return None
        return MAE, sum(
            abs(float(p) - float(t)) for p, t in zip(predictions, targets, strict=True)
        ) / len(targets)
    same = sum(agree(p, t, 0.0) for p, t in zip(predictions, targets, strict=True))
    return "accuracy", same / len(targets)


MAE = "mean absolute error"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Measured:
    """A prediction diff on a run's evaluation dataset: the new version against what served,
    row by row, and each one's quality against the dataset's targets where it has them. Kept
    with the rollout (`as_dict`), so a plan can say what an earlier rollout measured."""

    model: str
    version: int  # the new version
    against: int  # what served
    dataset: str  # as people know it
    agreed: int
    rows: int
    metric: str = ""  # "accuracy", …; "" without targets
    mine: float | None = None
    theirs: float | None = None

    def said(self) -> str:
        """`v3 predicts as v2 on 44 of 45 rows; accuracy 0.978 against v2's 0.956 (+0.022)`"""
        if self.agreed == self.rows:
            counted = "the only row" if self.rows == 1 else f"all {self.rows} rows"
            text = f"v{self.version} predicts as v{self.against} on {counted}"
        else:
            text = (
                f"v{self.version} predicts otherwise than v{self.against} on "
                f"{self.rows - self.agreed} of {self.rows} row{'s' if self.rows != 1 else ''}"
            )
        if self.metric and self.mine is not None and self.theirs is not None:
            change = self.mine - self.theirs
            better = ", lower is better" if self.metric == MAE else ""
            text += (
                f"; {self.metric} {self.mine:.3f} against v{self.against}'s {self.theirs:.3f}"
                f" ({change:+.3f}{better})"
            )
        return text

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, value: Any) -> Measured | None:
        """From `as_dict`'s record; None for anything else."""
        if not isinstance(value, dict):
            return None
        try:
            return cls(**value)
        except TypeError:
            return None


def storable(value: Any) -> Any:
    """`value` as JSON has it: NaN and infinities, which are no JSON numbers (a request body
    cannot carry them, PostgreSQL's JSON refuses them), as None, in lists and objects too."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [storable(v) for v in value]
    if isinstance(value, dict):
        return {k: storable(v) for k, v in value.items()}
    return value
