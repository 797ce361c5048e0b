"""Run a trial as a program: W&B's ``command`` macros, metrics read from JSON lines on stdout.

The program prints one JSON object per line, ``{"step": 3, "loss": 0.2}`` (or calls
:func:`roomscan.sweep.report`, which does). Lines that are not JSON objects are ordinary output. Each line with the
sweep's metric is reported to Optuna at its ``step`` (default: a running count) so the pruner can stop the trial;
a pruned program is terminated (SIGTERM, then SIGKILL). The trial's value is the last value of each metric.

Command macros (W&B's): ``${env}`` (``/usr/bin/env``), ``${interpreter}`` (the Python running the agent),
``${program}``, ``${args}`` (``--name=value`` each), ``${args_no_hyphens}`` (``name=value``, Hydra's override
syntax), ``${args_no_boolean_flags}`` (``--flag`` for true, nothing for false), ``${args_json}`` (one JSON argument),
``${args_json_file}`` (path of a JSON file), ``${envvar:NAME}``. The per-parameter macros name each parameter by
its dotted name (``trainer.lr=0.001`` for ``trainer.lr`` or for ``lr`` nested under ``trainer``); the JSON ones
keep the nesting. Anything else, ``${now:%Y%m%d}`` or ``${oc.env:HOME}`` for Hydra included, passes through
untouched, as with W&B. Default: ``${env} ${interpreter} ${program} ${args}``. The program also gets ``ROOMSCAN_SWEEP_ID``, ``ROOMSCAN_SWEEP_TRIAL`` and ``ROOMSCAN_SWEEP_PARAMS``.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roomscan.sweep.space import flatten

if TYPE_CHECKING:
    import optuna

    from roomscan.sweep.sweeps import Sweep

__all__ = ["DEFAULT_COMMAND", "ProgramError", "build_command", "program_objective"]

DEFAULT_COMMAND = ("${env}", "${interpreter}", "${program}", "${args}")
_ENVVAR = re.compile(r"\$\{envvar:([A-Za-z_][A-Za-z0-9_]*)\}")
TERM_WAIT_S = 5.0


class ProgramError(RuntimeError):
    """A trial's program failed; ``details`` holds the tail of its output for the trial's ``error`` attr."""

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = f"{message}\n{details}".strip()


def _arg(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def build_command(
    command: tuple[str, ...] | None,
    program: str | None,
    params: dict[str, Any],
    json_file: str | None = None,
    *,
    names: set[str] | None = None,
) -> list[str]:
    """Expand W&B's macros in ``command`` (default :data:`DEFAULT_COMMAND`) for ``params``.

    Args:
        params: the trial's values, nested as the program's config (``{"trainer": {"lr": 0.1}}``).
        names: the sweep's dotted parameter names; the per-parameter macros pass ``trainer.lr=0.1`` for each
            (without them, each top-level key is one argument).

    Example:
        >>> build_command(None, "train.py", {"lr": 0.1})[-2:]
        ['train.py', '--lr=0.1']
        >>> build_command(("${args_no_hyphens}",), None, {"trainer": {"lr": 0.1}}, names={"trainer.lr"})
        ['trainer.lr=0.1']
    """
    flat = params if names is None else flatten(params, names)
    out: list[str] = []
    for part in command or DEFAULT_COMMAND:
        if part == "${env}":
            out += [] if os.name == "nt" else ["/usr/bin/env"]
        elif part == "${interpreter}":
            out.append(sys.executable)
        elif part == "${args}":
            out += [f"--{k}={_arg(v)}" for k, v in flat.items()]
        elif part == "${args_no_hyphens}":
            out += [f"{k}={_arg(v)}" for k, v in flat.items()]
        elif part == "${args_no_boolean_flags}":
            out += [f"--{k}" if v is True else f"--{k}={_arg(v)}" for k, v in flat.items() if v is not False]
        elif part == "${args_json}":
            out.append(json.dumps(params))
        elif part == "${args_json_file}":
            if json_file is None:
                raise ValueError("${args_json_file} needs a file")
            out.append(json_file)
        else:
            text = part.replace("${program}", program or "")
            out.append(_ENVVAR.sub(lambda m: os.environ.get(m.group(1), ""), text))
    return out


def program_objective(trial: optuna.Trial, params: dict[str, Any], sweep: Sweep) -> float | list[float]:
    """Run the sweep's program for ``params``; the metric value(s) it reported last.

    Raises:
        ProgramError: non-zero exit, or a metric never reported (with the output's tail).
        optuna.TrialPruned: the pruner stopped the trial (the program is terminated).
    """
    import optuna

    cfg = sweep.config
    program = cfg.program
    if (
        program
        and not Path(program).is_absolute()
        and not Path(program).exists()
        and (sweep.base_dir / program).exists()
    ):
        program = str(sweep.base_dir / program)
    with tempfile.TemporaryDirectory(prefix="roomscan-sweep-") as tmp:
        json_file = os.path.join(tmp, "args.json")
        Path(json_file).write_text(json.dumps(params))
        argv = build_command(cfg.command, program, params, json_file, names={p.name for p in cfg.parameters})
        env = {
            **os.environ,
            "ROOMSCAN_SWEEP_ID": sweep.id,
            "ROOMSCAN_SWEEP_TRIAL": str(trial.number),
            "ROOMSCAN_SWEEP_PARAMS": json.dumps(params),
            "PYTHONUNBUFFERED": "1",
        }
        try:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",  # a program printing invalid UTF-8 must not crash the agent
                env=env,
                bufsize=1,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, async-signal-safe
            )
        except OSError as exc:
            raise ProgramError(f"cannot start {' '.join(argv)}: {exc}", "") from None
        err_tail: collections.deque[str] = collections.deque(maxlen=40)
        reader = threading.Thread(target=lambda: err_tail.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
        reader.start()
        out_tail: collections.deque[str] = collections.deque(maxlen=20)
        last: dict[str, float] = {}
        curves: dict[str, list[list[float]]] = {m.name: [] for m in cfg.metrics}
        auto_step = 0
        single = None if cfg.multi_objective else cfg.metrics[0].name
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                row = _json_row(line)
                if row is None:
                    out_tail.append(line)
                    continue
                step = row.get("step", row.get("_step", auto_step))
                auto_step = int(step) + 1 if isinstance(step, (int, float)) else auto_step + 1
                for name, value in row.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        last[name] = float(value)
                        if name in curves:
                            curves[name].append([step, float(value)])
                if single is not None and single in row and isinstance(step, (int, float)):
                    trial.report(float(row[single]), int(step))
                    if trial.should_prune():
                        _terminate(proc)
                        reader.join(timeout=1)
                        raise optuna.TrialPruned(f"pruned at step {step}")
            code = proc.wait()
        except BaseException:
            _terminate(proc)  # whatever went wrong here (storage, a kill), never leave the program running
            raise
        reader.join(timeout=5)
    if cfg.multi_objective:
        trial.set_user_attr("curves", {k: v[-500:] for k, v in curves.items()})
    tail = "".join(err_tail)[-3000:] or "".join(out_tail)[-3000:]
    if code != 0:
        raise ProgramError(f"program exited with status {code}", tail)
    missing = [m.name for m in cfg.metrics if m.name not in last]
    if missing:
        raise ProgramError(
            f"the program never reported {', '.join(missing)} (print JSON lines such as "
            f'{{"step": 1, "{missing[0]}": 0.5}} or call roomscan.sweep.report)',
            tail,
        )
    values = [last[m.name] for m in cfg.metrics]
    return values[0] if len(values) == 1 else values


def _json_row(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) else None


def _terminate(proc: subprocess.Popen[str]) -> None:
    for sig, wait in ((signal.SIGTERM, TERM_WAIT_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _die_with_parent() -> None:
    """Linux: the program gets SIGKILL when the agent dies, so a killed agent leaves no orphan training."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
