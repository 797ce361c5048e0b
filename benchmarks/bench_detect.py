"""Detection speed of the OWLv2 backend at its real size, on this machine, without downloading anything.

Builds OWLv2 ViT-B/16 from its default config (the architecture of google/owlv2-base-patch16-ensemble, 960 px,
random weights: speed does not depend on the weights), saves it with a synthetic CLIP tokenizer of the real vocab
size, loads it through ``get_detector`` (the code path the app uses) and times ``predict`` on a photo-sized image
(preprocessing included) per input size and batch size. Prints one table row per setting: seconds per image,
images per second, and the process's peak resident memory during that setting.

    .venv/bin/python benchmarks/bench_detect.py                      # 640 and 960 px, batch 1 and 4 (~2-3 min, 2 cores)
    .venv/bin/python benchmarks/bench_detect.py --sizes 960 --batch-sizes 1 --images 8
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _peak_rss_mb() -> float:
    """Peak RSS since the last reset (Linux ``VmHWM``), else the process's lifetime peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM to the current RSS
    except OSError:
        pass


def build_real_size_owlv2(path: Path) -> Path:
    """Save an OWLv2-base-sized model (random weights), its image processor and a 49408-token tokenizer."""
    from _models import build_clip_tokenizer, build_owlv2_model
    from transformers import Owlv2Config, Owlv2ImageProcessor, Owlv2Processor

    config = Owlv2Config(vision_config={"image_size": 960})  # the released checkpoint's input size
    tokenizer = build_clip_tokenizer(vocab_size=config.text_config.vocab_size)
    model = build_owlv2_model(config)
    model.save_pretrained(str(path))
    Owlv2Processor(Owlv2ImageProcessor(size={"height": 960, "width": 960}), tokenizer).save_pretrained(
        str(path)
    )
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[640, 960], help="input sizes (px)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--images", type=int, default=2, help="timed images per setting (at least one batch)")
    parser.add_argument("--photo", type=int, nargs=2, default=[1600, 1200], metavar=("W", "H"))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    import torch
    from _models import make_image

    from roomscan.backends import get_detector

    photo = make_image(tuple(args.photo))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
        f"photo {args.photo[0]}x{args.photo[1]}, default taxonomy"
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        model_dir = build_real_size_owlv2(Path(tmp) / "owlv2-base")
        print(f"built and saved a random OWLv2-base in {time.perf_counter() - start:.1f} s")
        header = f"{'size':>5} {'batch':>5} {'init s':>7} {'s/image':>8} {'images/s':>9} {'peak RSS MB':>12}"
        print(header)
        print("-" * len(header))
        for size in args.sizes:
            _reset_peak_rss()
            start = time.perf_counter()
            detector = get_detector(str(model_dir), device=args.device, image_size=size)
            init = time.perf_counter() - start
            detector.predict([photo])  # warm-up: first-call allocations and kernel selection
            for batch_size in args.batch_sizes:
                batch = [photo] * batch_size
                n_batches = max(1, -(-args.images // batch_size))
                start = time.perf_counter()
                for _ in range(n_batches):
                    detector.predict(batch, batch_size=batch_size)
                per_image = (time.perf_counter() - start) / (n_batches * batch_size)
                print(
                    f"{size:>5} {batch_size:>5} {init:>7.1f} {per_image:>8.2f} {1 / per_image:>9.2f} "
                    f"{_peak_rss_mb():>12.0f}",
                    flush=True,
                )
            del detector


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
