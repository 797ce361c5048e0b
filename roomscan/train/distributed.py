"""Data-parallel training under ``torchrun``: which process this is, its device, the collectives ``fit`` uses.

``torchrun --nproc-per-node N`` starts N copies of the command with ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT`` set. :func:`process_group` reads them, joins the process group (NCCL on CUDA,
one GPU per local rank; gloo on CPU) and leaves it at the end or on error. Without those variables (or with
``WORLD_SIZE=1``) it yields a one-process :class:`World` whose collectives return their input and touch no
``torch.distributed`` state, so a plain run is unchanged.

Each process trains on its shard of every epoch's order (:meth:`World.sampler`); DistributedDataParallel averages
the gradients, so N processes at ``batch_size`` b step like one process at ``N * b`` (BatchNorm statistics aside:
on CUDA ``fit`` synchronises them with SyncBatchNorm, on CPU each process normalises over its own b images).

Example:
    >>> with process_group("cpu") as world:   # doctest: +SKIP
    ...     loss = world.mean(local_loss)     # the same value on every rank
    ...     run_dir = world.on_main(lambda: make_run_dir())   # rank 0 works, the others wait for its answer
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from roomscan.errors import RoomscanError

T = TypeVar("T")

# Rank 0 evaluates and writes files while the others wait at a collective: allow for a long validation pass.
TIMEOUT = timedelta(minutes=60)

__all__ = [
    "ONE_PROCESS", "DistributedError", "World", "data_parallel", "is_main_process", "process_group", "world_from_env",
]


class DistributedError(RoomscanError):
    """The torchrun environment is inconsistent, or another rank failed; the message says which and why."""


@dataclass(frozen=True)
class World:
    """This process's place among the training processes.

    Attributes:
        size: number of processes (``WORLD_SIZE``); 1 for a plain run.
        rank: this process's global rank; rank 0 logs, evaluates and writes the run directory.
        local_rank: rank on this machine; selects the GPU (``cuda:LOCAL_RANK``).
        device: the device this process trains on.
    """

    size: int = 1
    rank: int = 0
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sampler(self, n: int) -> Any:
        """A ``DistributedSampler`` over ``n`` positions of an epoch's order for this rank; ``None`` for one process.

        ``shuffle=False``: :func:`~roomscan.train.data.epoch_order` has already shuffled the epoch, identically on
        every rank and as a one-process run would, so the ranks' batches at step k together are that run's batch k
        (rank r takes positions r, r + N, r + 2N... of the order). When N does not divide ``n``, the first
        positions are repeated so every rank runs the same number of steps (DDP needs it).
        """
        if self.size == 1:
            return None
        from torch.utils.data.distributed import DistributedSampler

        positions: Any = range(n)  # all the sampler reads of its dataset is len()
        return DistributedSampler(positions, num_replicas=self.size, rank=self.rank, shuffle=False)

    def sum(self, values: Mapping[str, float]) -> dict[str, float]:
        """Each value summed over all ranks; a key some rank lacks counts 0 there (a loss its batches never had)."""
        if self.size == 1:
            return dict(values)
        keys = sorted({k for rank_keys in self.gather(sorted(values)) for k in rank_keys})
        return dict(zip(keys, self._all_reduce([float(values.get(k, 0.0)) for k in keys])))

    def mean(self, value: float) -> float:
        """``value`` averaged over all ranks."""
        return value if self.size == 1 else self._all_reduce([value])[0] / self.size

    def _all_reduce(self, numbers: list[float]) -> list[float]:
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(numbers, dtype=torch.float64, device=self.device)  # NCCL reduces only CUDA tensors
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return [float(x) for x in tensor.tolist()]

    def gather(self, obj: T) -> list[T]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if self.size == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only; the other ranks wait for it and return its (picklable) result.

        If ``fn`` raises, rank 0 re-raises it and the other ranks raise :class:`DistributedError` naming it,
        rather than waiting at their next collective until the timeout.
        """
        if self.size == 1:
            return fn()
        import torch.distributed as dist

        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except BaseException as exc:
                dist.broadcast_object_list([("error", f"{type(exc).__name__}: {exc}")], src=0)
                raise
        dist.broadcast_object_list(box, src=0)
        status, payload = box[0]
        if status == "error":
            raise DistributedError(f"rank {self.rank}: stopping because rank 0 failed ({payload})")
        return payload  # type: ignore[no-any-return]


ONE_PROCESS = World()


def data_parallel(model: Any, world: World, *, find_unused_parameters: bool = False) -> Any:
    """``model`` wrapped in DistributedDataParallel when there are several processes, else ``model`` itself.

    On CUDA its BatchNorm layers become SyncBatchNorm first (in place, same parameters): statistics over the global
    batch, as one process would compute them. The unwrapped ``model`` is what to evaluate and save.
    ``find_unused_parameters``: some steps may leave parameters out of the loss on some rank (DDP then has to
    look for them each step, a small cost).
    """
    if world.size == 1:
        return model
    import torch
    from torch.nn.parallel import DistributedDataParallel

    on_cuda = world.device.startswith("cuda")
    if on_cuda:
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    # DDP broadcasts rank 0's weights and buffers on construction: every rank starts from the same model.
    return DistributedDataParallel(model, device_ids=[world.local_rank] if on_cuda else None,
                                   find_unused_parameters=find_unused_parameters)


def _env_int(environ: Mapping[str, str], key: str, default: int) -> int:
    raw = environ.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise DistributedError(f"{key}={raw!r} is not an integer (torchrun sets it; launch with torchrun)") from exc


def world_from_env(device: str, environ: Mapping[str, str] | None = None) -> World:
    """The :class:`World` torchrun's variables describe, on ``device`` (``cuda`` becomes ``cuda:LOCAL_RANK``).

    Raises:
        DistributedError: inconsistent variables, or an explicit ``cuda:N`` with several processes.
    """
    environ = os.environ if environ is None else environ
    size = _env_int(environ, "WORLD_SIZE", 1)
    rank = _env_int(environ, "RANK", 0)
    local_rank = _env_int(environ, "LOCAL_RANK", rank)
    if size < 1 or not 0 <= rank < size or local_rank < 0:
        raise DistributedError(f"WORLD_SIZE={size}, RANK={rank}, LOCAL_RANK={local_rank} are inconsistent")
    if size == 1:
        return World(device=device)
    if device.startswith("cuda:"):
        raise DistributedError(f"--device {device} with {size} processes: each process uses cuda:LOCAL_RANK; "
                               "pass --device cuda (or auto)")
    return World(size, rank, local_rank, f"cuda:{local_rank}" if device == "cuda" else device)


@contextmanager
def process_group(device: str) -> Iterator[World]:
    """Join torchrun's process group for the duration of the block (when there is one); yield this process's World.

    ``device`` is the resolved device (``cpu``, ``cuda``, ``cuda:N``). With several processes, CUDA uses NCCL and
    the GPU ``cuda:LOCAL_RANK``, CPU uses gloo. A process group initialised by the caller is used and left
    alone; one initialised here is destroyed on the way out, error or not.

    Raises:
        DistributedError: see :func:`world_from_env`; a local rank without a GPU.
    """
    world = world_from_env(device)
    if world.size == 1:
        yield world
        return
    import torch
    import torch.distributed as dist

    on_cuda = world.device.startswith("cuda")
    if on_cuda:
        if world.local_rank >= torch.cuda.device_count():
            raise DistributedError(f"LOCAL_RANK={world.local_rank} but torch sees {torch.cuda.device_count()} GPU(s); "
                                   "use at most one process per GPU (--nproc-per-node)")
        torch.cuda.set_device(world.local_rank)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend="nccl" if on_cuda else "gloo", timeout=TIMEOUT,
                                device_id=torch.device(world.device) if on_cuda else None)
    elif (dist.get_world_size(), dist.get_rank()) != (world.size, world.rank):
        raise DistributedError(f"the initialised process group (size {dist.get_world_size()}, rank "
                               f"{dist.get_rank()}) disagrees with WORLD_SIZE={world.size}, RANK={world.rank}")
    try:
        yield world
    finally:
        if owned and dist.is_initialized():
            dist.destroy_process_group()


def is_main_process(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process is rank 0 by torchrun's ``RANK`` (true in a plain run); for printing only once."""
    environ = os.environ if environ is None else environ
    return environ.get("RANK", "0") in ("", "0")
