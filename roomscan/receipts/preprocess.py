"""Photo clean-up before OCR (OpenCV): find the paper, flatten its perspective, deskew, even out the light.

Each step can be switched off in :class:`PreprocessConfig`, and skips itself when it does not apply (a flat scan
has no table around it, an upright page needs no deskew). With ``debug_dir`` every step's output is saved as
``NN_step.png``.

Example:
    >>> from roomscan.receipts.preprocess import PreprocessConfig, preprocess
    >>> result = preprocess(rgb, PreprocessConfig(deskew=False), debug_dir="debug/")   # doctest: +SKIP
    >>> result.image.shape, result.steps                                                # doctest: +SKIP
    ((1400, 620, 3), ('paper', 'normalise'))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PreprocessConfig", "Preprocessed", "preprocess"]


@dataclass(frozen=True)
class PreprocessConfig:
    """Which clean-up steps run.

    Attributes:
        find_paper: look for the receipt (largest bright four-cornered region) and warp it flat.
        deskew: rotate by the text's dominant angle modulo 90 degrees (projection-profile search within
            ``max_skew``); a page left sideways or upside down is turned upright after OCR (see
            :mod:`roomscan.receipts.orient`).
        normalise: divide out uneven light and stretch contrast.
        orient: after OCR, turn a page that reads sideways or upside down (see
            :class:`~roomscan.receipts.pipeline.ReceiptReader`; costs up to three more reads for such a page).
        max_side: downscale larger photos to this many pixels on the long side first (speed; print stays legible).
        max_skew: largest skew, in degrees, the deskew step searches (45: any angle, modulo a quarter turn).
    """

    find_paper: bool = True
    deskew: bool = True
    normalise: bool = True
    orient: bool = True
    max_side: int = 1800
    max_skew: float = 45.0


@dataclass(frozen=True)
class Preprocessed:
    """The image OCR reads (``[h, w, 3]`` uint8 RGB) and the steps that changed it."""

    image: np.ndarray
    steps: tuple[str, ...]


def preprocess(
    image: np.ndarray, config: PreprocessConfig | None = None, debug_dir: str | Path | None = None
) -> Preprocessed:
    """Run the enabled steps on an RGB photo; see the module docstring."""
    import cv2

    config = config or PreprocessConfig()
    saver = _Saver(debug_dir)
    rgb = np.ascontiguousarray(image[..., :3]).astype(np.uint8)
    h, w = rgb.shape[:2]
    if max(h, w) > config.max_side:
        scale = config.max_side / max(h, w)
        rgb = cv2.resize(
            rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    saver.save("input", rgb)
    steps: list[str] = []
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if config.find_paper:
        quad = find_paper(gray)
        if quad is not None:
            gray = _warp(gray, quad)
            steps.append("paper")
            saver.save("paper", gray)
    if config.deskew and min(gray.shape) >= 32:
        angle = estimate_skew(gray, config.max_skew)
        if abs(angle) >= 0.3:
            gray = _rotate(gray, angle)
            steps.append("deskew")
            saver.save("deskew", gray)
    if config.normalise:
        gray = normalise(gray)
        steps.append("normalise")
        saver.save("normalise", gray)
    return Preprocessed(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB), tuple(steps))


def find_paper(gray: np.ndarray) -> np.ndarray | None:
    """The receipt's four corners (``[4, 2]`` float32, clockwise from top-left), or ``None`` for a flat scan.

    The paper is the largest bright region that touches no more than one image border and covers 10-95% of the
    photo; its outline is simplified to four corners (falling back to its minimum-area rectangle).
    """
    import cv2

    h, w = gray.shape
    small_scale = 600 / max(h, w) if max(h, w) > 600 else 1.0
    small = cv2.resize(gray, (round(w * small_scale), round(h * small_scale))) if small_scale < 1 else gray
    blur = cv2.GaussianBlur(small, (5, 5), 0)
    _, mask = cv2.threshold(blur, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))  # fill the print inside
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    area = cv2.contourArea(contour) / (mask.shape[0] * mask.shape[1])
    if not 0.10 <= area <= 0.95:
        return None
    x, y, cw, ch = cv2.boundingRect(contour)
    sh, sw = mask.shape
    touching = (x <= 1) + (y <= 1) + (x + cw >= sw - 1) + (y + ch >= sh - 1)
    if touching >= 2:  # bright region reaching across the frame: a scan, or no paper to separate
        return None
    peri = cv2.arcLength(contour, True)
    approx = cv2.approxPolyDP(contour, 0.02 * peri, True)
    points = approx.reshape(-1, 2) if len(approx) == 4 else cv2.boxPoints(cv2.minAreaRect(contour))
    return _order(np.asarray(points, dtype=np.float32) / small_scale)


def _order(points: np.ndarray) -> np.ndarray:
    """Corners clockwise on screen, starting from the top-left-most one.

    Sorting by angle around the centre keeps four distinct corners however the paper lies (at 45 degrees the
    top-left corner is ambiguous, and the paper may come out a quarter turn off: orientation fixes that later).
    """
    centre = points.mean(axis=0)
    clockwise = points[np.argsort(np.arctan2(points[:, 1] - centre[1], points[:, 0] - centre[0]))]
    start = int(np.argmin(clockwise.sum(axis=1)))
    return np.roll(clockwise, -start, axis=0).astype(np.float32)


def _warp(gray: np.ndarray, quad: np.ndarray) -> np.ndarray:
    import cv2

    tl, tr, br, bl = quad
    width = int(max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl)))
    height = int(max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr)))
    target = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float32)
    matrix = cv2.getPerspectiveTransform(quad, target)
    return cv2.warpPerspective(
        gray, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )


def estimate_skew(gray: np.ndarray, max_skew: float = 45.0) -> float:
    """The text's skew in degrees (rotate by it to level the lines), by projection-profile search.

    Text lines are level when the rows of the ink mask are most unequal (sharp peaks and empty gaps); the
    search tries angles coarse-to-fine on a downscaled mask.
    """
    import cv2

    h, w = gray.shape
    scale = min(1.0, 500 / max(h, w))
    small = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale)))) if scale < 1 else gray
    ink = cv2.adaptiveThreshold(small, 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 25, 15).astype(
        np.float32
    )
    if ink.sum() < 50:
        return 0.0

    def energy(angle: float) -> list[float]:
        # How sharply ink alternates between neighbouring rows (text lines and the gaps between them), and the
        # same for columns: their sum is the same at a quarter turn and blind to the page's outline, so a short
        # sideways page is not mistaken for a tilted one (plain row variance rewards the outline's diagonal).
        turned = _rotate(ink, angle, border=0.0)
        return [float(np.square(np.diff(turned.sum(axis=a))).sum()) for a in (1, 0)]

    # A page's text is level at its skew modulo 90 (sideways text lines up too): searching a few degrees past
    # +-45 and folding back keeps a page tilted by 44 degrees from landing on the edge of the range.
    reach = max_skew + 5.0 if max_skew >= 45 else max_skew
    best = max(np.arange(-reach, reach + 0.01, 1.0), key=lambda a: sum(energy(a)))
    # Near the answer, the variance of the profile across the text lines (rows, or columns when sideways) is
    # the sharper measure.
    across = 1 if energy(best)[0] >= energy(best)[1] else 0
    best = max(
        np.arange(best - 1.5, best + 1.51, 0.2),
        key=lambda a: float(np.var(_rotate(ink, a, border=0.0).sum(axis=across))),
    )
    if max_skew >= 45:
        best = (best + 45.0) % 90.0 - 45.0
    return float(round(best, 1))


def _rotate(image: np.ndarray, angle: float, border: float | None = None) -> np.ndarray:
    """Rotate about the centre by ``angle`` degrees (OpenCV sign: counter-clockwise), keeping every corner."""
    import cv2

    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    matrix[0, 2] += nw / 2 - w / 2
    matrix[1, 2] += nh / 2 - h / 2
    if border is None:
        return cv2.warpAffine(image, matrix, (nw, nh), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return cv2.warpAffine(image, matrix, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=border)


def normalise(gray: np.ndarray) -> np.ndarray:
    """Divide by the paper's own brightness (a large closing) to remove shadows, then stretch to 0-255."""
    import cv2

    size = max(15, (min(gray.shape) // 20) | 1)
    background = cv2.morphologyEx(
        gray, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    )
    flat = cv2.divide(gray, np.maximum(background, 1), scale=255)
    lo, hi = np.percentile(flat, (1, 99.5))
    if hi - lo < 10:
        return flat
    return np.clip((flat.astype(np.float32) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


class _Saver:
    def __init__(self, folder: str | Path | None) -> None:
        self.folder = Path(folder) if folder else None
        self.count = 0
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)

    def save(self, step: str, image: np.ndarray) -> None:
        if self.folder is None:
            return
        import cv2

        self.count += 1
        out = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(self.folder / f"{self.count:02d}_{step}.png"), out)
