"""The sweep agent: ask Optuna for a trial, claim its configuration, run the objective, tell Optuna.

Any number of agents, on one machine or many, can run one sweep against one storage. Each trial:

1. ``study.ask()`` (an enqueued configuration first, else the sampler's), heartbeat started;
2. sample the parameters (:class:`~roomscan.sweep.space.SearchSpace`), :func:`~roomscan.sweep.claim.claim` the
   configuration: duplicates (another agent's, a grid point re-issued) and trials over ``run_cap`` are told FAIL
   with ``roomscan:claim`` saying why, and never run;
3. run the objective (a program, ``roomscan train``, or any callable), which reports intermediate values so the
   pruner can stop it; exceptions are recorded (``error`` user attr, state FAIL) and the sweep goes on.

A killed agent's trial stops heart-beating; after the grace period the next agent fails it and re-queues its
configuration once (Optuna's ``RetryHeartbeatStaleTrialCallback``).
"""

from __future__ import annotations

import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from roomscan.sweep.claim import K_HEARTBEAT, claim, counts_toward_cap, is_run
from roomscan.sweep.engine import make_pruner, make_sampler
from roomscan.sweep.space import nest
from roomscan.sweep.storage import HEARTBEAT_S
from roomscan.sweep.sweeps import K_STATE, Sweep, open_sweep

if TYPE_CHECKING:
    import optuna

__all__ = ["AgentResult", "Objective", "run_agent"]

# objective(trial, params, sweep) -> the metric value(s); params are nested like the program's config.
Objective = Callable[["optuna.Trial", dict[str, Any], Sweep], "float | Sequence[float]"]
MAX_DUPLICATES = 50  # consecutive duplicates before an agent concludes the space is exhausted


@dataclass(frozen=True)
class AgentResult:
    """What one agent did."""

    ran: int
    complete: int
    pruned: int
    failed: int
    skipped: int
    reason: str


def run_agent(
    sweep_id: str,
    *,
    storage: str | None = None,
    count: int | None = None,
    objective: Objective | None = None,
    retry_stale: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> AgentResult:
    """Run trials of a sweep until ``count`` ran, the sweep is done (grid covered, ``run_cap``, metric target,
    ``sweep stop``) or the space is exhausted.

    Args:
        sweep_id: the id ``create_sweep`` returned.
        storage: the sweep's storage URL.
        count: trials to run (duplicates skipped do not count); ``None``: until the sweep is done.
        objective: a callable ``(trial, params, sweep) -> value(s)``; default: the config's ``program``/``command``
            as a subprocess, or ``roomscan train`` in-process when the config has ``train``.
        retry_stale: re-queue the configuration of a trial whose agent died.
        log: one line per trial.
    """
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # we beat the heartbeat ourselves around ask/tell (see _heartbeat), which Optuna only expects from optimize()
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    sweep = open_sweep(sweep_id, storage=storage, retry_stale=retry_stale)
    _install(sweep)
    counts = {"complete": 0, "pruned": 0, "failed": 0, "skipped": 0}
    ran, streak, reason, stale_checked = 0, 0, f"ran {count} trial(s)", 0.0
    while count is None or ran < count:
        attrs = sweep.study._storage.get_study_user_attrs(
            sweep.study._study_id
        )  # one read: state and version
        if sweep.refresh(attrs):
            _install(sweep)
            log(f"sweep config changed (version {sweep.version}); using it from now on")
        state = str(attrs.get(K_STATE, "running"))
        if state != "running":
            reason = f"sweep is {state}"
            break
        if time.monotonic() - stale_checked > HEARTBEAT_S:
            _fail_stale(sweep, retry_stale)
            stale_checked = time.monotonic()
        cap = sweep.config.run_cap
        if cap is not None and sum(is_run(t) and counts_toward_cap(t) for t in _trials(sweep)) >= cap:
            reason = f"run_cap {cap} reached"
            _finish(sweep)
            break
        if (
            sweep.config.method == "grid"
            and sweep.study.sampler.is_exhausted(sweep.study)
            and not sweep.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        ):  # type: ignore[attr-defined]
            reason = "grid covered"
            _finish(sweep)
            break
        trial = sweep.study.ask()
        with _heartbeat(sweep, trial._trial_id):
            values = sweep.space.sample(trial)
            try:
                decision = claim(
                    sweep,
                    trial._trial_id,
                    trial.number,
                    values,
                    stale_s=3 * HEARTBEAT_S,
                    on_wait=lambda: _fail_stale(sweep, retry_stale),
                )
            except optuna.exceptions.UpdateFinishedTrialError:
                # Another agent judged this trial stale while it waited (a slow storage): drop it, go on.
                counts["skipped"] += 1
                continue
            if decision != "run":
                _tell(sweep, trial, state=optuna.trial.TrialState.FAIL)
                counts["skipped"] += 1
                if decision == "capped":
                    reason = f"run_cap {sweep.config.run_cap} reached"
                    _finish(sweep)
                    break
                if _of_running(sweep, decision):
                    # another agent is running it (e.g. the grid's last point): wait, it may finish or die
                    time.sleep(min(1.0, HEARTBEAT_S))
                    continue
                streak += 1
                if streak >= MAX_DUPLICATES:
                    reason = f"{MAX_DUPLICATES} duplicate configurations in a row: the search space looks exhausted"
                    break
                continue
            streak = 0
            ran += 1
            outcome = _run_trial(sweep, trial, values, objective)
        counts[outcome] += 1
        frozen = sweep.study._storage.get_trial(trial._trial_id)
        log(_line(frozen, sweep))
        if outcome == "complete" and _target_reached(sweep, frozen.values):
            reason = "metric target reached"
            _finish(sweep)
            break
    return AgentResult(ran, counts["complete"], counts["pruned"], counts["failed"], counts["skipped"], reason)


def _of_running(sweep: Sweep, decision: str) -> bool:
    from optuna.trial import TrialState

    if not decision.startswith("duplicate:"):
        return False
    number = int(decision.split(":")[1])
    return any(t.number == number and t.state == TrialState.RUNNING for t in _trials(sweep))


def _trials(sweep: Sweep) -> list[optuna.trial.FrozenTrial]:
    return sweep.study.get_trials(deepcopy=False)


def _install(sweep: Sweep) -> None:
    sweep.study.sampler = make_sampler(sweep.config, sweep.space)
    sweep.study.pruner = make_pruner(sweep.config)


def _run_trial(sweep: Sweep, trial: optuna.Trial, values: dict[str, Any], objective: Objective | None) -> str:
    import optuna

    trial.set_user_attr("config", values)
    fn = objective or default_objective(sweep)
    try:
        result = fn(trial, nest(values), sweep)
    except optuna.TrialPruned:
        _tell(sweep, trial, state=optuna.trial.TrialState.PRUNED)
        return "pruned"
    except KeyboardInterrupt:
        trial.set_user_attr("error", "interrupted (Ctrl-C)")
        _tell(sweep, trial, state=optuna.trial.TrialState.FAIL)
        raise
    except Exception as exc:  # noqa: BLE001 - a failing trial is data, not the end of the sweep
        tail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        trial.set_user_attr("error", (getattr(exc, "details", None) or tail)[-4000:])
        _tell(sweep, trial, state=optuna.trial.TrialState.FAIL)
        return "failed"
    values_out = [result] if isinstance(result, (int, float)) else list(result)
    _tell(sweep, trial, values=values_out)
    return "complete"


def default_objective(sweep: Sweep) -> Objective:
    """The objective a config implies: ``train`` in-process, else the program as a subprocess."""
    if sweep.config.train is not None:
        from roomscan.sweep.train_objective import train_objective

        return train_objective
    from roomscan.sweep.program import program_objective

    return program_objective


def _tell(sweep: Sweep, trial: optuna.Trial, **kwargs: Any) -> None:
    try:
        sweep.study.tell(trial, skip_if_finished=True, **kwargs)
    except RuntimeError as exc:
        # GridSampler.after_trial calls study.stop() when the grid is covered, which Optuna allows only inside
        # optimize(); the trial is stored by then and the agent sees the covered grid itself.
        if "Study.stop" not in str(exc):
            raise


def _finish(sweep: Sweep) -> None:
    if sweep.state == "running":
        sweep.study.set_user_attr(K_STATE, "finished")


def _target_reached(sweep: Sweep, values: list[float] | None) -> bool:
    m = sweep.config.metrics[0]
    if sweep.config.multi_objective or m.target is None or not values:
        return False
    return values[0] <= m.target if m.goal == "minimize" else values[0] >= m.target


@contextmanager
def _heartbeat(sweep: Sweep, trial_id: int) -> Iterator[None]:
    """Beat every HEARTBEAT_S: Optuna's heartbeat where the storage has one (RDB), else our
    ``roomscan:heartbeat`` trial attr (journal)."""
    from optuna.storages._heartbeat import BaseHeartbeat

    storage = sweep.study._storage
    stop = threading.Event()
    optuna_beat = isinstance(storage, BaseHeartbeat) and bool(storage.get_heartbeat_interval())

    def beat() -> None:
        try:
            if optuna_beat:
                storage.record_heartbeat(trial_id)  # what Optuna's fail_stale_trials reads
            # What claim() reads on every storage: a trial waiting on a lower one is judged by real beats.
            storage.set_trial_system_attr(trial_id, K_HEARTBEAT, time.time())
        except Exception:  # noqa: BLE001, S110 - the trial finished meanwhile or the storage blinked: next beat retries
            pass

    beat()

    def loop() -> None:
        while not stop.wait(HEARTBEAT_S):
            beat()

    thread = threading.Thread(target=loop, daemon=True, name=f"sweep-heartbeat-{trial_id}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _fail_stale(sweep: Sweep, retry: bool) -> None:
    """Fail trials whose agent stopped beating; re-queue their configuration once."""
    import optuna
    from optuna.storages._heartbeat import BaseHeartbeat
    from optuna.trial import TrialState

    storage = sweep.study._storage
    if isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval():
        optuna.storages.fail_stale_trials(sweep.study)
        return
    grace = 3 * HEARTBEAT_S
    for t in sweep.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = t.system_attrs.get(K_HEARTBEAT)
        if beat is None or time.time() - beat <= grace:
            continue
        try:
            if not storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                continue
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
            continue
        if retry:
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)(
                sweep.study, storage.get_trial(t._trial_id)
            )


def _line(t: optuna.trial.FrozenTrial, sweep: Sweep) -> str:
    cfg = ", ".join(f"{k}={_fmt(v)}" for k, v in t.user_attrs.get("config", {}).items())
    if t.values:
        result = ", ".join(f"{m.name}={v:.6g}" for m, v in zip(sweep.config.metrics, t.values, strict=False))
    elif t.user_attrs.get("error"):
        result = "error: " + t.user_attrs["error"].strip().splitlines()[-1][:200]
    else:
        result = ""
    return f"trial {t.number} {t.state.name.lower()}: {cfg}  {result}".rstrip()


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
