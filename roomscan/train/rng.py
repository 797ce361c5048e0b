"""Random state of a training run: seeded once, captured in each checkpoint, restored on resume, one per process.

The data order does not depend on it (:func:`~roomscan.train.data.epoch_order` draws from ``seed`` and the epoch);
what does is the model's own randomness (RT-DETR's denoising queries, dropout). Under torchrun each rank has its
own torch stream, and a checkpoint keeps every rank's state (``rng_ranks``) next to rank 0's (``rng``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np

from roomscan.train.distributed import ONE_PROCESS, World

__all__ = ["after_seed", "capture", "from_checkpoint", "restore", "seed_everything"]


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def capture(world: World = ONE_PROCESS) -> dict[str, Any]:
    """Python's, numpy's, torch's and CUDA's generator states (picklable)."""
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        # One GPU per process under torchrun: reading every GPU's state would open a CUDA context on each.
        state["cuda"] = torch.cuda.get_rng_state_all() if world.size == 1 else [torch.cuda.get_rng_state()]
    return state


def restore(state: dict[str, Any], world: World = ONE_PROCESS) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        if world.size == 1:
            torch.cuda.set_rng_state_all(state["cuda"])
        elif world.device.startswith("cuda"):
            torch.cuda.set_rng_state(state["cuda"][0])


def after_seed(seed: int, world: World = ONE_PROCESS) -> dict[str, Any]:
    """The state right after seeding training: the initial-loss probe must not shift what training draws.

    Ranks above 0 get their own torch stream (denoising noise, dropout), as different images would in one process.
    """
    import torch

    seed_everything(seed + 1)
    if world.rank:
        torch.manual_seed(seed + 1 + (world.rank << 32))
    return capture(world)


def from_checkpoint(checkpoint: dict[str, Any], world: World, log: Callable[[str], None]) -> dict[str, Any]:
    """This rank's state in ``checkpoint``: its own when the run had as many processes, else rank 0's."""
    per_rank = checkpoint.get("rng_ranks")
    if per_rank is not None and len(per_rank) == world.size:
        return per_rank[world.rank]  # type: ignore[no-any-return]
    if world.size > 1 or per_rank is not None:
        log(f"the checkpoint was written by {len(per_rank) if per_rank else 1} process(es), this run has "
            f"{world.size}: the model's random draws (not the data order) differ from an uninterrupted run")
    return checkpoint["rng"]  # type: ignore[no-any-return]
