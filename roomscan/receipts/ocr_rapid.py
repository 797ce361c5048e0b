"""PP-OCR (detection + recognition) through RapidOCR 3.x on onnxruntime; the models ship inside its wheel."""

from __future__ import annotations

import math

import numpy as np

from roomscan.receipts.ocr import OcrEngine, OcrError, Word


class RapidOcrEngine(OcrEngine):
    """PP-OCR text lines as words: each detected run of text, its quad's bounding box and its baseline angle.

    Args:
        threads: onnxruntime intra-op threads (-1: onnxruntime's choice).
        det_side: the detector's input side limit; smaller is faster, larger finds smaller print.
    """

    name = "rapidocr"

    def __init__(self, threads: int = -1, det_side: int = 736) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise OcrError("the rapidocr engine needs rapidocr: pip install 'roomscan[receipts]'") from exc
        params = {
            "Global.log_level": "error",
            "Det.limit_side_len": det_side,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
        }
        try:
            self._ocr = RapidOCR(params=params)
        except Exception as exc:
            raise OcrError(
                f"rapidocr could not load its models ({exc}); reinstall it: pip install rapidocr"
            ) from exc

    def read(self, image: np.ndarray) -> list[Word]:
        result = self._ocr(np.ascontiguousarray(image[..., ::-1]))  # RapidOCR expects OpenCV's BGR
        if result.boxes is None or result.txts is None or result.scores is None:
            return []
        words = []
        for quad, text, score in zip(result.boxes, result.txts, result.scores, strict=True):
            text = str(text).strip()
            if not text:
                continue
            quad = np.asarray(
                quad, dtype=np.float64
            )  # [4, 2]: top-left, top-right, bottom-right, bottom-left
            (x0, y0), (x1, y1) = quad.min(axis=0), quad.max(axis=0)
            dx, dy = quad[1] - quad[0]
            angle = math.degrees(math.atan2(dy, dx)) if dx > 0 else None
            words.append(Word(text, (float(x0), float(y0), float(x1), float(y1)), float(score), angle))
        return words
