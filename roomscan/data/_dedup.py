"""Exact and near-duplicate images: groups by byte hash, and by perceptual hash within a Hamming distance.

Near-duplicates are found among *distinct* contents only (one representative per byte hash), so a group of
near-duplicates always holds at least two different pictures; its files include every byte-identical copy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["exact_groups", "near_groups", "phash"]

# Rows compared at a time in the all-pairs search: [_CHUNK, n] uint8 distances stay a few MB for n ~ 100k.
_CHUNK = 256


def phash(image: Image.Image) -> str:
    """The 64-bit DCT perceptual hash of a PIL image, as 16 hex digits (imagehash's ``phash``)."""
    try:
        import imagehash
    except ImportError as exc:  # pragma: no cover - a dependency of the train extra
        raise ImportError("the data report needs imagehash: pip install 'roomscan[train]'") from exc
    return str(imagehash.phash(image))


def exact_groups(files: Sequence[str], digests: Sequence[str]) -> list[list[str]]:
    """Files sharing a byte hash, groups of two or more, each sorted; groups ordered by their first file."""
    by_digest: dict[str, list[str]] = defaultdict(list)
    for name, digest in zip(files, digests):
        by_digest[digest].append(name)
    return sorted((sorted(g) for g in by_digest.values() if len(g) > 1), key=lambda g: g[0])


def near_groups(
    files: Sequence[str], digests: Sequence[str], hashes: Sequence[str], max_distance: int
) -> list[list[str]]:
    """Groups of images whose perceptual hashes lie within ``max_distance`` bits, linked transitively.

    Args:
        files: one name per image.
        digests: the byte hash of each image (byte-identical copies count as one picture).
        hashes: the 16-hex-digit perceptual hash of each image.
        max_distance: the largest Hamming distance (0..64) that still counts as "the same picture".

    Returns:
        Sorted file lists, one per group of two or more distinct pictures; all-pairs search, O(n^2) XORs.
    """
    reps: dict[str, int] = {}  # byte digest -> index of its first image
    for i, digest in enumerate(digests):
        reps.setdefault(digest, i)
    rep_idx = list(reps.values())
    n = len(rep_idx)
    if n < 2:
        return []
    codes = np.array([int(hashes[i], 16) for i in rep_idx], dtype=np.uint64)  # [n]
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for start in range(0, n, _CHUNK):
        block = codes[start : start + _CHUNK]
        dist = np.bitwise_count(block[:, None] ^ codes[None, :])  # [chunk, n] differing bits
        rows, cols = np.nonzero(dist <= max_distance)
        for r, c in zip(rows.tolist(), cols.tolist()):
            a, b = find(start + r), find(c)
            if a != b:
                parent[max(a, b)] = min(a, b)

    members: dict[int, list[int]] = defaultdict(list)
    for k in range(n):
        members[find(k)].append(k)
    copies: dict[str, list[str]] = defaultdict(list)
    for name, digest in zip(files, digests):
        copies[digest].append(name)
    groups = []
    for ks in members.values():
        if len(ks) > 1:
            groups.append(sorted(name for k in ks for name in copies[digests[rep_idx[k]]]))
    return sorted(groups, key=lambda g: g[0])
