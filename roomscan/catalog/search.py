"""Amenity search over the ``listing_amenities`` roll-up, with keyset pagination.

A query names amenities a listing must show (``all_of``) and amenities of which it must show at least one
(``any_of``); a page lists matching listings in id order with the matched amenities' scores::

    page = search_listings(session, SearchQuery(all_of=("jacuzzi",), any_of=("fireplace", "porch")))
    for hit in page.hits:
        print(hit.listing_id, hit.title, hit.amenities)          # 42 'Cabin' {'jacuzzi': 0.41, 'porch': 0.3}
    next_page = search_listings(session, SearchQuery(..., after=page.next_cursor))

How it stays fast on millions of listings: every amenity condition is a range of the index
``ix_listing_amenities_search (amenity, listing_id, score, status)``, which already holds listing ids in order.
The query walks one *driving* range in id order from the cursor and probes the other amenities with ``EXISTS`` on
``(amenity, listing_id)``, stopping after ``limit + 1`` matches: no sort, no DISTINCT, cost proportional to the
rows walked. The driver is the sparsest range after the cursor (measured per query by the id of its 128th entry),
so a rare amenity drives and common ones are cheap probes. ``any_of`` is a UNION of one such walk per amenity,
each cut at ``limit + 1``, unless a single ``all_of`` range is sparser than all of them together. A second
query fetches titles and matched scores for the page's listings only.

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
    Float,
    Integer,
    Select,
    String,
    bindparam,
    literal_column,
    select,
    union,
)
from sqlalchemy.orm import Session

from roomscan.catalog.models import Listing, ListingAmenity

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

_amenities = ListingAmenity.__table__
_listings = Listing.__table__


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

    Raises:
        ValueError: no amenity given, more than 30, an empty or non-string slug, ``min_score`` outside [0, 1],
            ``limit`` outside 1..100, or a negative cursor.

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

    def __post_init__(self) -> None:
        all_of = _slugs("all_of", self.all_of)
        any_of = _slugs("any_of", self.any_of)
        object.__setattr__(self, "all_of", all_of)
        object.__setattr__(self, "any_of", any_of)
        count = len(set(all_of) | set(any_of))
        if count == 0:
            raise ValueError("search needs at least one amenity in all_of or any_of")
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
    """

    listing_id: int
    title: str
    amenities: dict[str, float]


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

    @classmethod
    def of(cls, session: Session, query: SearchQuery) -> _Shape:
        dialect = session.get_bind().dialect.name
        return cls(dialect, query.after is not None, query.min_score > 0, query.confirmed_only, query.limit)


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


# Statements are cached per shape: building SQLAlchemy aliases costs more than running the query.
@functools.lru_cache(maxsize=1024)
def _walk(shape: _Shape, probes: int, any_probes: int, prefix: str = "") -> Select:
    """Listing ids matching amenity ``{prefix}d`` in id order from the cursor that also match every
    ``{prefix}p<i>`` amenity and, when any, at least one ``{prefix}q<i>`` amenity; at most ``limit + 1``."""
    driver = _amenities.alias(f"{prefix}d")
    conditions = _matches(driver, f"{prefix}d", shape)
    if shape.after:
        conditions.append(driver.c.listing_id > bindparam("after", type_=Integer))
    conditions += [_probe(driver, [f"{prefix}p{i}"], shape) for i in range(probes)]
    if any_probes:
        conditions.append(_probe(driver, [f"{prefix}q{i}" for i in range(any_probes)], shape))
    # A literal LIMIT (the shape is cached per limit): a prepared statement's generic plan would guess it.
    limit: ColumnElement[Any] = literal_column(str(shape.limit + 1))
    return select(driver.c.listing_id).where(*conditions).order_by(driver.c.listing_id).limit(limit)


def _probe(driver: Any, slug_params: list[str], shape: _Shape) -> ColumnElement[bool]:
    """EXISTS a matching row, for the driver's listing, for one of the amenities bound as ``slug_params``.

    One EXISTS with ``amenity IN (...)`` rather than an OR of EXISTS, which PostgreSQL would answer by hashing
    each amenity's whole range. On PostgreSQL, ``OFFSET 0`` keeps the planner from turning the EXISTS into a join: a join's
    plan depends on statistics (a fresh table's are wrong), while a per-row probe costs one index lookup on
    ``(amenity, listing_id)`` whatever the statistics say.
    """
    probe = _amenities.alias(slug_params[0])
    slugs = [bindparam(name, type_=String) for name in slug_params]
    amenity = probe.c.amenity == slugs[0] if len(slugs) == 1 else probe.c.amenity.in_(slugs)
    subquery: Select[Any] = select(literal_column("1")).where(
        probe.c.listing_id == driver.c.listing_id, amenity, *_qualifies(probe, shape)
    )
    if shape.dialect == "postgresql":
        subquery = subquery.offset(literal_column("0"))
    return subquery.exists()


@functools.lru_cache(maxsize=1024)
def _union(shape: _Shape, branches: int, probes: int) -> Select:
    walks = [_walk(shape, probes, 0, f"w{i}_").subquery(f"w{i}") for i in range(branches)]
    merged = union(*(select(walk.c.listing_id) for walk in walks)).subquery("m")
    return (
        select(merged.c.listing_id).order_by(merged.c.listing_id).limit(literal_column(str(shape.limit + 1)))
    )


@functools.lru_cache(maxsize=1024)
def _sample(shape: _Shape, count: int) -> Select:
    """The id of the ``_DENSITY_SAMPLE``-th match after the cursor of each amenity ``s<i>`` (NULL if fewer)."""
    samples = []
    for i in range(count):
        sample = _amenities.alias(f"s{i}")
        conditions = _matches(sample, f"s{i}", shape)
        if shape.after:
            conditions.append(sample.c.listing_id > bindparam("after", type_=Integer))
        samples.append(
            select(sample.c.listing_id)
            .where(*conditions)
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


def _ids_statement(session: Session, query: SearchQuery) -> tuple[Select, dict[str, Any]]:
    """The page-id statement and its parameters, walking from the sparsest range (see the module docstring)."""
    shape = _Shape.of(session, query)
    params: dict[str, Any] = {}
    if shape.after:
        params["after"] = query.after
    if shape.min_score:
        params["min_score"] = query.min_score
    all_of = list(query.all_of)
    # An any_of amenity that all_of already requires satisfies the any_of condition by itself.
    any_of = [] if set(query.any_of) & set(all_of) else list(query.any_of)
    if all_of and (len(all_of) > 1 or any_of):
        spans = _spans(session, shape, params, all_of + any_of)
        driver = max(all_of, key=lambda slug: spans[slug])
        # Rows walked per page grow with range density (1/span): one all_of range, or the any_of ranges
        # walked side by side (the sum of their densities).
        if not any_of or 1 / spans[driver] <= sum(1 / spans[slug] for slug in any_of):
            all_of.remove(driver)
            all_of.insert(0, driver)
            any_of, walk_any = [], any_of
            params |= _bind("q", walk_any)
        else:
            walk_any = []
    else:
        walk_any = []
    if not any_of:
        params |= {"d": all_of[0]} | _bind("p", all_of[1:])
        return _walk(shape, len(all_of) - 1, len(walk_any)), params
    if len(any_of) == 1:
        params |= {"d": any_of[0]} | _bind("p", all_of)
        return _walk(shape, len(all_of), 0), params
    for i, slug in enumerate(any_of):
        params |= {f"w{i}_d": slug} | _bind(f"w{i}_p", all_of)
    return _union(shape, len(any_of), len(all_of)), params


def _bind(prefix: str, slugs: Sequence[str]) -> dict[str, str]:
    return {f"{prefix}{i}": slug for i, slug in enumerate(slugs)}


def _spans(session: Session, shape: _Shape, params: dict[str, Any], slugs: Sequence[str]) -> dict[str, float]:
    """How many listing ids each amenity's range needs, after the cursor, to hold ``_DENSITY_SAMPLE`` matches
    (infinite when it holds fewer: walking it costs less than the sample did). Larger means sparser."""
    start = params.get("after", 0)
    row = session.execute(_sample(shape, len(slugs)), params | _bind("s", slugs)).one()
    return {
        slug: math.inf if last is None else max(last - start, 1)
        for slug, last in zip(slugs, row, strict=True)
    }


def _fetch_hits(session: Session, query: SearchQuery, ids: list[int]) -> list[SearchHit]:
    if not ids:
        return []
    slugs = query.amenities
    params: dict[str, Any] = {"ids": ids, "slugs": list(slugs)}
    if query.min_score > 0:
        params["min_score"] = query.min_score
    rows = session.execute(_details(_Shape.of(session, query)), params).all()
    order = {slug: i for i, slug in enumerate(slugs)}
    titles: dict[int, str] = {}
    matched: dict[int, list[tuple[str, float]]] = {listing_id: [] for listing_id in ids}
    for listing_id, title, amenity, score in rows:
        titles[listing_id] = title
        matched[listing_id].append((amenity, score))
    return [
        SearchHit(
            listing_id=listing_id,
            title=titles[listing_id],
            amenities=dict(sorted(matched[listing_id], key=lambda pair: order[pair[0]])),
        )
        for listing_id in ids
        if listing_id in titles  # deleted between the two queries
    ]
