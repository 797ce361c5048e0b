"""Training speed: images/s of a DETR-family detector, and what the decoded-image cache saves per epoch.

Models are built from their configs with random weights (nothing is downloaded): ``tiny`` (the test model),
``rtdetr_v2_r18vd`` (RT-DETRv2-R18, ~20M parameters) and ``dfine_nano`` (D-FINE-N, ~4M). Data is a synthetic
shapes dataset of JPEGs at the chosen size.

    python benchmarks/bench_train.py                                   # tiny at 96 px + r18 and D-FINE-N at 640
    python benchmarks/bench_train.py --models rtdetr_v2_r18vd --image-size 640 --steps 5 --device cuda
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _model(name: str, data_dir: Path, taxonomy, image_size: int, seed: int = 0):
    from roomscan.train import TrainConfig
    from roomscan.train.model import build_model

    model = name
    if name == "tiny":
        from _models import build_tiny_rtdetr

        model = str(build_tiny_rtdetr(data_dir / "tiny-arch", taxonomy, image_size=image_size))
    config = TrainConfig(data=str(data_dir), model=model, scratch=True, image_size=image_size, seed=seed)
    return build_model(config, taxonomy)


def bench_model(name: str, dataset, data_dir: Path, *, image_size: int, batch_size: int, steps: int, device: str) -> dict:
    """Images/s over ``steps`` optimisation steps after one warm-up step (AMP on CUDA)."""
    import torch

    from roomscan.train.data import ImageCache, iter_batches
    from roomscan.train.engine import _optimizer, train_one_epoch
    from roomscan.train.model import pixel_transform

    model, processor = _model(name, data_dir, dataset.taxonomy, image_size)
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    cache = ImageCache(data_dir / f"cache-{image_size}", image_size)
    batches = list(iter_batches(dataset, cache, batch_size=batch_size, epoch=0, **pixel_transform(processor)))
    batches = (batches * (steps // len(batches) + 2))[: steps + 1]
    from roomscan.train import TrainConfig

    config = TrainConfig(data="x", lr=1e-4, warmup_steps=0)
    optimizer, scheduler = _optimizer(model, config, 10**6)
    amp = device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    kwargs = {"device": device, "amp": amp, "clip_grad": 0.1, "print_every": 10**9, "log": lambda s: None, "epoch": 0}
    train_one_epoch(model, optimizer, scheduler, scaler, batches[:1], **kwargs)  # warm-up
    if amp:
        torch.cuda.synchronize()
    stats = train_one_epoch(model, optimizer, scheduler, scaler, batches[1:], **kwargs)
    if amp:
        torch.cuda.synchronize()
    return {"model": name, "params_M": round(n_params, 2), "device": device, "image_size": image_size,
            "batch_size": batch_size, "images_per_s": round(stats["images"] / stats["seconds"], 2),
            "s_per_step": round(stats["seconds"] / steps, 3)}


def bench_cache(dataset, data_dir: Path, image_size: int) -> dict:
    """Seconds to produce one epoch of batches: decoding every JPEG vs reading the cache."""
    from roomscan.train.data import ImageCache, iter_batches

    def epoch(cache) -> float:
        start = time.perf_counter()
        for _ in iter_batches(dataset, cache, batch_size=8, epoch=0):
            pass
        return time.perf_counter() - start

    uncached = epoch(ImageCache(None, image_size))
    cache = ImageCache(data_dir / f"bench-cache-{image_size}", image_size)
    first = epoch(cache)
    second = epoch(cache)
    return {"images": len(dataset), "image_size": image_size, "uncached_s": round(uncached, 3),
            "cache_fill_s": round(first, 3), "cached_s": round(second, 3),
            "speedup": round(uncached / max(second, 1e-9), 1), "decodes_2nd_epoch": cache.decodes - len(dataset)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny", "rtdetr_v2_r18vd", "dfine_nano"])
    parser.add_argument("--image-size", type=int, default=640, help="input side for the real-size models")
    parser.add_argument("--photo-size", type=int, nargs=2, default=[1024, 768], help="JPEG size (w h) on disk")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (GPU figures when CUDA is present)")
    args = parser.parse_args()

    import torch

    from roomscan.data.synthetic import make_shapes_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and args.device in ("auto", "cuda") else [])
    if args.device == "cpu":
        devices = ["cpu"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, devices: {', '.join(devices)}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        w, h = args.photo_size
        big = make_shapes_dataset(root / "photos", n_images=args.images, image_size=(w, h), min_size=h // 8, seed=0)
        print("cache:", bench_cache(big, root, args.image_size))
        for name in args.models:
            for device in devices:
                if name == "tiny":
                    small = make_shapes_dataset(root / "small", n_images=max(args.images, 16), image_size=(96, 96), seed=0)
                    result = bench_model(name, small, root / "small", image_size=96, batch_size=args.batch_size,
                                         steps=max(args.steps, 10), device=device)
                else:
                    steps = args.steps if device == "cpu" else max(args.steps, 20)
                    result = bench_model(name, big, root / "photos", image_size=args.image_size,
                                         batch_size=args.batch_size if device == "cpu" else 16, steps=steps, device=device)
                print("train:", result, flush=True)


if __name__ == "__main__":
    main()
