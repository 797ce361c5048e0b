"""Starting Ray for a bulk job: a local Ray by default, a cluster with ``address``; one already started (a test
session, a notebook) is used as it is."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from roomscan.errors import RoomscanError


@contextmanager
def ray_session(address: str | None = None) -> Iterator[None]:
    """Ray for the duration of the block: connect to ``address`` (``ray://host:10001``, ``auto``) or start a local
    one, and shut it down afterwards; an already initialised Ray is left running."""
    import ray

    if ray.is_initialized():
        yield
        return
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RoomscanError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {exc}") from exc
    try:
        yield
    finally:
        ray.shutdown()


def quiet_ray_data() -> None:
    """Our own progress bar replaces Ray Data's (two bars on one terminal garble each other)."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
