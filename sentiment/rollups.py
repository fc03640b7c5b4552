"""Entity x source x hour rollups: increments summed in Python, then one upsert statement per chunk.

`INSERT ... ON CONFLICT ... DO UPDATE SET count = count + excluded.count` is the same SQL on PostgreSQL and
SQLite (3.24+), so concurrent workers add to a row instead of overwriting it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection

from sentiment.models import EntityHour

_CHUNK = 400
_SUMMED = ("count", "index_sum", "negatives", "neutrals", "positives", "strong_negatives")


@dataclass(frozen=True, slots=True)
class Increment:
    key: str
    source_id: int
    published_at: datetime
    label: str
    index: float
    strongly_negative: bool


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _sum(increments: Iterable[Increment]) -> dict[tuple[str, int, datetime], list[float]]:
    totals: dict[tuple[str, int, datetime], list[float]] = defaultdict(lambda: [0, 0.0, 0, 0, 0, 0])
    for inc in increments:
        row = totals[(inc.key, inc.source_id, hour_of(inc.published_at))]
        row[0] += 1
        row[1] += inc.index
        row[2] += inc.label == "negative"
        row[3] += inc.label == "neutral"
        row[4] += inc.label == "positive"
        row[5] += inc.strongly_negative
    return totals


def apply(*, organization_id: int, increments: Iterable[Increment]) -> int:
    """Add the increments to the rollup rows (creating them as needed); returns the number of rows touched."""
    totals = _sum(increments)
    if not totals:
        return 0
    q = connection.ops.quote_name
    table = q(EntityHour._meta.db_table)
    columns = ["organization_id", "key", "source_id", "hour", *_SUMMED]
    conflict = ", ".join(q(c) for c in ("organization_id", "key", "source_id", "hour"))
    updates = ", ".join(f"{q(c)} = {table}.{q(c)} + excluded.{q(c)}" for c in _SUMMED)
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    items = list(totals.items())
    with connection.cursor() as cursor:
        for first in range(0, len(items), _CHUNK):
            chunk = items[first:first + _CHUNK]
            params: list = []
            for (key, source_id, hour), values in chunk:
                hour_value = connection.ops.adapt_datetimefield_value(hour)
                params.extend([organization_id, key, source_id, hour_value, *values])
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(q(c) for c in columns)}) VALUES "  # noqa: S608 - names are ours
                f"{', '.join([placeholders] * len(chunk))} ON CONFLICT ({conflict}) DO UPDATE SET {updates}",
                params)
    return len(items)
