"""Backfill throughput on Ray: photos/s with 1 actor and with N actors, on a generated catalog, offline.

Builds a catalog of ``--photos`` small distinct JPEGs on ``--listings`` listings (SQLite, local photo store) and a
tiny OWLv2 of the real architecture from its config (random weights: speed does not depend on them; as the tests
do), then runs ``roomscan.bulk.backfill`` on a fresh copy of the catalog per actor count and prints photos/s and
the ratio to one actor. Ray gives each actor one CPU (and one intra-op thread), so on a 2-core machine 2 actors
is the ceiling.

    .venv/bin/python benchmarks/bench_backfill.py                               # 2000 photos, 1 vs 2 actors
    .venv/bin/python benchmarks/bench_backfill.py --photos 500 --actors 1 2 --model-size 128
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def build_catalog(home: Path, photos: int, listings: int, size: tuple[int, int]) -> None:
    """``photos`` distinct JPEGs spread over ``listings`` listings, each photo queued for no model yet."""
    from _models import make_image

    from roomscan.backends import ModelInfo
    from roomscan.catalog import store
    from roomscan.detection.image import load_image
    from roomscan.services import Services
    from roomscan.settings import Settings
    from roomscan.taxonomy import default_taxonomy

    services = Services.open(Settings(home=home))
    taxonomy = default_taxonomy()
    try:
        with services.sessions() as session, session.begin():
            # A placeholder model for add_photo's queueing; backfill's model queues its own jobs.
            seed_model = store.ensure_model(session, ModelInfo("seed", "generated", "0", "none")).id
            per = -(-photos // listings)
            n = 0
            for i in range(listings):
                listing = store.create_listing(session, f"Generated listing {i}", ["bed"])
                for _ in range(min(per, photos - n)):
                    buf = io.BytesIO()
                    make_image(size, seed=n).save(buf, "JPEG", quality=85)
                    store.add_photo(session, services.photos, listing, load_image(buf.getvalue()),
                                    model_id=seed_model, taxonomy=taxonomy)
                    n += 1
    finally:
        services.close()


def _detections(settings) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from roomscan.catalog.models import Detection
    from roomscan.services import Services

    services = Services.open(settings)
    try:
        with services.sessions() as session:
            return session.scalar(select(func.count()).select_from(Detection)) or 0
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=2000, help="photos in the generated catalog")
    parser.add_argument("--listings", type=int, default=200, help="listings they are spread over")
    parser.add_argument("--photo-size", type=int, nargs=2, default=(160, 120), help="JPEG width height")
    parser.add_argument("--model-size", type=int, default=64, help="the tiny OWLv2's input size in pixels")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2], help="actor counts to compare")
    parser.add_argument("--batch-size", type=int, default=16, help="photos per detector call and per write")
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="override the tiny taxonomy's thresholds (0 stores every box: a write-heavy run)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import ray
    from _models import build_tiny_owlv2, tiny_taxonomy

    from roomscan.bulk import backfill
    backfill_module = importlib.import_module("roomscan.bulk.backfill")  # the module (the package exports the function)
    from roomscan.settings import Settings

    # Where the driver's time goes: writing results back (detections, jobs, roll-ups) versus waiting for actors.
    write_seconds = [0.0]
    write = backfill_module._Writer.write

    def timed_write(self, batch):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        write(self, batch)
        write_seconds[0] += time.perf_counter() - t0

    backfill_module._Writer.write = timed_write  # type: ignore[method-assign]

    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        root = Path(tmp)
        model = build_tiny_owlv2(root / "owl", image_size=args.model_size)
        tiny_taxonomy().save(root / "tiny.yaml")
        started = time.perf_counter()
        build_catalog(root / "template", args.photos, args.listings, tuple(args.photo_size))
        print(f"catalog: {args.photos} photos ({args.photo_size[0]}x{args.photo_size[1]} JPEG) on "
              f"{args.listings} listings, built in {time.perf_counter() - started:.1f} s; tiny OWLv2 at "
              f"{args.model_size} px, batch {args.batch_size}, {os.cpu_count()} CPU(s)")
        ray.init(num_cpus=max(args.actors), include_dashboard=False, log_to_driver=False, configure_logging=False)
        results: dict[int, float] = {}
        try:
            for actors in args.actors:
                home = root / f"run-{actors}"
                shutil.copytree(root / "template", home)
                settings = Settings(home=home, model=str(model), taxonomy=str(root / "tiny.yaml"), device="cpu")
                first: list[tuple[float, int]] = []
                write_seconds[0] = 0.0

                def seen(stats, first=first):  # type: ignore[no-untyped-def]
                    if not first:
                        first.append((time.perf_counter(), stats.done))

                options = {} if args.score_threshold is None else {"score_threshold": args.score_threshold}
                stats = backfill(settings, actors=actors, batch_size=args.batch_size, detector_options=options,
                                 on_progress=seen)
                ended = time.perf_counter()
                assert stats.done == args.photos, stats
                # Steady state: from the first batch written (actors up, model loaded) to the end.
                steady = (stats.done - first[0][1]) / max(ended - first[0][0], 1e-9)
                results[actors] = steady
                print(f"{actors} actor(s): {stats.done} photos in {stats.seconds:6.1f} s "
                      f"({stats.photos_per_second:5.1f} photos/s with start-up); steady {steady:6.1f} photos/s "
                      f"(x{steady / results[args.actors[0]]:.2f}); driver writing back {write_seconds[0]:.1f} s, "
                      f"{_detections(settings) / stats.done:.1f} detections/photo", flush=True)
        finally:
            ray.shutdown()


if __name__ == "__main__":
    main()
