"""Fine-tune a DETR-family detector (RT-DETRv2, D-FINE) through transformers: read top to bottom.

``build_model`` -> ``train_one_epoch`` / ``predict`` -> ``fit`` (the whole run: split, cache, checkpoints,
resume, validation and early stopping, metrics) and ``overfit_batch`` (the sanity check). Both model
families go through ``AutoModelForObjectDetection`` with labels ``[{class_labels, boxes (normalised cxcywh)}]``.

Example:
    >>> from roomscan.train import TrainConfig, fit
    >>> run_dir = fit(TrainConfig(data="data/amenities", model="PekingU/rtdetr_v2_r18vd", epochs=12))  # doctest: +SKIP
    >>> get_detector(run_dir / "model")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from roomscan.data.dataset import DatasetError, DetectionDataset
from roomscan.detection.core import Detections, make_detections
from roomscan.errors import RoomscanError
from roomscan.train import rng, runs
from roomscan.train.config import CONFIG_FILE, TrainConfig
from roomscan.train.data import Batch, ImageCache, default_cache_dir, iter_batches
from roomscan.train.distributed import ONE_PROCESS, World, data_parallel
from roomscan.train.evaluate import evaluate_predictions
from roomscan.train.model import ARCH_DIR, build_model, expected_initial_vfl, pixel_transform, rebuild

Log = Callable[[str], None]

__all__ = ["TrainingError", "build_model", "fit", "overfit_batch", "predict", "train_one_epoch"]


class TrainingError(RoomscanError):
    """Training cannot go on (a non-finite loss, an existing run directory...); the message says what to do."""


# -- one epoch, prediction -------------------------------------------------------------------------------------
def _loss_groups(loss_dict: dict[str, Any]) -> dict[str, float]:
    """Sum each loss over decoder layers, encoder and denoising: ``loss_vfl_aux_0`` counts to ``loss_vfl``."""
    groups: dict[str, float] = defaultdict(float)
    for key, value in loss_dict.items():
        base = key.split("_aux")[0].split("_enc")[0].split("_dn")[0]
        groups[base] += float(value.detach()) if hasattr(value, "detach") else float(value)
    return dict(groups)


def train_one_epoch(
    model: Any, optimizer: Any, lr_scheduler: Any, scaler: Any, batches: Iterable[Batch], *,
    device: str, amp: bool, clip_grad: float, print_every: int, log: Log, epoch: int, world: World = ONE_PROCESS,
) -> dict[str, float]:
    """One pass over ``batches``; returns mean losses, the last learning rate, image count and seconds.

    Under DDP (``model`` wrapped, ``world.size > 1``) every rank passes its own shard, each step's printed loss
    is the mean over ranks, and the returned losses and image count cover all ranks.
    """
    import torch

    model.train()
    sums: dict[str, float] = defaultdict(float)
    steps = images = 0
    start = time.perf_counter()
    for batch in batches:
        batch = batch.to(device)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
            outputs = model(pixel_values=batch.pixel_values, labels=batch.labels)
        loss = outputs.loss
        local = loss.detach().item()
        value = world.mean(local)  # every rank sees the same value: they stop together, none waits forever
        if not math.isfinite(value):
            raise TrainingError(f"epoch {epoch} step {steps}: the loss is {value}; lower --lr or disable amp")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if clip_grad > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        scaler.step(optimizer)
        scaler.update()
        lr_scheduler.step()
        sums["loss"] += local
        for key, part in _loss_groups(outputs.loss_dict).items():
            sums[key] += part
        steps += 1
        images += len(batch.image_ids)
        if steps % print_every == 0:
            log(f"epoch {epoch} step {steps}: loss {value:.4f}  lr {optimizer.param_groups[0]['lr']:.2e}")
    seconds = time.perf_counter() - start
    if world.size > 1:  # one all-reduce; every rank ran the same number of steps (DistributedSampler pads)
        totals = world.sum({**sums, "images": images})
        images = int(totals.pop("images"))
        sums, steps = defaultdict(float, totals), steps * world.size
    out = {k: v / max(steps, 1) for k, v in sums.items()}
    out.update(lr=optimizer.param_groups[0]["lr"], images=images, seconds=seconds)
    return out


def predict(model: Any, processor: Any, dataset: DetectionDataset, cache: ImageCache, *, batch_size: int,
            device: str, amp: bool = False) -> dict[int, Detections]:
    """The model's detections on every image of ``dataset`` (no score threshold: all queries, for AP)."""
    import torch

    model.eval()
    slugs = np.array(dataset.taxonomy.slugs, dtype=object)
    out: dict[int, Detections] = {}
    for batch in iter_batches(dataset, cache, batch_size=batch_size, shuffle=False, **pixel_transform(processor)):
        with torch.inference_mode(), torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
            outputs = model(pixel_values=batch.pixel_values.to(device))
        outputs.logits, outputs.pred_boxes = outputs.logits.float(), outputs.pred_boxes.float()
        results = processor.post_process_object_detection(outputs, threshold=0.0, target_sizes=batch.sizes)
        for image_id, found in zip(batch.image_ids, results):
            labels = found["labels"].cpu().numpy()
            out[image_id] = make_detections(found["boxes"].cpu().numpy(), found["scores"].cpu().numpy(), labels,
                                            slugs[labels] if len(labels) else [])
    return out


# -- the run ---------------------------------------------------------------------------------------------------
def _datasets(config: TrainConfig) -> tuple[DetectionDataset, DetectionDataset | None, str]:
    """``(train, validation, how validation was chosen)``; no validation set when ``config.validate`` is off."""
    train = DetectionDataset.load(config.data)
    if len(train) == 0:
        raise DatasetError(f"{config.data}: the dataset has no images")
    if config.subset < 1.0:
        train = train.subset(config.subset, seed=config.seed)
    if not config.validate:
        return train, None, "none (validate off: the last epoch is the model)"
    if config.val_data:
        val = DetectionDataset.load(config.val_data)
        if val.taxonomy.slugs != train.taxonomy.slugs:
            raise DatasetError(f"{config.val_data}: its taxonomy differs from {config.data}'s (same amenities, same order needed)")
        return train, val, "val dataset"
    if config.val_fraction == 0 or len(train) < 2:
        return train, train, "training set (no held-out validation)"
    order = list(range(len(train)))
    random.Random(config.seed).shuffle(order)
    n_val = max(1, round(len(train) * config.val_fraction))

    def pick(idx: list[int]) -> DetectionDataset:
        images = [train.images[i] for i in sorted(idx)]
        return DetectionDataset(train.images_dir, train.taxonomy, images, {im.id: train.annotations[im.id] for im in images})

    return pick(order[n_val:]), pick(order[:n_val]), f"{n_val} held-out images"


def _optimizer(model: Any, config: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    import torch

    groups: dict[tuple[bool, bool], list[Any]] = defaultdict(list)
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups[("backbone" in name, param.ndim > 1)].append(param)
    param_groups = [
        {"params": params, "lr": config.lr * (config.backbone_lr_mult if backbone else 1.0),
         "weight_decay": config.weight_decay if decay else 0.0}
        for (backbone, decay), params in sorted(groups.items())
    ]
    optimizer = torch.optim.AdamW(param_groups, lr=config.lr)
    warmup = config.warmup_steps

    def factor(step: int) -> float:  # linear warm-up, then cosine to 1% of the peak
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _new_run_dir(config: TrainConfig) -> Path:
    name = config.name or f"{Path(config.model).name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(config.out) / name
    if run_dir.exists() and any(run_dir.iterdir()):
        raise TrainingError(f"{run_dir}: run directory exists; continue it with --resume {run_dir} or pick another --name")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _log_initial_loss(model: Any, batch: Batch, device: str, log: Log) -> dict[str, float]:
    import torch

    model.eval()  # eval: no BatchNorm statistics updated, no denoising queries drawn
    with torch.no_grad():
        outputs = model(pixel_values=batch.pixel_values.to(device), labels=batch.to(device).labels)
    groups = _loss_groups(outputs.loss_dict)
    n_boxes = sum(len(t["class_labels"]) for t in batch.labels)
    expected = expected_initial_vfl(model, len(batch.image_ids), n_boxes)
    log(f"initial loss {float(outputs.loss):.3f} ({', '.join(f'{k} {v:.3f}' for k, v in sorted(groups.items()))})")
    if expected is not None and "loss_vfl" in outputs.loss_dict:
        per_layer, p = expected
        log(f"initial loss_vfl of the last decoder layer {float(outputs.loss_dict['loss_vfl']):.3f}; expected "
            f"about {per_layer:.3f} from the class prior p={p:.4f} (C={model.config.num_labels}, "
            f"Q={model.config.num_queries}): every query scoring every class at p. Far above it means the class "
            "head is not at its prior (e.g. re-initialised weights).")
    return {"init_loss": float(outputs.loss), "init_loss_vfl": float(outputs.loss_dict.get("loss_vfl", float("nan"))),
            "expected_init_loss_vfl": expected[0] if expected else float("nan")}


def fit(
    config: TrainConfig | None = None,
    *,
    resume: str | Path | None = None,
    log: Log = print,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Train per ``config`` (or continue the run at ``resume``) and return the run directory.

    ``on_epoch(row)`` is called with each epoch's ``metrics.jsonl`` row once it is stored and checkpointed (a sweep
    reports it to its pruner); an exception it raises stops training, and the run is marked ``stopped``.

    Each epoch appends a row to ``metrics.jsonl`` and rewrites ``checkpoint.pt`` atomically; the best epoch (by
    validation AP) is written to ``model/``, or the last one when ``config.validate`` is off (no validation, no
    ``val_*`` columns, no early stop). A resumed run restores model, optimizer, scheduler, scaler and RNG
    states, and the data order depends only on ``seed`` and the epoch, so it ends where an uninterrupted one would.

    Under ``torchrun --nproc-per-node N`` each process trains on its shard of every epoch with DDP (see
    :mod:`roomscan.train.distributed`): ``batch_size`` is per process (the global batch is ``N * batch_size``;
    ``lr`` is not rescaled), logged losses are averaged over the processes, and only rank 0 logs, evaluates and
    writes the run directory while the others wait. Every process returns the run directory.

    Raises:
        TrainingError, DatasetError, ModelUnavailableError, RunError, DistributedError: named, actionable problems.
    """
    from roomscan.backends import resolve_device
    from roomscan.train.distributed import process_group

    state: dict[str, Any] | None = None
    run_dir: Path | None = None
    if resume is not None:
        run_dir = Path(resume)
        state = runs.load_checkpoint(run_dir)
        config = TrainConfig.from_dict(state["config"], where=str(run_dir / runs.CHECKPOINT_FILE))
    elif config is None:
        raise ValueError("fit needs a config or a run directory to resume")
    if config.overfit_batch:
        return overfit_batch(config, log=log)
    try:
        device = resolve_device(config.device)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc
    with process_group(device) as world:
        return _train(config, world, run_dir, state, log=log if world.is_main else _quiet, on_epoch=on_epoch)


def _quiet(message: str) -> None:
    """The log of ranks other than 0: one copy of each line is enough."""


def _train(config: TrainConfig, world: World, run_dir: Path | None, state: dict[str, Any] | None, *, log: Log,
           on_epoch: Callable[[dict[str, Any]], None] | None) -> Path:
    """``fit`` inside the process group: ``state`` is the checkpoint of the run at ``run_dir`` to resume, or None."""
    import torch

    from roomscan.backends.detr import save_model_dir

    device = world.device
    amp = config.amp and device.startswith("cuda")
    train_ds, val_ds, val_desc = _datasets(config)
    cache = ImageCache((config.cache_dir or default_cache_dir()) if config.cache else None, config.image_size)
    if state is None:
        def new_run() -> Path:
            created = _new_run_dir(config)
            config.save(created / CONFIG_FILE)
            return created

        run_dir = world.on_main(new_run)  # its name holds rank 0's clock: every rank takes rank 0's
        rng.seed_everything(config.seed)
        model, processor = build_model(config, train_ds.taxonomy)

        def describe_run() -> None:
            model.config.save_pretrained(str(run_dir / ARCH_DIR))
            processor.save_pretrained(str(run_dir / ARCH_DIR))
            runs.update_info(run_dir, status="running", started=runs.now(), git_commit=runs.git_commit(),
                             train_fingerprint=train_ds.fingerprint(),
                             val_fingerprint=val_ds.fingerprint() if val_ds is not None else None,
                             train_images=len(train_ds), val_images=len(val_ds) if val_ds is not None else 0,
                             validation=val_desc,
                             torch=torch.__version__, transformers=__import__("transformers").__version__,
                             **({"world_size": world.size} if world.size > 1 else {}))

        world.on_main(describe_run)
    else:
        assert run_dir is not None
        model, processor = rebuild(run_dir)
        model.load_state_dict(state["model"])

        def reopen_run() -> None:
            runs.truncate_metrics(run_dir, state["epoch"])
            runs.update_info(run_dir, status="running", resumed=runs.now(),
                             **({"world_size": world.size} if world.size > 1 else {}))

        world.on_main(reopen_run)
    model.to(device)
    # A batch without boxes leaves the denoising queries' parameters out of that rank's loss.
    no_boxes = any(len(train_ds.annotations[im.id]) == 0 for im in train_ds.images)
    train_model = data_parallel(model, world, find_unused_parameters=no_boxes)  # ``model`` is evaluated and saved
    pixels = pixel_transform(processor)
    sampler = world.sampler(len(train_ds))
    shard = len(sampler) if sampler is not None else len(train_ds)
    steps_per_epoch = math.ceil(shard / config.batch_size)
    optimizer, lr_scheduler = _optimizer(model, config, config.epochs * steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    start_epoch, best_ap, best_epoch = 0, -1.0, -1
    init_row: dict[str, float] = {}
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        lr_scheduler.load_state_dict(state["lr_scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, best_ap, best_epoch = state["epoch"] + 1, state["best_metric"], state["best_epoch"]
        rng.restore(rng.from_checkpoint(state, world, log), world)
        if len(state.get("rng_ranks") or [None]) != world.size:
            _move_schedule(lr_scheduler, start_epoch * steps_per_epoch)
        so_far = f"best val AP so far {best_ap:.4f}" if val_ds is not None else "no validation"
        log(f"resuming {run_dir} at epoch {start_epoch} ({so_far})")
    else:
        seen = f"validation on the {val_desc} ({len(val_ds)})" if val_ds is not None else f"validation: {val_desc}"
        log(f"run {run_dir}: {len(train_ds)} training images, {seen}")
        if world.size > 1:
            log(f"data parallel: {world.size} processes x batch {config.batch_size} = global batch "
                f"{world.size * config.batch_size}, {steps_per_epoch} steps per epoch")

        def probe() -> dict[str, float]:
            first = next(iter_batches(train_ds, cache, batch_size=config.batch_size, epoch=0, seed=config.seed,
                                      **pixels))
            return _log_initial_loss(model, first, device, log)

        init_row = world.on_main(probe)
        rng.restore(rng.after_seed(config.seed, world), world)
    tracker = runs.Tracker(config.to_dict(), run_dir.name) if world.is_main else None

    def best_or_none() -> float | None:
        """The best validation AP for ``run.json``; ``None`` when nothing was validated."""
        return best_ap if val_ds is not None else None

    for epoch in range(start_epoch, config.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)  # a no-op without shuffling (epoch_order shuffles), kept for the contract
        batches = iter_batches(train_ds, cache, batch_size=config.batch_size, epoch=epoch, seed=config.seed,
                               hflip=config.hflip, num_workers=config.num_workers, sampler=sampler, **pixels)
        stats = train_one_epoch(train_model, optimizer, lr_scheduler, scaler, batches, device=device, amp=amp,
                                clip_grad=config.clip_grad, print_every=config.print_every, log=log, epoch=epoch,
                                world=world)
        rng_states = world.gather(rng.capture(world))

        def end_epoch() -> bool:
            """Evaluate (unless validation is off), store the row, checkpoint; whether to stop early."""
            nonlocal best_ap, best_epoch, init_row
            t0 = time.perf_counter()
            scores: dict[str, float] = {}
            if val_ds is not None:
                report = evaluate_predictions(val_ds, predict(model, processor, val_ds, cache,
                                                              batch_size=config.eval_batch_size, device=device,
                                                              amp=amp))
                scores = {"val_ap": report.ap, "val_ap50": report.ap50, "val_ap75": report.ap75}
            row = {"epoch": epoch, **{k: v for k, v in stats.items() if k not in ("images", "seconds")}, **scores,
                   "train_seconds": round(stats["seconds"], 3), "val_seconds": round(time.perf_counter() - t0, 3),
                   "images_per_s": round(stats["images"] / max(stats["seconds"], 1e-9), 2), **init_row}
            init_row = {}
            # Without validation no epoch ranks above another: the last one is the model.
            keep = scores["val_ap"] > best_ap if scores else epoch == config.epochs - 1
            if keep:
                best_ap, best_epoch = scores.get("val_ap", best_ap), epoch
                tmp = run_dir / f"{runs.MODEL_DIR}.tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                save_model_dir(model, processor, train_ds.taxonomy, tmp)
                shutil.rmtree(run_dir / runs.MODEL_DIR, ignore_errors=True)
                tmp.rename(run_dir / runs.MODEL_DIR)
            # The row first: a crash before the checkpoint re-runs this epoch, and resuming truncates the extra row.
            runs.append_metrics(run_dir, row)
            runs.save_checkpoint(run_dir, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "lr_scheduler": lr_scheduler.state_dict(), "scaler": scaler.state_dict(), "config": config.to_dict(),
                "epoch": epoch, "best_metric": best_ap, "best_epoch": best_epoch, "rng": rng_states[0],
                **({"rng_ranks": rng_states} if world.size > 1 else {}),
            })
            assert tracker is not None
            tracker.log(row, epoch)
            val = f"val AP {scores['val_ap']:.4f}  AP50 {scores['val_ap50']:.4f}  " if scores else ""
            log(f"epoch {epoch}: loss {row['loss']:.4f}  {val}{row['images_per_s']:.1f} img/s"
                f"{'  (best)' if keep and scores else ''}")
            if on_epoch is not None:
                try:
                    on_epoch(row)
                except BaseException:
                    tracker.close()
                    runs.update_info(run_dir, status="stopped", finished=runs.now(), best_ap=best_or_none(),
                                     best_epoch=best_epoch)
                    raise
            if config.patience and val_ds is not None and epoch - best_epoch >= config.patience:
                log(f"early stop: no better val AP for {config.patience} epochs (best {best_ap:.4f} at epoch "
                    f"{best_epoch})")
                return True
            return False

        if world.on_main(end_epoch):  # the other ranks wait here for rank 0's evaluation and files
            break

    def finish() -> None:
        assert tracker is not None
        tracker.close()
        runs.update_info(run_dir, status="finished", finished=runs.now(), best_ap=best_or_none(),
                         best_epoch=best_epoch)

    world.on_main(finish)
    return run_dir


def _move_schedule(lr_scheduler: Any, step: int) -> None:
    """Put the learning-rate schedule at ``step``: a run resumed by a different number of processes has a different
    number of steps per epoch, and the schedule must follow the epochs done, not the steps counted."""
    lr_scheduler.last_epoch = step
    for group, base, factor in zip(lr_scheduler.optimizer.param_groups, lr_scheduler.base_lrs,
                                   lr_scheduler.lr_lambdas):
        group["lr"] = base * factor(step)


def overfit_batch(config: TrainConfig, *, log: Log = print) -> Path:
    """Train on one batch for ``config.overfit_steps`` steps (no augmentation); the loss must fall toward zero.

    Writes ``config.yaml`` and a ``metrics.jsonl`` row per printed step in a new run directory, returned.
    One process only: a sanity check of one batch has nothing to spread over several.
    """
    import torch

    from roomscan.backends import resolve_device
    from roomscan.train.distributed import world_from_env

    if world_from_env("cpu").size > 1:
        raise TrainingError("--overfit-batch runs in one process; start it without torchrun")

    try:
        device = resolve_device(config.device)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc
    train = DetectionDataset.load(config.data)
    if config.subset < 1.0:
        train = train.subset(config.subset, seed=config.seed)
    run_dir = _new_run_dir(config)
    config.save(run_dir / CONFIG_FILE)
    runs.update_info(run_dir, status="running", mode="overfit-batch", started=runs.now(), git_commit=runs.git_commit(),
                     train_fingerprint=train.fingerprint())
    rng.seed_everything(config.seed)
    model, processor = build_model(config, train.taxonomy)
    model.to(device)
    cache = ImageCache((config.cache_dir or default_cache_dir()) if config.cache else None, config.image_size)
    indices = list(range(min(config.batch_size, len(train))))
    batch = next(iter_batches(train, cache, batch_size=config.batch_size, shuffle=False, indices=indices,
                              **pixel_transform(processor)))
    _log_initial_loss(model, batch, device, log)
    # A constant learning rate after warm-up: the question is whether the loss can reach zero, not how fast.
    optimizer, lr_scheduler = _optimizer(model, config, 10**9)
    scaler = torch.amp.GradScaler("cuda", enabled=config.amp and device.startswith("cuda"))
    first = last = float("nan")
    for step in range(1, config.overfit_steps + 1):
        stats = train_one_epoch(model, optimizer, lr_scheduler, scaler, [batch], device=device,
                                amp=config.amp and device.startswith("cuda"), clip_grad=config.clip_grad,
                                print_every=10**9, log=log, epoch=0)
        last = stats["loss"]
        first = last if step == 1 else first
        if step % config.print_every == 0 or step == 1 or step == config.overfit_steps:
            log(f"overfit step {step}/{config.overfit_steps}: loss {last:.4f}")
            runs.append_metrics(run_dir, {"step": step, **{k: v for k, v in stats.items() if k != "images"}})
    log(f"overfit-batch: loss {first:.4f} -> {last:.4f} ({first / max(last, 1e-12):.1f}x lower) in {config.overfit_steps} steps")
    runs.update_info(run_dir, status="finished", finished=runs.now(), first_loss=first, last_loss=last)
    return run_dir
