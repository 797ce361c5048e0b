"""Photo quality checks: which listing photos are too small, dark, over-exposed, flat, blurry or tilted to lead with.

:func:`assess_photo` measures one photo and returns a :class:`PhotoQuality`: the measures, the issues a host can
act on (each a :class:`QualityIssue` with a plain reason and what to do), and a 0-100 ``score`` for choosing a
cover photo. It is a pure function of the pixels: no catalog, no model, no I/O.

Every measure except the resolution is taken on one small grey copy: the photo shrunk (area averaging) so its
long side is :data:`ANALYSIS_LONG_SIDE` (512) px, never enlarged, transparency composited on white as a page shows
it, converted to luminance 0-255 (ITU-R 601: 0.299 R + 0.587 G + 0.114 B). A 12 MP photo then costs 25-40 ms
(half of it the shrinking), about a quarter of decoding its JPEG (``benchmarks/bench_photo_quality.py``), and
sharpness is judged at about the size guests see in a listing's gallery: blur that only shows when zoomed in to
full resolution is not flagged, by design.

=============== ================================================================ ===================== ==========
measure         how it is computed (on the grey copy unless said)                issue (warning)       problem
=============== ================================================================ ===================== ==========
width, height   pixels of the photo itself, not of the copy;                     ``low_resolution``:   a side below
                megapixels = width x height / 1e6                                long side < 1024 or   half its
                                                                                 short side < 683      minimum
brightness      mean luminance, 0-255                                            ``too_dark``: < 60,   < 30
dark_share      share of pixels with luminance < 20 (near-black), 0-1            or dark_share > 0.5
clipped_share   share of pixels with luminance >= 250 (blown-out white), 0-1     ``overexposed``: >25% > 50%
contrast        standard deviation of luminance, 0-255 (RMS contrast)            ``low_contrast``: < 20 < 10
sharpness       variance of the Laplacian (3x3) of the grey copy stretched so    ``blurry``: < 100     < 25
                its 1st-99th percentiles span 0-255 (so a dark or flat photo is
                not called blurry for its lighting); squared grey levels
tilt_degrees    dominant angle of near-vertical straight lines (Canny edges,     ``tilted``: |t| > 3°  > 6°
                probabilistic Hough); None when the evidence is weak
=============== ================================================================ ===================== ==========

The rule behind the problem column: twice as far past the limit (half the brightness, twice the share, half the
side, twice the tilt), except sharpness, a variance (squared units), where a quarter is "half as sharp". A dark or
over-exposed photo is low in contrast too; ``low_contrast`` is reported only when the exposure does not already
explain it, so a host reads one cause, not two.

Tilt: camera roll turns every line by the same angle, so the verticals of a room (door frames, wall corners,
windows) lean together. Horizontal lines are not used: in perspective they recede at any angle. Converging
verticals from pointing the phone up or down lean both ways and cancel out. The tilt is reported only when the
evidence is strong: line segments within 15° of vertical whose angles agree within 1° of the peak must number at
least 3, add up to at least 3/4 of the photo's height and make at least half of all near-vertical line length;
otherwise ``tilt_degrees`` is ``None`` and nothing is flagged (a photo of a bed, a garden or a plate has no
reliable verticals). Positive means the scene is turned counter-clockwise; ``image.rotate(-tilt_degrees)`` levels
it.

Limits, known from generated scenes (the defaults are not yet calibrated on real listing photos; 1024 x 683 is
Airbnb's guidance, the others were set so generated clean scenes pass with room to spare: sharpness 1400 for a
busy room, 190 for a near-empty one, 15-25 after a Gaussian blur of radius 4-6 px at 1200 px):

* sensor noise added after the blur (a dim, grainy and shaken photo) reads as detail and can pass as sharp;
* a set of parallel lines within 15° of vertical with no true verticals beside them (a leaning striped wall) reads
  as tilt, and so do strongly converging verticals seen on one side of the photo only (the advice still fits).

Score (0-100, higher is a better cover), a product of factors in [0, 1], each 1 for a good photo, so one bad
defect sinks it::

    resolution = min(1, long_side / min_long_side, short_side / min_short_side)
    exposure   = min(brightness / (1.5 * min_brightness), 1 - clipped_share / (2 * max_clipped_share)), in [0, 1]
    sharpness  = min(1, sqrt(sharpness / (2 * min_sharpness)))
    contrast   = min(1, contrast / (1.5 * min_contrast))
    level      = 1 if tilt unknown, else max(0.5, 1 - max(0, |tilt| - 1) / 14)
    score      = round(100 * resolution * exposure * sharpness * contrast * level, 1)

Example:
    >>> from PIL import Image
    >>> quality = assess_photo(Image.new("RGB", (640, 480), (12, 12, 12)))
    >>> [issue.code.value for issue in quality.issues]
    ['too_dark', 'blurry', 'low_resolution']
    >>> quality.ok, quality.score
    (False, 0.0)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "ANALYSIS_LONG_SIDE",
    "IssueCode",
    "PhotoQuality",
    "QualityIssue",
    "QualityThresholds",
    "Severity",
    "assess_photo",
]

# Long side of the grey copy every measure but the resolution is taken on; min_sharpness is calibrated at it.
ANALYSIS_LONG_SIDE = 512
NEAR_BLACK = 20  # luminance below this counts as near-black
CLIPPED = 250  # luminance at or above this counts as blown-out white

# Tilt evidence (see the module docstring).
_TILT_SEARCH_DEG = 15.0
_TILT_AGREE_DEG = 1.0
_TILT_MIN_SEGMENTS = 3
_TILT_MIN_LENGTH = 0.75  # supporting segment length, in photo heights
_TILT_MIN_SHARE = 0.5  # of all near-vertical segment length


class Severity(StrEnum):
    WARNING = "warning"  # worth fixing; the photo can still be used
    PROBLEM = "problem"  # do not lead with this photo


class IssueCode(StrEnum):
    LOW_RESOLUTION = "low_resolution"
    TOO_DARK = "too_dark"
    OVEREXPOSED = "overexposed"
    LOW_CONTRAST = "low_contrast"
    BLURRY = "blurry"
    TILTED = "tilted"


@dataclass(frozen=True)
class QualityThresholds:
    """Limits past which a photo gets an issue (defaults in the module docstring's table).

    Attributes:
        min_long_side: pixels; Airbnb's guidance for listing photos is at least 1024 x 683.
        min_short_side: pixels.
        min_brightness: mean luminance 0-255 below which a photo is too dark.
        max_dark_share: share 0-1 of near-black pixels above which a photo is too dark.
        max_clipped_share: share 0-1 of blown-out white pixels above which a photo is over-exposed.
        min_contrast: standard deviation of luminance (0-255) below which a photo looks flat.
        min_sharpness: variance of the Laplacian at 512 px below which a photo is blurry.
        max_tilt: degrees of camera roll above which a photo is tilted.

    Raises:
        ValueError: a field out of its range, naming the field.
    """

    min_long_side: int = 1024
    min_short_side: int = 683
    min_brightness: float = 60.0
    max_dark_share: float = 0.5
    max_clipped_share: float = 0.25
    min_contrast: float = 20.0
    min_sharpness: float = 100.0
    max_tilt: float = 3.0

    def __post_init__(self) -> None:
        ranges: dict[str, tuple[float, float]] = {
            "min_long_side": (1, 100_000),
            "min_short_side": (1, 100_000),
            "min_brightness": (0, 255),
            "max_dark_share": (0, 1),
            "max_clipped_share": (0, 1),
            "min_contrast": (0, 128),
            "min_sharpness": (0, 1e6),
            "max_tilt": (0, 45),
        }
        for f in fields(self):
            value = getattr(self, f.name)
            low, high = ranges[f.name]
            integral = f.type in (int, "int")
            if isinstance(value, bool) or not isinstance(
                value, numbers.Integral if integral else numbers.Real
            ):
                kind = "a whole number" if integral else "a number"
                raise ValueError(f"QualityThresholds.{f.name} must be {kind}, got {value!r}")  # noqa: TRY004
            if not low <= float(value) <= high:  # NaN fails too
                raise ValueError(
                    f"QualityThresholds.{f.name} must be between {low:g} and {high:g}, got {value!r}"
                )
        if self.min_short_side > self.min_long_side:
            raise ValueError(
                f"QualityThresholds.min_short_side ({self.min_short_side}) must not exceed min_long_side "
                f"({self.min_long_side}); swap them"
            )


@dataclass(frozen=True)
class QualityIssue:
    """One thing a host can fix: ``code`` for programs, ``message`` for people (what is wrong, the limit, what to do)."""

    code: IssueCode
    severity: Severity
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code.value, "severity": self.severity.value, "message": self.message}


@dataclass(frozen=True)
class PhotoQuality:
    """What :func:`assess_photo` measured (units in the module docstring), the issues found and the cover score."""

    width: int
    height: int
    brightness: float
    dark_share: float
    clipped_share: float
    contrast: float
    sharpness: float
    tilt_degrees: float | None
    score: float
    issues: tuple[QualityIssue, ...] = ()

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6

    @property
    def ok(self) -> bool:
        """True when no issue is a problem (warnings allowed): the photo may lead a listing."""
        return all(issue.severity is not Severity.PROBLEM for issue in self.issues)

    @property
    def codes(self) -> frozenset[IssueCode]:
        return frozenset(issue.code for issue in self.issues)

    @property
    def problem_codes(self) -> tuple[str, ...]:
        """Codes of the problems (not the warnings), in order: what ``insights.tour.TourPhoto(problems=)`` takes."""
        return tuple(issue.code.value for issue in self.issues if issue.severity is Severity.PROBLEM)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the measures (rounded), ``megapixels``, ``score``, ``ok`` and ``issues`` as dicts."""
        out = asdict(self)
        for key, digits in (
            ("brightness", 1),
            ("contrast", 1),
            ("sharpness", 1),
            ("tilt_degrees", 1),
            ("dark_share", 3),
            ("clipped_share", 3),
        ):
            if out[key] is not None:
                out[key] = round(out[key], digits) + 0.0  # + 0.0: no "-0.0" in JSON
        out["megapixels"] = round(self.megapixels, 2)
        out["ok"] = self.ok
        out["issues"] = [issue.to_dict() for issue in self.issues]
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> PhotoQuality:
        """Inverse of :meth:`to_dict` (measures keep ``to_dict``'s rounding; ``megapixels`` and ``ok`` are
        derived again).

        Raises:
            ValueError: a field missing or of the wrong kind, or an unknown issue code or severity.
        """
        try:
            issues = tuple(
                QualityIssue(IssueCode(i["code"]), Severity(i["severity"]), str(i["message"]))
                for i in doc.get("issues", ())
            )
            tilt = doc["tilt_degrees"]
            return cls(
                width=int(doc["width"]),
                height=int(doc["height"]),
                brightness=float(doc["brightness"]),
                dark_share=float(doc["dark_share"]),
                clipped_share=float(doc["clipped_share"]),
                contrast=float(doc["contrast"]),
                sharpness=float(doc["sharpness"]),
                tilt_degrees=None if tilt is None else float(tilt),
                score=float(doc["score"]),
                issues=issues,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a PhotoQuality document ({type(exc).__name__}: {exc})") from exc


def assess_photo(image: Image.Image, *, thresholds: QualityThresholds = QualityThresholds()) -> PhotoQuality:
    """Measure one photo's quality and say what a host should fix.

    Args:
        image: any Pillow image: RGB (as :func:`roomscan.detection.image.load_image` gives), greyscale, with
            transparency (composited on white), palette, 16-bit or float greyscale.
        thresholds: the limits; the defaults suit listing photos.

    Returns:
        the measures, the issues (problems first) and the 0-100 cover score.

    Raises:
        ValueError: the image has no pixels.

    Example:
        >>> quality = assess_photo(load_image("kitchen.jpg").image)  # doctest: +SKIP
        >>> quality.ok, quality.score, [i.message for i in quality.issues]  # doctest: +SKIP
        (True, 100.0, [])
    """
    width, height = image.size
    if width < 1 or height < 1:
        raise ValueError(f"the image is empty ({width}x{height} px); give a photo with pixels")
    grey = _grey_copy(image)  # [h, w] float32, 0-255, long side <= ANALYSIS_LONG_SIDE
    brightness = float(grey.mean())
    dark_share = float((grey < NEAR_BLACK).mean())
    clipped_share = float((grey >= CLIPPED).mean())
    contrast = float(grey.std())
    stretched = _stretch(grey)
    sharpness = _laplacian_variance(stretched)
    tilt = _tilt_degrees(stretched)

    t = thresholds
    issues = [
        *_resolution_issues(width, height, t),
        *_exposure_issues(brightness, dark_share, clipped_share, contrast, t),
        *_sharpness_issues(sharpness, t),
        *_tilt_issues(tilt, t),
    ]
    issues.sort(
        key=lambda issue: issue.severity is not Severity.PROBLEM
    )  # stable: problems first, then check order
    return PhotoQuality(
        width=width,
        height=height,
        brightness=brightness,
        dark_share=dark_share,
        clipped_share=clipped_share,
        contrast=contrast,
        sharpness=sharpness,
        tilt_degrees=tilt,
        score=_score(width, height, brightness, clipped_share, contrast, sharpness, tilt, t),
        issues=tuple(issues),
    )


def _resolution_issues(width: int, height: int, t: QualityThresholds) -> list[QualityIssue]:
    long_side, short_side = max(width, height), min(width, height)
    if long_side >= t.min_long_side and short_side >= t.min_short_side:
        return []
    severe = long_side < t.min_long_side / 2 or short_side < t.min_short_side / 2
    return [
        _issue(
            IssueCode.LOW_RESOLUTION,
            severe,
            f"low resolution: {width}×{height} (at least {t.min_long_side}×{t.min_short_side} px expected): "
            "upload the original photo, not a screenshot or a resized copy",
        )
    ]


def _exposure_issues(
    brightness: float, dark_share: float, clipped_share: float, contrast: float, t: QualityThresholds
) -> list[QualityIssue]:
    issues = []
    if brightness < t.min_brightness or dark_share > t.max_dark_share:
        severe = brightness < t.min_brightness / 2 or dark_share > min(1.0, 2 * t.max_dark_share)
        issues.append(
            _issue(
                IssueCode.TOO_DARK,
                severe,
                f"too dark: brightness {brightness:.0f}/255 (aim for at least {t.min_brightness:.0f}), "
                f"{dark_share:.0%} near-black: turn on the lights or open the curtains",
            )
        )
    if clipped_share > t.max_clipped_share:
        issues.append(
            _issue(
                IssueCode.OVEREXPOSED,
                clipped_share > min(1.0, 2 * t.max_clipped_share),
                f"over-exposed: {clipped_share:.0%} of the photo is blown-out white (at most "
                f"{t.max_clipped_share:.0%}): tap the bright area to expose for it, or shoot away from the window",
            )
        )
    if (
        contrast < t.min_contrast and not issues
    ):  # a dark or blown-out photo is flat too: one cause, one message
        issues.append(
            _issue(
                IssueCode.LOW_CONTRAST,
                contrast < t.min_contrast / 2,
                f"low contrast: {contrast:.0f} (at least {t.min_contrast:.0f} expected), the photo looks flat or "
                "hazy: wipe the lens and avoid shooting into the light",
            )
        )
    return issues


def _sharpness_issues(sharpness: float, t: QualityThresholds) -> list[QualityIssue]:
    if sharpness >= t.min_sharpness:
        return []
    return [
        _issue(
            IssueCode.BLURRY,
            sharpness < t.min_sharpness / 4,
            f"blurry: sharpness {sharpness:.0f} (at least {t.min_sharpness:.0f} expected): hold the phone still "
            "or tap to focus",
        )
    ]


def _tilt_issues(tilt: float | None, t: QualityThresholds) -> list[QualityIssue]:
    if tilt is None or abs(tilt) <= t.max_tilt:
        return []
    way = "counter-clockwise" if tilt > 0 else "clockwise"
    return [
        _issue(
            IssueCode.TILTED,
            abs(tilt) > 2 * t.max_tilt,
            f"tilted {abs(tilt):.0f}° {way} (at most {t.max_tilt:g}°): hold the phone level so walls and door "
            "frames stand straight, or straighten the photo",
        )
    ]


def _issue(code: IssueCode, severe: bool, message: str) -> QualityIssue:
    return QualityIssue(code, Severity.PROBLEM if severe else Severity.WARNING, message)


def _score(
    width: int,
    height: int,
    brightness: float,
    clipped_share: float,
    contrast: float,
    sharpness: float,
    tilt: float | None,
    t: QualityThresholds,
) -> float:
    resolution = min(1.0, max(width, height) / t.min_long_side, min(width, height) / t.min_short_side)
    exposure = min(
        brightness / (1.5 * t.min_brightness) if t.min_brightness else 1.0,
        1.0 - clipped_share / (2 * t.max_clipped_share) if t.max_clipped_share else float(clipped_share == 0),
    )
    sharp = math.sqrt(sharpness / (2 * t.min_sharpness)) if t.min_sharpness else 1.0
    flat = contrast / (1.5 * t.min_contrast) if t.min_contrast else 1.0
    level = 1.0 if tilt is None else max(0.5, 1.0 - max(0.0, abs(tilt) - 1.0) / 14.0)
    factors = [min(1.0, max(0.0, f)) for f in (resolution, exposure, sharp, flat, level)]
    return round(100.0 * math.prod(factors), 1)


def _grey_copy(image: Image.Image) -> np.ndarray:
    """[h, w] float32 luminance 0-255, shrunk by area averaging to a long side of at most ANALYSIS_LONG_SIDE."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "PA":
        image = image.convert("RGBA")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode.startswith("I;16") or image.mode == "I":
        # 16-bit greyscale: the full range maps to 0-255 (not stretched to the photo's own maximum, which would
        # brighten a dark photo). An "I" image holding 8-bit values is taken as is.
        values = np.asarray(image, dtype=np.float32)
        scale = 257.0 if image.mode != "I" or values.max(initial=0) > 255 else 1.0
        image = Image.fromarray(np.clip(values / scale, 0, 255).astype(np.float32), "F")
    elif image.mode not in ("L", "LA", "RGB", "RGBA", "F"):
        image = image.convert("RGB")  # CMYK, YCbCr, HSV, LAB...

    long_side = max(image.size)
    if long_side > ANALYSIS_LONG_SIDE:
        ratio = ANALYSIS_LONG_SIDE / long_side
        size = (max(1, round(image.width * ratio)), max(1, round(image.height * ratio)))
        factor = long_side // ANALYSIS_LONG_SIDE
        if (
            factor >= 2
        ):  # integer box reduction first: several times faster than resizing a 12 MP photo directly
            image = image.reduce(factor)
        image = image.resize(size, Image.Resampling.BOX)

    if image.mode in ("RGBA", "LA"):
        alpha = np.asarray(image.getchannel("A"), dtype=np.float32) / 255.0
        luma = np.asarray(image.convert("L"), dtype=np.float32)
        return luma * alpha + 255.0 * (1.0 - alpha)
    if image.mode == "F":
        return np.clip(np.asarray(image, dtype=np.float32), 0, 255)
    return np.asarray(image.convert("L"), dtype=np.float32)


def _stretch(grey: np.ndarray) -> np.ndarray:
    """[h, w] uint8 with the 1st-99th percentiles mapped to 0-255 (a flat photo stays flat)."""
    low, high = np.percentile(grey, [1, 99])
    if high - low < 1.0:
        return np.full(grey.shape, 128, dtype=np.uint8)
    return np.clip((grey - low) * (255.0 / (high - low)), 0, 255).astype(np.uint8)


def _laplacian_variance(grey: np.ndarray) -> float:
    import cv2  # OpenCV is a core dependency; imported here so `import roomscan` stays light

    return float(cv2.Laplacian(grey, cv2.CV_32F, ksize=1).var())


def _tilt_degrees(grey: np.ndarray) -> float | None:
    """Dominant lean of near-vertical lines in degrees (counter-clockwise positive), or None without strong evidence."""
    import cv2

    height, width = grey.shape
    if min(height, width) < 32:
        return None
    edges = cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), 50, 150)
    min_length = max(15, round(0.08 * min(height, width)))
    found = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=40, minLineLength=min_length, maxLineGap=8)
    if found is None:
        return None
    x1, y1, x2, y2 = found.reshape(-1, 4).astype(np.float64).T  # [n] each
    # Lean from vertical, measured from the lower end to the upper one: positive when the top is to the left,
    # which is how a scene turned counter-clockwise (PIL's rotate(+a)) looks. Image y grows downwards.
    down = y1 >= y2
    dx = np.where(down, x1 - x2, x2 - x1)  # lower x - upper x
    dy = np.abs(y1 - y2)
    lean = np.degrees(np.arctan2(dx, dy))  # [n], in (-90, 90]
    length = np.hypot(x2 - x1, y2 - y1)
    near = np.abs(lean) <= _TILT_SEARCH_DEG
    if near.sum() < _TILT_MIN_SEGMENTS:
        return None
    lean, length = lean[near], length[near]

    # Length-weighted histogram in 0.5° bins; the peak is the best 2°-wide window.
    bins = np.arange(-_TILT_SEARCH_DEG, _TILT_SEARCH_DEG + 0.5, 0.5)
    hist, _ = np.histogram(lean, bins=bins, weights=length)
    window = np.convolve(hist, np.ones(4), mode="same")
    peak = float(bins[int(window.argmax())] + 0.25)
    agree = np.abs(lean - peak) <= _TILT_AGREE_DEG
    support = float(length[agree].sum())
    if (
        agree.sum() < _TILT_MIN_SEGMENTS
        or support < _TILT_MIN_LENGTH * height
        or support < _TILT_MIN_SHARE * float(length.sum())
    ):
        return None
    return float(np.average(lean[agree], weights=length[agree]))
