"""Browser tier: upload a CSV, map its columns, watch it scored, open the watchlist dashboard, click a chart point
and read the document behind it with highlighted words and entities."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.e2e

HEADLINES = [
    ("$NWC Northwind Capital beats estimates and raises guidance", "Wire"),
    ("Northwind shares slump after regulators open a fraud probe", "Daily"),
    ("Contoso (NASDAQ: CTSO) cuts its outlook as demand weakens", "Wire"),
    ("Contoso announces a record buyback", "Markets"),
    ("Fabrikam Motors recalls 40,000 trucks over brake faults", "Daily"),
    ("Fabrikam wins a large fleet order from a rental group", "Wire"),
    ("$CTSO downgraded by two brokers", "Markets"),
    ("Northwind Capital opens a new office in Lisbon", "Wire"),
]


def _csv() -> bytes:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rows = ["title,published,outlet,link"]
    for day in range(6):
        for i, (headline, outlet) in enumerate(HEADLINES):
            when = (now - timedelta(days=day, hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            rows.append(f'"{headline} (day {day})",{when},{outlet},https://news.example/{day}-{i}')
    rows.append(",2024-01-01,Wire,")  # no text: listed as a row error, the rest is imported
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture
def tiny_model(settings, tmp_path):
    from sentiment.ml.runtime import clear_model_cache
    from sentiment.ml.tiny_model import build_tiny_model
    from sentiment.services import model_register

    build_tiny_model(out_dir=tmp_path / "models" / "tiny" / "v1")
    settings.SENTIMENT_MODELS_DIR = tmp_path / "models"
    settings.SENTIMENT_IG_STEPS = 8
    clear_model_cache()
    return model_register(model_dir=tmp_path / "models" / "tiny" / "v1")


def test_csv_upload_to_dashboard_point_to_highlighted_document(page, login, screenshot, org, make_member,
                                                               tiny_model, tmp_path):
    from accounts.capabilities import Role
    from sentiment.models import Document
    from tests.sentiment.conftest import make_watchlist

    watchlist = make_watchlist(org)
    user = make_member(org, Role.ANALYST)
    login(user)
    page.goto("/sentiment/sources/")
    csv_path = tmp_path / "news.csv"
    csv_path.write_bytes(_csv())
    page.set_input_files("#csv input[type=file]", str(csv_path))
    page.click("#csv button[type=submit]")
    page.wait_for_selector("text=Which column is which?")
    assert page.input_value("select[name=text]") == "title"
    assert page.input_value("select[name=date]") == "published"
    screenshot("sentiment-csv-mapping")
    page.click("form.mapping-form button[type=submit]")
    page.wait_for_selector("text=Rows not imported")
    assert "48" in page.inner_text("section.panel >> nth=0")
    page.wait_for_selector(".batch-status >> text=Scored", timeout=60_000)
    assert Document.objects.filter(organization=org, status="scored").count() == 48

    page.goto(f"/sentiment/watchlists/{watchlist.pk}/dashboard/?days=7")
    page.wait_for_selector("body[data-dashboard-ready='1']")
    page.wait_for_selector("#negatives .doc-list, #negatives .small-empty")
    screenshot("sentiment-dashboard")
    # Click the first point of the first entity's line, where Chart.js drew it.
    x, y = page.evaluate("""() => {
        const chart = Chart.getChart('index-chart');
        const point = chart.getDatasetMeta(0).data.find((p) => !p.skip);
        const box = chart.canvas.getBoundingClientRect();
        return [box.left + point.x, box.top + point.y];
    }""")
    page.mouse.click(x, y)
    page.wait_for_selector("#drilldown .point-doc")
    drill = page.inner_text("#drilldown")
    assert "document" in drill and "UTC" in drill
    assert page.locator("#drilldown mark.entity").count() > 0
    assert page.locator("#drilldown .attr").count() > 0
    screenshot("sentiment-dashboard-drilldown")
    page.click("#drilldown .point-doc a.doc-open >> nth=0")
    page.wait_for_selector("h2:has-text('Probabilities')")
    assert page.locator(".highlighted mark.entity").count() > 0 and page.locator(".highlighted .attr").count() > 0
    assert page.locator(".entity-list li").count() > 0
    screenshot("sentiment-document")
