"""Measure active-learning strategies against random sampling on a fully labelled pool.

The loop, per (strategy, seed): a fixed test split of the pool is set aside (never selected, never trained on);
the rest is the unlabelled pool, from which ``initial`` images are labelled at random (the same images for every
strategy under one seed). Each round trains a detector on the labelled images with :func:`roomscan.train.fit`
(``validate=False``: no per-epoch evaluation, the last epoch is the round's model), scores its mAP on the test
split, lets the strategy pick ``budget`` more images from the pool and reveals only their labels. Each finished
round is appended to ``OUT/results.jsonl`` at once, so a crashed or stopped run continues where it stopped
(finished rounds are neither retrained nor re-scored).

Strategies:

* ``random``: the control, a seeded uniform draw from the pool.
* a score of :data:`roomscan.active.SCORES` (``bald``, ``entropy``, ``box-variance``, ``count``,
  ``least-confidence``): the committee predicts every pool image, :func:`~roomscan.active.match_members` matches
  its boxes, :func:`~roomscan.active.select_photos` takes the ``budget`` most disputed images.
* ``diversity``: k-center greedy (:func:`~roomscan.active.k_center_greedy`) on the detector's image embeddings,
  the labelled images counting as already chosen.
* ``<score>+diversity`` (e.g. ``bald+diversity``): :func:`~roomscan.active.uncertainty_diversity`.

The committee is ``mc-dropout:T`` (T passes of one model inside :meth:`Detector.dropout_sampling`, so it must be
trained with ``dropout > 0``) or ``ensemble:K`` (K models trained on the same images with different seeds).
mAP is always that of one model (the MC-dropout model, or the ensemble's first member), without dropout.

Models trained on the same labelled images with the same seed are shared (the first round of every strategy under
a seed trains once); they live in ``OUT/runs/``, their training sets (hard links) in ``OUT/data/``.

This module holds the configuration and the loop (pool split, one round, resuming);
:mod:`roomscan.active.simulate_report` holds the results records, their file, the summary and the curves (its
public names are re-exported here).

Example:
    >>> recipe = TrainConfig(data="-", model="dfine_nano", scratch=True, epochs=30, dropout=0.1, image_size=320)
    >>> config = SimulationConfig(data="data/pool", strategies=("bald", "random"), rounds=6, budget=20,
    ...                           initial=20, seeds=3, train=recipe)
    >>> report = simulate(config, "runs/active-sim")  # doctest: +SKIP
    >>> report.summaries[0].labels_to_target_mean  # doctest: +SKIP
    80.0
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from roomscan.active.matching import Clusters, match_members
from roomscan.active.scores import SCORES
from roomscan.active.select import BudgetWarning, k_center_greedy, select_photos
from roomscan.active.simulate_report import (
    RESULTS_FILE,
    Log,
    RoundResult,
    StrategySummary,
    append_result,
    labels_text,
    plot_curves,
    read_results,
    summarize,
)
from roomscan.data.dataset import DatasetError, DetectionDataset, write_json_atomic
from roomscan.errors import RoomscanError
from roomscan.train.config import TrainConfig

SUMMARY_FILE = "summary.json"
CURVES_FILE = "curves.png"
CONFIG_FILE = "simulation.json"
DIVERSITY = "diversity"
METRICS = ("map", "map50")
MAX_COMMITTEE = 256
"""The largest committee: each member costs a prediction pass (or a training run) per pool image and round, so a
larger one is a typo that would run for days."""

# RESULTS_FILE, RoundResult, StrategySummary, labels_text, plot_curves, read_results and summarize live in
# roomscan.active.simulate_report; re-exported so that imports from roomscan.active.simulate keep working.
__all__ = [
    "CURVES_FILE",
    "DIVERSITY",
    "RESULTS_FILE",
    "SUMMARY_FILE",
    "Committee",
    "RoundResult",
    "SimulationConfig",
    "SimulationError",
    "SimulationReport",
    "StrategySummary",
    "initial_set",
    "labels_text",
    "plot_curves",
    "read_results",
    "simulate",
    "split_pool",
    "strategy_names",
    "summarize",
]


class SimulationError(RoomscanError, ValueError):
    """The simulation cannot run as asked (pool too small, an unknown strategy...); the message says what to do."""


def strategy_names() -> tuple[str, ...]:
    """Every strategy name :class:`SimulationConfig` accepts."""
    scores = tuple(s for s in SCORES if s != "random")
    return ("random", *scores, DIVERSITY, *(f"{s}+{DIVERSITY}" for s in scores))


@dataclass(frozen=True)
class Committee:
    """Who disagrees: ``mc-dropout`` (``size`` dropout passes of one model) or ``ensemble`` (``size`` models)."""

    kind: Literal["mc-dropout", "ensemble"]
    size: int

    @classmethod
    def parse(cls, text: str) -> Committee:
        """``"mc-dropout:8"`` or ``"ensemble:3"``; a size from 2 to :data:`MAX_COMMITTEE`."""
        kind, _, size = text.strip().lower().partition(":")
        # isascii: "²" and "٣" are digits to str.isdigit but not to int().
        if (kind not in ("mc-dropout", "ensemble") or not (size.isascii() and size.isdigit())
                or not 2 <= int(size) <= MAX_COMMITTEE):
            raise SimulationError(
                f"committee {text!r}: use mc-dropout:T (2 <= T <= {MAX_COMMITTEE} dropout passes of one model) or "
                f"ensemble:K (2 <= K <= {MAX_COMMITTEE} models trained with different seeds)"
            )
        return cls(kind, int(size))  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.kind}:{self.size}"


def default_recipe(data: str) -> TrainConfig:
    """The training recipe when none is given: D-FINE-N from scratch, 20 epochs, dropout 0.1, no early stop."""
    return TrainConfig(data=data, model="dfine_nano", scratch=True, epochs=20, dropout=0.1, val_fraction=0.0,
                       patience=0, num_workers=0, print_every=10**6)


@dataclass(frozen=True)
class SimulationConfig:
    """One simulation, validated once.

    Attributes:
        data: the fully labelled pool, a roomscan dataset directory.
        strategies: strategy names (see :func:`strategy_names`); include ``random`` to have a control.
        rounds: train-and-evaluate rounds per (strategy, seed); the labelled set grows by ``budget`` between
            rounds, so the last round trains on ``initial + (rounds - 1) * budget`` images.
        budget: images labelled per round.
        initial: images labelled at random before the first round (the same for every strategy under a seed).
        seeds: repetitions with seeds ``0 .. seeds - 1`` (initial set, training, dropout, random picks).
        target_map: the mAP a strategy must reach; the summary reports the labels each needed.
        metric: ``map`` (COCO AP@[.5:.95]) or ``map50`` (AP at IoU 0.5): what ``target_map`` and the curves use.
        committee: ``mc-dropout:T`` or ``ensemble:K`` (see :class:`Committee`).
        test_fraction: share of the pool held out as the fixed test split, in ``(0, 1)``.
        split_seed: seeds the test split (the same for every seed, so every curve is scored on the same images).
        score_threshold: committee boxes below this confidence are left out of the matching.
        iou_threshold: the IoU at which the committee's boxes match (see :func:`match_members`).
        class_balance: multiply scores by the rarity of the photo's classes in the labelled set
            (:func:`~roomscan.active.class_balance_weights`).
        train: the training recipe of every round (model, scratch, epochs, image size, lr, dropout...); its
            ``data``, ``seed``, ``out``, ``name``, ``val_data``, ``val_fraction`` and ``validate`` are set per round
            (no validation: the round's model is its last epoch, so ``patience`` has no effect; the test split is
            never seen). Default: :func:`default_recipe`.
    """

    data: str
    strategies: tuple[str, ...] = ("bald", "random")
    rounds: int = 5
    budget: int = 20
    initial: int = 20
    seeds: int = 3
    target_map: float = 0.5
    metric: str = "map"
    committee: str = "mc-dropout:8"
    test_fraction: float = 0.2
    split_seed: int = 0
    score_threshold: float = 0.05
    iou_threshold: float = 0.5
    class_balance: bool = False
    train: TrainConfig | None = field(default=None, compare=True)

    def __post_init__(self) -> None:
        names = tuple(dict.fromkeys(s.strip().lower() for s in self.strategies))
        object.__setattr__(self, "strategies", names)
        known = strategy_names()
        unknown = [s for s in names if s not in known]
        problems = [
            (bool(names), "strategies: give at least one (e.g. bald and random)"),
            (not unknown, f"unknown strategy {', '.join(unknown)}; choose from {', '.join(known)}"),
            (self.rounds >= 1, f"rounds must be at least 1, got {self.rounds}"),
            (self.budget >= 1, f"budget must be at least 1, got {self.budget}"),
            (self.initial >= 1, f"initial must be at least 1 (the first model needs labelled images), got {self.initial}"),
            (self.seeds >= 1, f"seeds must be at least 1, got {self.seeds}"),
            (0.0 < self.target_map <= 1.0, f"target_map must be in (0, 1], got {self.target_map}"),
            (self.metric in METRICS, f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}"),
            (0.0 < self.test_fraction < 1.0, f"test_fraction must be in (0, 1), got {self.test_fraction}"),
            (0.0 <= self.score_threshold < 1.0, f"score_threshold must be in [0, 1), got {self.score_threshold}"),
            (0.0 < self.iou_threshold <= 1.0, f"iou_threshold must be in (0, 1], got {self.iou_threshold}"),
        ]
        bad = [message for ok, message in problems if not ok]
        if bad:
            raise SimulationError("invalid simulation config: " + "; ".join(bad))
        committee = Committee.parse(self.committee)
        object.__setattr__(self, "committee", str(committee))
        if committee.kind == "mc-dropout" and self.recipe().dropout <= 0 and any(self.needs_committee(s) for s in names):
            raise SimulationError(
                f"committee {committee} samples dropout, but the training recipe has dropout 0: train with "
                "dropout > 0 (e.g. --dropout 0.1), or use an ensemble committee (ensemble:3)"
            )

    def recipe(self) -> TrainConfig:
        """The training recipe, before the per-round fields are set."""
        return self.train if self.train is not None else default_recipe(self.data)

    @staticmethod
    def needs_committee(strategy: str) -> bool:
        return strategy not in ("random", DIVERSITY)

    def identity(self) -> dict[str, Any]:
        """What decides a round's result: a results file may only be continued under the same identity."""
        recipe = self.recipe().to_dict()
        for key in ("data", "out", "name", "seed", "val_data", "val_fraction", "validate", "cache", "cache_dir",
                    "num_workers", "print_every", "device"):
            recipe.pop(key, None)
        # model_epoch: a round's model is its last epoch (trained with validate=False); results whose models were
        # the best epoch on the labelled set (before that option) are not mixed in.
        return {"data": str(Path(self.data).resolve()), "budget": self.budget, "initial": self.initial,
                "committee": self.committee, "test_fraction": self.test_fraction, "split_seed": self.split_seed,
                "score_threshold": self.score_threshold, "iou_threshold": self.iou_threshold,
                "class_balance": self.class_balance, "train": recipe, "model_epoch": "last"}

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["train"] = self.recipe().to_dict()
        out["strategies"] = list(self.strategies)
        return out


@dataclass(frozen=True)
class SimulationReport:
    """What :func:`simulate` wrote: per-strategy summaries and the paths of its files."""

    config: SimulationConfig
    summaries: tuple[StrategySummary, ...]
    results: Path
    summary: Path
    curves: Path | None
    rounds_run: int
    rounds_resumed: int


# -- the pool ----------------------------------------------------------------------------------------------------
def split_pool(dataset: DetectionDataset, test_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """``(pool ids, test ids)``: a seeded random ``test_fraction`` of the images (at least one) is the test split.

    Raises:
        SimulationError: fewer than 2 images (nothing to split).
    """
    ids = sorted(im.id for im in dataset.images)
    if len(ids) < 2:
        raise SimulationError(f"the pool has {len(ids)} image(s); a simulation needs a test split and a pool")
    n_test = min(len(ids) - 1, max(1, round(len(ids) * test_fraction)))
    test = set(np.random.default_rng(seed).choice(ids, size=n_test, replace=False).tolist())
    return [i for i in ids if i not in test], sorted(test)


def initial_set(pool: Sequence[int], n: int, seed: int) -> list[int]:
    """The ``n`` images labelled before the first round under ``seed`` (the same for every strategy)."""
    if n > len(pool):
        raise SimulationError(f"initial {n} exceeds the pool of {len(pool)} images (after the test split); "
                              "lower --initial or --test-fraction")
    return sorted(np.random.default_rng([seed, 1]).choice(sorted(pool), size=n, replace=False).tolist())


def _subset(dataset: DetectionDataset, ids: Sequence[int]) -> DetectionDataset:
    chosen = set(ids)
    images = [im for im in dataset.images if im.id in chosen]
    return DetectionDataset(dataset.images_dir, dataset.taxonomy, images,
                            {im.id: dataset.annotations[im.id] for im in images})


def _load_pool(path: str) -> DetectionDataset:
    dataset = DetectionDataset.load(path)
    if len(dataset) == 0:
        raise DatasetError(f"{path}: the dataset has no images; a simulation needs a fully labelled pool")
    if dataset.num_boxes == 0:
        raise DatasetError(f"{path}: the dataset has no boxes; a simulation needs a fully labelled pool")
    # A stat per image now, rather than an error the round a strategy first picks the photo, hours in.
    bad = [im.file_name for im in dataset.images
           if not dataset.path(im).is_file() or dataset.path(im).stat().st_size == 0]
    if bad:
        raise DatasetError(f"{path}: {len(bad)} image file(s) missing or empty under {dataset.images_dir}: "
                           f"{', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}; restore them or drop them "
                           "from annotations.json")
    return dataset


# -- the output directory ----------------------------------------------------------------------------------------
def _check_identity(out: Path, config: SimulationConfig) -> None:
    file = out / CONFIG_FILE
    identity = config.identity()
    if file.is_file():
        try:
            saved = json.loads(file.read_text(encoding="utf-8"))["identity"]
            if not isinstance(saved, dict):
                raise TypeError(f"identity is a {type(saved).__name__}, not an object")
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            # Not ours, or cut short: overwriting it could pair old results with new settings.
            raise SimulationError(
                f"{file}: unreadable simulation settings ({type(exc).__name__}: {exc}); the results beside it "
                "cannot be matched to these settings: use another --out, or delete the directory to start over"
            ) from exc
        if saved != identity:
            changed = sorted(k for k in set(saved or {}) | set(identity) if (saved or {}).get(k) != identity.get(k))
            raise SimulationError(
                f"{out} holds a simulation with other settings ({', '.join(changed)} differ); its results cannot be "
                "continued with these: use another --out, or delete the directory to start over"
            )
    try:
        write_json_atomic(file, {"identity": identity, "config": config.to_dict()})
    except OSError as exc:
        raise SimulationError(f"{out}: cannot write {CONFIG_FILE} ({exc.strerror}); choose a writable --out") from exc


# -- one round ---------------------------------------------------------------------------------------------------
def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12]


def _train(config: SimulationConfig, dataset: DetectionDataset, labelled: Sequence[int], seed: int, member: int,
           out: Path) -> Path:
    """The model directory of a model trained on ``labelled`` (shared by every strategy that trains on the same)."""
    from roomscan.train import fit
    from roomscan.train.runs import MODEL_DIR, read_run

    recipe = config.recipe()
    key = _digest(sorted(labelled), seed, member, json.dumps(config.identity()["train"], sort_keys=True))
    name = f"seed{seed}-n{len(labelled)}-m{member}-{key}"
    run = out / "runs" / name
    if (run / MODEL_DIR).is_dir() and read_run(run).status == "finished":
        return run / MODEL_DIR
    shutil.rmtree(run, ignore_errors=True)
    data_dir = out / "data" / _digest(sorted(labelled))  # one training set per labelled set, for every member
    if not (data_dir / "annotations.json").is_file():
        tmp = data_dir.with_name(data_dir.name + ".tmp")  # written whole, then renamed: never half a dataset
        shutil.rmtree(tmp, ignore_errors=True)
        _subset(dataset, labelled).save(tmp)
        shutil.rmtree(data_dir, ignore_errors=True)
        tmp.rename(data_dir)
    from roomscan.backends._common import quiet_transformers

    with quiet_transformers():  # no "Writing model shards" bar per epoch; the simulation reports per round
        # No validation: the caller scores the model on the test split; per-epoch AP on the labelled set would
        # only pick an epoch by training-set fit, at the cost of a prediction pass per epoch.
        fit(recipe.replace(data=str(data_dir), seed=seed * 1000 + member, out=str(out / "runs"), name=name,
                           val_data=None, val_fraction=0.0, validate=False,
                           cache_dir=recipe.cache_dir or str(out / "cache")),
            log=_quiet)
    (run / "checkpoint.pt").unlink(missing_ok=True)  # model/ is what later rounds read; the rest is bulk
    return run / MODEL_DIR


def _quiet(message: str) -> None:
    """Training's per-epoch log: the simulation reports per round instead."""


def _load(model_dir: Path, device: str) -> Any:
    from roomscan.backends import get_detector

    return get_detector(str(model_dir), device=device, score_threshold=0.0)


def _evaluate(detector: Any, model_dir: Path, test: DetectionDataset, batch_size: int) -> dict[str, Any]:
    """The model's test-split AP, stored beside the model (a model shared by strategies is scored once)."""
    from roomscan.train.evaluate import evaluate_detector

    file = model_dir.parent / f"test-{_digest(test.fingerprint())}.json"
    if file.is_file():
        return json.loads(file.read_text(encoding="utf-8"))
    report, _ = evaluate_detector(detector, test, batch_size=batch_size)
    result = {"map": max(report.ap, 0.0), "map50": max(report.ap50, 0.0),
              "per_class": {c.slug: c.ap for c in report.per_class}}
    write_json_atomic(file, result)
    return result


def _images(dataset: DetectionDataset, ids: Sequence[int], chunk: int) -> Iterator[tuple[list[int], list[Any]]]:
    """Pool images in chunks, decoded once per chunk (a pool may not fit in memory)."""
    from roomscan.detection.image import load_image
    from roomscan.errors import ImageError

    by_id = {im.id: im for im in dataset.images}
    for start in range(0, len(ids), chunk):
        part = list(ids[start : start + chunk])
        pixels = []
        for i in part:
            try:
                pixels.append(load_image(dataset.path(by_id[i])).image)
            except ImageError as exc:
                raise DatasetError(f"image id {i} ({by_id[i].file_name}): {exc}") from exc
        yield part, pixels


def _committee_clusters(config: SimulationConfig, detectors: Sequence[Any], dataset: DetectionDataset,
                        pool: Sequence[int], seed: int, round_: int, batch_size: int) -> dict[int, Clusters]:
    """Each pool image's committee predictions, matched into clusters."""
    import torch

    committee = Committee.parse(config.committee)
    slugs = dataset.taxonomy.slugs
    torch.manual_seed(seed * 1000 + round_)  # the dropout masks: a rerun scores the same
    out: dict[int, Clusters] = {}
    for ids, pixels in _images(dataset, pool, batch_size * 4):
        members: list[list[Any]] = [[] for _ in ids]
        if committee.kind == "mc-dropout":
            with detectors[0].dropout_sampling():
                passes = [detectors[0].predict(pixels, batch_size=batch_size) for _ in range(committee.size)]
        else:
            passes = [d.predict(pixels, batch_size=batch_size) for d in detectors]
        for found in passes:
            for j, dets in enumerate(found):
                members[j].append(dets[dets.confidence >= config.score_threshold])
        for image_id, committee_dets in zip(ids, members, strict=True):
            out[image_id] = match_members(committee_dets, iou_threshold=config.iou_threshold,
                                          num_classes=len(slugs), class_names=slugs, key=str(image_id))
    return out


def _embeddings(detector: Any, dataset: DetectionDataset, ids: Sequence[int], batch_size: int) -> np.ndarray:
    parts = [detector.embed(pixels, batch_size=batch_size) for _, pixels in _images(dataset, ids, batch_size * 4)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def _box_counts(dataset: DetectionDataset, ids: Sequence[int]) -> dict[str, int]:
    counts = dict.fromkeys(dataset.taxonomy.slugs, 0)
    for i in ids:
        for c in dataset.annotations[i].class_id if dataset.annotations[i].class_id is not None else []:
            counts[dataset.taxonomy.slugs[int(c)]] += 1
    return counts


def _select(config: SimulationConfig, strategy: str, detectors: Sequence[Any], dataset: DetectionDataset,
            labelled: Sequence[int], unlabelled: Sequence[int], n: int, seed: int, round_: int,
            batch_size: int) -> list[int]:
    """``n`` ids of ``unlabelled`` picked by ``strategy`` (``n <= len(unlabelled)``)."""
    if strategy == "random":
        return sorted(np.random.default_rng([seed, 2, round_]).choice(sorted(unlabelled), size=n, replace=False)
                      .tolist())
    if strategy == DIVERSITY:
        ids = list(labelled) + list(unlabelled)
        emb = _embeddings(detectors[0], dataset, ids, batch_size)  # [len(ids), d]
        picks = k_center_greedy(emb, n, already_selected=range(len(labelled)))
        return [ids[int(i)] for i in picks]
    score, _, diverse = strategy.partition("+")
    clusters = _committee_clusters(config, detectors, dataset, unlabelled, seed, round_, batch_size)
    embeddings = None
    if diverse:
        emb = _embeddings(detectors[0], dataset, unlabelled, batch_size)
        embeddings = {i: emb[j] for j, i in enumerate(unlabelled)}
    counts = _box_counts(dataset, labelled) if config.class_balance else None
    selection = select_photos(clusters, score, n, class_counts=counts, embeddings=embeddings)
    return [int(i) for i in selection.ids]  # type: ignore[call-overload]


def _run_round(config: SimulationConfig, strategy: str, seed: int, round_: int, dataset: DetectionDataset,
               test: DetectionDataset, pool: Sequence[int], labelled: list[int], out: Path, log: Log) -> RoundResult:
    import time

    start = time.perf_counter()
    recipe = config.recipe()
    committee = Committee.parse(config.committee)
    members = committee.size if committee.kind == "ensemble" and config.needs_committee(strategy) else 1
    taken = set(labelled)
    unlabelled = [i for i in pool if i not in taken]
    last = round_ == config.rounds - 1 or not unlabelled
    n = 0 if last else min(config.budget, len(unlabelled))
    short = not last and config.budget > len(unlabelled)
    if short:
        message = (f"{strategy} seed {seed} round {round_}: budget {config.budget} exceeds the {len(unlabelled)} "
                   "images left in the pool; taking them all, then stopping")
        warnings.warn(message, BudgetWarning, stacklevel=2)
        log(f"warning: {message}")
    model_dirs = [_train(config, dataset, labelled, seed, 0, out)]
    detectors = [_load(model_dirs[0], recipe.device)]
    scores = _evaluate(detectors[0], model_dirs[0], test, recipe.eval_batch_size)
    selected: list[int] = []
    if n:
        for k in range(1, members if config.needs_committee(strategy) else 1):
            detectors.append(_load(_train(config, dataset, labelled, seed, k, out), recipe.device))
        selected = _select(config, strategy, detectors, dataset, labelled, unlabelled, n, seed, round_,
                           recipe.eval_batch_size)
        if len(set(selected)) != n or not set(selected) <= set(unlabelled):
            raise SimulationError(f"{strategy} picked {selected}, not {n} distinct unlabelled images (a bug)")
    return RoundResult(
        strategy=strategy, seed=seed, round=round_, labels=len(labelled), map=scores["map"], map50=scores["map50"],
        per_class=scores["per_class"], labelled=tuple(sorted(labelled)), selected=tuple(selected),
        pool_left=len(unlabelled) - len(selected), short=short, labelled_boxes=_box_counts(dataset, labelled),
        seconds=round(time.perf_counter() - start, 2),
    )


# -- the loop ----------------------------------------------------------------------------------------------------
def simulate(
    config: SimulationConfig,
    out: str | os.PathLike[str],
    *,
    log: Log = print,
    on_round: Callable[[RoundResult], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationReport:
    """Run (or continue) the simulation into ``out``; write the summary and the curves; return the report.

    Args:
        config: what to simulate.
        out: the output directory: ``results.jsonl`` (one line per finished round, appended as it finishes),
            ``summary.json``, ``curves.png`` (when matplotlib is installed), ``simulation.json`` (the settings a
            continuation must match), ``runs/`` and ``data/`` (each round's model and training set).
        log: one line per round and per notable event.
        on_round: called with each newly finished round once it is stored (an exception stops the run; the
            stored rounds stay and a rerun continues after them).
        progress: ``progress(done, total)`` over all (strategy, seed, round), resumed ones counted as done.

    Raises:
        SimulationError: an output directory of another simulation, a pool too small for ``initial``.
        DatasetError: the pool is missing, empty, unlabelled, or has unreadable images.
    """
    out = Path(out)
    dataset = _load_pool(config.data)
    pool, test_ids = split_pool(dataset, config.test_fraction, config.split_seed)
    test = _subset(dataset, test_ids)
    if test.num_boxes == 0:  # every round would score mAP 0: hours of training for a flat, meaningless curve
        raise SimulationError(f"the test split's {len(test_ids)} image(s) hold no boxes, so every strategy would "
                              "score mAP 0; raise --test-fraction or add labelled photos to the pool")
    if config.initial > len(pool):
        raise SimulationError(f"initial {config.initial} exceeds the pool of {len(pool)} images (the test split "
                              f"holds {len(test_ids)}); lower --initial or --test-fraction")
    planned = config.initial + (config.rounds - 1) * config.budget
    if planned > len(pool):
        message = (f"initial {config.initial} + {config.rounds - 1} rounds x budget {config.budget} = {planned} "
                   f"labels exceed the pool of {len(pool)} images; each run stops once the pool is empty")
        warnings.warn(message, BudgetWarning, stacklevel=2)
        log(f"warning: {message}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, a read-only parent
        raise SimulationError(f"{out}: cannot create the output directory ({exc.strerror}); choose another "
                              "--out") from exc
    _check_identity(out, config)
    done = {row.key: row for row in read_results(out, log=log)}
    total = len(config.strategies) * config.seeds * config.rounds
    finished = resumed = ran = 0
    if done:
        log(f"continuing {out}: {len(done)} finished round(s) in {RESULTS_FILE} are kept, not rerun")
    log(f"pool {len(pool)} images, test split {len(test_ids)} images ({test.num_boxes} boxes); "
        f"{total} rounds to run over {len(config.strategies)} strategies x {config.seeds} seeds")
    if progress is not None:
        progress(0, total)
    for seed in range(config.seeds):
        start = initial_set(pool, config.initial, seed)
        for strategy in config.strategies:
            labelled = list(start)
            for round_ in range(config.rounds):
                row = done.get((strategy, seed, round_))
                if row is not None:
                    resumed += 1
                else:
                    row = _run_round(config, strategy, seed, round_, dataset, test, pool, labelled, out, log)
                    append_result(out, row)
                    ran += 1
                    log(f"{strategy} seed {seed} round {round_}: {row.labels} labels, mAP {row.map:.3f} "
                        f"(AP50 {row.map50:.3f}), picked {len(row.selected)}, {row.seconds:.1f}s")
                    if on_round is not None:
                        on_round(row)
                finished += 1
                if progress is not None:
                    progress(finished, total)
                labelled = list(row.labelled) + list(row.selected)
                if not row.selected:  # the last round, or the pool is empty
                    finished += config.rounds - 1 - round_
                    break
    rows = [r for r in read_results(out) if r.strategy in config.strategies and r.seed < config.seeds
            and r.round < config.rounds]
    summaries = summarize(rows, config)
    summary_file = out / SUMMARY_FILE
    write_json_atomic(summary_file, {"metric": config.metric, "target": config.target_map,
                                     "strategies": [s.to_dict() for s in summaries], "config": config.to_dict()})
    curves = plot_curves(summaries, out / CURVES_FILE, target=config.target_map, metric=config.metric, log=log)
    return SimulationReport(config, summaries, out / RESULTS_FILE, summary_file, curves, ran, resumed)
