"""``roomscan active ...``: active learning. Rank unlabelled photos by how much a committee of models disagrees on
them (``rank``), bring the labels back from Label Studio (``import``), and measure strategies against random on a
labelled pool (``simulate``).

Each command lives in its own module (``active_rank.py``, ``active_import.py``, ``active_simulate.py``), which
registers it on :data:`app`; importing this module registers them all.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    help="Active learning: rank photos by model disagreement, import labels, simulate strategies.",
    no_args_is_help=True,
)

for _module in ("active_rank", "active_import", "active_simulate"):
    importlib.import_module(f"roomscan.cli.{_module}")  # each registers its command on app
