"""Room type of a listing photo: which room types exist, three ways to score a photo, and how well they did.

The room types ship as ``roomscan/data/rooms.yaml`` (bedroom, bathroom, kitchen, living room, dining room,
exterior, pool/garden, balcony/view, other); :func:`load_room_types` reads a file of your own in the same
form.
A photo's :class:`RoomScores` (a probability per room type) come from

* :func:`scores_from_embeddings`: zero-shot, the photo's embedding against each room type's text embedding;
* :func:`scores_from_amenities`: the amenities found in the photo (a toilet and a shower: a bathroom);
* :func:`combine`: both, by weighted log-linear pooling (a product of experts);
* :func:`photo_room_scores`: what the worker calls, from a detector's detections and, if any, image embedding.

:func:`evaluate_rooms` compares predictions with labels (accuracy, per-room precision and recall, confusion
matrix).

Example:
    >>> rooms = default_room_types()
    >>> found = [("toilet", 0.6, "bathroom"), ("shower", 0.5, "bathroom")]
    >>> scores_from_amenities(found, room_types=rooms).best
    'bathroom'
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from roomscan.detection.core import Detections, labels_of
from roomscan.errors import TaxonomyError
from roomscan.taxonomy import GROUPS, Taxonomy, default_taxonomy

__all__ = [
    "AMENITY_GAIN",
    "DEFAULT_TEMPERATURE",
    "FALLBACK_BIAS",
    "RoomMetrics",
    "RoomReport",
    "RoomScores",
    "RoomType",
    "RoomTypes",
    "RoomTypesError",
    "combine",
    "default_room_types",
    "evaluate_rooms",
    "load_room_types",
    "photo_room_scores",
    "room_text_embeddings",
    "scores_from_amenities",
    "scores_from_embeddings",
]

# CLIP's learned logit scale is 100 (temperature 0.01): cosine similarities of CLIP-family embeddings differ
# by a few hundredths between a right and a wrong caption, so a softmax needs that scale to be decisive.
# OWLv2's class head instead scores each patch with (cosine + learned shift) * learned per-patch scale and a
# sigmoid, a per-box calibration that means nothing for a whole photo; we keep CLIP's fixed 0.01.
DEFAULT_TEMPERATURE = 0.01
# One amenity found with certainty multiplies its room types' odds by e^3 (about 20).
AMENITY_GAIN = 3.0
# With no evidence at all the fallback room type's odds are e^0.5 (1.65) times the others': "other", barely.
FALLBACK_BIAS = 0.5
_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_ROOM_KEYS = {"slug", "name", "prompts", "evidence", "amenities"}
_FILE_KEYS = {"version", "fallback", "rooms"}


class RoomTypesError(TaxonomyError):
    """A room types file is missing or malformed, or room scores do not fit the room types."""


@dataclass(frozen=True)
class RoomType:
    """One kind of room a photo can show.

    Attributes:
        slug: stable identifier (lowercase, dashes) stored with room scores.
        name: display name.
        prompts: scene descriptions for zero-shot matching (at least one).
        evidence: amenity room groups (:data:`roomscan.taxonomy.GROUPS`) whose amenities point to this room
            type.
        amenities: amenity slugs that point to this room type specifically (they then count only for the room
            types naming them, not through their group).
    """

    slug: str
    name: str
    prompts: tuple[str, ...]
    evidence: tuple[str, ...] = ()
    amenities: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoomTypes:
    """An ordered set of room types; score arrays follow its order. ``fallback``: the room of no evidence."""

    rooms: tuple[RoomType, ...]
    fallback: str = "other"
    source: str = "default"

    def __post_init__(self) -> None:
        if not self.rooms:
            raise RoomTypesError(f"{self.source}: no room types; list at least one under 'rooms'")
        seen: set[str] = set()
        for room in self.rooms:
            if room.slug in seen:
                raise RoomTypesError(f"{self.source}: room type slug {room.slug!r} appears twice")
            seen.add(room.slug)
        if self.fallback not in seen:
            raise RoomTypesError(
                f"{self.source}: fallback {self.fallback!r} is not a room type; "
                f"use one of {', '.join(self.slugs)}"
            )

    def __len__(self) -> int:
        return len(self.rooms)

    def __iter__(self) -> Iterator[RoomType]:
        return iter(self.rooms)

    @property
    def slugs(self) -> tuple[str, ...]:
        return tuple(r.slug for r in self.rooms)

    def __getitem__(self, slug: str) -> RoomType:
        for room in self.rooms:
            if room.slug == slug:
                return room
        raise RoomTypesError(f"unknown room type {slug!r}; known: {', '.join(self.slugs)}")


def _strings(raw: Any, key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise RoomTypesError(f"{where}: {key!r} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def _room_from_mapping(raw: Any, where: str) -> RoomType:
    if not isinstance(raw, dict):
        raise RoomTypesError(
            f"{where}: expected a mapping with 'slug', 'name' and 'prompts', got {type(raw).__name__}"
        )
    unknown = set(raw) - _ROOM_KEYS
    if unknown:
        raise RoomTypesError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_ROOM_KEYS))}"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RoomTypesError(f"{where}: 'name' is required and must be a non-empty string")
    slug = raw.get("slug") or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not isinstance(slug, str) or not _SLUG_RE.match(slug):
        raise RoomTypesError(f"{where}: slug {slug!r} must be lowercase letters, digits and single dashes")
    prompts = _strings(raw, "prompts", where)
    if not prompts:
        raise RoomTypesError(
            f"{where}: room type {slug!r} needs at least one prompt, e.g. [a photo of a {slug}]"
        )
    evidence = _strings(raw, "evidence", where)
    bad = [g for g in evidence if g not in GROUPS]
    if bad:
        raise RoomTypesError(
            f"{where}: evidence group(s) {', '.join(map(repr, bad))} unknown; "
            f"amenity groups are {', '.join(GROUPS)}"
        )
    amenities = _strings(raw, "amenities", where)
    return RoomType(slug, name.strip(), prompts, evidence, amenities)


def _parse(text: str, source: str) -> RoomTypes:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RoomTypesError(f"{source}: not valid YAML ({exc})") from exc
    if isinstance(doc, list):
        doc = {"rooms": doc}
    if not isinstance(doc, dict) or not isinstance(doc.get("rooms"), list):
        raise RoomTypesError(f"{source}: expected a mapping with a 'rooms' list")
    unknown = set(doc) - _FILE_KEYS
    if unknown:
        raise RoomTypesError(f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    rooms = tuple(_room_from_mapping(raw, f"{source}: room #{i + 1}") for i, raw in enumerate(doc["rooms"]))
    fallback = doc.get("fallback", "other")
    if not isinstance(fallback, str):
        raise RoomTypesError(f"{source}: 'fallback' must be a room type slug, got {fallback!r}")
    return RoomTypes(rooms, fallback=fallback, source=source)


@lru_cache(maxsize=1)
def default_room_types() -> RoomTypes:
    """The nine room types shipped with roomscan (``roomscan/data/rooms.yaml``)."""
    return _parse(resources.files("roomscan.data").joinpath("rooms.yaml").read_text(), "default")


def load_room_types(path: str | os.PathLike[str] | RoomTypes | None = None) -> RoomTypes:
    """Load room types: ``None`` for the default, a YAML path, or a ``RoomTypes`` (returned as is).

    Raises:
        RoomTypesError: missing file, bad YAML, unknown keys, duplicate slugs, no prompts, an unknown evidence
            group; the message names the file and the room.
    """
    if isinstance(path, RoomTypes):
        return path
    if path is None:
        return default_room_types()
    p = Path(path)
    if not p.is_file():
        raise RoomTypesError(f"{p}: room types file not found")
    return _parse(p.read_text(encoding="utf-8"), str(p))


@dataclass(frozen=True)
class RoomScores:
    """A probability per room type (summing to 1) for one photo, and where it came from.

    Attributes:
        slugs: room type slugs, in the room types' order.
        probs: probabilities, aligned with ``slugs``.
        source: ``embeddings``, ``amenities``, or sources joined by ``+`` after :func:`combine`.
    """

    slugs: tuple[str, ...]
    probs: tuple[float, ...]
    source: str

    def __post_init__(self) -> None:
        if not self.slugs or len(self.slugs) != len(self.probs):
            raise RoomTypesError(
                f"room scores need one probability per room type: {len(self.slugs)} slugs, "
                f"{len(self.probs)} probabilities"
            )
        if any(not math.isfinite(p) or p < 0 for p in self.probs) or abs(sum(self.probs) - 1.0) > 1e-4:
            raise RoomTypesError(f"room probabilities must be non-negative and sum to 1, got {self.probs}")

    @classmethod
    def from_probs(cls, slugs: Sequence[str], probs: np.ndarray, source: str) -> RoomScores:
        p = np.asarray(probs, dtype=np.float64)
        return cls(tuple(slugs), tuple(float(x) for x in p / p.sum()), source)

    @property
    def scores(self) -> dict[str, float]:
        return dict(zip(self.slugs, self.probs))

    @property
    def best(self) -> str:
        """The most probable room type (the first of equals, in the room types' order)."""
        return self.slugs[int(np.argmax(self.probs))]

    @property
    def margin(self) -> float:
        """Best minus second-best probability: near 0 means unsure."""
        top = sorted(self.probs, reverse=True)
        return top[0] - (top[1] if len(top) > 1 else 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "margin": round(self.margin, 4),
            "source": self.source,
            "scores": {s: round(p, 4) for s, p in zip(self.slugs, self.probs)},
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> RoomScores:
        """Inverse of :meth:`to_dict` (probabilities renormalised after rounding)."""
        scores = doc["scores"]
        return cls.from_probs(
            list(scores), np.asarray(list(scores.values()), dtype=np.float64), str(doc["source"])
        )


def _unit_rows(x: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(x)):
        raise RoomTypesError(f"{what} contains NaN or infinite values")
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise RoomTypesError(f"{what} has an all-zero vector; it cannot be compared by cosine similarity")
    return x / norms


def room_text_embeddings(
    embed_prompts: Callable[[list[str]], np.ndarray], room_types: RoomTypes | None = None
) -> np.ndarray:
    """One text embedding per room type: the mean of its prompts' normalised embeddings, normalised again.

    Args:
        embed_prompts: text encoder, ``prompts -> [n_prompts, d]`` (e.g. OWLv2's text tower).
        room_types: default room types when ``None``.

    Returns:
        float32 ``[n_rooms, d]``, unit rows, in the room types' order.
    """
    rooms = load_room_types(room_types)
    prompts = [p for room in rooms for p in room.prompts]
    embeds = _unit_rows(np.asarray(embed_prompts(prompts), dtype=np.float64), "prompt embeddings")
    if embeds.shape[0] != len(prompts):
        raise RoomTypesError(
            f"the text encoder returned {embeds.shape[0]} embeddings for {len(prompts)} prompts"
        )
    out, start = [], 0
    for room in rooms:
        out.append(embeds[start : start + len(room.prompts)].mean(axis=0))
        start += len(room.prompts)
    return _unit_rows(np.stack(out), "room text embeddings").astype(np.float32)


def scores_from_embeddings(
    image_embedding: np.ndarray,
    room_text_embeddings: np.ndarray,
    *,
    room_types: RoomTypes | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
) -> RoomScores:
    """Zero-shot room scores: softmax over room types of cosine(image, room text) / temperature.

    Both inputs are L2-normalised here. The image embedding must live in the text embeddings' space: for OWLv2
    that is the class head's image-class embedding (``class_head.dense0`` of the feature map), not the vision
    tower's feature map itself, whose width differs for real checkpoints (768 vs 512 for ViT-B/16).

    Args:
        image_embedding: ``[d]`` (or ``[1, d]``).
        room_text_embeddings: ``[n_rooms, d]``, see :func:`room_text_embeddings`.
        room_types: whose order the rows follow; default room types when ``None``.
        temperature: lower is sharper; 0.01 is CLIP's learned logit scale of 100.

    Raises:
        RoomTypesError: shapes that do not fit, non-finite or zero vectors, a temperature <= 0.
    """
    rooms = load_room_types(room_types)
    image = np.asarray(image_embedding, dtype=np.float64)
    text = np.asarray(room_text_embeddings, dtype=np.float64)
    if image.ndim == 2 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 1 or text.ndim != 2:
        raise RoomTypesError(
            "expected one image embedding [d] and room text embeddings [n_rooms, d], "
            f"got {image.shape} and {text.shape}"
        )
    if text.shape[0] != len(rooms):
        raise RoomTypesError(
            f"{text.shape[0]} room text embeddings for {len(rooms)} room types ({rooms.source}): "
            "compute them with room_text_embeddings() from the same room types"
        )
    if image.shape[0] != text.shape[1]:
        raise RoomTypesError(
            f"the image embedding has {image.shape[0]} dimensions "
            f"but the room text embeddings {text.shape[1]}: "
            "pass an image embedding projected into the text space (for OWLv2 the class head's image-class "
            "embedding, not the vision feature map)"
        )
    if not temperature > 0:
        raise RoomTypesError(f"temperature must be > 0, got {temperature}")
    logits = _unit_rows(text, "room text embeddings") @ _unit_rows(image, "the image embedding") / temperature
    return RoomScores.from_probs(rooms.slugs, _softmax(logits), "embeddings")


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max())
    return z / z.sum()


@lru_cache(maxsize=8)
def _amenity_targets(rooms: RoomTypes) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """Per amenity slug named by some room type, and per group: the indices of the rooms it points to."""
    by_amenity: dict[str, list[int]] = {}
    by_group: dict[str, list[int]] = {}
    for i, room in enumerate(rooms):
        for slug in room.amenities:
            by_amenity.setdefault(slug, []).append(i)
        for group in room.evidence:
            by_group.setdefault(group, []).append(i)
    return ({k: tuple(v) for k, v in by_amenity.items()}, {k: tuple(v) for k, v in by_group.items()})


def scores_from_amenities(
    found: Detections | Iterable[tuple[str, float, str]],
    taxonomy: Taxonomy | None = None,
    room_types: RoomTypes | None = None,
    *,
    gain: float = AMENITY_GAIN,
) -> RoomScores:
    """Room scores from the amenities found in a photo.

    Each amenity's strength is the noisy-OR of its boxes' scores, ``1 - prod(1 - score)`` (several boxes make
    it surer, never past 1). A room type's evidence is the sum of the strengths of the amenities pointing to
    it (named in its ``amenities``, or else of a group in its ``evidence``). Scores are
    ``softmax(gain * evidence)``, plus :data:`FALLBACK_BIAS` on the fallback room type when nothing points
    anywhere: a photo with no evidence gets near-uniform scores with ``best`` the fallback (``other``) and a
    small margin (0.07 for nine room types).

    Args:
        found: detections (their ``class_name`` slugs and ``confidence``; groups from ``taxonomy``) or
            ``(slug, score, group)`` triples.
        taxonomy: resolves detection slugs to groups; the default taxonomy when ``None``.
        room_types: default room types when ``None``.
        gain: log-odds per unit of evidence.
    """
    rooms = load_room_types(room_types)
    if isinstance(found, Detections):
        tax = taxonomy or default_taxonomy()
        conf = found.confidence if found.confidence is not None else np.ones(len(found))
        triples = [(s, float(c), tax[s].group) for s, c in zip(labels_of(found), conf)]
    else:
        triples = [(str(s), float(c), str(g)) for s, c, g in found]
    miss: dict[str, float] = {}  # slug -> prod(1 - score)
    groups: dict[str, str] = {}
    for slug, score, group in triples:
        if not 0.0 <= score <= 1.0:
            raise RoomTypesError(f"amenity {slug!r} has score {score}; detection scores lie in [0, 1]")
        miss[slug] = miss.get(slug, 1.0) * (1.0 - score)
        groups[slug] = group
    by_amenity, by_group = _amenity_targets(rooms)
    evidence = np.zeros(len(rooms))
    for slug, m in miss.items():
        for i in by_amenity.get(slug, by_group.get(groups[slug], ())):
            evidence[i] += 1.0 - m
    logits = gain * evidence
    if not evidence.any():
        logits[rooms.slugs.index(rooms.fallback)] += FALLBACK_BIAS
    return RoomScores.from_probs(rooms.slugs, _softmax(logits), "amenities")


def combine(*scores: RoomScores, weights: Sequence[float] | None = None) -> RoomScores:
    """Weighted log-linear pooling: ``p(room) ∝ prod_i p_i(room) ** w_i`` (a product of experts).

    Sources are treated as independent evidence, so a uniform source changes nothing and two sources agreeing
    make each other surer. With one source (amenity evidence from a fine-tuned detector without a text tower)
    the result is that source. Weights default to 1 each; 0 leaves a source out.

    Raises:
        RoomTypesError: no scores, scores over different room types, weights that do not match or are
            negative.
    """
    if not scores:
        raise RoomTypesError("combine() needs at least one RoomScores")
    w = [1.0] * len(scores) if weights is None else [float(x) for x in weights]
    if len(w) != len(scores) or any(not math.isfinite(x) or x < 0 for x in w):
        raise RoomTypesError(
            f"weights must be one non-negative number per score ({len(scores)}), got {weights}"
        )
    slugs = scores[0].slugs
    for s in scores[1:]:
        if s.slugs != slugs:
            raise RoomTypesError(f"cannot combine scores over different room types: {slugs} vs {s.slugs}")
    log_p = sum(wi * np.log(np.maximum(np.asarray(s.probs), 1e-12)) for wi, s in zip(w, scores))
    source = "+".join(s.source for wi, s in zip(w, scores) if wi > 0) or scores[0].source
    return RoomScores.from_probs(slugs, _softmax(np.asarray(log_p, dtype=np.float64)), source)


def photo_room_scores(
    detections: Detections | Iterable[tuple[str, float, str]],
    *,
    image_embedding: np.ndarray | None = None,
    room_text_embeddings: np.ndarray | None = None,
    taxonomy: Taxonomy | None = None,
    room_types: RoomTypes | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    amenity_weight: float = 1.0,
) -> RoomScores:
    """Room scores from a detector's output: its detections and, if it has one, its image embedding.

    With an image embedding (and the room text embeddings from the same model) this is
    ``combine(scores_from_embeddings(...), scores_from_amenities(...), weights=[1, amenity_weight])``; without
    (fine-tuned detectors have no text tower) it is the amenity evidence alone. Amenity evidence of an empty
    photo adds only a mild lean to the fallback room, which a clear embedding outweighs.

    Raises:
        RoomTypesError: an image embedding without room text embeddings (or the reverse), or inputs that do
            not fit (see :func:`scores_from_embeddings`).
    """
    rooms = load_room_types(room_types)
    found = scores_from_amenities(detections, taxonomy, rooms)
    if image_embedding is None and room_text_embeddings is None:
        return found
    if image_embedding is None or room_text_embeddings is None:
        raise RoomTypesError(
            "give both the image embedding and the room text embeddings (from the same model), or neither"
        )
    seen = scores_from_embeddings(
        image_embedding, room_text_embeddings, room_types=rooms, temperature=temperature
    )
    return combine(seen, found, weights=[1.0, amenity_weight])


@dataclass(frozen=True)
class RoomMetrics:
    """One room type's precision (``None`` when never predicted) and recall (``None`` when never labelled)."""

    slug: str
    precision: float | None
    recall: float | None
    support: int  # photos labelled with this room
    predicted: int  # photos predicted as this room


@dataclass(frozen=True)
class RoomReport:
    """How room predictions compare with labels. ``confusion[i][j]``: photos labelled ``rooms[i]``, predicted
    ``rooms[j]``."""

    rooms: tuple[str, ...]
    accuracy: float
    count: int
    per_room: tuple[RoomMetrics, ...]
    confusion: tuple[tuple[int, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": round(self.accuracy, 4),
            "count": self.count,
            "rooms": list(self.rooms),
            "per_room": [
                {
                    "room": m.slug,
                    "precision": None if m.precision is None else round(m.precision, 4),
                    "recall": None if m.recall is None else round(m.recall, 4),
                    "support": m.support,
                    "predicted": m.predicted,
                }
                for m in self.per_room
            ],
            "confusion": [list(row) for row in self.confusion],
        }


def evaluate_rooms(
    predictions: Sequence[str | RoomScores], labels: Sequence[str], room_types: RoomTypes | None = None
) -> RoomReport:
    """Accuracy, per-room precision and recall, and the confusion matrix of room predictions against labels.

    Args:
        predictions: a room slug, or the :class:`RoomScores` whose ``best`` is the prediction, per photo.
        labels: the true room slug per photo.
        room_types: the rows' order (default room types); slugs outside it are refused.

    Raises:
        RoomTypesError: lengths differ, no photos, or a slug that is not a room type.
    """
    rooms = load_room_types(room_types)
    if len(predictions) != len(labels):
        raise RoomTypesError(
            f"{len(predictions)} predictions for {len(labels)} labels: give one of each per photo"
        )
    if not labels:
        raise RoomTypesError("no photos to evaluate: give at least one prediction and label")
    index = {s: i for i, s in enumerate(rooms.slugs)}
    pred = [p.best if isinstance(p, RoomScores) else p for p in predictions]
    unknown = sorted({s for s in [*pred, *labels] if s not in index})
    if unknown:
        raise RoomTypesError(
            f"unknown room type(s) {', '.join(map(repr, unknown))}; known: {', '.join(rooms.slugs)}"
        )
    confusion = np.zeros((len(rooms), len(rooms)), dtype=np.int64)
    for p, t in zip(pred, labels):
        confusion[index[t], index[p]] += 1
    hits = np.diag(confusion)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    per_room = tuple(
        RoomMetrics(
            slug,
            float(hits[i] / predicted[i]) if predicted[i] else None,
            float(hits[i] / support[i]) if support[i] else None,
            int(support[i]),
            int(predicted[i]),
        )
        for i, slug in enumerate(rooms.slugs)
    )
    return RoomReport(
        rooms.slugs,
        float(hits.sum() / len(labels)),
        len(labels),
        per_room,
        tuple(tuple(int(x) for x in row) for row in confusion),
    )
