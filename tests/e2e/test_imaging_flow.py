"""Browser tier: drag scans onto the upload page, watch per-file results, open the study and see the overlay."""

from __future__ import annotations

import base64

import pytest

from tests.imaging import dicom_fixtures as fx

pytestmark = pytest.mark.e2e

DROP_FILES = """
async ({selector, files}) => {
  const target = document.querySelector(selector);
  const transfer = new DataTransfer();
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], f.name, {type: f.type}));
  }
  for (const type of ["dragenter", "dragover", "drop"]) {
    target.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
  }
}
"""


@pytest.fixture
def models(settings, tmp_path):
    from imaging.services import model_register
    from tests.imaging.tiny_models import save_tiny_models

    dirs = save_tiny_models(tmp_path / "models")
    settings.IMAGING_MODELS_DIR = dirs["root"]
    settings.IMAGING_UPLOAD_PARALLEL = 1  # the live server's in-memory SQLite cannot take parallel writers
    return {task: model_register(model_dir=dirs[task]) for task in ("image", "series")}


def _file(name: str, data: bytes, mime: str) -> dict:
    return {"name": name, "data": base64.b64encode(data).decode(), "type": mime}


def test_drag_and_drop_upload_to_result_page_with_overlay(page, login, screenshot, org, make_member, models):
    from accounts.capabilities import Role
    from imaging.models import JobStatus, Study

    user = make_member(org, Role.CLINICIAN)
    login(user)
    page.goto("/imaging/upload/")
    page.wait_for_selector(".uppy-Dashboard-inner")
    series = [_file(f"slice{i}.dcm", fx.dicom_bytes(ds), "application/dicom")
              for i, ds in enumerate(fx.ct_series(count=4))]
    page.evaluate(DROP_FILES, {"selector": ".uppy-Dashboard-inner", "files": [
        *series, _file("notes.pdf", fx.pdf_bytes(), "application/pdf")]})
    page.wait_for_selector(".uppy-Dashboard-Item >> nth=4")
    page.click(".uppy-StatusBar-actionBtn--upload")
    page.wait_for_selector("#upload-studies a.button")
    rows = page.locator("#upload-results tbody tr")
    assert rows.count() == 5
    rejected = page.locator("#upload-results tr.result-rejected")
    assert "notes.pdf" in rejected.inner_text() and "PDF" in rejected.inner_text()
    # the failed file shows its error in the dashboard and can be retried from there
    assert page.locator(".uppy-Dashboard-Item.is-error").count() == 1
    screenshot("imaging-upload")

    page.click("#upload-studies a.button")
    page.wait_for_selector("[data-viewer][data-drawn-overlay]:not([data-drawn-overlay=''])")
    study = Study.objects.get(organization=org)
    assert study.latest_job.status == JobStatus.SUCCEEDED
    assert page.locator(".demo-banner").first.inner_text().strip().endswith("Demo model, not for clinical use")
    assert page.locator(".image-card:not([hidden]) .probabilities li").count() == 2
    assert page.locator(".model-card").inner_text().count(models["image"].sha256[:12]) == 1
    # window/level is available for the CT slices, and the scrubber walks the series
    assert page.locator("[data-wl]").is_visible()
    page.locator('[data-control="slice"]').fill("2")
    page.wait_for_selector('.image-card[data-image-card="2"]:not([hidden])')
    third = page.locator('.image-card[data-image-card="2"] a[href*="/original/"]').get_attribute("href").split("/")[3]
    page.wait_for_selector(f"[data-viewer][data-drawn-image='{third}']:not([data-drawn-overlay=''])")
    screenshot("imaging-result")
    drawn = page.get_attribute("[data-viewer]", "data-drawn-overlay")
    page.uncheck('[data-control="overlay-toggle"]')
    page.wait_for_selector("[data-viewer][data-drawn-overlay='']")
    page.check('[data-control="overlay-toggle"]')
    page.wait_for_selector(f"[data-viewer][data-drawn-overlay='{drawn}']")
