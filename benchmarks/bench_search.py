"""Search latency at scale: generate a catalog of N listings, run typical searches, print p50/p99 per query.

    python benchmarks/bench_search.py                                  # 1,000,000 listings, SQLite
    python benchmarks/bench_search.py --db both --postgres-url "$(scripts/postgres.sh start)"
    python benchmarks/bench_search.py --listings 100000 --db sqlite --keep --explain
    python benchmarks/bench_search.py --db both --postgres-url URL --keep --save new.json --baseline old.json

Each listing gets ~15 of the 30 default amenities with a realistic skew (bed, sink, toilet ~90%; jacuzzi 5%;
billiard table, fountain 2%; tree house 1%), random statuses (60% confirmed, 25% discovered, 15% unverified) and
scores. Loading is the fast path of each database (SQLite: executemany in large transactions with journaling
and syncing off; PostgreSQL: COPY, indexes built afterwards), then ANALYZE. The generated database is kept
(SQLite: a file under --workdir; PostgreSQL: database ``roomscan_bench_<N>``); --keep reuses it.

The target is p99 < 10 ms per search (both queries of ``search_listings``, measured from Python). The worst
case is an all-of over several rare amenities: few listings show them all, so a page may have to read their
whole ranges. The "rare" query kinds time it alone and with any-of, min_score, confirmed_only and a deep
cursor, and the summary lists them per database. --save writes the figures as JSON; --baseline prints a saved
run's beside them as before -> after (e.g. one made with an earlier roomscan first on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateIndex

from roomscan.catalog.db import make_engine, migrate, session_factory
from roomscan.catalog.models import ListingAmenity
from roomscan.catalog.search import SearchQuery, explain_search, search_listings
from roomscan.taxonomy import default_taxonomy

TARGET_P99_MS = 10.0
# Share of listings with each amenity (~15 per listing in all).
FREQUENCY = {
    "bed": 0.92, "sink": 0.90, "toilet": 0.90, "pillow": 0.88, "mirror": 0.85, "towel": 0.85,
    "refrigerator": 0.80, "shower": 0.80, "television": 0.80, "couch": 0.75, "countertop": 0.75,
    "kitchen-dining-table": 0.65, "microwave-oven": 0.65, "oven": 0.60, "coffeemaker": 0.55,
    "washing-machine": 0.50, "bathtub": 0.45, "dishwasher": 0.40, "gas-stove": 0.35, "ceiling-fan": 0.30,
    "stairs": 0.30, "porch": 0.20, "sofa-bed": 0.20, "fireplace": 0.15, "swimming-pool": 0.10,
    "jacuzzi": 0.05, "wine-rack": 0.03, "billiard-table": 0.02, "fountain": 0.02, "tree-house": 0.01,
}  # fmt: skip
COMMON = [slug for slug, share in FREQUENCY.items() if share >= 0.5]
MEDIUM = [slug for slug, share in FREQUENCY.items() if 0.1 <= share < 0.5]
RARE = [slug for slug, share in FREQUENCY.items() if share < 0.1]
STATUSES = np.array(["confirmed", "discovered", "unverified"])
STATUS_SHARE = [0.60, 0.25, 0.15]
CHUNK = 50_000  # listings per generated batch
AMENITY_COLUMNS = ("listing_id", "amenity", "model_id", "score", "photo_count", "claimed", "seen", "status")


def generate(n: int, seed: int = 0) -> Iterator[tuple[list[tuple[int, str]], list[tuple]]]:
    """Yield ``(listing rows, listing_amenities rows)`` in listing id order, CHUNK listings at a time."""
    slugs = sorted(default_taxonomy().slugs)
    share = np.array([FREQUENCY.get(slug, 0.1) for slug in slugs])
    rng = np.random.default_rng(seed)
    for start in range(1, n + 1, CHUNK):
        ids = np.arange(start, min(start + CHUNK, n + 1))
        has = rng.random((len(ids), len(slugs))) < share  # [listings, amenities]
        rows, cols = np.nonzero(has)  # row-major: listing id order, then slug order (the primary key's order)
        status = rng.choice(STATUSES, size=len(rows), p=STATUS_SHARE)
        seen = status != "unverified"
        score = np.where(seen, rng.uniform(0.2, 0.95, len(rows)), rng.uniform(0.0, 0.2, len(rows))).round(4)
        photos = np.where(seen, rng.integers(1, 6, len(rows)), 0)
        listing_ids = ids[rows].tolist()
        amenity_rows = list(
            zip(
                listing_ids,
                [slugs[c] for c in cols.tolist()],
                [None] * len(rows),
                score.tolist(),
                photos.tolist(),
                (status != "discovered").tolist(),
                seen.tolist(),
                status.tolist(),
                strict=True,
            )
        )
        yield [(int(i), f"Listing {i}") for i in ids.tolist()], amenity_rows


def load_sqlite(path: Path, n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    migrate(f"sqlite:///{path}")
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = OFF")
    con.execute("PRAGMA synchronous = OFF")
    con.execute("PRAGMA cache_size = -1000000")
    for name, _ in _amenity_indexes("sqlite"):
        con.execute(f"DROP INDEX {name}")
    placeholders = ", ".join("?" * len(AMENITY_COLUMNS))
    for listings, amenities in _progress(generate(n), n, "sqlite"):
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO listings (id, title, created_at) VALUES (?, ?, '2026-01-01 00:00:00')", listings
        )
        con.executemany(
            f"INSERT INTO listing_amenities ({', '.join(AMENITY_COLUMNS)}) VALUES ({placeholders})", amenities
        )
        con.execute("COMMIT")
    print("  indexing and analysing...", flush=True)
    for _, create in _amenity_indexes("sqlite"):
        con.execute(create)
    con.execute("ANALYZE")
    con.execute("CREATE TABLE bench_done (n INTEGER)")
    con.execute("INSERT INTO bench_done VALUES (?)", (n,))
    con.execute("PRAGMA journal_mode = WAL")
    con.close()


def load_postgres(url: str, n: int) -> None:
    import psycopg

    migrate(url)
    with psycopg.connect(_libpq(url), autocommit=True) as con:
        # No autovacuum during the load: an auto-ANALYZE's snapshot would stop our VACUUM from marking pages
        # all-visible, and without that index-only scans visit the table.
        for table in ("listings", "listing_amenities"):
            con.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        con.execute("ALTER TABLE listing_amenities DROP CONSTRAINT pk_listing_amenities")
        for name, _ in _amenity_indexes("postgresql"):
            con.execute(f"DROP INDEX {name}")
        columns = ", ".join(AMENITY_COLUMNS)
        for listings, amenities in _progress(generate(n), n, "postgres"):
            with con.transaction(), con.cursor() as cur:
                with cur.copy("COPY listings (id, title, created_at) FROM STDIN") as copy:
                    copy.write("".join(f"{i}\t{title}\t2026-01-01 00:00:00+00\n" for i, title in listings))
                with cur.copy(f"COPY listing_amenities ({columns}) FROM STDIN") as copy:
                    copy.write(_copy_text(amenities))
        print("  indexing and analysing...", flush=True)
        con.execute("SET maintenance_work_mem = '1GB'")
        con.execute(
            "ALTER TABLE listing_amenities ADD CONSTRAINT pk_listing_amenities PRIMARY KEY (listing_id, amenity)"
        )
        for _, create in _amenity_indexes("postgresql"):
            con.execute(create)
        con.execute("SELECT setval(pg_get_serial_sequence('listings', 'id'), %s)", (n,))
        con.execute("VACUUM ANALYZE listings")
        con.execute("VACUUM ANALYZE listing_amenities")  # also sets the visibility map: index-only scans
        for table in ("listings", "listing_amenities"):
            con.execute(f"ALTER TABLE {table} RESET (autovacuum_enabled)")
        con.execute("CREATE TABLE bench_done (n integer)")
        con.execute("INSERT INTO bench_done VALUES (%s)", (n,))


def _amenity_indexes(dialect: str) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of each index on listing_amenities, as the models declare them."""
    compiled = (sqlite if dialect == "sqlite" else postgresql).dialect()
    return [
        (str(index.name), str(CreateIndex(index).compile(dialect=compiled)))
        for index in sorted(ListingAmenity.__table__.indexes, key=lambda index: str(index.name))
    ]


def _copy_text(rows: list[tuple]) -> str:
    out = io.StringIO()
    for listing_id, amenity, _model, score, photos, claimed, seen, status in rows:
        out.write(
            f"{listing_id}\t{amenity}\t\\N\t{score}\t{photos}\t{'t' if claimed else 'f'}\t{'t' if seen else 'f'}\t{status}\n"
        )
    return out.getvalue()


def _progress(batches: Iterator, n: int, label: str) -> Iterator:
    started = time.perf_counter()
    done = 0
    for batch in batches:
        yield batch
        done += len(batch[0])
        if done % (CHUNK * 4) == 0 or done == n:
            rate = done / (time.perf_counter() - started)
            print(f"  {label}: {done:,}/{n:,} listings ({rate:,.0f}/s)", flush=True)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _is_complete(engine, n: int) -> bool:  # type: ignore[no-untyped-def]
    try:
        with engine.connect() as con:
            return con.execute(text("SELECT n FROM bench_done")).scalar() == n
    except SQLAlchemyError:  # no such database or table yet
        return False


def ensure_postgres_db(server_url: str, n: int, keep: bool) -> str:
    """Create (or, with keep, reuse) database roomscan_bench_<n> on the server of ``server_url``."""
    import psycopg

    name = f"roomscan_bench_{n}"
    bench_url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    if keep:
        engine = make_engine(bench_url)
        complete = _is_complete(engine, n)
        engine.dispose()
        if complete:
            return bench_url
    with psycopg.connect(_libpq(server_url), autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        con.execute(f'CREATE DATABASE "{name}"')
    return bench_url


# Each entry: name -> function(rng, n) returning the query to time (and, for page 2, the query that precedes it).
def _q_common(rng: random.Random, n: int) -> SearchQuery:
    return SearchQuery(all_of=(rng.choice(COMMON),))


def _q_two(rng: random.Random, n: int) -> SearchQuery:
    return SearchQuery(all_of=tuple(rng.sample(COMMON + MEDIUM, 2)))


def _q_three_rare(rng: random.Random, n: int) -> SearchQuery:
    return SearchQuery(all_of=(*rng.sample(COMMON, 2), rng.choice(RARE)))


def _q_any_rare(rng: random.Random, n: int) -> SearchQuery:
    return SearchQuery(any_of=tuple(rng.sample(RARE, 2)))


def _q_min_score(rng: random.Random, n: int) -> SearchQuery:
    return SearchQuery(all_of=tuple(rng.sample(COMMON, 2)), min_score=round(rng.uniform(0.5, 0.85), 2))


def _q_confirmed(rng: random.Random, n: int) -> SearchQuery:
    return SearchQuery(all_of=tuple(rng.sample(COMMON + MEDIUM, 2)), confirmed_only=True)


def _q_mixed(rng: random.Random, n: int) -> SearchQuery:
    return SearchQuery(
        all_of=(rng.choice(COMMON),), any_of=tuple(rng.sample(MEDIUM + RARE, 3)), min_score=0.3
    )


def _q_deep(rng: random.Random, n: int) -> SearchQuery:
    return SearchQuery(all_of=tuple(rng.sample(COMMON + MEDIUM, 2)), after=rng.randrange(n))


def _q_three_rare_only(rng: random.Random, n: int) -> SearchQuery:
    return SearchQuery(all_of=tuple(rng.sample(RARE, 3)))


def _q_two_rare_only(rng: random.Random, n: int) -> SearchQuery:
    return SearchQuery(all_of=tuple(rng.sample(RARE, 2)))


def _q_two_rare_common(rng: random.Random, n: int) -> SearchQuery:
    return SearchQuery(all_of=(*rng.sample(RARE, 2), rng.choice(COMMON)))


def _q_two_rare_any(rng: random.Random, n: int) -> SearchQuery:
    rare = rng.sample(RARE, 4)
    return SearchQuery(all_of=tuple(rare[:2]), any_of=(rare[2], *rng.sample(MEDIUM, 1)))


def _q_three_rare_min_score(rng: random.Random, n: int) -> SearchQuery:
    return SearchQuery(all_of=tuple(rng.sample(RARE, 3)), min_score=round(rng.uniform(0.3, 0.7), 2))


def _q_three_rare_confirmed(rng: random.Random, n: int) -> SearchQuery:
    return SearchQuery(all_of=tuple(rng.sample(RARE, 3)), confirmed_only=True)


def _q_three_rare_deep(rng: random.Random, n: int) -> SearchQuery:
    return SearchQuery(all_of=tuple(rng.sample(RARE, 3)), after=rng.randrange(n))


QUERIES: dict[str, Callable[[random.Random, int], SearchQuery]] = {
    "1 common amenity": _q_common,
    "2 all-of": _q_two,
    "3 all-of, one rare": _q_three_rare,
    "any-of 2 rare": _q_any_rare,
    "2 all-of, min_score": _q_min_score,
    "2 all-of, confirmed_only": _q_confirmed,
    "page 2 via cursor": _q_two,  # timed on the page after the first
    "1 all-of + 3 any-of": _q_mixed,
    "random deep cursor": _q_deep,
    "3 rare all-of (stress)": _q_three_rare_only,
    "rare: 2 all-of": _q_two_rare_only,
    "rare: 2 all-of + 1 common": _q_two_rare_common,
    "rare: 2 all-of + any-of": _q_two_rare_any,
    "rare: 3 all-of, min_score": _q_three_rare_min_score,
    "rare: 3 all-of, confirmed": _q_three_rare_confirmed,
    "rare: 3 all-of, deep cursor": _q_three_rare_deep,
}
# The worst case: all-of over several rare amenities (the stress query and the "rare:" kinds).
RARE_KINDS = [name for name in QUERIES if name.startswith("rare:") or "rare all-of" in name]


def run_queries(
    label: str, url: str, n: int, runs: int, explain: bool
) -> list[tuple[str, str, float, float, float]]:
    engine = make_engine(url)
    Session = session_factory(engine)
    rng = random.Random(42)
    results = []
    with Session() as session:  # warm caches: walk each amenity's index range once
        for slug in FREQUENCY:
            search_listings(session, SearchQuery(all_of=(slug,), limit=100))
            session.execute(
                text("SELECT count(*) FROM listing_amenities WHERE amenity = :a"), {"a": slug}
            ).scalar()
    for name, make in QUERIES.items():
        timings = []
        for _ in range(runs):
            query = make(rng, n)
            with Session() as session:
                if name.startswith("page 2"):
                    first = search_listings(session, query)
                    if first.next_cursor is None:
                        continue
                    query = SearchQuery(**{**query.__dict__, "after": first.next_cursor})
                started = time.perf_counter()
                search_listings(session, query)
                timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        p50 = statistics.median(timings)
        p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
        results.append((label, name, p50, p99, timings[-1]))
        verdict = "ok" if p99 < TARGET_P99_MS else "MISS"
        print(
            f"  {label:8} {name:28} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   max {timings[-1]:7.2f} ms  {verdict}",
            flush=True,
        )
    if explain:
        with Session() as session:
            for name, make in QUERIES.items():
                query = make(random.Random(7), n)
                print(f"\n[{label}] {name}: {query}\n{explain_search(session, query)}")
    engine.dispose()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--listings", type=int, default=1_000_000, help="listings to generate (default 1,000,000)"
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--postgres-url", help="server URL, e.g. the output of scripts/postgres.sh start")
    parser.add_argument(
        "--workdir", type=Path, default=Path("/tmp/roomscan-bench"), help="where SQLite files go"
    )
    parser.add_argument(
        "--keep", action="store_true", help="reuse a previously generated database of this size"
    )
    parser.add_argument("--runs", type=int, default=200, help="runs per query (default 200)")
    parser.add_argument("--explain", action="store_true", help="print each query's plan")
    parser.add_argument("--save", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--baseline", type=Path, help="a JSON file from --save, printed as 'before'")
    args = parser.parse_args(argv)
    if args.db in ("postgres", "both") and not args.postgres_url:
        parser.error("--postgres-url is needed for PostgreSQL (try: scripts/postgres.sh start)")

    n = args.listings
    targets: list[tuple[str, str]] = []
    if args.db in ("sqlite", "both"):
        path = args.workdir / f"search-{n}.db"
        url = f"sqlite:///{path}"
        engine = make_engine(url)
        complete = args.keep and path.exists() and _is_complete(engine, n)
        engine.dispose()
        if not complete:
            print(f"generating {n:,} listings into {path}", flush=True)
            started = time.perf_counter()
            load_sqlite(path, n)
            print(f"  loaded in {time.perf_counter() - started:.0f} s", flush=True)
        targets.append(("sqlite", url))
    if args.db in ("postgres", "both"):
        url = ensure_postgres_db(args.postgres_url, n, args.keep)
        engine = make_engine(url)
        complete = _is_complete(engine, n)
        engine.dispose()
        if not complete:
            print(
                f"generating {n:,} listings into {make_url(url).render_as_string(hide_password=True)}",
                flush=True,
            )
            started = time.perf_counter()
            load_postgres(url, n)
            print(f"  loaded in {time.perf_counter() - started:.0f} s", flush=True)
        targets.append(("postgres", url))

    print(f"\n{n:,} listings, {args.runs} runs per query, target p99 < {TARGET_P99_MS:.0f} ms")
    results = []
    for label, url in targets:
        results += run_queries(label, url, n, args.runs, args.explain)
    misses = [r for r in results if r[3] >= TARGET_P99_MS]
    print(f"\n{len(results) - len(misses)}/{len(results)} query kinds within target")
    figures = {f"{label}/{name}": {"p50": p50, "p99": p99} for label, name, p50, p99, _ in results}
    baseline = json.loads(args.baseline.read_text())["figures"] if args.baseline else {}
    print_summary(results, baseline, n)
    if args.save:
        args.save.write_text(json.dumps({"listings": n, "runs": args.runs, "figures": figures}, indent=1))
    return 0


def print_summary(results: list[tuple[str, str, float, float, float]], baseline: dict, n: int) -> None:
    """Every query kind's p50/p99 (beside the baseline's, when given), then the rare-amenity worst case."""
    if baseline:
        print(f"\nbefore -> after, {n:,} listings (ms)")
        for label, name, p50, p99, _ in results:
            old = baseline.get(f"{label}/{name}")
            was = f"p50 {old['p50']:7.2f}  p99 {old['p99']:7.2f}" if old else f"{'(not measured)':>24}"
            print(f"  {label:8} {name:28} {was}  ->  p50 {p50:7.2f}  p99 {p99:7.2f}")
    print(f"\nrare-amenity worst case (all-of over rare amenities: {', '.join(RARE)}), {n:,} listings")
    for label in dict.fromkeys(label for label, *_ in results):
        rare = [r for r in results if r[0] == label and r[1] in RARE_KINDS]
        if not rare:
            continue
        _, name, p50, p99, _ = max(rare, key=lambda r: r[3])
        verdict = "ok" if p99 < TARGET_P99_MS else "MISS"
        line = f"  {label:8} worst p99 {p99:7.2f} ms ({name}, p50 {p50:.2f} ms)  {verdict}"
        old = [baseline[f"{label}/{kind}"]["p99"] for kind in RARE_KINDS if f"{label}/{kind}" in baseline]
        print(line + (f"; before: worst p99 {max(old):.2f} ms" if old else ""))


if __name__ == "__main__":
    sys.exit(main())
