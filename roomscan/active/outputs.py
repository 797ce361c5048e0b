"""What ``roomscan active rank`` writes: the ranking, a contact sheet, Label Studio files for the batch.

Into ``out_dir`` (created):

* ``ranking.csv`` / ``ranking.json``: rank, photo (path or catalog photo id), the chosen score, every
  registered score's value, why, and the consensus labels (the JSON adds the consensus boxes and the run's
  settings);
* ``contact_sheet.html``: one self-contained page (thumbnails as base64 JPEG, no external URL) with each
  member's boxes drawn in its own colour and a legend;
* ``labelstudio_tasks.json``: Label Studio's import format for image object detection with pre-annotations:
  one task per photo, ``{"data": {"image": ...}, "predictions": [{"model_version", "score", "result":
  [...]}]}``, each result a ``rectanglelabels`` region in percent of the image, labelled with the amenity's
  name, carrying the committee's consensus boxes. The rectangles come from
  :func:`roomscan.data.formats.labelstudio.to_tasks` (the same label names and percent conversion as
  ``roomscan data convert``), moved from ``annotations`` to ``predictions``. The prediction's ``score`` is the
  mean confidence of its boxes (low = uncertain, so Label Studio's sort by prediction score puts contested
  photos first); ``data.roomscan_rank`` and ``data.roomscan_score`` keep our exact order;
* ``labelstudio_config.xml``: the labelling config (``Image`` named ``image``, ``RectangleLabels`` named
  ``label`` with one ``Label`` per amenity name) the tasks refer to.

Every file is written under a temporary name first and renamed into place only when all are written, so an
interrupted run never leaves a half-written file where a previous batch's was.
"""

from __future__ import annotations

import base64
import colorsys
import csv
import html
import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

    from roomscan.active.rank import RankedPhoto, RankResult
    from roomscan.taxonomy import Taxonomy

__all__ = [
    "CONTACT_SHEET",
    "LABELSTUDIO_CONFIG",
    "LABELSTUDIO_TASKS",
    "RANKING_CSV",
    "RANKING_JSON",
    "check_out_dir",
    "labelstudio_config",
    "labelstudio_tasks",
    "member_colours",
    "write_outputs",
]

RANKING_CSV = "ranking.csv"
RANKING_JSON = "ranking.json"
CONTACT_SHEET = "contact_sheet.html"
LABELSTUDIO_TASKS = "labelstudio_tasks.json"
LABELSTUDIO_CONFIG = "labelstudio_config.xml"

_PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#bfef45",
    "#9a6324",
    "#000075",
    "#808000",
    "#469990",
)


def member_colours(k: int) -> list[str]:
    """``k`` distinct hex colours: a fixed high-contrast palette, then evenly spaced hues."""
    if k <= len(_PALETTE):
        return list(_PALETTE[:k])
    return [
        "#" + "".join(f"{round(255 * c):02x}" for c in colorsys.hsv_to_rgb(i / k, 0.85, 0.9))
        for i in range(k)
    ]


def check_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir`` as a path, if it is (or can be made) a writable folder; checked before a long ranking.

    Raises:
        RankError: it, or the nearest existing folder above it, is a file or cannot be written.
    """
    from roomscan.active.pool import RankError

    root = Path(out_dir)
    existing = next(p for p in (root, *root.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise RankError(f"--out {root}: {existing} is a file, not a folder; give a folder for the batch's files")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RankError(f"--out {root}: cannot write in {existing} (permission denied); give a folder you can write")
    return root


def write_outputs(
    result: RankResult,
    out_dir: str | os.PathLike[str],
    *,
    load: Callable[[RankedPhoto], Image.Image] | None = None,
    thumb_size: int = 240,
) -> tuple[Path, ...]:
    """Write every output file of ``result`` into ``out_dir``; returns their paths.

    Args:
        result: what :func:`~roomscan.active.rank.rank` chose.
        out_dir: created if missing; files of an earlier run are replaced only once all new ones are written.
        load: reads a picked photo's pixels for the contact sheet (a grey placeholder without it, or when the
            photo cannot be read any more).
        thumb_size: the thumbnails' longest side in pixels.
    """
    from roomscan.active.pool import RankError

    root = check_out_dir(out_dir)
    contents: dict[str, str] = {
        RANKING_CSV: ranking_csv(result),
        RANKING_JSON: json.dumps(ranking_json(result), indent=1),
        CONTACT_SHEET: contact_sheet(result, load=load, thumb_size=thumb_size),
        LABELSTUDIO_TASKS: json.dumps(labelstudio_tasks(result), indent=1),
        LABELSTUDIO_CONFIG: labelstudio_config(result.taxonomy),
    }
    temps: list[tuple[Path, Path]] = []
    try:
        root.mkdir(parents=True, exist_ok=True)
        for name, text in contents.items():
            tmp = root / f".{name}.{os.getpid()}.tmp"
            tmp.write_text(text, encoding="utf-8", errors="surrogateescape")  # non-UTF-8 file names: their bytes
            temps.append((tmp, root / name))
        for tmp, final in temps:
            os.replace(tmp, final)
    except OSError as exc:  # disk full, a folder made read-only meanwhile: earlier batch files stay as they were
        raise RankError(f"--out {root}: could not write the batch's files ({exc})") from exc
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
    return tuple(final for _, final in temps)


# -- the ranking ---------------------------------------------------------------------------------------------
def _score_names(result: RankResult) -> list[str]:
    return list(result.photos[0].scores) if result.photos else []


def ranking_csv(result: RankResult) -> str:
    """``rank, photo, score, <every registered score>, known_error, why, consensus`` (labels: ``a;b``)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    names = _score_names(result)
    writer.writerow(["rank", "photo", "score", *names, "known_error", "why", "consensus"])
    for p in result.photos:
        writer.writerow(
            [
                p.rank,
                p.id,
                f"{p.score:.6f}",
                *(f"{p.scores[n]:.6f}" for n in names),
                int(p.known_error),
                p.why,
                ";".join(b.label for b in p.consensus),
            ]
        )
    return buf.getvalue()


def ranking_json(result: RankResult) -> dict[str, Any]:
    """The run's settings and every pick with its scores, reason and consensus boxes."""
    return {
        "score": result.score,
        "budget": result.budget,
        "pool_size": result.pool_size,
        "short": result.short,
        "committee": result.committee,
        "members": list(result.members),
        "model_version": result.model_version,
        "taxonomy": result.taxonomy.slugs,
        "class_counts": result.class_counts,
        "skipped": [{"photo": label, "reason": why} for label, why in result.skipped],
        "photos": [
            {
                "rank": p.rank,
                "photo": p.id,
                "path": p.label,
                "width": p.width,
                "height": p.height,
                "score": p.score,
                "scores": dict(p.scores),
                "known_error": p.known_error,
                "why": p.why,
                "consensus": [
                    {
                        "label": b.label,
                        "score": round(b.score, 4),
                        "agreement": round(b.agreement, 4),
                        "box": [round(v, 2) for v in b.xyxy],
                    }
                    for b in p.consensus
                ],
            }
            for p in result.photos
        ],
    }


# -- Label Studio --------------------------------------------------------------------------------------------
def labelstudio_tasks(result: RankResult) -> list[dict[str, Any]]:
    """One Label Studio task per pick, in rank order, consensus boxes as pre-annotations (see above)."""
    from roomscan.data.dataset import DetectionDataset, ImageRecord
    from roomscan.data.formats.labelstudio import to_tasks
    from roomscan.detection.core import make_detections

    images = [ImageRecord(p.rank, p.ref, p.width, p.height) for p in result.photos]
    annotations = {
        p.rank: make_detections(
            np.array([b.xyxy for b in p.consensus], dtype=np.float32).reshape(-1, 4),
            [b.score for b in p.consensus],
            [b.class_id for b in p.consensus],
            [b.label for b in p.consensus],
        )
        for p in result.photos
    }
    dataset = DetectionDataset(Path("."), result.taxonomy, images, annotations)
    tasks = []
    for task, photo in zip(to_tasks(dataset, image_prefix=""), result.photos, strict=True):
        [annotation] = task.pop("annotations")
        regions = annotation["result"]
        for region, box in zip(regions, photo.consensus, strict=True):
            region["score"] = round(box.score, 4)
        task.pop("id", None)  # Label Studio numbers imported tasks itself
        task["data"]["roomscan_rank"] = photo.rank
        task["data"]["roomscan_score"] = round(photo.score, 6)
        task["data"]["roomscan_photo"] = photo.id
        mean = float(np.mean([b.score for b in photo.consensus])) if photo.consensus else 0.0
        task["predictions"] = [
            {"model_version": result.model_version, "score": round(mean, 4), "result": regions}
        ]
        tasks.append(task)
    return tasks


def labelstudio_config(taxonomy: Taxonomy) -> str:
    """The labelling config: an ``Image`` named ``image`` and ``RectangleLabels`` named ``label``, one
    ``Label`` per amenity name (the names :func:`labelstudio_tasks` writes)."""
    labels = "\n".join(f"    <Label value={quoteattr(a.name)}/>" for a in taxonomy)
    return (
        "<View>\n"
        '  <Image name="image" value="$image"/>\n'
        '  <RectangleLabels name="label" toName="image">\n'
        f"{labels}\n"
        "  </RectangleLabels>\n"
        "</View>\n"
    )


# -- the contact sheet ---------------------------------------------------------------------------------------
def _thumbnail(image: Image.Image | None, photo: RankedPhoto, colours: Sequence[str], size: int) -> str:
    from PIL import Image as PILImage
    from PIL import ImageDraw

    if image is None:
        image = PILImage.new("RGB", (max(photo.width, 1), max(photo.height, 1)), (200, 200, 200))
    thumb = image.convert("RGB")
    thumb.thumbnail((size, size))
    sx, sy = thumb.width / max(photo.width, 1), thumb.height / max(photo.height, 1)
    draw = ImageDraw.Draw(thumb)
    clusters = photo.clusters
    for k in range(clusters.members):  # each member's boxes, in its colour
        for j in np.flatnonzero(clusters.present[:, k]):
            x1, y1, x2, y2 = clusters.boxes[j, k]
            draw.rectangle(
                (x1 * sx, y1 * sy, max(x2 * sx, x1 * sx + 1), max(y2 * sy, y1 * sy + 1)),
                outline=colours[k],
                width=2,
            )
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=80)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def contact_sheet(
    result: RankResult,
    *,
    load: Callable[[RankedPhoto], Image.Image] | None = None,
    thumb_size: int = 240,
) -> str:
    """A self-contained HTML page of the picks: thumbnails with each member's boxes, a legend, reasons."""
    colours = member_colours(len(result.members))
    legend = "".join(
        f'<li><span class="sw" style="background:{c}"></span>{html.escape(name)}</li>'
        for name, c in zip(result.members, colours, strict=True)
    )
    cards = []
    for photo in result.photos:
        image = None
        if load is not None:
            try:
                image = load(photo)
            except Exception:  # noqa: BLE001 - a photo gone since ranking: a placeholder, not a lost sheet
                image = None
        data = _thumbnail(image, photo, colours, thumb_size)
        labels = ", ".join(html.escape(b.label) for b in photo.consensus) or "none agreed"
        flag = ' <b class="known">known model error</b>' if photo.known_error else ""
        cards.append(
            f'<figure><img alt="{html.escape(str(photo.label))}" src="data:image/jpeg;base64,{data}">'
            f"<figcaption><b>#{photo.rank}</b> {html.escape(str(photo.label))}{flag}<br>"
            f"{html.escape(result.score)} {photo.score:.3f}<br><small>{html.escape(photo.why)}</small><br>"
            f"<small>consensus: {labels}</small></figcaption></figure>"
        )
    title = f"roomscan active rank: {len(result.photos)} of {result.pool_size} photos by {result.score}"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:1em}"
        "main{display:flex;flex-wrap:wrap;gap:12px}"
        f"figure{{margin:0;width:{thumb_size}px}}figcaption{{font-size:13px}}"
        ".sw{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:middle}"
        "ul.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:12px}.known{color:#b00}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(result.committee)}</p>"
        f'<ul class="legend">{legend}</ul><main>{"".join(cards)}</main></body></html>\n'
    )
