"""Photo quality checks (roomscan/insights/quality.py) on generated photos: each defect flagged with its own code
and no other, the clean photo with none, scores that rank a clean photo above damaged ones."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from roomscan.detection.image import load_image
from roomscan.insights.quality import (
    IssueCode,
    PhotoQuality,
    QualityThresholds,
    Severity,
    assess_photo,
)

SIZE = (1200, 800)  # above the 1024x683 minimum


def _scene(size: tuple[int, int], seed: int = 14) -> Image.Image:
    """An indoor-like photo: a lit wall and a floor, furniture and windows (rectangles), door frames and shelves
    (straight lines), sensor noise. Deterministic."""
    rng = np.random.default_rng(seed)
    w, h = size
    rows = np.linspace(0.0, 1.0, h)[:, None]
    base = np.where(rows < 0.62, 150 + 40 * rows, 95 - 20 * rows) + np.zeros(
        (h, w)
    )  # wall above, floor below
    image = Image.fromarray(np.repeat(base[..., None], 3, axis=2).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        x1, y1 = x0 + int(rng.integers(30, w // 4)), y0 + int(rng.integers(30, h // 3))
        draw.rectangle((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(30, 230, 3)))
    for _ in range(12):  # door frames, table legs: long verticals
        x, y0 = int(rng.integers(0, w)), int(rng.integers(0, h // 3))
        draw.line(
            (x, y0, x, y0 + int(rng.integers(h // 3, h - y0))),
            fill=tuple(int(c) for c in rng.integers(20, 120, 3)),
            width=4,
        )
    for _ in range(8):  # shelves, skirting
        x0, row = int(rng.integers(0, w // 2)), int(rng.integers(0, h))
        draw.line(
            (x0, row, x0 + int(rng.integers(w // 5, w // 2)), row),
            fill=tuple(int(c) for c in rng.integers(20, 220, 3)),
            width=3,
        )
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 4, (h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _crop_centre(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    left, top = (image.width - size[0]) // 2, (image.height - size[1]) // 2
    return image.crop((left, top, left + size[0], top + size[1]))


def _scaled(image: Image.Image, gain: float, offset: float = 0.0) -> Image.Image:
    values = np.asarray(image, dtype=np.float32) * gain + offset
    return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def big_scene() -> Image.Image:
    # Larger than SIZE so an 8° rotation can be cropped back to SIZE without its empty corners.
    return _scene((1600, 1067))


@pytest.fixture(scope="module")
def photos(big_scene: Image.Image) -> dict[str, Image.Image]:
    clean = _crop_centre(big_scene, SIZE)
    return {
        "clean": clean,
        "dark": _scaled(clean, 0.15),
        "blurred": clean.filter(ImageFilter.GaussianBlur(5)),
        "overexposed": _scaled(clean, 2.2, 40),
        "flat": _scaled(clean, 0.15, 110),
        "tilted": _crop_centre(big_scene.rotate(8, resample=Image.Resampling.BICUBIC), SIZE),
        "small": clean.resize((320, 240), Image.Resampling.LANCZOS),
    }


def _assess(image: Image.Image, **limits: Any) -> PhotoQuality:
    return assess_photo(image, thresholds=QualityThresholds(**limits)) if limits else assess_photo(image)


def test_a_clean_photo_has_no_issues_and_a_full_score(photos: dict[str, Image.Image]) -> None:
    quality = assess_photo(photos["clean"])
    assert quality.issues == ()
    assert quality.ok
    assert quality.score == 100.0
    assert (quality.width, quality.height) == SIZE
    assert quality.tilt_degrees == pytest.approx(0.0, abs=0.5)


@pytest.mark.parametrize(
    ("name", "code", "severity", "words"),
    [
        (
            "dark",
            IssueCode.TOO_DARK,
            Severity.PROBLEM,
            ["too dark: brightness 18/255", "at least 60", "turn on the lights"],
        ),
        (
            "blurred",
            IssueCode.BLURRY,
            Severity.PROBLEM,
            ["blurry: sharpness", "at least 100", "hold the phone still"],
        ),
        ("overexposed", IssueCode.OVEREXPOSED, Severity.WARNING, ["blown-out white", "at most 25%"]),
        ("flat", IssueCode.LOW_CONTRAST, Severity.PROBLEM, ["low contrast", "wipe the lens"]),
        ("tilted", IssueCode.TILTED, Severity.PROBLEM, ["tilted 8°", "hold the phone level"]),
        (
            "small",
            IssueCode.LOW_RESOLUTION,
            Severity.PROBLEM,
            ["low resolution: 320×240", "1024×683", "original photo"],
        ),
    ],
)
def test_each_defect_is_flagged_with_its_own_code_and_no_other(
    photos: dict[str, Image.Image], name: str, code: IssueCode, severity: Severity, words: list[str]
) -> None:
    quality = assess_photo(photos[name])
    assert [issue.code for issue in quality.issues] == [code]
    issue = quality.issues[0]
    assert issue.severity is severity
    assert quality.ok is (severity is Severity.WARNING)
    for word in words:
        assert word in issue.message


def test_problem_codes_leave_warnings_out(photos: dict[str, Image.Image]) -> None:
    mild = assess_photo(_scaled(photos["clean"].resize((640, 480), Image.Resampling.LANCZOS), 0.2))
    assert [(issue.code, issue.severity) for issue in mild.issues] == [
        (IssueCode.TOO_DARK, Severity.PROBLEM),
        (IssueCode.LOW_RESOLUTION, Severity.WARNING),
    ]
    assert mild.problem_codes == ("too_dark",)
    assert assess_photo(photos["clean"]).problem_codes == ()


def test_a_jpeg_entering_through_load_image_gets_the_verdict_of_its_pixels(
    photos: dict[str, Image.Image],
) -> None:
    for name, codes in (("clean", set()), ("blurred", {IssueCode.BLURRY}), ("tilted", {IssueCode.TILTED})):
        buffer = io.BytesIO()
        photos[name].save(buffer, "JPEG", quality=75)
        assert assess_photo(load_image(buffer.getvalue(), name=f"{name}.jpg").image).codes == codes, name


def test_the_score_ranks_a_clean_photo_above_damaged_copies(photos: dict[str, Image.Image]) -> None:
    scores = {name: assess_photo(photo).score for name, photo in photos.items()}
    damaged = {name: score for name, score in scores.items() if name != "clean"}
    assert all(0.0 <= score < scores["clean"] for score in damaged.values()), scores
    assert scores["dark"] < 50 and scores["blurred"] < 50, scores


def test_a_mildly_dark_photo_is_a_warning_and_may_still_lead(photos: dict[str, Image.Image]) -> None:
    quality = assess_photo(_scaled(photos["clean"], 0.42))  # brightness ~52: below 60, above 30
    assert [(issue.code, issue.severity) for issue in quality.issues] == [
        (IssueCode.TOO_DARK, Severity.WARNING)
    ]
    assert quality.ok
    assert assess_photo(photos["dark"]).score < quality.score < assess_photo(photos["clean"]).score


@pytest.mark.parametrize("angle", [-8.0, -4.5, 4.5, 8.0, 12.0])
def test_tilt_is_measured_in_degrees_counter_clockwise(big_scene: Image.Image, angle: float) -> None:
    quality = assess_photo(_crop_centre(big_scene.rotate(angle, resample=Image.Resampling.BICUBIC), SIZE))
    assert quality.tilt_degrees == pytest.approx(angle, abs=0.6)
    assert quality.codes == {IssueCode.TILTED}
    assert ("counter-clockwise" in quality.issues[0].message) is (angle > 0)


def test_a_slight_tilt_is_measured_but_not_flagged(big_scene: Image.Image) -> None:
    quality = assess_photo(_crop_centre(big_scene.rotate(2, resample=Image.Resampling.BICUBIC), SIZE))
    assert quality.tilt_degrees == pytest.approx(2.0, abs=0.6)
    assert quality.issues == ()


def _no_straight_lines() -> Image.Image:
    """Soft blobs and noise (a garden, a bedspread): nothing to judge tilt by."""
    rng = np.random.default_rng(7)
    image = Image.new("RGB", SIZE, (120, 130, 110))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y, r = (
            int(v) for v in (rng.integers(0, SIZE[0]), rng.integers(0, SIZE[1]), rng.integers(20, 120))
        )
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(40, 220, 3)))
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 6, (SIZE[1], SIZE[0], 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _diagonal_stripes(angle: float) -> Image.Image:
    """A staircase rail or a striped rug: straight lines, but far from vertical."""
    h, w = SIZE[1], SIZE[0]
    y, x = np.mgrid[0:h, 0:w]
    direction = np.radians(angle)
    phase = (x * np.cos(direction) + y * np.sin(direction)) // 40 % 2
    return Image.fromarray((60 + 120 * phase).astype(np.uint8)).convert("RGB")


@pytest.mark.parametrize(
    "make", [_no_straight_lines, lambda: _diagonal_stripes(30.0)], ids=["blobs", "stripes_30"]
)
def test_no_tilt_alarm_without_strong_evidence(make) -> None:  # type: ignore[no-untyped-def]
    quality = assess_photo(make())
    assert quality.tilt_degrees is None
    assert IssueCode.TILTED not in quality.codes


@pytest.mark.parametrize(
    ("size", "severity"),
    [
        ((1024, 683), None),
        ((683, 1024), None),
        ((1000, 700), Severity.WARNING),
        ((640, 480), Severity.WARNING),
        ((320, 240), Severity.PROBLEM),
        ((2000, 300), Severity.PROBLEM),
    ],
)
def test_resolution_limits_work_in_either_orientation(
    photos: dict[str, Image.Image], size: tuple[int, int], severity: Severity | None
) -> None:
    quality = assess_photo(photos["clean"].resize(size, Image.Resampling.LANCZOS))
    found = [issue.severity for issue in quality.issues if issue.code is IssueCode.LOW_RESOLUTION]
    assert found == ([] if severity is None else [severity])


def test_thresholds_change_the_verdict(photos: dict[str, Image.Image]) -> None:
    assert _assess(photos["small"], min_long_side=300, min_short_side=200).issues == ()
    assert IssueCode.BLURRY in _assess(photos["clean"], min_sharpness=100_000).codes


def _grey16(level: float) -> Image.Image:
    return Image.fromarray(np.full((600, 800), level * 65535, dtype=np.uint16))


@pytest.mark.parametrize(
    ("image", "brightness"),
    [
        (Image.new("RGB", (1, 1), (200, 200, 200)), 200),
        (Image.new("L", (1, 1)), 0),
        (Image.new("L", (1200, 900), 90), 90),
        (Image.new("1", (50, 40), 1), 255),
        (Image.new("RGBA", (300, 200), (0, 0, 0, 0)), 255),  # fully transparent: white, as a page shows it
        (Image.new("RGBA", (300, 200), (0, 0, 0, 255)), 0),
        (Image.new("LA", (2000, 1500), (100, 255)), 100),
        (Image.new("P", (64, 48), 3), None),
        (Image.new("CMYK", (64, 48), (0, 0, 0, 0)), 255),
        (_grey16(0.5), 127.5),  # 16-bit: the full range maps to 0-255, not stretched to the photo's maximum
        (_grey16(0.05), 12.75),
        (Image.fromarray(np.full((40, 30), 80, dtype=np.int32)), 80),  # "I" holding 8-bit values
        (Image.fromarray(np.full((40, 30), 80.0, dtype=np.float32)), 80),
    ],
    ids=[
        "rgb-1x1",
        "l-1x1",
        "l",
        "1",
        "rgba-clear",
        "rgba-opaque",
        "la-3mp",
        "p",
        "cmyk",
        "i16-mid",
        "i16-dark",
        "i32",
        "f",
    ],
)
def test_any_pillow_mode_and_size_is_assessed(image: Image.Image, brightness: float | None) -> None:
    quality = assess_photo(image)
    assert (quality.width, quality.height) == image.size
    if brightness is not None:
        assert quality.brightness == pytest.approx(brightness, abs=1.0)
    assert 0.0 <= quality.score <= 100.0
    json.dumps(quality.to_dict())


def test_a_greyscale_copy_gets_the_same_verdict(photos: dict[str, Image.Image]) -> None:
    assert assess_photo(photos["clean"].convert("L")).issues == ()
    assert assess_photo(photos["dark"].convert("L")).codes == {IssueCode.TOO_DARK}


def test_an_empty_image_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match=r"empty \(0x0 px\)"):
        assess_photo(Image.new("RGB", (0, 0)))


def test_to_dict_is_json_ready_and_complete(photos: dict[str, Image.Image]) -> None:
    data = json.loads(json.dumps(assess_photo(photos["dark"]).to_dict()))
    assert set(data) == {
        "width",
        "height",
        "megapixels",
        "brightness",
        "dark_share",
        "clipped_share",
        "contrast",
        "sharpness",
        "tilt_degrees",
        "score",
        "ok",
        "issues",
    }
    assert (data["width"], data["height"], data["megapixels"], data["ok"]) == (1200, 800, 0.96, False)
    assert data["brightness"] == pytest.approx(18, abs=1)
    assert data["issues"] == [
        {"code": "too_dark", "severity": "problem", "message": assess_photo(photos["dark"]).issues[0].message}
    ]


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"min_brightness": 300}, "min_brightness"),
        ({"max_dark_share": 1.5}, "max_dark_share"),
        ({"max_clipped_share": -0.1}, "max_clipped_share"),
        ({"min_sharpness": float("nan")}, "min_sharpness"),
        ({"max_tilt": 90}, "max_tilt"),
        ({"min_long_side": 0}, "min_long_side"),
        ({"min_long_side": 1024.5}, "min_long_side"),
        ({"min_contrast": "high"}, "min_contrast"),
        ({"max_tilt": True}, "max_tilt"),
        ({"min_short_side": 2000}, "min_short_side"),
    ],
)
def test_thresholds_are_validated_naming_the_field(limits: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=rf"QualityThresholds\.{field} "):
        QualityThresholds(**limits)  # type: ignore[arg-type]


def test_thresholds_take_numpy_numbers_from_a_config_array() -> None:
    limits = QualityThresholds(min_long_side=np.int64(800), min_sharpness=np.float32(50))  # type: ignore[arg-type]
    assert (limits.min_long_side, limits.min_sharpness) == (800, 50)


def test_a_12_megapixel_photo_gets_the_verdict_of_its_small_copy(photos: dict[str, Image.Image]) -> None:
    large = photos["clean"].resize((4000, 3000), Image.Resampling.BICUBIC)
    assess_photo(large)  # warm up (OpenCV's first call)
    start = time.perf_counter()
    quality = assess_photo(large)
    print(f"\n12 MP photo assessed in {(time.perf_counter() - start) * 1000:.0f} ms")
    assert quality.issues == ()
    assert quality.megapixels == 12.0


@pytest.mark.parametrize("name", ["dark", "clean"])
def test_from_dict_reads_back_what_to_dict_wrote(photos: dict[str, Image.Image], name: str) -> None:
    # The catalog stores to_dict() as JSON and reads it back with from_dict.
    quality = assess_photo(photos[name])
    again = PhotoQuality.from_dict(json.loads(json.dumps(quality.to_dict())))
    assert again.to_dict() == quality.to_dict()
    assert (again.ok, again.problem_codes, again.issues) == (quality.ok, quality.problem_codes, quality.issues)


@pytest.mark.parametrize(
    "doc", [{}, {"width": 10}, {**dict.fromkeys(["width", "height"], 1), "issues": [{"code": "nope"}]}]
)
def test_from_dict_refuses_a_document_that_is_not_a_quality(doc: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="not a PhotoQuality document"):
        PhotoQuality.from_dict(doc)
