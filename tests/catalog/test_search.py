from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from roomscan.catalog import search
from roomscan.catalog.db import open_catalog
from roomscan.catalog.models import Listing, ListingAmenity
from roomscan.catalog.search import SearchQuery, explain_search, search_listings

# listing id -> {amenity: (status, score)}; listing 6 has no amenities at all.
LISTINGS: dict[int, dict[str, tuple[str, float]]] = {
    1: {"bed": ("confirmed", 0.90), "sink": ("discovered", 0.50)},
    2: {"bed": ("unverified", 0.10), "sink": ("confirmed", 0.70)},
    3: {"bed": ("discovered", 0.30), "jacuzzi": ("confirmed", 0.80)},
    4: {"jacuzzi": ("unverified", 0.05), "tree-house": ("discovered", 0.60)},
    5: {"bed": ("confirmed", 0.60), "sink": ("confirmed", 0.40), "tree-house": ("confirmed", 0.95)},
    6: {},
    7: {"sink": ("discovered", 0.25)},
}
# A larger random catalog (ids from 1001) with common and rare amenities, so that searches walk both dense and
# sparse index ranges and choose between them.
RANDOM_SHARE = {"bed": 0.9, "sink": 0.8, "couch": 0.5, "porch": 0.15, "jacuzzi": 0.06, "tree-house": 0.02}
RANDOM_COUNT = 1500


def _random_listings() -> dict[int, dict[str, tuple[str, float]]]:
    rng = random.Random(7)
    listings = {}
    for listing_id in range(1001, 1001 + RANDOM_COUNT):
        amenities = {}
        for slug, share in RANDOM_SHARE.items():
            if rng.random() < share:
                status = rng.choices(["confirmed", "discovered", "unverified"], [6, 3, 1])[0]
                amenities[slug] = (status, round(rng.uniform(0.0, 1.0), 3))
        listings[listing_id] = amenities
    return listings


# A catalog (ids from 5001) where rare amenities cluster on a few "luxury" listings, as they do in life, so
# that all-of searches over several rare amenities have matches on several pages: the case where search
# intersects rare ranges by merging them instead of walking one and probing the others.
RARE_SHARE = {"billiard-table": 0.03, "fountain": 0.03, "wine-rack": 0.04}
LUXURY_SHARE = 0.08  # listings where each rare amenity shows up half the time
RARE_COUNT = 4000


def _rare_listings() -> dict[int, dict[str, tuple[str, float]]]:
    rng = random.Random(11)
    listings = {}
    for listing_id in range(5001, 5001 + RARE_COUNT):
        luxury = rng.random() < LUXURY_SHARE
        # Other common amenities than RANDOM_SHARE's, so the paging tests above page through no more rows.
        shares = {"towel": 0.9, "mirror": 0.8, "stairs": 0.15} | {
            slug: 0.5 if luxury else share for slug, share in RARE_SHARE.items()
        }
        amenities = {}
        for slug, share in shares.items():
            if rng.random() < share:
                status = rng.choices(["confirmed", "discovered", "unverified"], [6, 3, 1])[0]
                amenities[slug] = (status, round(rng.uniform(0.0, 1.0), 3))
        listings[listing_id] = amenities
    return listings


RANDOM_LISTINGS = _random_listings()
RARE_LISTINGS = _rare_listings()
ALL_LISTINGS = LISTINGS | RANDOM_LISTINGS | RARE_LISTINGS


def _rows(listings: dict[int, dict[str, tuple[str, float]]]) -> Iterator[dict[str, Any]]:
    for listing_id, amenities in listings.items():
        for slug, (status, score) in amenities.items():
            yield {
                "listing_id": listing_id, "amenity": slug, "score": score, "status": status,
                "claimed": status != "discovered", "seen": status != "unverified",
                "photo_count": 0 if status == "unverified" else 1,
            }  # fmt: skip


@pytest.fixture(scope="module")
def catalog_sessions(module_catalog_url: str) -> Iterator[sessionmaker[Session]]:
    engine, Session = open_catalog(module_catalog_url)
    with Session() as session:
        session.execute(insert(Listing), [{"id": i, "title": f"Listing {i}"} for i in ALL_LISTINGS])
        session.execute(insert(ListingAmenity), list(_rows(ALL_LISTINGS)))
        session.commit()
    yield Session
    engine.dispose()


@pytest.fixture
def session(catalog_sessions: sessionmaker[Session]) -> Iterator[Session]:
    with catalog_sessions() as session:
        yield session


def expected(query: SearchQuery, listings: dict[int, dict[str, tuple[str, float]]]) -> list[tuple[int, dict]]:
    """Brute-force answer: every listing, every condition, in id order."""
    statuses = {"confirmed"} if query.confirmed_only else {"confirmed", "discovered"}

    def matches(amenities: dict[str, tuple[str, float]], slug: str) -> bool:
        return slug in amenities and amenities[slug][0] in statuses and amenities[slug][1] >= query.min_score

    hits = []
    for listing_id in sorted(listings):
        amenities = listings[listing_id]
        if query.after is not None and listing_id <= query.after:
            continue
        if not all(matches(amenities, slug) for slug in query.all_of):
            continue
        if query.any_of and not any(matches(amenities, slug) for slug in query.any_of):
            continue
        hits.append((listing_id, {s: amenities[s][1] for s in query.amenities if matches(amenities, s)}))
    return hits


def _page(session: Session, query: SearchQuery) -> list[tuple[int, dict]]:
    return _rounded((hit.listing_id, hit.amenities) for hit in search_listings(session, query).hits)


def _rounded(hits: Iterable[tuple[int, dict[str, float]]]) -> list[tuple[int, dict]]:
    """Scores to 6 places: PostgreSQL's double precision and Python's floats may differ in the last bits."""
    return [
        (listing_id, {slug: round(score, 6) for slug, score in scores.items()}) for listing_id, scores in hits
    ]


SMALL = {"limit": 100, "after": None}
SMALL_CASES = [
    # (query, expected [(listing id, matched amenities)]) on LISTINGS (ids 1..7; later ids are cut by the limit)
    pytest.param({"all_of": ("bed",)}, [(1, {"bed": 0.9}), (3, {"bed": 0.3}), (5, {"bed": 0.6})], id="one"),
    pytest.param(
        {"all_of": ("bed", "sink")},
        [(1, {"bed": 0.9, "sink": 0.5}), (5, {"bed": 0.6, "sink": 0.4})],
        id="all-of",
    ),
    pytest.param(
        {"any_of": ("jacuzzi", "tree-house")},
        [(3, {"jacuzzi": 0.8}), (4, {"tree-house": 0.6}), (5, {"tree-house": 0.95})],
        id="any-of",
    ),
    pytest.param(
        {"all_of": ("bed",), "any_of": ("sink", "jacuzzi")},
        [(1, {"bed": 0.9, "sink": 0.5}), (3, {"bed": 0.3, "jacuzzi": 0.8}), (5, {"bed": 0.6, "sink": 0.4})],
        id="all-of-and-any-of",
    ),
    pytest.param(
        {"all_of": ("bed",), "min_score": 0.5}, [(1, {"bed": 0.9}), (5, {"bed": 0.6})], id="min-score"
    ),
    pytest.param(
        {"all_of": ("sink",), "confirmed_only": True},
        [(2, {"sink": 0.7}), (5, {"sink": 0.4})],
        id="confirmed-only",
    ),
    pytest.param({"all_of": ("jacuzzi",)}, [(3, {"jacuzzi": 0.8})], id="unverified-is-not-seen"),
    pytest.param({"all_of": ("bed", "jacuzzi", "tree-house")}, [], id="empty"),
    pytest.param(
        {"all_of": ("bed",), "any_of": ("bed", "tree-house")},
        [(1, {"bed": 0.9}), (3, {"bed": 0.3}), (5, {"bed": 0.6, "tree-house": 0.95})],
        id="any-of-already-required",
    ),
    pytest.param(
        {"all_of": ("bed", "bed")},
        [(1, {"bed": 0.9}), (3, {"bed": 0.3}), (5, {"bed": 0.6})],
        id="repeated-amenity",
    ),
    pytest.param({"all_of": ("sink",), "after": 2}, [(5, {"sink": 0.4}), (7, {"sink": 0.25})], id="cursor"),
]


@pytest.mark.parametrize(("kwargs", "hits"), SMALL_CASES)
def test_search_cases(session: Session, kwargs: dict, hits: list) -> None:
    query = SearchQuery(**(SMALL | kwargs))
    assert [hit for hit in _page(session, query) if hit[0] <= 7] == hits


@pytest.mark.parametrize(
    "slug",
    [
        "'; DROP TABLE listings; --",
        "bed' OR '1'='1",
        "bed%",
        "%",
        "_ed",
        "bed\\",
        'bed"; --',
        "?",
        ":after",
        "%(d)s",
    ],
)
def test_injection_looking_amenities_match_nothing(session: Session, slug: str) -> None:
    page = search_listings(session, SearchQuery(all_of=(slug,)))
    assert page == search_listings(session, SearchQuery(any_of=(slug, "no-such-amenity")))
    assert page.hits == [] and page.next_cursor is None
    assert session.scalar(select(func.count()).select_from(Listing)) == len(ALL_LISTINGS)


RANDOM_QUERIES = [
    {"all_of": ("bed",)},
    {"all_of": ("bed", "sink")},
    {"all_of": ("bed", "sink", "tree-house")},
    {"all_of": ("jacuzzi", "bed")},
    {"all_of": ("jacuzzi", "tree-house")},
    {"any_of": ("jacuzzi", "tree-house")},
    {"any_of": ("bed", "couch", "porch")},
    {"all_of": ("bed",), "any_of": ("jacuzzi", "tree-house")},
    {"all_of": ("tree-house",), "any_of": ("bed", "sink")},
    {"all_of": ("couch", "sink"), "any_of": ("porch", "jacuzzi"), "min_score": 0.3},
    {"all_of": ("bed", "couch"), "min_score": 0.7},
    {"all_of": ("sink", "porch"), "confirmed_only": True},
    {"any_of": ("porch", "tree-house"), "confirmed_only": True, "min_score": 0.2},
    {"all_of": ("bed", "no-such-amenity")},
]


def _assert_pages_match_brute_force(session: Session, kwargs: dict, limit: int) -> None:
    """Page through the whole answer with the cursor: every match once, in id order, with its scores."""
    answer = expected(SearchQuery(**kwargs), ALL_LISTINGS)
    seen: list[tuple[int, dict]] = []
    cursor = kwargs.pop("after", None)
    for _ in range(len(answer) + 2):
        page = search_listings(session, SearchQuery(**kwargs, limit=limit, after=cursor))
        assert len(page.hits) <= limit
        seen += [(hit.listing_id, hit.amenities) for hit in page.hits]
        if page.next_cursor is None:
            break
        assert len(page.hits) == limit and page.next_cursor == page.hits[-1].listing_id
        cursor = page.next_cursor
    assert [listing_id for listing_id, _ in seen] == [listing_id for listing_id, _ in answer]
    assert _rounded(seen) == _rounded(answer)


@pytest.mark.parametrize("kwargs", RANDOM_QUERIES, ids=lambda kwargs: str(kwargs))
@pytest.mark.parametrize("limit", [1, 7, 100])
def test_paging_through_every_page_finds_every_match_once(session: Session, kwargs: dict, limit: int) -> None:
    _assert_pages_match_brute_force(session, dict(kwargs), limit)


RARE_QUERIES = [
    {"all_of": ("billiard-table", "fountain", "wine-rack")},
    {"all_of": ("wine-rack", "fountain")},
    {"all_of": ("fountain", "billiard-table", "towel")},
    {"all_of": ("billiard-table", "fountain", "wine-rack"), "min_score": 0.2},
    {"all_of": ("billiard-table", "wine-rack"), "confirmed_only": True},
    {"all_of": ("wine-rack", "fountain", "mirror"), "confirmed_only": True, "min_score": 0.1},
    {"all_of": ("billiard-table", "fountain"), "any_of": ("towel", "stairs")},
    {"all_of": ("billiard-table", "wine-rack"), "any_of": ("stairs", "tree-house", "mirror")},
    {"all_of": ("fountain", "wine-rack"), "any_of": ("fountain", "stairs")},
    {"all_of": ("billiard-table", "fountain", "wine-rack"), "after": 7000},
    {"all_of": ("billiard-table", "fountain", "no-such-amenity")},
]


@pytest.mark.parametrize("kwargs", RARE_QUERIES, ids=lambda kwargs: str(kwargs))
@pytest.mark.parametrize("limit", [1, 7, 100])
@pytest.mark.parametrize("merged", [1, 2, 3], ids=["walk", "merge-2", "merge-3"])
def test_rare_all_of_finds_the_same_pages_walked_or_merged(
    session: Session, monkeypatch: pytest.MonkeyPatch, kwargs: dict, limit: int, merged: int
) -> None:
    # However many of the rarest ranges are merged (the cost estimate picks), the pages are the brute-force
    # answer's: same hits, same order, same cursors.
    monkeypatch.setattr(search, "_merge_count", lambda all_of, *_: min(merged, len(all_of)))
    _assert_pages_match_brute_force(session, dict(kwargs), limit)


@pytest.mark.parametrize("after", [0, 5000, 6000, 8999, 9000, 10**9])
def test_merged_search_from_any_cursor(session: Session, monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    monkeypatch.setattr(search, "_merge_count", lambda all_of, *_: len(all_of))
    query = SearchQuery(all_of=("billiard-table", "wine-rack"), any_of=("towel", "stairs"), after=after)
    assert _page(session, query) == _rounded(expected(query, ALL_LISTINGS)[:20])


@pytest.mark.parametrize(
    ("all_of", "any_of", "rest", "merged"),
    [
        # 1M listings: three rare ranges (~17k-25k matches each) share ~10 listings; merging the two rarest
        # reads ~35k entries and probes ~300 listings, walking probes ~17k.
        ([0.017, 0.017, 0.025], [], 10**6, 2),
        ([0.017, 0.017], [], 10**6, 2),
        ([0.017, 0.025], [0.01, 0.04], 10**6, 2),
        # A rare driver with common probes finds a page within a few hundred rows: walk.
        ([0.0085, 0.77, 0.78], [], 10**6, 1),
        ([0.77, 0.78], [], 10**6, 1),
        # Near the end of the catalog: few rows to walk whatever the densities.
        ([0.017, 0.017, 0.025], [], 20_000, 1),
    ],
)
def test_merge_when_walking_would_probe_many_rows(
    all_of: list[float], any_of: list[float], rest: int, merged: int
) -> None:
    for dialect in ("sqlite", "postgresql"):
        shape = search._Shape(dialect, after=False, min_score=False, confirmed_only=False, limit=20)
        assert search._merge_count(all_of, any_of, rest, shape) == merged


def test_rare_all_of_merges_the_search_index(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("PostgreSQL plans depend on table statistics; bench_search.py checks them at scale")
    monkeypatch.setattr(search, "_merge_count", lambda all_of, *_: len(all_of))
    query = SearchQuery(all_of=("billiard-table", "fountain"), any_of=("towel", "stairs"))
    plan = explain_search(session, query)
    # Each range read once, in index order (no temporary b-tree of a range), probes on the search index.
    assert "MERGE (INTERSECT)" in plan and "sqlite_autoindex" not in plan, plan
    assert "TEMP B-TREE" not in plan.replace("USE TEMP B-TREE FOR ORDER BY", ""), plan


@pytest.mark.parametrize(
    ("kwargs", "index"),
    [
        ({}, "ix_listing_amenities_seen"),  # seen rows only: half as wide
        ({"min_score": 0.3}, "ix_listing_amenities_search"),  # needs the score
        ({"confirmed_only": True}, "ix_listing_amenities_search"),  # needs the status
    ],
)
def test_walks_an_amenity_index(session: Session, kwargs: dict, index: str) -> None:
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("PostgreSQL plans depend on table statistics; bench_search.py checks them at scale")
    query = SearchQuery(all_of=("bed", "jacuzzi"), any_of=("sink", "porch"), after=5, **kwargs)
    plan = explain_search(session, query)
    assert index in plan
    assert "SCAN listing_amenities" not in plan.replace("SCAN m", "")
    # Probes read an amenity index, not the primary key's index and then the table row.
    assert "sqlite_autoindex" not in plan, plan


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "at least one amenity"),
        ({"all_of": ()}, "at least one amenity"),
        ({"all_of": "bed"}, "not one string"),
        ({"all_of": ("bed", "")}, "non-empty strings"),
        ({"any_of": ("bed", None)}, "non-empty strings"),
        ({"all_of": tuple(f"a{i}" for i in range(31))}, "at most 30"),
        ({"all_of": ("bed",), "min_score": 1.5}, "min_score"),
        ({"all_of": ("bed",), "min_score": -0.1}, "min_score"),
        ({"all_of": ("bed",), "min_score": float("nan")}, "min_score"),
        ({"all_of": ("bed",), "min_score": "0.5"}, "min_score"),
        ({"all_of": ("bed",), "limit": 0}, "limit"),
        ({"all_of": ("bed",), "limit": 101}, "limit"),
        ({"all_of": ("bed",), "limit": True}, "limit"),
        ({"all_of": ("bed",), "after": -1}, "after"),
        ({"all_of": ("bed",), "after": "10"}, "after"),
    ],
)
def test_invalid_queries_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchQuery(**kwargs)


def test_query_normalises_sequences() -> None:
    query = SearchQuery(all_of=["bed", "sink", "bed"], any_of=["sink", "porch"])
    assert query.all_of == ("bed", "sink") and query.any_of == ("sink", "porch")
    assert query.amenities == ("bed", "sink", "porch")
