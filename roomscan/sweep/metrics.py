"""``report(step=..., **metrics)``: how a trial's program tells the sweep its metrics (one JSON line on stdout).

Importing it loads nothing heavy, so a training script can use it with or without a sweep around it.

Example:
    >>> from roomscan.sweep import report
    >>> report(step=3, loss=0.25)
    {"step": 3, "loss": 0.25}
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, TextIO

__all__ = ["report"]


def report(step: int | None = None, *, file: TextIO | None = None, **metrics: Any) -> None:
    """Print ``{"step": step, **metrics}`` as one JSON line (flushed) for the sweep agent to read.

    The agent reports the sweep's metric at ``step`` to the pruner (which may stop the program) and scores the
    trial on the last value of each metric. NaN and infinities are written as ``null``.

    Raises:
        TypeError: a metric name is not a string or a value is not JSON-serialisable.
    """
    row: dict[str, Any] = {} if step is None else {"step": int(step)}
    for name, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif hasattr(value, "item"):  # numpy / torch scalars
            value = value.item()
        row[name] = value
    out = file or sys.stdout
    out.write(json.dumps(row) + "\n")
    out.flush()
