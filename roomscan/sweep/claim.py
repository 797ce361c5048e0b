"""No configuration runs twice, whatever the number of agents: trials decide in trial-number order.

After sampling, a trial waits until every lower-numbered running trial has decided, then decides once:

* ``duplicate``: a lower-numbered trial with the same configuration hash decided to run and did not fail (or is
  an enqueued WAITING trial with that configuration), or a higher-numbered one already runs it;
* ``capped``: ``run_cap`` trials have already decided to run;
* ``run`` otherwise.

The decision is written as the trial's ``roomscan:claim`` system attr ``{"decision", "hash"}``. Decisions are thus
serialised through the storage without a lock: of two trials with one configuration, the higher-numbered one
always sees the lower one's decision. A lower-numbered trial that never decides (its agent died before its first
heartbeat) is failed once its ``roomscan:heartbeat`` is older than ``stale_s``.
"""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Any

from roomscan.sweep.space import SearchSpace, config_hash

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from roomscan.sweep.sweeps import Sweep

__all__ = ["K_CLAIM", "claim", "counts_toward_cap", "is_run", "waiting_hash"]

K_CLAIM = "roomscan:claim"
K_HEARTBEAT = "roomscan:heartbeat"
POLL_S = 0.05
AGENT = f"{socket.gethostname()}:{os.getpid()}"


def is_run(t: FrozenTrial) -> bool:
    c = t.system_attrs.get(K_CLAIM)
    return isinstance(c, dict) and c.get("decision") == "run"


def claim(
    sweep: Sweep, trial_id: int, number: int, values: dict[str, Any], *, stale_s: float, on_wait: Any = None
) -> str:
    """Decide whether trial ``number`` runs ``values``; returns ``run``, ``duplicate:<n>`` or ``capped``."""
    from optuna.trial import TrialState

    h = config_hash(values)
    storage = sweep.study._storage
    space = sweep.space
    first_seen: dict[int, float] = {}
    while True:
        trials = storage.get_all_trials(sweep.study._study_id, deepcopy=False)
        pending = [
            t
            for t in trials
            if t.number < number and t.state == TrialState.RUNNING and K_CLAIM not in t.system_attrs
        ]
        if not pending:
            break
        now = time.monotonic()
        for t in pending:
            beat = t.system_attrs.get(K_HEARTBEAT)
            since = first_seen.setdefault(t.number, now)
            if (time.time() - beat if beat is not None else now - since) > stale_s:
                _fail(storage, t._trial_id)
        if on_wait is not None:
            on_wait()
        time.sleep(POLL_S)
    decision = "run"
    for t in trials:
        if t.number == number:
            continue
        c = t.system_attrs.get(K_CLAIM)
        if (
            isinstance(c, dict)
            and c.get("hash") == h
            and c.get("decision") == "run"
            and t.state != TrialState.FAIL
        ):
            decision = f"duplicate:{t.number}"
            break
        if t.number < number and t.state == TrialState.WAITING and waiting_hash(space, t) == h:
            decision = f"duplicate:{t.number}"
            break
    cap = sweep.config.run_cap
    if decision == "run" and cap is not None:
        runs = sum(1 for t in trials if t.number != number and is_run(t) and counts_toward_cap(t))
        if runs >= cap:
            decision = "capped"
    storage.set_trial_system_attr(trial_id, K_CLAIM, {"decision": decision, "hash": h, "agent": AGENT})
    return decision


def counts_toward_cap(t: FrozenTrial) -> bool:
    """A run counts toward run_cap unless its agent died (then its configuration is re-queued)."""
    from optuna.trial import TrialState

    return t.state != TrialState.FAIL or "error" in t.user_attrs


def waiting_hash(space: SearchSpace, t: FrozenTrial) -> str | None:
    """The configuration hash of an enqueued trial, or None when it fixes only some parameters."""
    fixed = t.system_attrs.get("fixed_params") or {}
    values: dict[str, Any] = {}
    for dim in space.dimensions:
        if not all(n in values and values[n] in ok for n, ok in dim.spec.condition.items()):
            continue
        if dim.distribution is None:
            values[dim.spec.name] = dim.spec.value
        elif dim.optuna_name in fixed:
            values[dim.spec.name] = dim.to_value(fixed[dim.optuna_name])
        else:
            return None
    return config_hash(values)


def _fail(storage: Any, trial_id: int) -> None:
    import optuna
    from optuna.trial import TrialState

    try:
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
        pass
