"""Dataset -> training batches: decoded, resized images (cached on disk) and DETR-style targets.

Images are decoded with :func:`~roomscan.detection.image.load_image` (EXIF-upright RGB) and resized to a square
``image_size`` (what the RT-DETR/D-FINE processors do at inference), then kept as uint8 ``.npy`` files under
the cache directory, keyed by the file's SHA-256 and the size, so later epochs and later runs skip JPEG decoding.
The data order of epoch ``e`` is a permutation drawn from ``seed + e`` alone, so a resumed run sees exactly the
batches an uninterrupted one would; under torchrun each process takes its shard of that same order.

Example:
    >>> cache = ImageCache("~/.roomscan/cache/images", image_size=640)   # doctest: +SKIP
    >>> for batch in iter_batches(dataset, cache, batch_size=8, epoch=0, seed=0):   # doctest: +SKIP
    ...     outputs = model(pixel_values=batch.pixel_values, labels=batch.labels)
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from roomscan.data.dataset import DatasetError, DetectionDataset, ImageRecord
from roomscan.errors import ImageError

__all__ = ["Batch", "ImageCache", "default_cache_dir", "epoch_order", "iter_batches", "targets_for"]


def default_cache_dir() -> Path:
    from roomscan.settings import default_home

    return default_home() / "cache" / "images"


class ImageCache:
    """Decoded, resized images: ``[S, S, 3]`` uint8 arrays, on disk when ``root`` is given, else decoded each time.

    Attributes:
        decodes: how many images this cache has decoded (a cache hit decodes nothing).
    """

    def __init__(self, root: str | os.PathLike[str] | None, image_size: int) -> None:
        self.root = Path(root).expanduser() if root is not None else None
        self.image_size = int(image_size)
        self.decodes = 0
        self._hashes: dict[tuple[str, int, int], str] = {}
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)

    def _file_hash(self, path: Path) -> str:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        return self._hashes[key]

    def _decode(self, path: Path, record: ImageRecord) -> np.ndarray:
        from PIL import Image

        from roomscan.detection.image import load_image

        try:
            loaded = load_image(path)
        except ImageError as exc:
            raise DatasetError(f"image id {record.id} ({record.file_name}): {exc}") from exc
        self.decodes += 1
        if loaded.image.size != (record.width, record.height):
            raise DatasetError(
                f"{path}: image id {record.id} is {loaded.width}x{loaded.height} (upright) but annotations.json "
                f"says {record.width}x{record.height}; boxes would be misplaced. Fix the record's width/height."
            )
        resized = loaded.image.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        return np.asarray(resized, dtype=np.uint8)

    def get(self, path: str | os.PathLike[str], record: ImageRecord) -> np.ndarray:
        """The image at ``path``, resized to ``[S, S, 3]`` uint8.

        Raises:
            DatasetError: the file is missing, unreadable, or not the size its record says.
        """
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"{path}: image id {record.id} ({record.file_name}) not found")
        if self.root is None:
            return self._decode(path, record)
        digest = self._file_hash(path)
        file = self.root / digest[:2] / f"{digest}_{self.image_size}.npy"
        if file.is_file():
            try:
                return np.load(file)
            except (OSError, ValueError):  # a torn or foreign file: decode again and overwrite it
                pass
        array = self._decode(path, record)
        file.parent.mkdir(parents=True, exist_ok=True)
        # A unique temp file per writer: loader threads share a pid, and duplicate images share a cache key.
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, array)
            os.replace(tmp, file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return array


@dataclass(frozen=True)
class Batch:
    """A training or evaluation batch.

    Attributes:
        pixel_values: ``[B, 3, S, S]`` float32, rescaled (and normalised) as the image processor would.
        labels: per image ``{"class_labels": [n] int64, "boxes": [n, 4] float32 normalised cxcywh}``.
        image_ids: dataset image ids, in batch order.
        sizes: ``(height, width)`` of each original image, for mapping predictions back to pixels.
    """

    pixel_values: Any
    labels: list[dict[str, Any]]
    image_ids: list[int]
    sizes: list[tuple[int, int]]

    def to(self, device: str) -> Batch:
        labels = [{k: v.to(device) for k, v in t.items()} for t in self.labels]
        return Batch(self.pixel_values.to(device), labels, self.image_ids, self.sizes)


def targets_for(dataset: DetectionDataset, record: ImageRecord, *, flip: bool = False) -> dict[str, np.ndarray]:
    """Ground truth of one image as DETR targets: class ids and normalised ``cx, cy, w, h`` boxes (crowd dropped)."""
    dets = dataset.annotations[record.id]
    keep = np.ones(len(dets), dtype=bool)
    crowd = dets.data.get("iscrowd") if len(dets) else None
    if crowd is not None:
        keep &= np.asarray(crowd) == 0
    xyxy = dets.xyxy[keep].astype(np.float64)
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, record.width) / record.width
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, record.height) / record.height
    if flip:
        xyxy[:, [0, 2]] = 1.0 - xyxy[:, [2, 0]]
    wh = xyxy[:, 2:] - xyxy[:, :2]
    valid = (wh > 0).all(axis=1)
    boxes = np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, wh], axis=1)[valid]
    class_ids = np.asarray(dets.class_id, dtype=np.int64)[keep][valid] if len(dets) else np.zeros(0, np.int64)
    return {"class_labels": class_ids, "boxes": boxes.astype(np.float32).reshape(-1, 4)}


def epoch_order(n: int, *, epoch: int, seed: int, shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The image order of one epoch and which images to flip, both from ``seed`` and ``epoch`` only."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n) if shuffle else np.arange(n)
    return order, rng.random(n)


def iter_batches(
    dataset: DetectionDataset,
    cache: ImageCache,
    *,
    batch_size: int,
    epoch: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    hflip: float = 0.0,
    rescale: float = 1 / 255,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    num_workers: int = 0,
    indices: Sequence[int] | None = None,
    sampler: Iterable[int] | None = None,
) -> Iterator[Batch]:
    """Yield batches of ``dataset`` (the last may be smaller) in the epoch's deterministic order.

    Args:
        rescale, mean, std: the image processor's pixel transform (``x * rescale``, then ``(x - mean) / std``
            when given).
        num_workers: threads loading the next batch's images while the model runs (0: inline).
        indices: use only these image positions (before shuffling), e.g. one batch for overfitting.
        sampler: the positions of the epoch's order this process takes, e.g. its ``DistributedSampler`` shard
            (see :meth:`roomscan.train.distributed.World.sampler`); ``None``: the whole order.
    """
    import torch

    positions = np.arange(len(dataset)) if indices is None else np.asarray(indices)
    order, coins = epoch_order(len(positions), epoch=epoch, seed=seed, shuffle=shuffle)
    if sampler is not None:  # the flip coins stay indexed by position: an image flips as in a one-process run
        order = order[np.fromiter(sampler, dtype=np.int64)]
    flips = coins < hflip
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) if mean is not None else None
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) if std is not None else None

    def load(chunk: np.ndarray) -> Batch:
        arrays, labels, ids, sizes = [], [], [], []
        for k in chunk:
            record = dataset.images[int(positions[k])]
            array = cache.get(dataset.path(record), record)
            if flips[k]:
                array = array[:, ::-1]
            arrays.append(np.ascontiguousarray(array))
            target = targets_for(dataset, record, flip=bool(flips[k]))
            labels.append({key: torch.from_numpy(value) for key, value in target.items()})
            ids.append(record.id)
            sizes.append((record.height, record.width))
        # [B, S, S, 3] uint8 -> [B, 3, S, S] float32
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() * rescale
        if mean_t is not None and std_t is not None:
            pixels = (pixels - mean_t) / std_t
        return Batch(pixels.contiguous(), labels, ids, sizes)

    if num_workers <= 0:
        for chunk in chunks:
            yield load(chunk)
        return
    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        pending = [pool.submit(load, c) for c in chunks[: num_workers + 1]]
        for i in range(len(chunks)):
            batch = pending[i].result()
            if i + num_workers + 1 < len(chunks):
                pending.append(pool.submit(load, chunks[i + num_workers + 1]))
            yield batch
