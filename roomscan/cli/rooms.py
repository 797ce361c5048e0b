"""``roomscan evaluate-rooms``: how well a detector types photos by room, on photos labelled by hand.

The photos go through the detection pass as in production;
:class:`~roomscan.insights.classify.RoomClassifier` scores their room types and
:func:`~roomscan.insights.rooms.evaluate_rooms` compares the best room with the label.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from roomscan.cli._common import (
    DeviceOpt,
    ImageSizeOpt,
    JsonOpt,
    MinScoreOpt,
    ModelOpt,
    TaxonomyOpt,
    note_skipped,
    report_bad,
)
from roomscan.cli._console import console, err_console, progress
from roomscan.detection.image import IMAGE_SUFFIXES
from roomscan.errors import ImageError, RoomscanError

if TYPE_CHECKING:
    from roomscan.backends import Detector
    from roomscan.detection.core import Detections
    from roomscan.insights.rooms import RoomReport, RoomScores, RoomTypes

__all__ = [
    "LABELS_FILE",
    "LabelledPhoto",
    "LabelsError",
    "evaluate_rooms_command",
    "read_labelled_folder",
    "score_photos",
    "take_round_robin",
]

LABELS_FILE = "labels.csv"
CAVEAT = (
    "These figures hold for this model on these photos only: "
    "real room-type accuracy needs real listing photos and the real model weights."
)


class LabelsError(RoomscanError, ValueError):
    """A labelled folder that cannot be evaluated: missing, empty, a bad room name, a malformed labels.csv."""


@dataclass(frozen=True)
class LabelledPhoto:
    """A photo and the room type a person labelled it with; ``where`` says where the label came from."""

    path: Path
    room: str
    where: str


def _valid(rooms: RoomTypes) -> str:
    return ", ".join(rooms.slugs)


def _photos_in(folder: Path) -> tuple[list[Path], list[Path]]:
    """Image files under ``folder`` (any depth, sorted) and the other files there."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES], [
        p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES
    ]


def _read_labels_csv(data: Path, rooms: RoomTypes) -> list[LabelledPhoto]:
    """``DIR/labels.csv``: a ``file,room`` header, then one photo per line (path relative to DIR, room)."""
    path = data / LABELS_FILE
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise LabelsError(f"{path}: not UTF-8 text; save it as UTF-8 CSV with the header file,room") from None
    except OSError as exc:
        raise LabelsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    reader = csv.reader(text.splitlines(), strict=True)
    out: list[LabelledPhoto] = []
    seen: dict[Path, tuple[str, int]] = {}
    header_seen = False
    try:
        for row in reader:
            line = reader.line_num
            cells = [c.strip() for c in row]
            if not any(cells):
                continue
            if not header_seen:
                if [c.lower() for c in cells] != ["file", "room"]:
                    raise LabelsError(
                        f"{path} line {line}: expected the header 'file,room', got {','.join(row)!r}; "
                        "add that header line first"
                    )
                header_seen = True
                continue
            if len(cells) != 2 or not all(cells):
                raise LabelsError(
                    f"{path} line {line}: expected two values, a photo path and a room type (file,room), "
                    f"got {','.join(row)!r}"
                )
            name, room = cells
            if room not in rooms.slugs:
                raise LabelsError(
                    f"{path} line {line}: {room!r} is not a room type; use one of {_valid(rooms)} "
                    "(or pass --room-types with your own)"
                )
            photo = Path(name) if Path(name).is_absolute() else data / name
            if not photo.is_file():
                raise LabelsError(
                    f"{path} line {line}: no such photo {name!r} (paths are relative to {data}); "
                    "fix the path or remove the line"
                )
            key = photo.resolve()
            if key in seen and seen[key][0] != room:
                raise LabelsError(
                    f"{path} line {line}: {name!r} is labelled {room!r} here and {seen[key][0]!r} on line "
                    f"{seen[key][1]}; keep one label per photo"
                )
            if key not in seen:
                seen[key] = (room, line)
                out.append(LabelledPhoto(photo, room, f"{LABELS_FILE} line {line}"))
    except csv.Error as exc:
        raise LabelsError(f"{path} line {reader.line_num}: not valid CSV ({exc})") from None
    if not header_seen:
        raise LabelsError(f"{path} is empty: write the header 'file,room', then one line per photo")
    return out


def read_labelled_folder(data: Path, rooms: RoomTypes) -> list[LabelledPhoto]:
    """The labelled photos of ``data``: one sub-folder per room slug, and/or ``data/labels.csv``.

    Files that are not photos, and photos at the top of ``data`` that ``labels.csv`` does not list, are noted
    on stderr and left out.

    Raises:
        LabelsError: ``data`` is not a folder, a sub-folder is not a room slug, ``labels.csv`` is malformed
            (with its line number), a photo labelled twice with different rooms, or no labelled photo at all.
    """
    if not data.is_dir():
        what = "is a file, not a folder" if data.exists() else "does not exist"
        raise LabelsError(
            f"--data {data} {what}; give a folder with one sub-folder per room type (DIR/bathroom/1.jpg) "
            f"or a {LABELS_FILE} (file,room)"
        )
    labels = data / LABELS_FILE
    from_csv = _read_labels_csv(data, rooms) if labels.is_file() else []
    in_csv = {p.path.resolve(): p for p in from_csv}
    folders = sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))
    photos: list[LabelledPhoto] = []
    unknown: list[str] = []
    unlabelled: list[Path] = []
    for folder in folders:
        found, others = _photos_in(folder)
        if folder.name in rooms.slugs:
            for path in found:
                listed = in_csv.get(path.resolve())
                if listed is not None and listed.room != folder.name:
                    raise LabelsError(
                        f"{labels} ({listed.where}): {path.name!r} is labelled {listed.room!r} but sits in the "
                        f"{folder.name}/ folder; keep one label per photo"
                    )
                photos.append(LabelledPhoto(path, folder.name, f"folder {folder.name}/"))
            if not found:
                note_skipped(folder, "no photos in this room folder")
        elif found and not any(p.resolve() in in_csv for p in found):
            unknown.append(folder.name)  # a misspelt room folder, most likely
        else:
            unlabelled.extend(p for p in found if p.resolve() not in in_csv)
        if others:
            kinds = ", ".join(sorted({p.suffix.lower() or "(no extension)" for p in others}))
            note_skipped(folder, f"{len(others)} file(s) that are not photos ({kinds})")
    if unknown:
        raise LabelsError(
            f"{data}: sub-folder(s) {', '.join(map(repr, unknown))} are not room types and {LABELS_FILE} labels "
            f"none of their photos; name each room folder after a room type: {_valid(rooms)} "
            "(or pass --room-types with your own)"
        )
    in_folders = {p.path.resolve() for p in photos}
    photos.extend(p for p in from_csv if p.path.resolve() not in in_folders)
    unlabelled.extend(
        p for p in sorted(data.iterdir())
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and p.resolve() not in in_csv
    )
    if unlabelled:
        note_skipped(
            data, f"{len(unlabelled)} photo(s) with no label (not in a room folder nor in {LABELS_FILE})"
        )
    if not photos:
        raise LabelsError(
            f"{data} has no labelled photos: put them in one sub-folder per room type "
            f"(DIR/bathroom/1.jpg) or list them in DIR/{LABELS_FILE} (header file,room); "
            f"room types: {_valid(rooms)}"
        )
    return photos


def take_round_robin(photos: Sequence[LabelledPhoto], limit: int | None) -> list[LabelledPhoto]:
    """At most ``limit`` photos, taken in turn from each room (so a small limit still covers every room)."""
    if limit is None or limit >= len(photos):
        return list(photos)
    by_room: dict[str, list[LabelledPhoto]] = {}
    for p in photos:
        by_room.setdefault(p.room, []).append(p)
    queues = list(by_room.values())
    out: list[LabelledPhoto] = []
    depth = 0
    while len(out) < limit:
        out.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return out[:limit]


def score_photos(
    detector: Detector,
    photos: Sequence[LabelledPhoto],
    score: Callable[[Detections], RoomScores],
    *,
    batch_size: int,
    on_progress: Callable[[int], None] = lambda n: None,
) -> tuple[list[tuple[LabelledPhoto, RoomScores]], list[tuple[LabelledPhoto, str]]]:
    """Detect and score each photo; unreadable ones come back in the second list with why."""
    from roomscan.detection.image import load_image

    scored: list[tuple[LabelledPhoto, RoomScores]] = []
    skipped: list[tuple[LabelledPhoto, str]] = []
    for start in range(0, len(photos), batch_size):
        loaded = []
        for item in photos[start : start + batch_size]:
            try:
                loaded.append((item, load_image(item.path).image))
            except ImageError as exc:
                report_bad(item.path, exc)
                skipped.append((item, str(exc)))
                on_progress(1)
        if loaded:
            outputs = detector.predict([image for _, image in loaded], batch_size=batch_size)
            for (item, _), dets in zip(loaded, outputs, strict=True):
                scored.append((item, score(dets)))
            on_progress(len(loaded))
    return scored, skipped


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_report(doc: dict[str, Any], report: RoomReport) -> None:
    console.print(
        f"[bold]room-type accuracy {report.accuracy:.3f}[/] on {report.count} photo(s) of "
        f"{escape(doc['data'])} (model {escape(doc['model'])}, scored from {doc['source']}, "
        f"room types {escape(doc['room_types'])})",
        highlight=False, soft_wrap=True,
    )
    per_room = Table("room", box=box.SIMPLE_HEAD, title="per room")
    for header in ("precision", "recall", "support", "predicted"):
        per_room.add_column(header, justify="right")
    for m in report.per_room:
        per_room.add_row(m.slug, _fmt(m.precision), _fmt(m.recall), str(m.support), str(m.predicted))
    console.print(per_room)
    # Only the rooms that were labelled or predicted: nine empty rows and columns say nothing.
    shown = [i for i, m in enumerate(report.per_room) if m.support or m.predicted]
    confusion = Table(
        "labelled \\ predicted", box=box.SIMPLE_HEAD, title="confusion (rows: labels, columns: predictions)",
        caption=None if len(shown) == len(report.rooms) else "rooms neither labelled nor predicted are left out",
    )
    for i in shown:
        confusion.add_column(report.rooms[i], justify="right")
    for i in shown:
        row = report.confusion[i]
        cells = [f"[bold]{row[j]}[/]" if i == j and row[j] else str(row[j]) for j in shown]
        confusion.add_row(report.rooms[i], *cells)
    console.print(confusion)
    if doc["skipped"]:
        console.print(
            f"[yellow]{len(doc['skipped'])} unreadable photo(s) skipped[/] (not counted): "
            + ", ".join(escape(s["file"]) for s in doc["skipped"]),
            highlight=False, soft_wrap=True,
        )
    console.print(f"[dim]{CAVEAT}[/]", highlight=False, soft_wrap=True)


def evaluate_rooms_command(
    data: Path = typer.Option(..., "--data", metavar="DIR", help=f"Labelled folder: one sub-folder per room type, and/or {LABELS_FILE} (file,room).", show_default=False),
    model: str | None = ModelOpt,
    room_types: Path | None = typer.Option(None, "--room-types", envvar="ROOMSCAN_ROOM_TYPES", help="Room types YAML (default: the nine built-in room types)."),
    taxonomy: Path | None = TaxonomyOpt,
    device: str | None = DeviceOpt,
    image_size: int | None = ImageSizeOpt,
    min_score: float | None = MinScoreOpt,
    amenities_only: bool = typer.Option(False, "--amenities-only", help="Score rooms from the amenities found alone, without the photo's embedding (to see what the embedding adds)."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, max=64, help="Photos per forward pass."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Evaluate at most this many photos, taken in turn from each room."),
    as_json: bool = JsonOpt,
    out: Path | None = typer.Option(None, "--out", help="Also write the report (with each photo's prediction) to this JSON file."),
) -> None:
    """Measure how well photos are typed by room: accuracy, per-room precision and recall, and a confusion table,
    on photos a person labelled.

    Label the photos of DIR in either way, or both:

    - one sub-folder per room type slug: DIR/bathroom/1.jpg, DIR/kitchen/2.jpg (any depth below it);
    - DIR/labels.csv: the header file,room, then one photo per line (a/1.jpg,bathroom), paths relative to DIR.

    Photos go through the detection pass as in production; with OWLv2 the room scores combine the photo's
    embedding with the amenities found, other backends use the amenities alone. Unreadable photos are skipped
    and named in the report; the exit status is then 1.

    The figures hold for the model and photos given: real accuracy needs real listing photos and the real
    weights (a test model with random weights scores at chance).
    """
    from roomscan.cli._common import load_detector
    from roomscan.insights.classify import RoomClassifier
    from roomscan.insights.rooms import evaluate_rooms, load_room_types, photo_room_scores

    rooms = load_room_types(room_types)
    photos = take_round_robin(read_labelled_folder(data, rooms), limit)
    if out is not None and out.is_dir():
        raise RoomscanError(f"--out {out} is a folder; give a file name such as {out / 'rooms.json'}")
    detector = load_detector(model, taxonomy, device, image_size, min_score)
    if amenities_only:
        source = "amenities"

        def score(dets: Detections) -> RoomScores:
            return photo_room_scores(dets, taxonomy=detector.taxonomy, room_types=rooms)
    else:
        classifier = RoomClassifier(detector, rooms)
        source, score = classifier.source, classifier.scores
        if not classifier.uses_embeddings:
            err_console.print(
                f"[dim]{detector.info.backend} has no text tower: rooms are scored from the amenities found "
                "alone[/]",
                highlight=False,
            )

    with progress() as bar:
        task = bar.add_task("Typing rooms", total=len(photos))
        scored, skipped = score_photos(
            detector, photos, score, batch_size=batch_size, on_progress=lambda n: bar.advance(task, n)
        )
    if not scored:
        raise RoomscanError(
            f"none of the {len(photos)} photo(s) could be read (see the messages above); nothing to evaluate"
        )
    report = evaluate_rooms([s for _, s in scored], [p.room for p, _ in scored], rooms)
    doc: dict[str, Any] = {
        "data": str(data),
        "model": detector.info.key,
        "source": source,
        "room_types": rooms.source,
        **report.to_dict(),
        "skipped": [{"file": str(p.path), "room": p.room, "error": why} for p, why in skipped],
        "photos": [
            {"file": str(p.path), "room": p.room, "predicted": s.best, "margin": round(s.margin, 4)}
            for p, s in scored
        ],
        "note": CAVEAT,
    }
    text = json.dumps(doc, indent=2)
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise RoomscanError(f"--out {out}: cannot write the report ({exc.strerror or exc})") from None
        err_console.print(f"report written to {escape(str(out))}", highlight=False)
    if as_json:
        typer.echo(text)
    else:
        _print_report(doc, report)
    if skipped:
        raise typer.Exit(1)
