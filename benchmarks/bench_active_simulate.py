"""Active learning against random on a pool with a rare, hard class: labels each strategy needs to reach a target.

The pool is synthetic shapes (3 common, easy classes: circle, square, triangle) plus a rare, hard one: a small,
low-contrast diamond in ``--rare-fraction`` of the images (``make_shapes_dataset(rare_fraction=...)``). Every
strategy runs the whole loop (:func:`roomscan.active.simulate.simulate`): train a tiny RT-DETRv2 from scratch on the
labelled images, score the test split, pick ``--budget`` images, reveal their labels, repeat; over ``--seeds``
seeds. Printed: per strategy, the labels needed to reach ``--target`` (mean ± std over seeds, and its ratio to
random's; a seed that never reached it leaves the mean undefined, shown as "> N"), the final mAP and its ratio
to random's, the rare class's final AP, and how many rare boxes the strategy had labelled by then.

Default (full) settings are sized for under 30 minutes on 2 idle CPU cores with ``--threads 1`` (estimated from a
measured 0.036 s per training image-epoch, committee scoring included: about 41k image-epochs); ``--quick`` is a
smoke-sized run (3 minutes) whose figures show the pipeline works, not which strategy wins. On a shared machine
pass ``--threads 1``: oversubscribed torch threads made rounds 10x slower.

Measured on 2 cores (2026-12-02; the strategies split over two 1-thread processes, 9 min each), labels to reach
AP50 0.15 and final AP50 at 80 labels, mean ± std over 3 seeds: diversity 60 ± 0, 0.191 ± 0.067 (1.40x random);
entropy > 80 (2/3 seeds), 0.143; bald+diversity > 80 (2/3), 0.145; bald > 80 (1/3), 0.134; random > 80 (2/3),
0.136. The rare class's AP stayed 0 for every strategy.

    python benchmarks/bench_active_simulate.py                 # full: 400 images, 5 strategies, 3 seeds
    python benchmarks/bench_active_simulate.py --quick         # smoke size
    python benchmarks/bench_active_simulate.py --out /tmp/al   # keep (and continue) results.jsonl, curves.png
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

STRATEGIES = ("bald", "entropy", "diversity", "bald+diversity", "random")
FULL = {"images": 400, "rare_fraction": 0.05, "seeds": 3, "rounds": 4, "initial": 20, "budget": 20, "epochs": 15,
        "committee": "mc-dropout:4", "target": 0.15}
QUICK = {"images": 80, "rare_fraction": 0.10, "seeds": 2, "rounds": 3, "initial": 8, "budget": 8, "epochs": 4,
         "committee": "mc-dropout:3", "target": 0.05}
IMAGE_SIZE = 64


def _pool(root: Path, images: int, rare_fraction: float, seed: int = 0) -> Path:
    from roomscan.data.synthetic import make_shapes_dataset

    make_shapes_dataset(root / "pool", n_images=images, image_size=(IMAGE_SIZE, IMAGE_SIZE), max_objects=3,
                        min_size=12, rare_fraction=rare_fraction, seed=seed)
    return root / "pool"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke size: a few minutes, figures not conclusive")
    for key, value in FULL.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=None,
                            help=f"(full: {value}; quick: {QUICK[key]})")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--metric", default="map50", choices=["map", "map50"], help="what --target measures")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=None, help="keep the run here (rerun to continue it)")
    args = parser.parse_args()
    settings = {k: getattr(args, k) if getattr(args, k) is not None else v
                for k, v in (QUICK if args.quick else FULL).items()}

    import torch

    from _models import build_tiny_rtdetr
    from roomscan.active.simulate import SimulationConfig, simulate
    from roomscan.active.simulate_report import labels_text, read_results
    from roomscan.data.dataset import DetectionDataset
    from roomscan.data.synthetic import RARE_SHAPE
    from roomscan.train import TrainConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
          f"{'quick' if args.quick else 'full'} settings: {settings}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        pool = _pool(root, settings["images"], settings["rare_fraction"])
        dataset = DetectionDataset.load(pool)
        rare_images = sum(RARE_SHAPE in set(d.data["class_name"]) for _, d in dataset)
        print(f"pool: {len(dataset)} images of {IMAGE_SIZE}px, {dataset.num_boxes} boxes; "
              f"{rare_images} images hold the rare {RARE_SHAPE}", flush=True)
        arch = build_tiny_rtdetr(root / "arch", dataset.taxonomy, image_size=IMAGE_SIZE)
        recipe = TrainConfig(data="-", model=str(arch), scratch=True, epochs=settings["epochs"], batch_size=4,
                             lr=3e-3, image_size=IMAGE_SIZE, warmup_steps=5, clip_grad=1.0, hflip=0.0, patience=0,
                             num_workers=0, print_every=10**6, eval_batch_size=16, dropout=0.1, val_fraction=0.0)
        config = SimulationConfig(
            data=str(pool), strategies=tuple(args.strategies), rounds=settings["rounds"], budget=settings["budget"],
            initial=settings["initial"], seeds=settings["seeds"], target_map=settings["target"], metric=args.metric,
            committee=settings["committee"], test_fraction=0.25, train=recipe,
        )
        start = time.perf_counter()
        report = simulate(config, root / "out", log=lambda m: print("  " + m, flush=True))
        seconds = time.perf_counter() - start
        rows = {}
        for r in read_results(root / "out"):
            if r.round == max(x.round for x in read_results(root / "out") if (x.strategy, x.seed) == (r.strategy, r.seed)):
                rows.setdefault(r.strategy, []).append(r)
        random_mean = next((s.to_target_mean for s in report.summaries if s.strategy == "random"), None)
        random_final = next((s.final_mean for s in report.summaries if s.strategy == "random"), None)
        metric = "AP50" if args.metric == "map50" else "AP"
        print(f"\n{len(config.strategies)} strategies x {config.seeds} seeds x {config.rounds} rounds in "
              f"{seconds / 60:.1f} min ({report.rounds_run} rounds run, {report.rounds_resumed} continued)")
        print(f"{'strategy':<16} {'labels to ' + metric + ' ' + format(config.target_map, 'g'):<30} "
              f"{'ratio vs random':<16} {'final ' + metric:<16} {'final/random':<13} {'rare AP':<9} rare boxes labelled")
        for s in report.summaries:
            ratio = "-"
            if s.to_target_mean is not None and random_mean:
                ratio = f"{s.to_target_mean / random_mean:.2f}"
            rare = s.per_class_final.get(RARE_SHAPE)
            finals = rows.get(s.strategy, [])
            rare_boxes = sum(r.labelled_boxes.get(RARE_SHAPE, 0) for r in finals) / max(len(finals), 1)
            versus = f"{s.final_mean / random_final:.2f}" if random_final else "-"
            print(f"{s.strategy:<16} {labels_text(s):<30} {ratio:<16} {s.final_mean:.3f} ± {s.final_std:.3f}   "
                  f"{versus:<13} {'-' if rare is None else format(rare, '.3f'):<9} {rare_boxes:.1f}")
        if report.curves:
            print(f"curves: {report.curves}" + ("" if args.out else " (temporary; pass --out to keep it)"))


if __name__ == "__main__":
    main()
