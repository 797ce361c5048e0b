"""Roll a listing's photo detections up into its amenity metadata, and compare it with the host's claims.

Example:
    >>> from roomscan.detection import make_detections
    >>> from roomscan.taxonomy import default_taxonomy
    >>> photos = {7: make_detections([[0, 0, 50, 40]], [0.61], [23], ["swimming-pool"])}
    >>> summary = roll_up(photos, claimed=["swimming-pool", "jacuzzi"], taxonomy=default_taxonomy())
    >>> [(a.slug, str(a.status)) for a in summary.amenities]
    [('swimming-pool', 'confirmed'), ('jacuzzi', 'unverified')]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from roomscan.detection.core import Detections, labels_of
from roomscan.taxonomy import DEFAULT_THRESHOLD, Taxonomy

__all__ = ["AmenityStatus", "AmenitySummary", "Decision", "Evidence", "ListingAmenities", "roll_up", "status_of"]

MAX_EVIDENCE = 10


class AmenityStatus(StrEnum):
    """Where an amenity of a listing stands (a ``str``: compares equal to its value, stored as it)."""

    CONFIRMED = "confirmed"
    """Claimed and seen on a photo, or confirmed by the host."""
    UNVERIFIED = "unverified"
    """Claimed, but no photo shows it."""
    DISCOVERED = "discovered"
    """A photo shows it, the host does not claim it."""
    REJECTED = "rejected"
    """The model reported it; the host says it is not there."""


class Decision(StrEnum):
    """The host's verdict on an amenity the model reported."""

    CONFIRMED = "confirmed"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Evidence:
    """A box on a photo that shows an amenity."""

    photo_id: int
    box: tuple[float, float, float, float]
    score: float


@dataclass(frozen=True)
class AmenitySummary:
    """One amenity of one listing.

    Attributes:
        slug, name, group: from the taxonomy (the slug stands in for the name if the taxonomy lacks it).
        score: best score over the listing's photos (may sit below ``threshold`` when not seen).
        threshold: the score a detection needs to count as seen.
        photo_count: photos with at least one detection at or above the threshold.
        claimed: the host says the listing has it.
        seen: some photo shows it at or above the threshold.
        status: ``confirmed`` (claimed and seen, or confirmed by the host), ``unverified`` (claimed, unseen),
            ``discovered`` (seen, unclaimed), ``rejected`` (the model reported it; the host says it is not there).
        evidence: the boxes that show it, best first (at most 10). The model's output: a host's decision never
            changes it.
        decision: the host's verdict on what the model reported (``confirmed``, ``rejected``) or ``None``.
    """

    slug: str
    name: str
    group: str
    score: float
    threshold: float
    photo_count: int
    claimed: bool
    seen: bool
    status: str
    evidence: tuple[Evidence, ...]
    decision: str | None = None


@dataclass(frozen=True)
class ListingAmenities:
    amenities: tuple[AmenitySummary, ...]

    def with_status(self, status: str) -> list[AmenitySummary]:
        return [a for a in self.amenities if a.status == status]

    @property
    def confirmed(self) -> list[AmenitySummary]:
        return self.with_status(AmenityStatus.CONFIRMED)

    @property
    def unverified(self) -> list[AmenitySummary]:
        return self.with_status(AmenityStatus.UNVERIFIED)

    @property
    def discovered(self) -> list[AmenitySummary]:
        return self.with_status(AmenityStatus.DISCOVERED)

    @property
    def rejected(self) -> list[AmenitySummary]:
        return self.with_status(AmenityStatus.REJECTED)


def status_of(claimed: bool, seen: bool, decision: str | None = None) -> AmenityStatus | None:
    """The checklist status of an amenity, or ``None`` when it is neither claimed nor seen.

    The host's ``decision`` overrides what the model saw: ``confirmed`` makes it confirmed, ``rejected`` makes
    it unseen (``unverified`` if claimed, else ``rejected``).
    """
    if decision == Decision.CONFIRMED:
        return AmenityStatus.CONFIRMED
    if decision == Decision.REJECTED:
        return AmenityStatus.UNVERIFIED if claimed else AmenityStatus.REJECTED
    if claimed:
        return AmenityStatus.CONFIRMED if seen else AmenityStatus.UNVERIFIED
    return AmenityStatus.DISCOVERED if seen else None


def roll_up(
    photo_detections: Mapping[int, Detections],
    claimed: Iterable[str],
    taxonomy: Taxonomy,
    decisions: Mapping[str, str] | None = None,
) -> ListingAmenities:
    """Summarise a listing's amenities from the detections on each of its photos.

    Args:
        photo_detections: photo id -> that photo's detections (from one model).
        claimed: amenity slugs the host claims.
        taxonomy: gives each amenity's name, group and threshold.
        decisions: amenity slug -> the host's ``confirmed``/``rejected`` verdict on what the model reported.
            A rejected amenity counts as unseen (search skips it); a confirmed one counts as seen and confirmed.

    Returns:
        Every amenity that is claimed, seen or decided: confirmed first, then unverified, discovered, rejected;
        within a status, by best score.
    """
    claimed_set = set(claimed)
    decisions = dict(decisions or {})
    best: dict[str, float] = {}
    evidence: dict[str, list[Evidence]] = {}
    photos_seen: dict[str, set[int]] = {}
    for photo_id, dets in photo_detections.items():
        if len(dets) == 0:
            continue
        assert dets.confidence is not None
        for label, score, box in zip(labels_of(dets), dets.confidence, dets.xyxy, strict=True):
            score = float(score)
            best[label] = max(best.get(label, 0.0), score)
            if score >= _threshold(taxonomy, label):
                evidence.setdefault(label, []).append(
                    Evidence(photo_id, tuple(round(float(v), 2) for v in box), round(score, 4))  # type: ignore[arg-type]
                )
                photos_seen.setdefault(label, set()).add(photo_id)

    summaries = []
    for slug in sorted(claimed_set | set(best) | set(decisions)):
        decision = decisions.get(slug)
        seen = (slug in photos_seen or decision == Decision.CONFIRMED) and decision != Decision.REJECTED
        status = status_of(slug in claimed_set, slug in photos_seen, decision)
        if status is None:
            continue
        amenity = taxonomy.amenities[taxonomy.index(slug)] if slug in taxonomy else None
        summaries.append(
            AmenitySummary(
                slug=slug,
                name=amenity.name if amenity else slug,
                group=amenity.group if amenity else "general",
                score=round(best.get(slug, 0.0), 4),
                threshold=_threshold(taxonomy, slug),
                photo_count=len(photos_seen.get(slug, ())),
                claimed=slug in claimed_set,
                seen=seen,
                status=status,
                evidence=tuple(sorted(evidence.get(slug, []), key=lambda e: -e.score)[:MAX_EVIDENCE]),
                decision=decision,
            )
        )
    order = {status: i for i, status in enumerate(AmenityStatus)}
    summaries.sort(key=lambda a: (order[a.status], -a.score, a.slug))
    return ListingAmenities(tuple(summaries))


def _threshold(taxonomy: Taxonomy, slug: str) -> float:
    return taxonomy[slug].threshold if slug in taxonomy else DEFAULT_THRESHOLD
