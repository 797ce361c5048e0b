"""The data report as one self-contained HTML page: charts and sample strips embedded as data URIs.

Every piece of text from the dataset (file names, class names, decoder messages) goes through ``html.escape``.
Long lists are cut at ``MAX_ROWS`` rows on the page; ``summary.json`` holds them whole.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING

import numpy as np

from roomscan.data import _plots

if TYPE_CHECKING:
    from roomscan.data.explore import ExploreReport

__all__ = ["render"]

MAX_ROWS = 100

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
.meta { color: #666; } .findings li { margin: 0.25em 0; } .ok { color: #2a7; }
table { border-collapse: collapse; margin: 0.6em 0; } td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; } .more { color: #666; font-style: italic; }
img.plot { max-width: 100%; display: block; margin: 0.6em 0; } img.strip { display: block; margin: 0.3em 0 1em; }
code { background: #f4f4f4; padding: 0 3px; }
"""


def _img(data: bytes, mime: str, alt: str, cls: str) -> str:
    return f'<img class="{cls}" alt="{escape(alt)}" src="data:{mime};base64,{base64.b64encode(data).decode("ascii")}">'


def _table(head: Sequence[str], rows: Iterable[Sequence[object]], numeric: Sequence[int] = ()) -> str:
    rows = list(rows)
    out = [
        "<table><tr>"
        + "".join(f"<th{' class=n' if i in numeric else ''}>{escape(h)}</th>" for i, h in enumerate(head))
        + "</tr>"
    ]
    for row in rows[:MAX_ROWS]:
        out.append(
            "<tr>"
            + "".join(
                f"<td{' class=n' if i in numeric else ''}>{escape(str(v))}</td>" for i, v in enumerate(row)
            )
            + "</tr>"
        )
    out.append("</table>")
    if len(rows) > MAX_ROWS:
        out.append(f'<p class="more">… and {len(rows) - MAX_ROWS:,} more (all in summary.json)</p>')
    return "\n".join(out)


def _groups(groups: Sequence[Sequence[str]], what: str) -> str:
    if not groups:
        return f'<p class="ok">No {escape(what)}.</p>'
    return _table(["group", "files"], ((k + 1, ", ".join(g)) for k, g in enumerate(groups)), numeric=(0,))


def render(
    report: ExploreReport,
    boxes_per_image: Sequence[int],
    aspect_ratios: Sequence[float] | np.ndarray,
    samples: Sequence[bytes | None],
) -> str:
    """The page for ``report``; ``boxes_per_image`` and ``aspect_ratios`` feed the histograms, ``samples`` holds
    one JPEG strip (or ``None``) per class in taxonomy order."""
    r = report
    names = [c.name for c in r.classes]
    png = "image/png"
    imbalance = "n/a" if r.imbalance_ratio is None else f"{r.imbalance_ratio:g}x"
    empty = escape(", ".join(r.empty_classes)) or "none"
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Data report: {escape(r.dataset)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Data report</h1>",
        f'<p class="meta"><code>{escape(r.dataset)}</code>: {r.num_images:,} images, {r.num_boxes:,} boxes, {len(r.classes)} classes</p>',
        '<section id="findings"><h2>What to look at</h2><ul class="findings">',
        *(f"<li>{escape(f)}</li>" for f in r.findings),
        "</ul></section>",
        '<section id="classes"><h2>Classes</h2>',
        _img(_plots.class_count_bars(names, [c.boxes for c in r.classes]), png, "Boxes per class", "plot"),
        f"<p>Imbalance (largest / smallest non-empty class): <b>{imbalance}</b>. Classes without boxes: {empty}.</p>",
        _table(
            ["class", "boxes", "images", "small", "medium", "large"],
            ((c.name, f"{c.boxes:,}", f"{c.images:,}", c.small, c.medium, c.large) for c in r.classes),
            numeric=(1, 2, 3, 4, 5),
        ),
        "</section>",
        '<section id="boxes-per-image"><h2>Boxes per image</h2>',
        _img(_plots.boxes_per_image_histogram(boxes_per_image), png, "Boxes per image", "plot"),
        f"<p>{len(r.images_without_boxes):,} images without boxes.</p>",
        _table(["image without boxes"], ((f,) for f in r.images_without_boxes))
        if r.images_without_boxes
        else "",
        "</section>",
        '<section id="box-sizes"><h2>Box sizes and shapes</h2>',
        "<p>COCO area ranges: small &lt; 32² px², medium 32²–96², large &gt; 96² (degenerate boxes left out).</p>",
        _img(
            _plots.box_size_bars(
                names,
                [c.small for c in r.classes],
                [c.medium for c in r.classes],
                [c.large for c in r.classes],
            ),
            png,
            "Box sizes per class",
            "plot",
        ),
        _img(_plots.aspect_ratio_histogram(aspect_ratios), png, "Box aspect ratios", "plot"),
        f"<p>Width / height at the 5th, 50th and 95th percentile: {escape(str(r.aspect_ratio_quantiles or 'n/a'))}.</p>",
        "</section>",
        '<section id="image-sizes"><h2>Image sizes</h2>',
        f"<p>{len(r.image_sizes):,} distinct sizes among the readable files (decoded, EXIF rotation applied).</p>",
        _img(_plots.image_size_scatter(r.image_sizes), png, "Image sizes", "plot"),
        _table(["width", "height", "images"], r.image_sizes, numeric=(0, 1, 2)),
        "</section>",
        '<section id="duplicates"><h2>Duplicates</h2><h3>Exact (same bytes)</h3>',
        _groups(r.exact_duplicates, "exact duplicates"),
        f"<h3>Near (perceptual hash within {r.near_duplicate_distance} of 64 bits)</h3>",
        _groups(r.near_duplicates, "near-duplicates"),
        "</section>",
        '<section id="unreadable"><h2>Unreadable files</h2>',
        _table(["image", "kind", "reason"], ((u.file_name, u.kind, u.reason) for u in r.unreadable))
        if r.unreadable
        else '<p class="ok">Every file decodes.</p>',
        "</section>",
        '<section id="bad-boxes"><h2>Suspect boxes and sizes</h2>',
        *_issue_tables(r),
        "</section>",
        '<section id="samples"><h2>Samples per class</h2>',
    ]
    for stats, strip in zip(r.classes, samples):
        parts.append(f"<h3>{escape(stats.name)} <span class=meta>({stats.images:,} images)</span></h3>")
        parts.append(
            _img(strip, "image/jpeg", f"Samples of {stats.name}", "strip")
            if strip
            else '<p class="more">No readable image has this class.</p>'
        )
    parts.append("</section></body></html>")
    return "\n".join(p for p in parts if p)


def _issue_tables(r: ExploreReport) -> list[str]:
    head = ["image", "box #", "class", "x1, y1, x2, y2"]
    out = ["<h3>Degenerate boxes (zero or negative width or height)</h3>"]
    out.append(
        _table(
            head,
            (
                (b.file_name, b.index, b.class_name, ", ".join(f"{v:g}" for v in b.box))
                for b in r.degenerate_boxes
            ),
        )
        if r.degenerate_boxes
        else '<p class="ok">None.</p>'
    )
    out.append("<h3>Boxes outside the image's declared size</h3>")
    out.append(
        _table(
            head,
            (
                (b.file_name, b.index, b.class_name, ", ".join(f"{v:g}" for v in b.box))
                for b in r.out_of_bounds_boxes
            ),
        )
        if r.out_of_bounds_boxes
        else '<p class="ok">None.</p>'
    )
    out.append("<h3>Declared size differs from the file</h3>")
    out.append(
        _table(
            ["image", "declared", "file"],
            (
                (m.file_name, f"{m.declared[0]}x{m.declared[1]}", f"{m.actual[0]}x{m.actual[1]}")
                for m in r.size_mismatches
            ),
        )
        if r.size_mismatches
        else '<p class="ok">None.</p>'
    )
    return out
