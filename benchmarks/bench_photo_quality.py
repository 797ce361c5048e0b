"""Photo quality checks: milliseconds per photo at 1 MP and 12 MP, beside what decoding the same JPEG costs.

For each size a generated indoor-like scene (rectangles, straight lines, noise; deterministic) is encoded as a
JPEG (quality 90). The table gives the median and the best of ``--repeat`` runs of:

* ``decode``: ``load_image`` on the JPEG bytes (what every photo already costs on its way in), for scale;
* ``assess``: ``assess_photo`` on the decoded photo: shrinking to the 512 px grey copy, then every measure;
* ``measures``: ``assess_photo`` on a 512 px copy, i.e. the measures alone; assess - measures is the shrinking.

    .venv/bin/python benchmarks/bench_photo_quality.py
    .venv/bin/python benchmarks/bench_photo_quality.py --repeat 50

Figures on the shared 2-core development machine (load average 3.8 from other work, so upper bounds; the medians
swing by 2x between runs), --repeat 20:

    size      pixels  decode ms (median/best)  assess ms (median/best)  measures ms (median/best)
    1 MP   1224x 816              11.5 /   6.9              26.0 /  17.5                18.1 /   9.5
    12 MP  4000x3000             141.9 /  78.4              35.0 /  24.3                19.6 /  12.8

Checking a 12 MP photo costs about a quarter of decoding it; the measures (mostly Canny + Hough for the tilt) cost
the same at every size, the rest is shrinking.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from PIL import Image, ImageDraw

from roomscan.detection.image import load_image
from roomscan.insights.quality import ANALYSIS_LONG_SIDE, assess_photo

SIZES = {"1 MP": (1224, 816), "12 MP": (4000, 3000)}


def scene(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A lit wall, furniture and windows (rectangles), door frames (vertical lines), sensor noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    image = Image.new("RGB", size, (170, 165, 150))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        x1, y1 = x0 + int(rng.integers(30, w // 4)), y0 + int(rng.integers(30, h // 3))
        draw.rectangle((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(30, 230, 3)))
    for _ in range(12):
        x = int(rng.integers(0, w))
        draw.line((x, 0, x, h), fill=(60, 50, 40), width=max(2, w // 300))
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 4, (h, w, 3)).astype(np.float32)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def timed(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median, best) milliseconds of ``repeat`` runs after one warm-up."""
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per measurement (default 20)")
    args = parser.parse_args()

    print(
        f"{'size':6s} {'pixels':>9s}  decode ms (median/best)  assess ms (median/best)  measures ms (median/best)"
    )
    for label, size in SIZES.items():
        buffer = io.BytesIO()
        scene(size).save(buffer, "JPEG", quality=90)
        data = buffer.getvalue()
        photo = load_image(data, name=f"{label} scene").image
        small = photo.copy()
        small.thumbnail((ANALYSIS_LONG_SIDE, ANALYSIS_LONG_SIDE))
        decode = timed(partial(load_image, data), args.repeat)
        assess = timed(partial(assess_photo, photo), args.repeat)
        measures = timed(partial(assess_photo, small), args.repeat)
        quality = assess_photo(photo)
        print(
            f"{label:6s} {size[0]:4d}x{size[1]:4d}  {decode[0]:16.1f} / {decode[1]:5.1f}"
            f"  {assess[0]:16.1f} / {assess[1]:5.1f}  {measures[0]:18.1f} / {measures[1]:5.1f}"
            f"   score {quality.score:.0f}, issues {[issue.code.value for issue in quality.issues]}"
        )


if __name__ == "__main__":
    main()
