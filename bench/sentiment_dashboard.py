"""`./dev bench sentiment-dashboard`: latency of the dashboard's queries on PostgreSQL with a year of data.

Fills a dedicated PostgreSQL database (default `lumen_bench_sentiment` on the server of DATABASE_URL, else
postgres://postgres@127.0.0.1:5432) with 1,000,000 scored documents over 100 entities and 365 days: documents,
scores, entity mentions and the hourly rollups (as the scoring path leaves them). Then it runs the queries behind
one dashboard view, through the same selectors the views call, many times with random watchlists and ranges, and
prints p50/p95 per query and for a whole dashboard load as JSON. Target: p95 under 100 ms per query.
The filled database is kept for later runs; pass --refill to rebuild it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
BENCH_DB = "lumen_bench_sentiment"


def _database_url(name: str) -> str:
    base = os.environ.get("DATABASE_URL", "")
    parsed = urlparse(base) if base.startswith("postgres") else urlparse("postgres://postgres@127.0.0.1:5432/x")
    return parsed._replace(path="/" + name).geturl()


def _ensure_database() -> None:
    import psycopg

    admin = _database_url("postgres").replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone():
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def _copy(cursor, table: str, columns: list[str], rows) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        buffer = io.StringIO()
        for n, row in enumerate(rows, 1):
            buffer.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
            if n % 50_000 == 0:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())


def _fill(*, documents: int, entities: int, days: int, seed: int) -> dict:
    """Bulk-load with COPY; rollups are then built from the mentions exactly as the upserts would leave them."""
    from django.db import connection
    from django_scopes import scopes_disabled

    from accounts.models import Organization
    from sentiment.models import Source, Watchlist, WatchlistEntity

    rng = random.Random(seed)
    with scopes_disabled():
        org = Organization.objects.create(name="Bench analytics", slug=f"bench-{int(time.time())}")
        sources = [Source.objects.create(organization=org, kind=k, name=n)
                   for k, n in (("api", "API"), ("csv", "CSV uploads"), ("paste", "Pasted text"))]
        keys = [f"E{i:03d}" for i in range(entities)]
        for w in range(entities // 10):
            watchlist = Watchlist.objects.create(organization=org, name=f"Watchlist {w}")
            WatchlistEntity.objects.bulk_create([WatchlistEntity(organization=org, watchlist=watchlist, key=k)
                                                 for k in keys[w * 10:(w + 1) * 10]])
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    span = int((end - start).total_seconds())
    # Popular entities get more news (Zipf-like), and each has its own drifting sentiment.
    weights = [1 / (i + 1) ** 0.6 for i in range(entities)]
    bias = {k: rng.uniform(-0.4, 0.4) for k in keys}
    doc_rows, score_rows, mention_rows = [], [], []
    labels = ("negative", "neutral", "positive")
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM sentiment_document")
        first_id = cursor.fetchone()[0] + 1
    for i in range(documents):
        doc_id = first_id + i
        when = start + timedelta(seconds=rng.randrange(span))
        named = rng.choices(keys, weights=weights, k=1 if rng.random() < 0.8 else 2)
        drift = bias[named[0]] + 0.3 * ((when - start).days % 90 - 45) / 45
        pos = min(0.98, max(0.01, rng.betavariate(2, 2) * 0.6 + max(0.0, drift) * 0.5))
        neg = min(0.98 - pos, max(0.01, rng.betavariate(2, 2) * 0.6 + max(0.0, -drift) * 0.5))
        neu = max(0.0, 1 - pos - neg)
        probs = (neg, neu, pos)
        label = labels[probs.index(max(probs))]
        text = f"${named[0]} headline {i} about {' and '.join(named)}"
        ts = when.isoformat()
        doc_rows.append((doc_id, org.pk, sources[i % 3].pk, text, "", "", "", "", "en",
                         hashlib.sha256(text.encode()).hexdigest(), ts, "scored", ts))
        score_rows.append((org.pk, doc_id, label, round(neg, 4), round(neu, 4), round(pos, 4), round(pos - neg, 4),
                           "bench", "1", "0" * 64, ts))
        for k in dict.fromkeys(named):
            mention_rows.append((org.pk, doc_id, sources[i % 3].pk, k, "cashtag", 0, len(k) + 1, "$" + k, ts, label,
                                 round(pos - neg, 4), "t" if neg >= 0.7 else "f"))
    with connection.cursor() as c:
        cur = c.cursor
        _copy(cur, "sentiment_document", ["id", "organization_id", "source_id", "text", "title", "url", "publisher",
                                          "external_id", "language", "content_hash", "published_at", "status",
                                          "created_at"], doc_rows)
        _copy(cur, "sentiment_score", ["organization_id", "document_id", "label", "p_negative", "p_neutral",
                                       "p_positive", "sentiment_index", "model_name", "model_version", "model_sha256",
                                       "scored_at"], score_rows)
        _copy(cur, "sentiment_entitymention", ["organization_id", "document_id", "source_id", "key", "kind", "start",
                                               '"end"', "text", "published_at", "label", "sentiment_index",
                                               "strongly_negative"], mention_rows)
        c.execute("SELECT setval(pg_get_serial_sequence('sentiment_document', 'id'), "
                  "(SELECT MAX(id) FROM sentiment_document))")
        c.execute("""
            INSERT INTO sentiment_entityhour (organization_id, key, source_id, hour, count, index_sum, negatives,
                                              neutrals, positives, strong_negatives)
            SELECT organization_id, key, source_id, date_trunc('hour', published_at AT TIME ZONE 'UTC') AT TIME ZONE
                   'UTC', COUNT(*), SUM(sentiment_index), COUNT(*) FILTER (WHERE label = 'negative'),
                   COUNT(*) FILTER (WHERE label = 'neutral'), COUNT(*) FILTER (WHERE label = 'positive'),
                   COUNT(*) FILTER (WHERE strongly_negative)
            FROM sentiment_entitymention WHERE organization_id = %s GROUP BY 1, 2, 3, 4""", [org.pk])
        c.execute("ANALYZE")
        c.execute("SELECT COUNT(*) FROM sentiment_entityhour WHERE organization_id = %s", [org.pk])
        rollup_rows = c.fetchone()[0]
    return {"organization_id": org.pk, "documents": documents, "mentions": len(mention_rows),
            "rollup_rows": rollup_rows, "entities": entities, "days": days}


def _percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1), "runs": len(ordered)}


def _measure(org, *, runs: int, seed: int) -> dict:
    from django_scopes import scope

    from sentiment import selectors
    from sentiment.dashboard_views import MOVER_PERIOD
    from sentiment.models import Watchlist

    rng = random.Random(seed)
    timings: dict[str, list[float]] = {}
    with scope(organization=org):
        watchlists = list(Watchlist.objects.filter(organization=org))
        sources = list(org_sources(org))

        def timed(name, fn, **kwargs):
            t0 = time.perf_counter()
            out = fn(organization=org, **kwargs)
            if not isinstance(out, dict):
                out = list(out)  # evaluate querysets inside the timing
            timings.setdefault(name, []).append(time.perf_counter() - t0)
            return out

        for run in range(runs):
            watchlist = rng.choice(watchlists)
            keys = selectors.watchlist_keys(organization=org, watchlist=watchlist)
            bucket, days = rng.choice([("hour", 7), ("day", 30), ("day", 90), ("week", 365)])
            start, end = selectors.dashboard_range(days=days)
            window = {"start": start, "end": end, "source_ids": [rng.choice(sources)] if run % 4 == 3 else None}
            load_started = time.perf_counter()
            timed("default_entities_by_volume", selectors.window_totals, keys=keys, **window)
            series = timed(f"series_{bucket}_{days}d", selectors.entity_series, keys=keys[:5], bucket=bucket,
                           **window)
            timed("top_movers", selectors.top_movers, keys=keys, end=end, period=MOVER_PERIOD[bucket],
                  source_ids=window["source_ids"])
            timed("latest_strongly_negative", selectors.latest_strongly_negative, keys=keys, **window)
            timings.setdefault("whole_dashboard_load", []).append(time.perf_counter() - load_started)
            points = series.get(keys[0]) or []
            if points:
                t = datetime.fromtimestamp(rng.choice(points)["t"] / 1000, tz=UTC)
                timed("point_documents_page", lambda **kw: selectors.point_documents(**kw)[:10], key=keys[0],
                      start=t, end=t + selectors.BUCKETS[bucket], source_ids=window["source_ids"])
    return {name: _percentiles(samples) for name, samples in sorted(timings.items())}


def org_sources(org):
    from sentiment.models import Source

    return Source.objects.filter(organization=org).values_list("pk", flat=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=100)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--refill", action="store_true")
    args = parser.parse_args()
    _ensure_database()
    os.environ["DATABASE_URL"] = _database_url(BENCH_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ["LOG_LEVEL"] = "WARNING"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django_scopes import scopes_disabled

    from accounts.models import Organization
    from sentiment.models import Document

    call_command("migrate", verbosity=0)
    with scopes_disabled():
        org = Organization.objects.filter(slug__startswith="bench-").order_by("-pk").first()
        existing = Document.objects.filter(organization=org).count() if org else 0
    fill_seconds = None
    if args.refill or existing != args.documents:
        if org is not None:
            with scopes_disabled():
                org.delete()
        started = time.perf_counter()
        info = _fill(documents=args.documents, entities=args.entities, days=args.days, seed=7)
        fill_seconds = round(time.perf_counter() - started, 1)
        org = Organization.objects.get(pk=info["organization_id"])
    with scopes_disabled():
        from sentiment.models import EntityHour, EntityMention

        data = {"documents": Document.objects.filter(organization=org).count(),
                "mentions": EntityMention.objects.filter(organization=org).count(),
                "rollup_rows": EntityHour.objects.filter(organization=org).count()}
    from django.db import connection

    with connection.cursor() as cursor:  # what autovacuum does to a table that is mostly appended to
        cursor.execute("VACUUM ANALYZE sentiment_entityhour")
        cursor.execute("VACUUM ANALYZE sentiment_entitymention")
    _measure(org, runs=10, seed=1)  # warm the caches, as a running server would be
    queries = _measure(org, runs=args.runs, seed=2)
    worst = max(q["p95_ms"] for name, q in queries.items() if name != "whole_dashboard_load")
    print(json.dumps({
        "database": "PostgreSQL " + _server_version(), "data": {**data, "entities": args.entities, "days": args.days},
        "fill_seconds": fill_seconds, "queries": queries, "worst_query_p95_ms": worst,
        "target": "p95 < 100 ms per query", "meets_target": worst < 100,
    }, indent=2))


def _server_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0]


if __name__ == "__main__":
    main()
