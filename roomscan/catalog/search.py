"""Amenity search over the ``listing_amenities`` roll-up, with keyset pagination.

A query names amenities a listing must show (``all_of``) and amenities of which it must show at least one
(``any_of``); a page lists matching listings in id order with the matched amenities' scores::

    page = search_listings(session, SearchQuery(all_of=("jacuzzi",), any_of=("fireplace", "porch")))
    for hit in page.hits:
        print(hit.listing_id, hit.title, hit.amenities)          # 42 'Cabin' {'jacuzzi': 0.41, 'porch': 0.3}
    next_page = search_listings(session, SearchQuery(..., after=page.next_cursor))

How it stays fast on millions of listings: every amenity condition is a range of an index that already holds
listing ids in order: ``ix_listing_amenities_seen (amenity, listing_id)``, of seen rows only, for a default
search; ``ix_listing_amenities_search (amenity, listing_id, score, status)`` with min_score or confirmed_only.
The query walks one *driving* range in id order from the cursor and probes the other amenities with ``EXISTS`` on
``(amenity, listing_id)``, stopping after ``limit + 1`` matches: no sort, no DISTINCT, cost proportional to the
rows walked. The driver is the sparsest range after the cursor (measured per query by the id of its 128th entry),
so a rare amenity drives and common ones are cheap probes, rarest first. ``any_of`` is a UNION of one such
walk per amenity, each cut at ``limit + 1``, unless a single ``all_of`` range is sparser than all of them
together. A second query fetches titles and matched scores for the page's listings only.

When several ``all_of`` ranges are rare, a page may need the whole driving range walked (few listings show
them all), and a probe (an index descent) costs several steps along a range. Then the rarest ranges are
intersected by reading each once in id order instead (SQLite: a compound ``INTERSECT`` with ``ORDER BY``,
which it merges; PostgreSQL: a join of the ranges, which it merge-joins), and only the listings in all of them
are probed for the other amenities. The choice is a cost estimate from the same samples (``_merge_count``);
a walk that reads few rows is always kept, so common searches run as before.

A ``room`` (a room type slug) keeps listings with at least one photo whose best room type is that room, from the
``listing_rooms`` roll-up (``ix_listing_rooms_search (room, listing_id)``): with amenities, one more ``EXISTS``
probe on ``(room, listing_id)`` per walked listing; alone, a walk of that room's range in id order. Like
``listing_amenities``, it holds no rows for unpublished listings.

"Seen" is read from ``status`` (``confirmed`` or ``discovered``), which the roll-up keeps in step with ``seen``
and which the index holds, so walks and probes never touch the table rows.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Float,
    Integer,
    Select,
    String,
    bindparam,
    func,
    intersect,
    literal_column,
    select,
    union,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import Alias

from roomscan.catalog.models import Listing, ListingAmenity, ListingRoom

__all__ = [
    "MAX_AMENITIES",
    "MAX_LIMIT",
    "SearchHit",
    "SearchPage",
    "SearchQuery",
    "explain_search",
    "search_listings",
]

MAX_AMENITIES = 30
MAX_LIMIT = 100
SEEN_STATUSES = ("confirmed", "discovered")
# Entries sampled per amenity to find the sparsest range: enough to even out local noise, cheap to walk.
_DENSITY_SAMPLE = 128
# One EXISTS probe (an index descent) costs about as much as this many steps along a range in a merge, at 1M
# listings (benchmarks/bench_search.py): SQLite ~0.4 us against ~0.1 us, PostgreSQL ~1.3 us against ~0.13 us.
_PROBE_COST = {"sqlite": 4.0, "postgresql": 10.0}
# A walk expected to read fewer driver rows than this is kept, whatever merging would cost: it is fast anyway.
_MERGE_MIN_ROWS = 1000

_amenities = ListingAmenity.__table__
_rooms = ListingRoom.__table__
_listings = Listing.__table__
class _IndexedBy(Alias):
    """An alias of ``listing_amenities`` that SQLite reads through the index ``index`` (``INDEXED BY``).

    For a probe on ``(amenity, listing_id)`` SQLite prefers the primary key's index (unique, both columns
    given), then reads the table row for status and score: two descents instead of one, three times slower.
    And it does not see that the partial index of seen rows, half as wide, serves a default search.
    """

    inherit_cache = True
    index = ""


class _SearchIndexed(_IndexedBy):
    inherit_cache = True
    index = "ix_listing_amenities_search"  # every status, with score: for min_score and confirmed_only


class _SeenIndexed(_IndexedBy):
    inherit_cache = True
    index = "ix_listing_amenities_seen"  # seen rows only: every other search


@compiles(_SearchIndexed, "sqlite")
@compiles(_SeenIndexed, "sqlite")
def _indexed_by(element: _IndexedBy, compiler: Any, **kw: Any) -> str:
    sql: str = compiler.visit_alias(element, **kw)
    return f"{sql} INDEXED BY {element.index}" if kw.get("asfrom") else sql


def _alias(shape: _Shape, name: str) -> Alias:
    """``listing_amenities AS name``, read through the narrowest index holding what ``shape`` tests."""
    indexed = _SearchIndexed if shape.min_score or shape.confirmed_only else _SeenIndexed
    return indexed._construct(_amenities, name=name)


@dataclass(frozen=True)
class SearchQuery:
    """What a guest searches for. Validated on construction.

    Attributes:
        all_of: amenity slugs a listing must show (every one of them seen).
        any_of: amenity slugs of which a listing must show at least one.
        min_score: each matched amenity's best detection score must be at least this (0..1).
        confirmed_only: matched amenities must be ``confirmed`` (claimed by the host and seen in a photo).
        limit: page size, 1..100.
        after: keyset cursor: only listings with id greater than this (``SearchPage.next_cursor``).
        room: a room type slug: the listing must have a photo whose best room type is this one (combinable with
            amenities, or alone). Check it against the room types first (``RoomTypes[slug]`` names the valid
            ones): an unknown room matches nothing.

    Raises:
        ValueError: no amenity and no room given, more than 30 amenities, an empty or non-string slug,
            ``min_score`` outside [0, 1], ``limit`` outside 1..100, or a negative cursor.

    Example:
        >>> SearchQuery(all_of=["bed", "jacuzzi"], limit=10).all_of
        ('bed', 'jacuzzi')
    """

    all_of: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    min_score: float = 0.0
    confirmed_only: bool = False
    limit: int = 20
    after: int | None = None
    room: str | None = None

    def __post_init__(self) -> None:
        all_of = _slugs("all_of", self.all_of)
        any_of = _slugs("any_of", self.any_of)
        object.__setattr__(self, "all_of", all_of)
        object.__setattr__(self, "any_of", any_of)
        count = len(set(all_of) | set(any_of))
        if self.room is not None and (not isinstance(self.room, str) or not self.room):
            raise ValueError(f"room must be a room type slug (e.g. bathroom) or None, got {self.room!r}")
        if count == 0 and self.room is None:
            raise ValueError("search needs at least one amenity in all_of or any_of, or a room")
        if count > MAX_AMENITIES:
            raise ValueError(f"search takes at most {MAX_AMENITIES} amenities, got {count}")
        if isinstance(self.min_score, bool) or not isinstance(self.min_score, int | float):
            # ValueError for every invalid query, so one ``except ValueError`` turns any of them into a 422.
            raise ValueError(f"min_score must be a number in [0, 1], got {self.min_score!r}")  # noqa: TRY004
        if not 0.0 <= self.min_score <= 1.0:  # also rejects NaN
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score!r}")
        if (
            isinstance(self.limit, bool)
            or not isinstance(self.limit, int)
            or not 1 <= self.limit <= MAX_LIMIT
        ):
            raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {self.limit!r}")
        if self.after is not None and (
            isinstance(self.after, bool) or not isinstance(self.after, int) or self.after < 0
        ):
            raise ValueError(f"after must be a listing id (an integer >= 0) or None, got {self.after!r}")

    @property
    def amenities(self) -> tuple[str, ...]:
        """Every amenity the query names, ``all_of`` first, without repeats."""
        return tuple(dict.fromkeys(self.all_of + self.any_of))


@dataclass(frozen=True)
class SearchHit:
    """One matching listing.

    Attributes:
        listing_id: the listing's id.
        title: its title.
        amenities: matched amenity slug -> best score, in query order (every ``all_of`` amenity, and the
            ``any_of`` amenities the listing shows).
        room_score: with a ``room`` in the query, the best probability among the listing's photos of that room.
    """

    listing_id: int
    title: str
    amenities: dict[str, float]
    room_score: float | None = None


@dataclass(frozen=True)
class SearchPage:
    """One page of results.

    Attributes:
        hits: matching listings in ascending id order, at most ``limit``.
        next_cursor: pass as ``SearchQuery.after`` for the next page; ``None`` when there are no more matches.
    """

    hits: list[SearchHit]
    next_cursor: int | None


def search_listings(session: Session, query: SearchQuery) -> SearchPage:
    """Find listings whose photos show the queried amenities, one page at a time.

    Amenity slugs are bound parameters; an unknown slug simply matches nothing. Runs at most three short
    queries (choose the driving range, find the page's ids, fetch their titles and scores).

    Args:
        session: a catalog session.
        query: the search.

    Returns:
        The page: hits in ascending listing id order and the cursor for the next page.

    Example:
        >>> page = search_listings(session, SearchQuery(all_of=("swimming-pool",), min_score=0.3))  # doctest: +SKIP
        >>> [(hit.listing_id, hit.amenities) for hit in page.hits]  # doctest: +SKIP
        [(7, {'swimming-pool': 0.52}), (19, {'swimming-pool': 0.31})]
    """
    statement, params = _ids_statement(session, query)
    ids = list(session.execute(statement, params).scalars())
    more = len(ids) > query.limit
    ids = ids[: query.limit]
    hits = _fetch_hits(session, query, ids)
    return SearchPage(hits=hits, next_cursor=ids[-1] if more else None)


def explain_search(session: Session, query: SearchQuery) -> str:
    """The database's plan for the page-id query of ``query`` (for checking index use).

    Args:
        session: a catalog session.
        query: the search.

    Returns:
        ``EXPLAIN QUERY PLAN`` (SQLite) or ``EXPLAIN`` (PostgreSQL) output, one line per plan row.
    """
    dialect = session.get_bind().dialect
    # Literal values (escaped by SQLAlchemy) so the plan is the one for these amenities; a debugging aid only.
    statement, params = _ids_statement(session, query)
    statement = statement.params(params)
    sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN QUERY PLAN " if dialect.name == "sqlite" else "EXPLAIN "
    rows = session.connection().exec_driver_sql(prefix + sql).all()
    return "\n".join(" ".join(str(value) for value in row) for row in rows)


def _slugs(name: str, values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ValueError(f"{name} must be a sequence of amenity slugs, not one string: use ({values!r},)")  # noqa: TRY004
    slugs = tuple(values)
    for slug in slugs:
        if not isinstance(slug, str) or not slug:
            raise ValueError(f"{name} holds {slug!r}; amenity slugs are non-empty strings")
    return tuple(dict.fromkeys(slugs))


class _Shape(NamedTuple):
    """What a statement's SQL depends on besides its bound amenity slugs (the key of the statement caches)."""

    dialect: str
    after: bool
    min_score: bool
    confirmed_only: bool
    limit: int
    room: bool = False

    @classmethod
    def of(cls, session: Session, query: SearchQuery) -> _Shape:
        dialect = session.get_bind().dialect.name
        return cls(
            dialect, query.after is not None, query.min_score > 0, query.confirmed_only, query.limit,
            query.room is not None,
        )


def _qualifies(table: Any, shape: _Shape) -> list[ColumnElement[bool]]:
    """Status and score conditions on a listing_amenities alias; literal statuses so the planner sees them."""
    if shape.confirmed_only:
        conditions = [table.c.status == literal_column("'confirmed'")]
    else:
        conditions = [table.c.status.in_([literal_column(f"'{status}'") for status in SEEN_STATUSES])]
    if shape.min_score:
        conditions.append(table.c.score >= bindparam("min_score", type_=Float))
    return conditions


def _matches(table: Any, slug_param: str, shape: _Shape) -> list[ColumnElement[bool]]:
    """Conditions for a row of ``table`` to match the amenity bound as ``slug_param``; all read the index."""
    return [table.c.amenity == bindparam(slug_param, type_=String), *_qualifies(table, shape)]


def _range(table: Any, slug_param: str, shape: _Shape) -> list[ColumnElement[bool]]:
    """``_matches``, after the cursor: the index range of amenity ``slug_param`` that a page reads."""
    conditions = _matches(table, slug_param, shape)
    if shape.after:
        conditions.append(table.c.listing_id > bindparam("after", type_=Integer))
    return conditions


# Statements are cached per shape: building SQLAlchemy aliases costs more than running the query.
@functools.lru_cache(maxsize=1024)
def _walk(shape: _Shape, probes: int, any_probes: int, prefix: str = "") -> Select:
    """Listing ids matching amenity ``{prefix}d`` in id order from the cursor that also match every
    ``{prefix}p<i>`` amenity and, when any, at least one ``{prefix}q<i>`` amenity; at most ``limit + 1``."""
    driver = _alias(shape, f"{prefix}d")
    conditions = _range(driver, f"{prefix}d", shape) + _probes(driver, probes, any_probes, shape, prefix)
    conditions += _room_probe(driver, shape)
    return (
        select(driver.c.listing_id).where(*conditions).order_by(driver.c.listing_id).limit(_page_limit(shape))
    )


def _page_limit(shape: _Shape) -> ColumnElement[Any]:
    # A literal LIMIT (the shape is cached per limit): a prepared statement's generic plan would guess it.
    return literal_column(str(shape.limit + 1))


def _probes(
    driver: Any, probes: int, any_probes: int, shape: _Shape, prefix: str = ""
) -> list[ColumnElement[bool]]:
    """EXISTS conditions on the driver's listing: every amenity ``{prefix}p<i>``, one of ``{prefix}q<i>``."""
    conditions = [_probe(driver, [f"{prefix}p{i}"], shape) for i in range(probes)]
    if any_probes:
        conditions.append(_probe(driver, [f"{prefix}q{i}" for i in range(any_probes)], shape))
    return conditions


@functools.lru_cache(maxsize=1024)
def _merge(shape: _Shape, merged: int, probes: int, any_probes: int) -> Select | CompoundSelect:
    """Listing ids in every range ``m<i>``, found by reading each range once in id order, that also match the
    probes ``p<i>`` and ``q<i>`` as in ``_walk``; at most ``limit + 1``.

    A match of a search with min_score or confirmed_only is a seen row too: the merge reads the narrow ranges
    of seen rows, and each listing in all of them is checked against the search's own conditions by a probe
    per merged amenity (few listings: the merge is chosen when the ranges are rare)."""
    seen = shape._replace(min_score=False, confirmed_only=False)
    recheck = seen != shape
    ranges = [_alias(seen, f"m{i}") for i in range(merged)]
    filtered = probes or any_probes or recheck or shape.room
    if shape.dialect == "sqlite":
        # SQLite merges a compound SELECT that has an ORDER BY ("MERGE (INTERSECT)" in its plan); without one
        # it builds a temporary b-tree of each range.
        arms = [
            select(table.c.listing_id).where(*_range(table, f"m{i}", seen)) for i, table in enumerate(ranges)
        ]
        both = intersect(*arms)
        ordered = both.order_by(both.selected_columns.listing_id)
        if not filtered:
            return ordered.limit(_page_limit(shape))
        # LIMIT -1 (none) keeps the ORDER BY, and so the merge, which SQLite drops from a subquery otherwise.
        # It then sorts what passes the probes: the merge reads the ranges to their end (_merge_count's cost).
        ids = ordered.limit(literal_column("-1")).subquery("m")
    else:
        # PostgreSQL merge-joins (or hash-joins) ranges this sparse: either reads each range once.
        first = ranges[0]
        joined = first
        conditions = _range(first, "m0", seen)
        for i, table in enumerate(ranges[1:], start=1):
            joined = joined.join(table, table.c.listing_id == first.c.listing_id)
            conditions += _range(table, f"m{i}", seen)
        join = select(first.c.listing_id).select_from(joined).where(*conditions).order_by(first.c.listing_id)
        if not filtered:
            return join.limit(_page_limit(shape))
        # OFFSET 0 keeps the probes out of the join: pushed down to one range's scan, they would run for each
        # of its rows. The subquery stays in id order, so the page still stops after limit + 1 matches.
        ids = join.offset(literal_column("0")).subquery("m")
    checks = [_probe(ids, [f"m{i}"], shape, f"c{i}") for i in range(merged)] if recheck else []
    return (
        select(ids.c.listing_id)
        .where(*checks, *_probes(ids, probes, any_probes, shape), *_room_probe(ids, shape))
        .order_by(ids.c.listing_id)
        .limit(_page_limit(shape))
    )


def _probe(
    driver: Any, slug_params: list[str], shape: _Shape, name: str | None = None
) -> ColumnElement[bool]:
    """EXISTS a matching row, for the driver's listing, for one of the amenities bound as ``slug_params``.

    One EXISTS with ``amenity IN (...)`` rather than an OR of EXISTS, which PostgreSQL would answer by hashing
    each amenity's whole range. On PostgreSQL, ``OFFSET 0`` keeps the planner from turning the EXISTS into a join: a join's
    plan depends on statistics (a fresh table's are wrong), while a per-row probe costs one index lookup on
    ``(amenity, listing_id)`` whatever the statistics say.
    """
    probe = _alias(shape, name or slug_params[0])
    slugs = [bindparam(name, type_=String) for name in slug_params]
    amenity = probe.c.amenity == slugs[0] if len(slugs) == 1 else probe.c.amenity.in_(slugs)
    subquery: Select[Any] = select(literal_column("1")).where(
        probe.c.listing_id == driver.c.listing_id, amenity, *_qualifies(probe, shape)
    )
    if shape.dialect == "postgresql":
        subquery = subquery.offset(literal_column("0"))
    return subquery.exists()


def _room_probe(driver: Any, shape: _Shape) -> list[ColumnElement[bool]]:
    """With a room in the query: EXISTS its ``listing_rooms`` row for the driver's listing (one descent of
    ``(room, listing_id)``); ``OFFSET 0`` on PostgreSQL as in ``_probe``."""
    if not shape.room:
        return []
    room = _rooms.alias("r")
    subquery: Select[Any] = select(literal_column("1")).where(
        room.c.listing_id == driver.c.listing_id, room.c.room == bindparam("room", type_=String)
    )
    if shape.dialect == "postgresql":
        subquery = subquery.offset(literal_column("0"))
    return [subquery.exists()]


@functools.lru_cache(maxsize=64)
def _room_walk(shape: _Shape) -> Select:
    """A search by room alone: the room's range of ``ix_listing_rooms_search`` in id order from the cursor."""
    conditions = [_rooms.c.room == bindparam("room", type_=String)]
    if shape.after:
        conditions.append(_rooms.c.listing_id > bindparam("after", type_=Integer))
    return select(_rooms.c.listing_id).where(*conditions).order_by(_rooms.c.listing_id).limit(_page_limit(shape))


@functools.lru_cache(maxsize=1024)
def _union(shape: _Shape, branches: int, probes: int) -> Select:
    walks = [_walk(shape, probes, 0, f"w{i}_").subquery(f"w{i}") for i in range(branches)]
    merged = union(*(select(walk.c.listing_id) for walk in walks)).subquery("m")
    return select(merged.c.listing_id).order_by(merged.c.listing_id).limit(_page_limit(shape))


@functools.lru_cache(maxsize=1024)
def _sample(shape: _Shape, count: int) -> Select:
    """The last listing id with amenities, then the id of the ``_DENSITY_SAMPLE``-th match after the cursor of
    each amenity ``s<i>`` (NULL if fewer)."""
    samples = [select(func.max(_amenities.c.listing_id)).scalar_subquery()]  # one descent of the primary key
    for i in range(count):
        sample = _alias(shape, f"s{i}")
        samples.append(
            select(sample.c.listing_id)
            .where(*_range(sample, f"s{i}", shape))
            .order_by(sample.c.listing_id)
            .offset(literal_column(str(_DENSITY_SAMPLE - 1)))
            .limit(literal_column("1"))
            .scalar_subquery()
        )
    return select(*samples)


@functools.lru_cache(maxsize=16)
def _details(shape: _Shape) -> Select:
    la = _amenities
    return (
        select(la.c.listing_id, _listings.c.title, la.c.amenity, la.c.score)
        .join(_listings, _listings.c.id == la.c.listing_id)
        .where(
            la.c.listing_id.in_(bindparam("ids", expanding=True)),
            la.c.amenity.in_(bindparam("slugs", expanding=True)),
            *_qualifies(la, shape),
        )
    )


def _ids_statement(session: Session, query: SearchQuery) -> tuple[Select | CompoundSelect, dict[str, Any]]:
    """The page-id statement and its parameters, from the sparsest ranges (see the module docstring)."""
    shape = _Shape.of(session, query)
    params: dict[str, Any] = {}
    if shape.after:
        params["after"] = query.after
    if shape.min_score:
        params["min_score"] = query.min_score
    if shape.room:
        params["room"] = query.room
        if not query.amenities:
            return _room_walk(shape), params
    all_of = list(query.all_of)
    # An any_of amenity that all_of already requires satisfies the any_of condition by itself.
    any_of = [] if set(query.any_of) & set(all_of) else list(query.any_of)
    walk_any: list[str] = []
    merged = 1
    if all_of and (len(all_of) > 1 or any_of):
        density, rest = _densities(session, shape, params, all_of + any_of)
        all_of.sort(key=density.__getitem__)  # the rarest drives; the next rarest probes reject the most
        # Rows walked per page grow with range density: one all_of range, or the any_of ranges walked side by
        # side (the sum of their densities).
        if not any_of or density[all_of[0]] <= sum(density[slug] for slug in any_of):
            any_of, walk_any = [], any_of
            merged = _merge_count([density[s] for s in all_of], [density[s] for s in walk_any], rest, shape)
    params |= _bind("q", walk_any)
    if merged > 1:
        params |= _bind("m", all_of[:merged]) | _bind("p", all_of[merged:])
        return _merge(shape, merged, len(all_of) - merged, len(walk_any)), params
    if not any_of:
        params |= {"d": all_of[0]} | _bind("p", all_of[1:])
        return _walk(shape, len(all_of) - 1, len(walk_any)), params
    if len(any_of) == 1:
        params |= {"d": any_of[0]} | _bind("p", all_of)
        return _walk(shape, len(all_of), 0), params
    for i, slug in enumerate(any_of):
        params |= {f"w{i}_d": slug} | _bind(f"w{i}_p", all_of)
    return _union(shape, len(any_of), len(all_of)), params


def _merge_count(all_of: list[float], any_of: list[float], rest: int, shape: _Shape) -> int:
    """How many of the rarest ``all_of`` ranges to intersect by merging (``_merge``); 1 walks the rarest and
    probes the others (``_walk``).

    Args:
        all_of: the all_of ranges' densities (matches per listing id after the cursor), ascending.
        any_of: the any_of amenities' densities, each probed for.
        rest: listing ids after the cursor.
        shape: the query's shape.

    Costs are in range entries read: a page spans ``walk`` listing ids (to ``limit + 1`` hits, if the
    amenities are independent, or to the end); walking reads the driver's entries over it and probes each,
    merging reads every merged range's entries and probes the listings in all of them.
    """
    hits = math.prod(all_of) * min(1.0, sum(any_of) if any_of else 1.0)
    walk = min(rest, (shape.limit + 1) / hits) if hits > 0 else rest
    driver_rows = walk * all_of[0]
    probe_cost = _PROBE_COST.get(shape.dialect, 10.0)
    walk_cost = driver_rows * probe_cost
    best, best_cost = 1, walk_cost
    # A merge for min_score or confirmed_only checks each listing in all the merged ranges (see _merge).
    recheck = shape.min_score or shape.confirmed_only
    for count in range(2, len(all_of) + 1):
        probed = count < len(all_of) or bool(any_of) or recheck
        # SQLite sorts what passes the probes, so it merges to the end of the ranges whatever the page needs.
        span = rest if probed and shape.dialect == "sqlite" else walk
        # Probes per listing in all merged ranges: its rechecks (most pass), then the first other probe.
        checks = (count if recheck else 0) + (1 if count < len(all_of) or any_of else 0)
        cost = span * (sum(all_of[:count]) + math.prod(all_of[:count]) * probe_cost * checks)
        if cost < best_cost:
            best, best_cost = count, cost
    # Only when it pays clearly: an estimate from 128-entry samples may be off by some way.
    if driver_rows < _MERGE_MIN_ROWS or 1.25 * best_cost > walk_cost:
        return 1
    return best


def _bind(prefix: str, slugs: Sequence[str]) -> dict[str, str]:
    return {f"{prefix}{i}": slug for i, slug in enumerate(slugs)}


def _densities(
    session: Session, shape: _Shape, params: dict[str, Any], slugs: Sequence[str]
) -> tuple[dict[str, float], int]:
    """Each amenity's matches per listing id after the cursor, from how far its range reaches with
    ``_DENSITY_SAMPLE`` matches (a range holding fewer counts as holding that many over the rest), and how
    many listing ids lie after the cursor (at least 1)."""
    start = params.get("after", 0)
    last, *row = session.execute(_sample(shape, len(slugs)), params | _bind("s", slugs)).one()
    rest = max((last or 0) - start, 1)
    return {
        slug: _DENSITY_SAMPLE / (rest if sample is None else max(sample - start, 1))
        for slug, sample in zip(slugs, row, strict=True)
    }, rest


def _fetch_hits(session: Session, query: SearchQuery, ids: list[int]) -> list[SearchHit]:
    if not ids:
        return []
    slugs = query.amenities
    titles: dict[int, str] = {}
    matched: dict[int, list[tuple[str, float]]] = {listing_id: [] for listing_id in ids}
    if slugs:
        params: dict[str, Any] = {"ids": ids, "slugs": list(slugs)}
        if query.min_score > 0:
            params["min_score"] = query.min_score
        for listing_id, title, amenity, score in session.execute(_details(_Shape.of(session, query)), params):
            titles[listing_id] = title
            matched[listing_id].append((amenity, score))
    else:
        titles = dict(session.execute(select(_listings.c.id, _listings.c.title).where(_listings.c.id.in_(ids))).all())
    room_scores: dict[int, float] = {}
    if query.room is not None:
        room_scores = dict(
            session.execute(
                select(_rooms.c.listing_id, _rooms.c.score).where(_rooms.c.listing_id.in_(ids), _rooms.c.room == query.room)
            ).all()
        )
    order = {slug: i for i, slug in enumerate(slugs)}
    return [
        SearchHit(
            listing_id=listing_id,
            title=titles[listing_id],
            amenities=dict(sorted(matched[listing_id], key=lambda pair: order[pair[0]])),
            room_score=room_scores.get(listing_id),
        )
        for listing_id in ids
        if listing_id in titles  # deleted between the two queries
    ]
