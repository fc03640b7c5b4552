"""Browser tier: Playwright (Python) driving Debian's Chromium against pytest-django's live server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ci_requires

# Playwright's sync API runs an event loop in this thread; Django's ORM is safe to use from the tests here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct-horse-battery"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    ci_requires("Chromium", Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, settings):
    settings.SITE_URL = live_server.url
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


@pytest.fixture
def login(page):
    """Sign a user in through the real login form."""

    def sign_in(user, password: str = PASSWORD):
        page.goto("/accounts/login/")
        page.fill("input[name=login]", user.email)
        page.fill("input[name=password]", password)
        page.click("form button[type=submit]")
        page.wait_for_load_state("networkidle")
        return page

    return sign_in


@pytest.fixture
def screenshot(page, request):
    """Save a full-page screenshot under var/screenshots/ for people to look at."""

    def shoot(name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return shoot
