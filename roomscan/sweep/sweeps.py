"""Sweeps as Optuna studies: create, open, edit, stop, list. The YAML travels with the study (user attrs).

A sweep id is the study name (8 lowercase letters and digits, like W&B's). Study user attrs:
``roomscan:config`` (the YAML mapping), ``roomscan:version`` (bumped by :func:`edit_sweep`), ``roomscan:renamed``
(parameters whose Optuna name changed), ``roomscan:state`` (``running``, ``stopped``, ``finished``),
``roomscan:base_dir`` (where the YAML was, for relative ``program`` paths).
"""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roomscan.sweep.config import SweepConfig
from roomscan.sweep.params import SweepConfigError
from roomscan.sweep.space import SearchSpace
from roomscan.sweep.storage import SweepError, open_storage

if TYPE_CHECKING:
    import optuna

__all__ = ["Sweep", "SweepSummary", "create_sweep", "edit_sweep", "list_sweeps", "open_sweep", "stop_sweep"]

K_CONFIG, K_VERSION, K_RENAMED, K_STATE = (
    "roomscan:config",
    "roomscan:version",
    "roomscan:renamed",
    "roomscan:state",
)
K_BASE, K_CREATED = "roomscan:base_dir", "roomscan:created"


@dataclass
class Sweep:
    """An open sweep: its study, config (at ``version``) and compiled search space."""

    id: str
    study: optuna.Study
    config: SweepConfig
    version: int
    renamed: dict[str, str]
    base_dir: Path

    @property
    def space(self) -> SearchSpace:
        return SearchSpace(self.config.parameters, grid=self.config.method == "grid", renamed=self.renamed)

    @property
    def state(self) -> str:
        return str(self.study.user_attrs.get(K_STATE, "running"))

    def refresh(self, attrs: dict[str, Any] | None = None) -> bool:
        """Re-read the config (from ``attrs``, the study's user attrs, when given); True when ``sweep edit``
        changed it since it was opened."""
        if attrs is None:
            attrs = self.study._storage.get_study_user_attrs(self.study._study_id)
        if int(attrs.get(K_VERSION, 1)) == self.version:
            return False
        self.config = SweepConfig.from_dict(attrs[K_CONFIG], where=f"sweep {self.id}")
        self.version, self.renamed = int(attrs[K_VERSION]), dict(attrs.get(K_RENAMED, {}))
        return True


@dataclass(frozen=True)
class SweepSummary:
    """One row of ``sweep list``."""

    id: str
    name: str | None
    method: str
    state: str
    trials: int
    best: list[float] | None
    created: str


def create_sweep(
    config: SweepConfig,
    *,
    storage: str | None = None,
    enqueue: list[dict[str, Any]] = (),  # type: ignore[assignment]
    base_dir: str | Path = ".",
    sweep_id: str | None = None,
) -> str:
    """Create a study for ``config`` and return the sweep id.

    Args:
        config: the validated sweep.
        storage: storage URL (see :func:`~roomscan.sweep.storage.open_storage`).
        enqueue: known-good configurations to run first (flat dotted or nested parameter values).
        base_dir: folder relative ``program`` paths resolve against (the YAML's folder).
        sweep_id: a chosen id (default: random).

    Raises:
        SweepConfigError: an enqueued configuration names an unknown parameter or a value outside its choices.
    """
    import optuna

    space = SearchSpace(config.parameters, grid=config.method == "grid")
    fixed = [_fixed(space, values, f"enqueue[{i}]") for i, values in enumerate(enqueue)]
    sweep_id = sweep_id or "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    st = open_storage(storage)
    study = optuna.create_study(storage=st, study_name=sweep_id, directions=config.directions)
    for key, value in {
        K_CONFIG: dict(config.raw),
        K_VERSION: 1,
        K_RENAMED: {},
        K_STATE: "running",
        K_BASE: str(Path(base_dir).resolve()),
        K_CREATED: time.strftime("%Y-%m-%d %H:%M:%S"),
    }.items():
        study.set_user_attr(key, value)
    for params in fixed:
        study.enqueue_trial(params, skip_if_exists=True)
    return sweep_id


def _fixed(space: SearchSpace, values: Any, where: str) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise SweepConfigError(f"{where}: expected a mapping of parameter values, got {values!r}")
    try:
        return space.fixed_params(values)
    except ValueError as exc:
        raise SweepConfigError(f"{where}: {exc}") from None


def open_sweep(sweep_id: str, *, storage: str | None = None, retry_stale: bool = True) -> Sweep:
    """Open an existing sweep.

    Raises:
        SweepError: no sweep with that id in the storage (the message lists the ones there).
    """
    import optuna

    st = open_storage(storage, retry_stale=retry_stale)
    try:
        study = optuna.load_study(study_name=sweep_id, storage=st)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(st, include_best_trial=False)]
        raise SweepError(
            f"no sweep {sweep_id!r} in {storage or 'the default storage'} "
            f"(sweeps there: {', '.join(names) or 'none'})"
        ) from None
    attrs = study.user_attrs
    if K_CONFIG not in attrs:
        raise SweepError(
            f"study {sweep_id!r} was not created by roomscan sweep (it has no stored sweep config)"
        )
    config = SweepConfig.from_dict(attrs[K_CONFIG], where=f"sweep {sweep_id}")
    return Sweep(
        sweep_id,
        study,
        config,
        int(attrs.get(K_VERSION, 1)),
        dict(attrs.get(K_RENAMED, {})),
        Path(attrs.get(K_BASE, ".")),
    )


def edit_sweep(
    sweep_id: str, config: SweepConfig, *, storage: str | None = None, enqueue: list[dict[str, Any]] = ()
) -> list[str]:  # type: ignore[assignment]
    """Replace a sweep's config (search space, budget, method...); finished trials stay. Running agents pick the
    new config up before their next trial. Returns a line per change.

    A parameter whose Optuna distribution can no longer share the old name (categorical choices changed, a
    float became categorical, log scale toggled) is sampled under ``<name>@v<version>`` from now on.

    Raises:
        SweepConfigError: the metrics or their goals changed (Optuna fixes a study's directions).
    """
    from optuna.distributions import check_distribution_compatibility

    sweep = open_sweep(sweep_id, storage=storage)
    old = sweep.config
    if [(m.name, m.goal) for m in old.metrics] != [(m.name, m.goal) for m in config.metrics]:
        raise SweepConfigError(
            f"metric: a sweep's metrics and goals cannot change (it has "
            f"{[(m.name, m.goal) for m in old.metrics]}); create a new sweep instead"
        )
    version = sweep.version + 1
    renamed = dict(sweep.renamed)
    recorded: dict[str, Any] = {}
    for t in sweep.study.get_trials(deepcopy=False):
        recorded.update(t.distributions)
    changes: list[str] = []
    new_space = SearchSpace(config.parameters, grid=config.method == "grid", renamed=renamed)
    old_names = {p.name: p for p in old.parameters}
    for dim in new_space.dimensions:
        name = dim.spec.name
        if name not in old_names:
            changes.append(f"+ {name}")
        elif old_names[name] != dim.spec:
            changes.append(f"~ {name}")
        if dim.distribution is None or dim.optuna_name not in recorded:
            continue
        try:
            check_distribution_compatibility(recorded[dim.optuna_name], dim.distribution)
        except ValueError:
            renamed[name] = f"{name}@v{version}"
            changes.append(
                f"  {name} is sampled as {renamed[name]} from now on (its kind or choices changed)"
            )
    changes += [f"- {n}" for n in old_names if n not in {d.spec.name for d in new_space.dimensions}]
    for key in ("method", "run_cap", "early_terminate", "program", "command", "train"):
        if old.raw.get(key) != config.raw.get(key):
            changes.append(f"{key}: {old.raw.get(key)!r} -> {config.raw.get(key)!r}")
    new_space = SearchSpace(config.parameters, grid=config.method == "grid", renamed=renamed)
    fixed = [_fixed(new_space, values, f"enqueue[{i}]") for i, values in enumerate(enqueue)]
    study = sweep.study
    study.set_user_attr(K_CONFIG, dict(config.raw))
    study.set_user_attr(K_RENAMED, renamed)
    study.set_user_attr(K_VERSION, version)
    if sweep.state == "finished":
        study.set_user_attr(K_STATE, "running")
    for params in fixed:
        study.enqueue_trial(params, skip_if_exists=True)
    return changes


def stop_sweep(sweep_id: str, *, storage: str | None = None) -> None:
    """Ask every agent to stop after its current trial (``sweep edit`` or a new ``create`` restarts work)."""
    open_sweep(sweep_id, storage=storage).study.set_user_attr(K_STATE, "stopped")


def list_sweeps(storage: str | None = None) -> list[SweepSummary]:
    """Every sweep in the storage, oldest first."""
    import optuna

    st = open_storage(storage)
    out = []
    for s in optuna.get_all_study_summaries(st, include_best_trial=False):
        attrs = s.user_attrs
        if K_CONFIG not in attrs:
            continue
        raw = attrs[K_CONFIG]
        study = optuna.load_study(study_name=s.study_name, storage=st)
        best: list[float] | None = None
        try:
            best = list(study.best_trial.values) if len(study.directions) == 1 else None
        except ValueError:
            pass
        out.append(
            SweepSummary(
                s.study_name,
                raw.get("name"),
                raw.get("method", "?"),
                str(attrs.get(K_STATE, "running")),
                s.n_trials,
                best,
                str(attrs.get(K_CREATED, "")),
            )
        )
    return sorted(out, key=lambda x: x.created)
