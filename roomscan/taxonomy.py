"""The amenity taxonomy: which amenities exist, how the zero-shot detector finds them, when they count as seen.

The default taxonomy ships as ``roomscan/data/amenities.yaml`` (the 30 Open Images amenity classes). A user adds
amenities with a file of their own::

    extends: default          # keep the 30 defaults (omit to start from nothing)
    amenities:
      - name: Espresso machine
        prompts: [an espresso machine, a coffee machine with a portafilter]
        threshold: 0.25       # optional (default 0.2)
        group: kitchen        # optional (default general)

and passes it with ``--taxonomy FILE`` (or ``ROOMSCAN_TAXONOMY``); OWLv2 then finds the new amenity with no
training.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from roomscan.errors import TaxonomyError

DEFAULT_THRESHOLD = 0.2
GROUPS = ("kitchen", "bathroom", "bedroom", "living", "outdoor", "laundry", "general")
_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_AMENITY_KEYS = {"slug", "name", "mid", "group", "prompts", "threshold", "synonyms"}
_FILE_KEYS = {"version", "extends", "amenities"}

__all__ = ["Amenity", "Taxonomy", "default_taxonomy", "load_taxonomy", "slugify"]


def slugify(name: str) -> str:
    """``"Kitchen & dining room table"`` -> ``"kitchen-dining-room-table"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@dataclass(frozen=True)
class Amenity:
    """One amenity a listing can have.

    Attributes:
        slug: stable identifier (lowercase, dashes), used by the catalog, API and search.
        name: display name.
        mid: Open Images class id, or ``None`` for amenities outside Open Images.
        group: room group (kitchen, bathroom, bedroom, living, outdoor, laundry, general).
        prompts: text queries for open-vocabulary detection.
        threshold: minimum detection score for the amenity to count as seen.
        synonyms: other names people use for it (``hot tub`` for Jacuzzi); ``Taxonomy.resolve`` accepts them.
    """

    slug: str
    name: str
    mid: str | None = None
    group: str = "general"
    prompts: tuple[str, ...] = ()
    threshold: float = DEFAULT_THRESHOLD
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Taxonomy:
    """An ordered set of amenities; a detector's ``class_id`` is the index into ``amenities``.

    Example:
        >>> tax = default_taxonomy()
        >>> tax.resolve("Swimming pool").slug, tax.resolve("jacuzzi").group
        ('swimming-pool', 'outdoor')
    """

    amenities: tuple[Amenity, ...]
    source: str = "default"
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _aliases: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.amenities:
            raise TaxonomyError(f"{self.source}: the taxonomy has no amenities")
        for i, amenity in enumerate(self.amenities):
            if amenity.slug in self._index:
                raise TaxonomyError(f"{self.source}: amenity slug {amenity.slug!r} appears twice")
            self._index[amenity.slug] = i
        # Every other way to name an amenity (display name, synonyms, Open Images id), normalised by slugify.
        for i, amenity in enumerate(self.amenities):
            keys = [slugify(amenity.name), *(slugify(s) for s in amenity.synonyms)]
            if amenity.mid:
                keys.append(amenity.mid)
            for key in keys:
                owner = self._index.get(key, self._aliases.get(key, i))
                if owner != i:
                    raise TaxonomyError(
                        f"{self.source}: {key!r} names both {self.amenities[owner].slug!r} and {amenity.slug!r}"
                    )
                self._aliases[key] = i

    def __len__(self) -> int:
        return len(self.amenities)

    def __iter__(self) -> Iterator[Amenity]:
        return iter(self.amenities)

    def __contains__(self, slug: object) -> bool:
        return slug in self._index

    @property
    def slugs(self) -> list[str]:
        return [a.slug for a in self.amenities]

    def index(self, slug: str) -> int:
        """The class id of ``slug``."""
        return self._index[self.resolve(slug).slug]

    def __getitem__(self, slug: str) -> Amenity:
        return self.resolve(slug)

    def resolve(self, key: str) -> Amenity:
        """Find an amenity by slug, display name or synonym (any case, spaces or dashes) or Open Images id.

        This is the one resolver of amenity names: the CLI, the API and the page all call it.

        Raises:
            TaxonomyError: no such amenity; the message suggests the closest slugs.
        """
        text = key.strip()
        if text in self._index:
            return self.amenities[self._index[text]]
        lowered = slugify(text)
        for candidate in (lowered, text):
            i = self._index.get(candidate, self._aliases.get(candidate))
            if i is not None:
                return self.amenities[i]
        close = difflib.get_close_matches(lowered, self.slugs, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known amenities: {', '.join(self.slugs)}"
        raise TaxonomyError(f"unknown amenity {key!r}{hint}")

    def thresholds(self) -> dict[str, float]:
        return {a.slug: a.threshold for a in self.amenities}

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "amenities": [
                {**asdict(a), "prompts": list(a.prompts), "synonyms": list(a.synonyms)} for a in self.amenities
            ],
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the taxonomy as YAML (a model directory keeps the taxonomy it was trained on)."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))

    def fingerprint(self) -> str:
        """Short hash of slugs, prompts and thresholds: detections made under another taxonomy differ.

        Synonyms are left out: they change how people name amenities, not what the detector finds.
        """
        doc = self.to_dict()
        for amenity in doc["amenities"]:
            del amenity["synonyms"]
        blob = json.dumps(doc, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _amenity_from_mapping(raw: Any, where: str) -> Amenity:
    if not isinstance(raw, dict):
        raise TaxonomyError(f"{where}: expected a mapping with at least 'name', got {type(raw).__name__}")
    unknown = set(raw) - _AMENITY_KEYS
    if unknown:
        raise TaxonomyError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_AMENITY_KEYS))}"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise TaxonomyError(f"{where}: 'name' is required and must be a non-empty string")
    slug = raw.get("slug") or slugify(name)
    if not isinstance(slug, str) or not _SLUG_RE.match(slug):
        raise TaxonomyError(f"{where}: slug {slug!r} must be lowercase letters, digits and single dashes")
    prompts = raw.get("prompts") or [f"a photo of a {name.strip().lower()}"]
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, list) or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise TaxonomyError(f"{where}: 'prompts' must be a list of non-empty strings")
    group = raw.get("group", "general")
    if group not in GROUPS:
        raise TaxonomyError(f"{where}: group {group!r} is not one of {', '.join(GROUPS)}")
    threshold = raw.get("threshold", DEFAULT_THRESHOLD)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise TaxonomyError(f"{where}: 'threshold' must be a number between 0 and 1, got {threshold!r}")
    synonyms = raw.get("synonyms") or []
    if isinstance(synonyms, str):
        synonyms = [synonyms]
    if not isinstance(synonyms, list) or not all(isinstance(x, str) and slugify(x) for x in synonyms):
        raise TaxonomyError(f"{where}: 'synonyms' must be a list of names, e.g. [hot tub, whirlpool]")
    mid = raw.get("mid")
    if mid is not None and not (isinstance(mid, str) and mid.startswith("/")):
        raise TaxonomyError(f"{where}: 'mid' must be an Open Images id like /m/0b_rs, got {mid!r}")
    return Amenity(
        slug=slug,
        name=name.strip(),
        mid=mid,
        group=group,
        prompts=tuple(p.strip() for p in prompts),
        threshold=float(threshold),
        synonyms=tuple(x.strip() for x in synonyms),
    )


def _parse(text: str, source: str) -> Taxonomy:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{source}: not valid YAML ({exc})") from exc
    if isinstance(doc, list):
        doc = {"amenities": doc}
    if not isinstance(doc, dict) or "amenities" not in doc:
        raise TaxonomyError(f"{source}: expected a mapping with an 'amenities' list")
    unknown = set(doc) - _FILE_KEYS
    if unknown:
        raise TaxonomyError(f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    items = doc["amenities"]
    if not isinstance(items, list):
        raise TaxonomyError(f"{source}: 'amenities' must be a list")
    base: list[Amenity] = []
    extends = doc.get("extends")
    if extends not in (None, "default"):
        raise TaxonomyError(f"{source}: 'extends' may only be 'default', got {extends!r}")
    if extends == "default":
        base = list(default_taxonomy().amenities)
    own = [_amenity_from_mapping(raw, f"{source}: amenity #{i + 1}") for i, raw in enumerate(items)]
    # An amenity of the user's file with a default's slug replaces it (to retune prompts or thresholds).
    by_slug = {a.slug: a for a in own}
    merged = [by_slug.pop(a.slug, a) for a in base] + [a for a in own if a.slug in by_slug]
    return Taxonomy(tuple(merged), source=source)


_DEFAULT: Taxonomy | None = None


def default_taxonomy() -> Taxonomy:
    """The 30 Open Images amenity classes shipped with roomscan."""
    global _DEFAULT
    if _DEFAULT is None:
        text = resources.files("roomscan.data").joinpath("amenities.yaml").read_text()
        _DEFAULT = _parse(text, "default")
    return _DEFAULT


def load_taxonomy(path: str | os.PathLike[str] | Sequence[Amenity] | Taxonomy | None = None) -> Taxonomy:
    """Load a taxonomy: ``None`` for the default (or ``$ROOMSCAN_TAXONOMY``), a YAML path, or amenities.

    Raises:
        TaxonomyError: missing file, bad YAML, unknown keys, bad values; the message names file and amenity.
    """
    if isinstance(path, Taxonomy):
        return path
    if path is None:
        env = os.environ.get("ROOMSCAN_TAXONOMY")
        return load_taxonomy(env) if env else default_taxonomy()
    if not isinstance(path, (str, os.PathLike)):
        return Taxonomy(tuple(path), source="custom")
    p = Path(path)
    if not p.is_file():
        raise TaxonomyError(f"{p}: taxonomy file not found")
    return _parse(p.read_text(encoding="utf-8"), str(p))
