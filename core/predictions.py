"""Whether two versions predict alike: a shadow copy's answer against the caller's, and a
new version's answer to the input example against what serves (the prediction diff).

Only the standard library here: a model-server worker running in a model's own environment
imports this."""

from __future__ import annotations

import math
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
