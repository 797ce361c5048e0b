"""Perceptual hashes of a listing photo that survive resizing, JPEG re-encoding and small crops.

A photo gets :data:`N_HASHES` 64-bit DCT perceptual hashes (imagehash's ``phash``, the one the data report uses
in ``roomscan/data/_dedup.py``), in this order:

0. the whole photo;
1. the top-left 95% (5% of the width cut from the right, 5% of the height from the bottom);
2. the top-right 95%;
3. the bottom-left 95%;
4. the bottom-right 95%.

Two photos are the same picture when *any* hash of one lies within :data:`DEFAULT_MAX_DISTANCE` bits of *any*
hash of the other (:func:`photo_distance`). Why several hashes: a copy cropped by 5% of its width and height is
the original's content shifted and rescaled, and a single pHash moves a lot under that. Measured on 80 generated
room photos (640x480; wall, floor, window, furniture blocks, noise; ``benchmarks/bench_duplicates.py
--photos 80``), in bits:

==============================  ===================  =====================
change                          plain pHash          the 5 hashes
                                median / max (miss)  median / max (miss)
==============================  ===================  =====================
resize to 50%                   0 / 2   (0/80)       0 / 0   (0/80)
JPEG quality 60                 0 / 4   (0/80)       0 / 0   (0/80)
5% crop, top-left corner        10 / 20 (45/80)      0 / 0   (0/80)
5% crop, bottom-right corner    10 / 18 (58/80)      0 / 0   (0/80)
5% crop, centred                4 / 14  (2/80)       2 / 6   (0/80)
5% crop of the width only       6 / 20  (14/80)      2 / 6   (0/80)
3% left + 5% top                8 / 16  (30/80)      2 / 6   (0/80)
5% crop + 50% + JPEG 60         10 / 20 (44/80)      0 / 2   (0/80)
10% crop (out of reach)         18 / 26 (79/80)      8 / 14  (29/80)
distinct photos, 3160 pairs     min 12, 1% <= 20     min 12, 1% <= 16 (0 false matches)
==============================  ===================  =====================

"miss" counts copies farther than :data:`DEFAULT_MAX_DISTANCE` (8) from their original.

Plain pHash cannot tell a 5% crop (up to 20 bits) from a different photo (from 12 bits); with the corner crops
every 5% crop measured lies within 6 bits, distinct generated photos 12 or more apart, so the default distance
8 missed none and matched no distinct pair. A centre crop alone (the 80% centre, or full + centre 90%) did not
help enough (a corner crop still reached 14-16 bits). Crops of 10% are out of reach (up to 14 bits). Real photos
of *similar* rooms (the same hotel chain's rooms) can come closer than generated ones: treat a match as "look at
these two", not as proof.

At scale: two *unrelated* photos with uniformly random hashes fall within 8 bits in one of the 25 hash pairs
with probability 7e-9, so a photo searched against 10M others meets about 0.07 chance matches (0.001 at
distance 6). Real photos' hashes are not uniform (distinct generated rooms: median 24 bits, not 32), so measure
the rate on real listings before acting on matches automatically. Cost: five index rows per photo, and a search
with one photo's five hashes is five lookups.

Example:
    >>> from PIL import Image
    >>> hashes = photo_hashes(Image.new("RGB", (64, 48), "white"))
    >>> len(hashes), photo_distance(hashes, hashes)
    (5, 0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from roomscan.data import _dedup
from roomscan.detection.image import LoadedImage

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "CROP_KEEP",
    "DEFAULT_MAX_DISTANCE",
    "HASH_BITS",
    "N_HASHES",
    "check_hash",
    "hamming",
    "photo_distance",
    "photo_hashes",
]

HASH_BITS = 64
N_HASHES = 5
# The share of width and height each corner crop keeps.
CROP_KEEP = 0.95
# Measured: every resize/JPEG/5%-crop copy within 6 bits, distinct generated photos at 12 or more (module doc).
DEFAULT_MAX_DISTANCE = 8
_MAX_HASH = (1 << HASH_BITS) - 1


def photo_hashes(image: Image.Image | LoadedImage) -> tuple[int, ...]:
    """The photo's :data:`N_HASHES` perceptual hashes, unsigned 64-bit ints: whole photo, then the four 95% crops
    top-left, top-right, bottom-left, bottom-right.

    Args:
        image: a PIL image or a :class:`~roomscan.detection.image.LoadedImage` (``load_image``'s result).

    Example:
        >>> photo_hashes(load_image("kitchen.jpg"))[0]  # doctest: +SKIP
        13853083498233675950
    """
    pil = image.image if isinstance(image, LoadedImage) else image
    w, h = pil.size
    dw, dh = round(w * (1 - CROP_KEEP)), round(h * (1 - CROP_KEEP))
    boxes = ((0, 0, w - dw, h - dh), (dw, 0, w, h - dh), (0, dh, w - dw, h), (dw, dh, w, h))
    views = [pil] + [pil.crop(box) if dw or dh else pil for box in boxes]
    return tuple(int(_dedup.phash(view), 16) for view in views)


def check_hash(value: object, what: str = "hash") -> int:
    """``value`` as a hash: an int in 0..2**64-1, else ``ValueError`` saying what was wrong."""
    if isinstance(value, np.integer):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        # ValueError, not TypeError: callers (API, CLI) report every bad hash the same way.
        raise ValueError(  # noqa: TRY004
            f"{what} must be an int in 0..2**64-1 (a 64-bit perceptual hash), got {value!r}"
        )
    if not 0 <= value <= _MAX_HASH:
        raise ValueError(f"{what} {value} is out of range: a 64-bit hash lies in 0..2**64-1 (unsigned)")
    return value


def hamming(a: int, b: int) -> int:
    """The number of bits in which two 64-bit hashes differ (0..64)."""
    return (check_hash(a, "first hash") ^ check_hash(b, "second hash")).bit_count()


def photo_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """The smallest Hamming distance between any hash of photo ``a`` and any hash of photo ``b``.

    Two photos are the same picture when this is at most :data:`DEFAULT_MAX_DISTANCE`.
    """
    if not a or not b:
        raise ValueError("photo_distance needs at least one hash per photo; pass photo_hashes(image)")
    return min(hamming(x, y) for x in a for y in b)
