"""Batches: DETR targets, deterministic epoch order, and the decoded-image cache."""

from __future__ import annotations

import numpy as np
import pytest

from roomscan.data.dataset import DatasetError, DetectionDataset
from roomscan.train.data import ImageCache, epoch_order, iter_batches, targets_for


@pytest.fixture(scope="module")
def dataset(shapes_dir):
    return DetectionDataset.load(shapes_dir)


def test_cache_makes_the_second_epoch_and_later_runs_skip_decoding(dataset, tmp_path):
    cache = ImageCache(tmp_path / "cache", image_size=64)
    first = [b.pixel_values for b in iter_batches(dataset, cache, batch_size=8, epoch=0)]
    assert cache.decodes == len(dataset)
    list(iter_batches(dataset, cache, batch_size=8, epoch=1))
    assert cache.decodes == len(dataset)  # epoch 2: no decoding at all
    later_run = ImageCache(tmp_path / "cache", image_size=64)
    again = [b.pixel_values for b in iter_batches(dataset, later_run, batch_size=8, epoch=0)]
    assert later_run.decodes == 0
    assert all((x == y).all() for x, y in zip(first, again))
    uncached = ImageCache(None, image_size=64)
    fresh = [b.pixel_values for b in iter_batches(dataset, uncached, batch_size=8, epoch=0)]
    assert uncached.decodes == len(dataset) and all((x == y).all() for x, y in zip(first, fresh))
    other_size = ImageCache(tmp_path / "cache", image_size=32)  # the key includes the size
    next(iter_batches(dataset, other_size, batch_size=1, shuffle=False))
    assert other_size.decodes == 1


def test_batches_hold_normalised_cxcywh_targets_and_pixels_in_unit_range(dataset):
    batch = next(iter_batches(dataset, ImageCache(None, 64), batch_size=4, shuffle=False))
    assert tuple(batch.pixel_values.shape) == (4, 3, 64, 64)
    assert 0.0 <= float(batch.pixel_values.min()) and float(batch.pixel_values.max()) <= 1.0
    record = dataset.images[0]
    gt = dataset.annotations[record.id]
    boxes = batch.labels[0]["boxes"].numpy()
    x1, y1, x2, y2 = gt.xyxy[0]
    assert boxes[0] == pytest.approx([(x1 + x2) / 2 / 96, (y1 + y2) / 2 / 96, (x2 - x1) / 96, (y2 - y1) / 96], abs=1e-6)
    assert batch.labels[0]["class_labels"].tolist() == gt.class_id.tolist()
    assert batch.sizes[0] == (96, 96) and batch.image_ids[0] == record.id


def test_flip_mirrors_boxes(dataset):
    record = dataset.images[0]
    plain, flipped = targets_for(dataset, record), targets_for(dataset, record, flip=True)
    assert flipped["boxes"][:, 0] == pytest.approx(1 - plain["boxes"][:, 0])
    assert flipped["boxes"][:, 1:] == pytest.approx(plain["boxes"][:, 1:])


def test_epoch_order_depends_only_on_seed_and_epoch():
    a, _ = epoch_order(50, epoch=3, seed=7)
    b, _ = epoch_order(50, epoch=3, seed=7)
    c, _ = epoch_order(50, epoch=4, seed=7)
    assert (a == b).all() and not (a == c).all() and sorted(a) == list(range(50))


def test_threaded_loading_gives_the_same_batches(dataset):
    inline = list(iter_batches(dataset, ImageCache(None, 32), batch_size=5, epoch=2, hflip=0.5))
    threaded = list(iter_batches(dataset, ImageCache(None, 32), batch_size=5, epoch=2, hflip=0.5, num_workers=2))
    assert [b.image_ids for b in inline] == [b.image_ids for b in threaded]
    assert all((x.pixel_values == y.pixel_values).all() for x, y in zip(inline, threaded))


@pytest.mark.parametrize(
    ("damage", "message"),
    [("missing", "not found"), ("corrupt", "image id 1"), ("wrong size", "annotations.json says")],
)
def test_bad_images_are_named(dataset, tmp_path, damage, message):
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(dataset.images_dir.parent, root)
    broken = DetectionDataset.load(root)
    path = broken.path(broken.images[0])
    if damage == "missing":
        path.unlink()
    elif damage == "corrupt":
        path.write_bytes(b"\xff\xd8\xff not really a jpeg")
    else:
        from PIL import Image

        Image.fromarray(np.zeros((50, 40, 3), dtype=np.uint8)).save(path, "JPEG")
    with pytest.raises(DatasetError, match=message):
        list(iter_batches(broken, ImageCache(tmp_path / "cache", 32), batch_size=4, shuffle=False))
