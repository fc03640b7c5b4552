"""Dashboard reads from rollups: hour/day/week buckets, source filter, top movers, latest strongly negative."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sentiment import selectors, services
from tests.sentiment.conftest import write_scored

pytestmark = pytest.mark.django_db
END = datetime(2024, 6, 10, tzinfo=UTC)  # a Monday


def test_buckets_sources_movers_and_negatives(org, other_org, watchlist):
    csv_source = services.source_builtin(organization=org, kind="csv")
    write_scored(org, [("$NWC good 1", "positive"), ("$NWC good 2", "positive"), ("$NWC good 3", "positive")],
                 published_at=END - timedelta(days=10, hours=3))
    write_scored(org, [("$NWC bad 1", "negative"), ("$NWC bad 2", "negative"), ("$NWC bad 3", "negative")],
                 published_at=END - timedelta(days=2, hours=5), source=csv_source, strength=0.8)
    write_scored(other_org, [("$NWC other", "negative")], published_at=END - timedelta(days=2))
    start = END - timedelta(days=14)
    hours = selectors.entity_series(organization=org, keys=["NWC"], start=start, end=END, bucket="hour")["NWC"]
    days = selectors.entity_series(organization=org, keys=["NWC"], start=start, end=END, bucket="day")["NWC"]
    weeks = selectors.entity_series(organization=org, keys=["NWC"], start=start, end=END, bucket="week")["NWC"]
    assert [p["count"] for p in hours] == [3, 3] and [p["count"] for p in days] == [3, 3]
    assert [datetime.fromtimestamp(p["t"] / 1000, UTC) for p in weeks] == [datetime(2024, 5, 27, tzinfo=UTC),
                                                                           datetime(2024, 6, 3, tzinfo=UTC)]
    assert days[0]["index"] == pytest.approx(0.85) and days[1]["index"] == pytest.approx(-0.7)
    assert days[1]["negative_share"] == 1.0
    only_csv = selectors.entity_series(organization=org, keys=["NWC"], start=start, end=END, bucket="day",
                                       source_ids=[csv_source.pk])["NWC"]
    assert [p["count"] for p in only_csv] == [3]
    movers = selectors.top_movers(organization=org, keys=["NWC", "CTSO"], end=END, period=timedelta(days=7))
    assert movers == [{"key": "NWC", "index": -0.7, "previous": 0.85, "change": -1.55, "volume": 3,
                       "previous_volume": 3}]
    negatives = selectors.latest_strongly_negative(organization=org, keys=["NWC"], start=start, end=END)
    assert [d.text for d in negatives] == ["$NWC bad 3", "$NWC bad 2", "$NWC bad 1"]
    assert selectors.latest_strongly_negative(organization=org, keys=["CTSO"], start=start, end=END) == []
    with pytest.raises(ValueError):
        selectors.entity_series(organization=org, keys=["NWC"], start=start, end=END, bucket="month")
