"""Marking files: same format, size and metadata; bounds re-checked on the written files; originals kept (files.py)."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from _models import make_image

from roomscan.radioactive.config import NetworkConfig
from roomscan.radioactive.errors import RadioactiveError
from roomscan.radioactive.files import estimate_jpeg_quality, mark_files
from roomscan.radioactive.key import MarkingKey
from roomscan.radioactive.mark import linf_distance, psnr
from roomscan.radioactive.network import MarkingNetwork, features, network_identity
from roomscan.radioactive.stats import random_carriers
from roomscan.radioactive.synthetic import make_pattern_images

CONFIG = NetworkConfig(widths=(8, 16, 32), image_size=32)
NAMES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def net() -> MarkingNetwork:
    torch.manual_seed(0)
    return MarkingNetwork(CONFIG).eval()


@pytest.fixture(scope="module")
def key(net) -> MarkingKey:
    return MarkingKey.new(
        random_carriers(3, CONFIG.feature_dim, seed=8), NAMES, network_identity(net), seed=8
    )


def _upright(path) -> np.ndarray:
    from PIL import ImageOps

    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def photos(tmp_path):
    """A JPEG at quality 90, one at 75 stored sideways (EXIF orientation 6), an RGB PNG and an RGBA PNG."""
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    images = make_pattern_images(1, n_classes=3, size=64, seed=4).images
    exif = Image.Exif()
    exif[0x0112] = 6
    paths = [src / "a.jpg", src / "sub" / "b.jpeg", src / "c.png", src / "d.png"]
    images[0].save(paths[0], quality=90)
    images[1].resize((64, 48)).save(paths[1], quality=75, exif=exif.tobytes())
    images[2].save(paths[2])
    rgba = make_image((40, 56), seed=3).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((40, 56)))
    rgba.save(paths[3])
    return paths


def test_marked_files_keep_format_size_metadata_and_meet_the_bounds(tmp_path, photos, key, net):
    before = {p: _digest(p) for p in photos}
    out = tmp_path / "marked"
    result = mark_files(photos, out, ["circle", "square", "triangle", "circle"], key, net, steps=8)
    assert not result.skipped and len(result.files) == 4
    assert {p: _digest(p) for p in photos} == before, "the originals must not change"
    for src, rec in zip(photos, result.files, strict=True):
        written = out / src.relative_to(photos[0].parent)
        assert rec.source == str(src) and rec.output == str(written) and written.is_file()
        with Image.open(src) as a, Image.open(written) as b:
            assert (b.format, b.size, b.mode) == (a.format, a.size, a.mode)
            assert b.getexif().get(0x0112) == a.getexif().get(0x0112)
            if a.mode == "RGBA":
                assert np.array_equal(np.asarray(a.getchannel("A")), np.asarray(b.getchannel("A")))
            if a.format == "JPEG":
                assert b.quantization == a.quantization  # the original's quality, table for table
        original, marked = _upright(src), _upright(written)
        assert linf_distance(original, marked) <= 10 / 255 and psnr(original, marked) >= 42.0
        assert rec.psnr == pytest.approx(psnr(original, marked)) and rec.linf == linf_distance(
            original, marked
        )
        assert (original != marked).any()
        assert rec.sha256_original == before[src] and rec.sha256_marked == _digest(written)
    assert [f.name for f in result.files] == ["circle", "square", "triangle", "circle"]
    assert result.mean_psnr >= 42.0
    saved = key.with_files(result.files).save(tmp_path / "key.npz")
    assert MarkingKey.load(saved).files == result.files


def test_a_marked_jpeg_keeps_its_mark_through_reencoding_at_its_quality(tmp_path, key, net):
    src = tmp_path / "src"
    src.mkdir()
    data = make_pattern_images(3, n_classes=3, size=64, seed=6)
    paths = []
    for i, im in enumerate(data.images):
        paths.append(src / f"{i}.jpg")
        im.save(paths[-1], quality=90)
    result = mark_files(paths, tmp_path / "out", list(data.labels), key, net, steps=30, seed=1)
    assert not result.skipped
    originals, reencoded = [], []
    for p, rec in zip(paths, result.files, strict=True):
        originals.append(Image.fromarray(_upright(p)))
        with Image.open(rec.output) as marked:
            quality = estimate_jpeg_quality(marked.quantization)
            assert abs(quality - 90) <= 1
            buf = io.BytesIO()
            marked.convert("RGB").save(buf, "JPEG", quality=quality)  # what a scraper's pipeline might do
        reencoded.append(Image.open(buf).convert("RGB"))
    shift = (features(net, reencoded) - features(net, originals)).numpy().astype(np.float64)
    shift /= np.linalg.norm(shift, axis=1, keepdims=True)
    along = (shift * key.carriers[list(data.labels)]).sum(1)
    at_random = shift @ random_carriers(200, CONFIG.feature_dim, seed=77).T
    assert along.mean() > 0.2 and along.min() > 0.05, along
    assert abs(float(at_random.mean())) < 0.05


def test_the_originals_folder_is_refused_unless_overwriting_is_asked(tmp_path, photos, key, net):
    before = {p: _digest(p) for p in photos}
    with pytest.raises(RadioactiveError, match="originals' folder"):
        mark_files(photos[:1], photos[0].parent, [0], key, net, steps=2)
    assert {p: _digest(p) for p in photos} == before
    result = mark_files(photos[:1], photos[0].parent, [0], key, net, steps=2, overwrite_originals=True)
    assert result.files[0].output == str(photos[0])
    assert _digest(photos[0]) == result.files[0].sha256_marked != before[photos[0]]
    assert sorted(p.name for p in photos[0].parent.iterdir()) == ["a.jpg", "c.png", "d.png", "sub"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("not an image"), "not an image roomscan can read"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: make_image((32, 32)).convert("L").save(p, "PNG"), "only RGB and RGBA PNGs"),
        (lambda p: make_image((32, 32)).save(p, "GIF"), "GIF files cannot be written back"),
    ],
)
def test_a_file_that_cannot_be_marked_stops_the_run_before_anything_is_written(
    tmp_path, photos, key, net, make, message
):
    bad = photos[0].parent / "bad.png"
    make(bad)
    out = tmp_path / "out"
    with pytest.raises(RadioactiveError, match=message) as info:
        mark_files([photos[0], bad], out, [0, 1], key, net, steps=2)
    assert str(bad) in str(info.value) and "nothing was written" in str(info.value)
    assert not out.exists() or not any(out.rglob("*"))


def test_a_jpeg_whose_reencoding_alone_breaks_the_floor_is_skipped_with_the_reason(tmp_path, key, net):
    src = tmp_path / "src"
    src.mkdir()
    # Noise and sharp colour edges under 4:2:0 chroma: re-encoding the decoded pixels alone costs ~40 dB.
    make_image((64, 64), seed=0).save(src / "busy.jpg", quality=90)
    result = mark_files(
        [src / "busy.jpg"], tmp_path / "out", [0], key, net, steps=4, psnr_floor=55.0, retries=2
    )
    assert not result.files and len(result.skipped) == 1
    assert "lower the PSNR floor" in result.skipped[0].reason and "~90" in result.skipped[0].reason
    assert not (tmp_path / "out" / "busy.jpg").exists()


def test_a_floor_that_leaves_no_room_for_a_change_writes_nothing(tmp_path, key, net):
    src = tmp_path / "src"
    src.mkdir()
    make_image((48, 48), seed=2).save(src / "p.png")
    result = mark_files([src / "p.png"], tmp_path / "out", [0], key, net, steps=2, psnr_floor=80.0)
    assert not result.files and "no 8-bit change" in result.skipped[0].reason
    assert not (tmp_path / "out" / "p.png").exists()


def test_other_mistakes_are_named(tmp_path, photos, key, net):
    with pytest.raises(RadioactiveError, match="one class per file"):
        mark_files(photos, tmp_path / "o", [0], key, net)
    with pytest.raises(RadioactiveError, match="no carrier for class 'garage'"):
        mark_files(photos[:1], tmp_path / "o", ["garage"], key, net)
    with pytest.raises(RadioactiveError, match="not inside root"):
        mark_files(photos[:1], tmp_path / "o", [0], key, net, root=tmp_path / "elsewhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RadioactiveError, match="not a folder"):
        mark_files(photos[:1], tmp_path / "file", [0], key, net)


@pytest.mark.parametrize("quality", [20, 50, 75, 90, 95])
def test_jpeg_quality_is_estimated_from_its_tables(quality):
    buf = io.BytesIO()
    make_image((32, 32)).save(buf, "JPEG", quality=quality)
    with Image.open(buf) as im:
        assert abs(estimate_jpeg_quality(im.quantization) - quality) <= 1
