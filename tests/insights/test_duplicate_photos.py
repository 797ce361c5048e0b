"""The same photo in several listings: perceptual hashes survive resizing, re-encoding and small crops; the
Hamming index finds exactly the stored hashes within k bits."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from roomscan.detection.image import load_image
from roomscan.insights import dupindex
from roomscan.insights.dupindex import HammingIndex, Match, clusters
from roomscan.insights.phash import DEFAULT_MAX_DISTANCE, N_HASHES, hamming, photo_distance, photo_hashes


def room_photo(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A generated room: wall over floor, a window, furniture blocks, noise (as benchmarks/bench_duplicates.py)."""
    rng = np.random.default_rng(seed)
    w, h = size
    wall, floor = rng.integers(120, 240, 3), rng.integers(40, 160, 3)
    horizon = int(h * rng.uniform(0.55, 0.75))
    y = np.linspace(0, 1, h)[:, None, None]
    arr = np.where(np.arange(h)[:, None, None] < horizon, wall * (0.85 + 0.15 * y), floor * (0.7 + 0.3 * y))
    arr = np.broadcast_to(arr, (h, w, 3)) + rng.normal(0, 6, (h, w, 3))
    image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 9))):
        x0, y0 = int(rng.integers(0, w - 30)), int(rng.integers(h // 5, h - 20))
        box = [x0, y0, x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(15, h // 2))]
        (draw.rectangle if rng.random() < 0.6 else draw.ellipse)(
            box, fill=tuple(int(c) for c in rng.integers(0, 255, 3))
        )
    if rng.random() < 0.7:
        x0 = int(rng.integers(0, w - 75))
        draw.rectangle([x0, 15, x0 + int(rng.integers(40, 100)), horizon - 30], fill=(235, 240, 250))
    return image.filter(ImageFilter.GaussianBlur(1))


def _jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _crop(
    image: Image.Image, left: float, top: float, right: float = 0.0, bottom: float = 0.0
) -> Image.Image:
    w, h = image.size
    return image.crop((round(w * left), round(h * top), w - round(w * right), h - round(h * bottom)))


SEEDS = range(8)
COPIES = {
    "resized to 50%": lambda im: im.resize((im.width // 2, im.height // 2)),
    "JPEG quality 60": lambda im: load_image(_jpeg_bytes(im, 60)).image,
    "5% cropped from the top-left": lambda im: _crop(im, 0.05, 0.05),
    "5% cropped from the bottom-right": lambda im: _crop(im, 0, 0, 0.05, 0.05),
    "5% cropped around the centre": lambda im: _crop(im, 0.025, 0.025, 0.025, 0.025),
    "5% cropped, resized and re-encoded": lambda im: (
        load_image(_jpeg_bytes(_crop(im, 0.05, 0.05).resize((152, 114)), 60)).image
    ),
}


@pytest.fixture(scope="module")
def originals() -> dict[int, tuple[Image.Image, tuple[int, ...]]]:
    return {seed: (im, photo_hashes(im)) for seed in SEEDS for im in [room_photo(seed)]}


@pytest.mark.parametrize("change", COPIES)
def test_a_changed_copy_matches_its_original_both_ways(originals, change):
    for seed, (image, hashes) in originals.items():
        copy = photo_hashes(COPIES[change](image))
        assert photo_distance(hashes, copy) <= DEFAULT_MAX_DISTANCE, f"photo {seed}"
        assert photo_distance(copy, hashes) <= DEFAULT_MAX_DISTANCE, f"photo {seed}"


def test_distinct_generated_photos_never_match():
    hashes = [photo_hashes(room_photo(1000 + seed)) for seed in range(50)]
    closest = min(photo_distance(hashes[i], hashes[j]) for i in range(50) for j in range(i + 1, 50))
    assert closest > DEFAULT_MAX_DISTANCE


def test_photo_hashes_are_unsigned_64_bit_ints_in_a_fixed_order(originals):
    image, hashes = originals[0]
    assert len(hashes) == N_HASHES
    assert all(isinstance(h, int) and 0 <= h < 2**64 for h in hashes)
    # Slot 1 is the top-left 95%: a copy cropped to exactly that region hashes as it does.
    w, h = image.size
    top_left = image.crop((0, 0, w - round(w * 0.05), h - round(h * 0.05)))
    assert photo_hashes(top_left)[0] == hashes[1]
    # load_image's LoadedImage works as well as its pixels.
    loaded = load_image(_jpeg_bytes(image, 90))
    assert photo_hashes(loaded) == photo_hashes(loaded.image)


def test_the_index_finds_a_cropped_copy_among_other_photos(originals):
    ids = [seed for seed in SEEDS for _ in range(N_HASHES)]
    index = HammingIndex.build(
        np.array(ids), np.array([h for _, hs in originals.values() for h in hs], np.uint64)
    )
    query = photo_hashes(_crop(originals[3][0], 0.05, 0.05))
    assert [m.id for m in index.search(query, DEFAULT_MAX_DISTANCE)] == [3]


def test_hamming_counts_differing_bits():
    assert hamming(0, 0) == 0
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(0, 2**64 - 1) == 64


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: hamming(-1, 0), "out of range"),
        (lambda: hamming(2**64, 0), "out of range"),
        (lambda: hamming("ff", 0), "must be an int"),
        (lambda: HammingIndex().search(2**64, 3), "out of range"),
        (lambda: HammingIndex().search(1, -1), "k must be a whole number of bits in 0..64"),
        (lambda: HammingIndex().search(1, 65), "k must be"),
        (lambda: HammingIndex.build([1, 2], [3]), "one entry each per row"),
        (lambda: HammingIndex.build([1], np.array([-5])), "out of range"),
        (lambda: HammingIndex.build(["a"], [1]), "ids must be a 1-D array of integers"),
        (lambda: clusters([1], [1], -2), "k must be"),
        (lambda: photo_distance([], [1]), "at least one hash"),
    ],
)
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _planted_hashes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random hashes, half of them copies of others with 0..12 bits flipped, so every k has real answers."""
    hashes = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    for j in range(max(1, n // 2), n):
        h = int(hashes[rng.integers(0, max(1, n // 2))])
        for bit in rng.choice(64, int(rng.integers(0, 13)), replace=False):
            h ^= 1 << int(bit)
        hashes[j] = h
    return hashes


def _brute(ids: np.ndarray, hashes: np.ndarray, q: int, k: int) -> list[Match]:
    best: dict[int, int] = {}
    for i, h in zip(ids.tolist(), hashes.tolist()):
        d = (h ^ q).bit_count()
        if d <= k and d < best.get(i, 65):
            best[i] = d
    return sorted((Match(i, d) for i, d in best.items()), key=lambda m: (m.distance, m.id))


@pytest.mark.parametrize("n", [1, 40, 3000])
def test_search_equals_brute_force_for_every_k_up_to_10(n):
    rng = np.random.default_rng(n)
    hashes = _planted_hashes(rng, n)
    ids = rng.integers(0, max(1, n // 2), n)  # ids repeat: several hashes per photo
    index = HammingIndex.build(ids, hashes)
    queries = [*hashes[rng.integers(0, n, 15)].tolist(), *rng.integers(0, 2**63, 5).tolist()]
    for k in range(11):
        for q in queries:
            assert index.search(q, k) == _brute(ids, hashes, q, k), (n, k, q)
    assert index.search_many(np.array(queries[:3], np.uint64), 10) == [
        _brute(ids, hashes, q, 10) for q in queries[:3]
    ]


def test_adds_and_removals_answer_like_a_fresh_build():
    rng = np.random.default_rng(7)
    hashes = _planted_hashes(rng, 2000)
    ids = np.arange(2000)
    index = HammingIndex.build(ids[:1500], hashes[:1500])
    index.add(ids[1500:], hashes[1500:])
    assert index.remove([3, 1600, 99999]) == 2
    assert len(index) == 1998
    keep = ~np.isin(ids, [3, 1600])
    for q in hashes[rng.integers(0, 2000, 20)].tolist():
        assert index.search(q, 8) == _brute(ids[keep], hashes[keep], q, 8)


def test_many_adds_are_merged_into_the_tables(monkeypatch):
    monkeypatch.setattr(dupindex, "_PENDING_LIMIT", 10)
    rng = np.random.default_rng(11)
    hashes = _planted_hashes(rng, 600)
    index = HammingIndex()
    for start in range(0, 600, 50):
        index.add(np.arange(start, start + 50), hashes[start : start + 50])
    assert len(index) == 600
    assert index.remove(range(0, 600, 2)) == 300  # past a quarter removed: compacted
    keep = np.arange(600) % 2 == 1
    for q in hashes[:20].tolist():
        assert index.search(q, 9) == _brute(np.arange(600)[keep], hashes[keep], q, 9)


def test_a_saved_index_loads_with_the_same_answers(tmp_path):
    rng = np.random.default_rng(3)
    hashes = _planted_hashes(rng, 500)
    index = HammingIndex.build(np.arange(500), hashes)
    index.add([900], [int(hashes[0])])
    path = tmp_path / "photos.idx"
    index.save(path)
    loaded = HammingIndex.load(path)
    assert len(loaded) == 501
    assert [p.name for p in tmp_path.iterdir()] == ["photos.idx"]  # no temporary file left behind
    for q in hashes[:10].tolist():
        assert loaded.search(q, 10) == index.search(q, 10)


def test_loading_something_else_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved index there"):
        HammingIndex.load(tmp_path / "missing.idx")
    (tmp_path / "junk.idx").write_bytes(b"not an index")
    with pytest.raises(ValueError, match="not a saved HammingIndex"):
        HammingIndex.load(tmp_path / "junk.idx")


def test_an_empty_index_finds_nothing(tmp_path):
    index = HammingIndex.build(np.zeros(0, np.int64), np.zeros(0, np.uint64))
    assert len(index) == 0
    assert index.search(12345, 10) == []
    assert index.search_many([1, 2], 3) == [[], []]
    index.save(tmp_path / "empty.idx")
    assert len(HammingIndex.load(tmp_path / "empty.idx")) == 0
    assert clusters([], [], 5) == []


def test_clusters_link_photos_transitively():
    ids = [10, 10, 20, 30, 40, 50]  # photo 10 has two hashes
    hashes = [0b0, 2**63, 0b111, 0b111111, 0xFFFF << 40, 0b111]
    # 10-20 (3 bits), 20-30 (3), 20-50 (0): one group; 10-30 is 6 bits apart but joins through 20; 40 stays alone.
    assert clusters(ids, hashes, 3) == [[10, 20, 30, 50]]
    assert clusters(ids, hashes, 0) == [[20, 50]]
    assert clusters(ids, hashes, 2) == [[20, 50]]
