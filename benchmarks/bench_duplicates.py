"""The same photo in several listings: how robust the hashes are, and how fast the Hamming index answers.

    python benchmarks/bench_duplicates.py --photos 80            # hash robustness on generated room photos
    python benchmarks/bench_duplicates.py --sizes 1000000 10000000 --faiss   # index at 1M and 10M hashes

Photos (``--photos N``): N generated 640x480 "rooms" (wall and floor gradients, a window, furniture blocks,
noise, a slight blur), each changed by resizing, JPEG re-encoding and 5%/10% crops. For plain pHash and for
``photo_hashes`` (whole photo + four 95% corner crops, the smallest distance over all pairs) it prints, in bits,
the median / p95 / max distance between a photo and its changed copy, and the smallest distances between
distinct photos. Those figures chose the scheme and DEFAULT_MAX_DISTANCE (see roomscan/insights/phash.py).

Index (``--sizes``): uniformly random 64-bit hashes with ids 0..n-1, plus 1000 planted near-duplicates (each a
copy of a random stored hash with 1..k bits flipped, stored under its own id). For each size: build time, the
index's arrays in MB and the process's RSS growth, then 1000 queries (the planted copies' originals) at k:
p50/p99 latency and the recall of the planted copies (must be 100%). ``--faiss`` times faiss's IndexBinaryFlat
(exhaustive range_search) and IndexBinaryMultiHash (nflip = k // nhash, exact) on the same data; it needs
``pip install faiss-cpu`` (roomscan itself does not use faiss: at 10M hashes it missed the 10 ms p99 target).

Figures (shared 2-core machine, other engineers' jobs running; numpy 2.4, faiss-cpu 1.15 on one thread; k = 8;
"size" is the index's arrays for HammingIndex, only the stored codes for faiss):

    1M hashes   HammingIndex           build 0.7 s   92 MB   p50 0.13 ms  p99 0.23 ms  recall 1000/1000
                faiss IndexBinaryFlat  -                      p50 0.87 ms  p99 9.5 ms   recall 1000/1000
                faiss MultiHash 3x21   build 6.5 s            p50 0.39 ms  p99 12.5 ms  recall 1000/1000
    10M hashes  HammingIndex           build 5.2 s   341 MB  p50 0.20 ms  p99 0.38 ms  recall 1000/1000
                  (RSS +356 MB; beside faiss, under heavier load, with a stable sort: build 26 s, p99 4.5 ms)
                faiss IndexBinaryFlat  -                      p50 21 ms    p99 56 ms    recall 1000/1000
                faiss MultiHash 3x21   build 51 s             p50 3.1 ms   p99 12.4 ms  recall 1000/1000
    10M, k = 10 HammingIndex           build 5.1 s   341 MB  p50 1.0 ms   p99 2.2 ms   recall 1000/1000
    50M hashes  HammingIndex           build 35 s    1.4 GB  p50 0.82 ms  p99 3.2 ms   recall 1000/1000
                  (50M rows = 10M photos at five hashes each; a photo searches with its five: about 5x these)

HammingIndex is roomscan.insights.dupindex's multi-index hashing; the figures chose it (module docstring).
"""

from __future__ import annotations

import argparse
import io
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from roomscan.insights.dupindex import HammingIndex
from roomscan.insights.phash import DEFAULT_MAX_DISTANCE, photo_distance, photo_hashes

# ---- photos ---------------------------------------------------------------------------------------------------


def room_photo(seed: int, size: tuple[int, int] = (640, 480)):
    """A generated room-like photo: wall over floor, a window, furniture blocks, sensor noise, a slight blur."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    w, h = size
    wall, floor = rng.integers(120, 240, 3), rng.integers(40, 160, 3)
    horizon = int(h * rng.uniform(0.55, 0.75))
    y = np.linspace(0, 1, h)[:, None, None]
    rows = np.arange(h)[:, None, None]
    arr = np.where(rows < horizon, wall * (0.85 + 0.15 * y), floor * (0.7 + 0.3 * y))
    arr = np.broadcast_to(arr, (h, w, 3)) + rng.normal(0, 6, (h, w, 3))
    image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 9))):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(h // 5, h - 40))
        box = [x0, y0, x0 + int(rng.integers(40, w // 2)), y0 + int(rng.integers(30, h // 2))]
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        (draw.rectangle if rng.random() < 0.6 else draw.ellipse)(box, fill=colour)
    if rng.random() < 0.7:
        x0 = int(rng.integers(0, w - 150))
        draw.rectangle([x0, 30, x0 + int(rng.integers(80, 200)), horizon - 60], fill=(235, 240, 250))
    return image.filter(ImageFilter.GaussianBlur(1))


def jpeg(image, quality: int):
    from PIL import Image

    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def crop(image, left: float, top: float, right: float = 0.0, bottom: float = 0.0):
    """Cut these shares of the width/height from each side."""
    w, h = image.size
    return image.crop((round(w * left), round(h * top), w - round(w * right), h - round(h * bottom)))


CHANGES = {
    "resize to 50%": lambda im: im.resize((im.width // 2, im.height // 2)),
    "JPEG quality 60": lambda im: jpeg(im, 60),
    "5% crop, top-left corner": lambda im: crop(im, 0.05, 0.05),
    "5% crop, bottom-right corner": lambda im: crop(im, 0, 0, 0.05, 0.05),
    "5% crop, centred": lambda im: crop(im, 0.025, 0.025, 0.025, 0.025),
    "5% crop of the width": lambda im: crop(im, 0.05, 0),
    "3% left + 5% top": lambda im: crop(im, 0.03, 0.05),
    "5% crop + 50% + JPEG 60": lambda im: jpeg(crop(im, 0.05, 0.05).resize((304, 228)), 60),
    "10% crop (out of reach)": lambda im: crop(im, 0.10, 0.10),
}


def bench_photos(n: int) -> None:
    photos = [room_photo(seed) for seed in range(n)]
    schemes = {"plain pHash": lambda im: photo_hashes(im)[:1], "photo_hashes (5)": photo_hashes}
    for name, scheme in schemes.items():
        base = [scheme(p) for p in photos]
        print(f"== {name}: distance between a photo and its changed copy (bits)")
        for change, fn in CHANGES.items():
            d = np.array([photo_distance(base[i], scheme(fn(p))) for i, p in enumerate(photos)])
            missed = int((d > DEFAULT_MAX_DISTANCE).sum())
            print(
                f"  {change:30s} median {np.median(d):3.0f}  p95 {np.percentile(d, 95):3.0f}  max {d.max():3d}"
                f"  missed at {DEFAULT_MAX_DISTANCE}: {missed}/{n}"
            )
        d = np.array([photo_distance(base[i], base[j]) for i in range(n) for j in range(i + 1, n)])
        false = int((d <= DEFAULT_MAX_DISTANCE).sum())
        print(
            f"  {'distinct photos':30s} min {d.min()}  p1 {np.percentile(d, 1):.0f}  median {np.median(d):.0f}"
            f"  false matches at {DEFAULT_MAX_DISTANCE}: {false}/{d.size}"
        )


# ---- index ----------------------------------------------------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _planted(n: int, n_queries: int, k: int, rng: np.random.Generator):
    hashes = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    sources = rng.choice(n, n_queries, replace=False)
    copies = hashes[sources].copy()
    for j in range(n_queries):  # flip 1..k distinct bits
        for bit in rng.choice(64, int(rng.integers(1, k + 1)), replace=False):
            copies[j] ^= np.uint64(1) << np.uint64(int(bit))
    all_hashes = np.concatenate([hashes, copies])
    ids = np.arange(len(all_hashes), dtype=np.int64)
    return ids, all_hashes, hashes[sources], np.arange(n, n + n_queries)


def _report(name: str, build_s: float, mb: float, times: list[float], found: int, total: int) -> None:
    t = np.array(times) * 1e3
    print(
        f"  {name:34s} build {build_s:6.2f} s  size {mb:7.0f} MB  p50 {np.percentile(t, 50):6.3f} ms"
        f"  p99 {np.percentile(t, 99):6.3f} ms  recall {found}/{total}",
        flush=True,
    )


def bench_index(n: int, k: int, n_queries: int, with_faiss: bool) -> None:
    rng = np.random.default_rng(n)
    ids, hashes, queries, planted = _planted(n, n_queries, k, rng)
    print(f"== {n:,} random hashes + {n_queries} planted copies within {k} bits", flush=True)
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    index = HammingIndex.build(ids, hashes)
    build_s = time.perf_counter() - t0
    arrays_mb = sum(
        a.nbytes for a in [index._ids, index._hashes, index._alive, *index._orders, *index._offsets]
    )
    print(f"  numpy MIH layout {index._layout}, RSS +{_rss_mb() - rss0:.0f} MB")
    times, found = [], 0
    for q, want in zip(queries.tolist(), planted.tolist()):
        t0 = time.perf_counter()
        result = index.search(q, k)
        times.append(time.perf_counter() - t0)
        found += any(m.id == want for m in result)
    _report("numpy MIH (HammingIndex)", build_s, arrays_mb / 2**20, times, found, n_queries)
    del index
    if not with_faiss:
        return
    import faiss

    codes = hashes.view(np.uint8).reshape(-1, 8)
    qcodes = queries.astype(np.uint64).view(np.uint8).reshape(-1, 8)
    for name, make in [
        ("faiss IndexBinaryFlat", lambda: faiss.IndexBinaryFlat(64)),
        ("faiss IndexBinaryMultiHash 3x21", lambda: faiss.IndexBinaryMultiHash(64, 3, 21)),
    ]:
        t0 = time.perf_counter()
        fidx = make()
        if hasattr(fidx, "nflip"):
            fidx.nflip = k // 3  # pigeonhole over 3 tables of 21 bits: exact within k
        fidx.add(codes)
        build_s = time.perf_counter() - t0
        times, found = [], 0
        for j, want in enumerate(planted.tolist()):
            t0 = time.perf_counter()
            lims, _d, labels = fidx.range_search(qcodes[j : j + 1], k + 1)  # faiss: distance < radius
            times.append(time.perf_counter() - t0)
            found += int(want in set(labels[lims[0] : lims[1]].tolist()))
        _report(name, build_s, len(codes) * 8 / 2**20, times, found, n_queries)  # size: the codes only
        del fidx


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--photos", type=int, default=0, help="generated photos for the hash robustness table"
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=[], help="index sizes (hashes), e.g. 1000000")
    parser.add_argument("--k", type=int, default=DEFAULT_MAX_DISTANCE, help="search distance in bits")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--faiss", action="store_true", help="also time faiss's binary indexes")
    args = parser.parse_args(argv)
    if not args.photos and not args.sizes:
        parser.error("say what to measure: --photos N and/or --sizes N [N ...]")
    faiss_threads(1)
    if args.photos:
        bench_photos(args.photos)
    for n in args.sizes:
        bench_index(n, args.k, args.queries, args.faiss)


def faiss_threads(n: int) -> None:
    """One thread for faiss: the numpy index answers a query on one core too (and the machine is shared)."""
    try:
        import faiss
    except ImportError:
        return
    faiss.omp_set_num_threads(n)


if __name__ == "__main__":
    main()
