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


def _open_uploader(page, login, org, make_member):
    from accounts.capabilities import Role

    login(make_member(org, Role.CLINICIAN))
    page.goto("/imaging/upload/")
    page.wait_for_selector(".uppy-Dashboard-inner")


def _dicom(name: str, ds) -> dict:
    return _file(name, fx.dicom_bytes(ds), "application/dicom")


def _result_rows(page) -> list[tuple[str, str]]:
    """(file name, row class) of each row of the results table, in order."""
    return [tuple(row) for row in page.eval_on_selector_all(
        "#upload-results tbody tr", "rows => rows.map((r) => [r.cells[0].textContent, r.className])")]


def _dashboard_item(page, name: str):
    return page.locator(".uppy-Dashboard-Item", has=page.locator(f'.uppy-Dashboard-Item-name:text-is("{name}")'))


def _total_progress(page) -> int:
    return int(page.get_attribute(".uppy-StatusBar-progress[role=progressbar]", "aria-valuenow"))


def test_zip_of_a_dicom_series_gives_one_result_per_member_and_one_series(
        page, login, screenshot, org, make_member, models):
    from imaging.models import JobStatus, Series, Study

    _open_uploader(page, login, org, make_member)
    members = {f"CT_SERIES/slice{i + 1}.dcm": fx.dicom_bytes(ds) for i, ds in enumerate(fx.ct_series(count=4))}
    page.evaluate(DROP_FILES, {"selector": ".uppy-Dashboard-inner",
                               "files": [_file("archive.zip", fx.zip_bytes(members), "application/zip")]})
    page.wait_for_selector(".uppy-Dashboard-Item")
    assert page.locator(".uppy-Dashboard-Item").count() == 1  # the archive is one upload: unpacked by the server
    page.click(".uppy-StatusBar-actionBtn--upload")
    page.wait_for_selector("#upload-studies a.button")
    assert _result_rows(page) == [(f"archive.zip/CT_SERIES/slice{i}.dcm", "result-accepted") for i in range(1, 5)]
    assert page.locator("#upload-studies a.button").inner_text().endswith("(4 images)")
    assert page.locator(".uppy-Dashboard-Item.is-complete").count() == 1
    # the total progress bar ends full, in the complete state
    page.wait_for_selector(".uppy-StatusBar.is-complete")  # Uppy updates the total at most every 500 ms
    assert _total_progress(page) == 100
    screenshot("imaging-upload-zip")

    page.click("#upload-studies a.button")
    page.wait_for_selector("[data-viewer][data-drawn-overlay]:not([data-drawn-overlay=''])")
    study = Study.objects.get(organization=org)
    assert study.image_count == 4 and Series.objects.get(study=study).image_count == 4
    assert study.latest_job.status == JobStatus.SUCCEEDED and study.latest_job.images_total == 4
    # the series model saw all four slices, and every slice has its own prediction
    assert page.locator(".series-card .attention-bar").count() == 4
    assert page.locator(".image-card .probabilities").count() == 4
    assert page.get_attribute('[data-control="slice"]', "max") == "3"
    screenshot("imaging-result-zip")


# A folder dropped from the desktop reaches the page as a DataTransferItem whose webkitGetAsEntry() gives a
# FileSystemDirectoryEntry backed by the disk; script cannot create one (Chromium makes it only for a drag from the OS,
# which Playwright cannot perform: a DataTransfer built in the page gives null). So this drops one item per top-level
# folder and, for the moment of the drop, answers webkitGetAsEntry() for it with objects that follow the File and
# Directory Entries API (isFile/isDirectory, name, fullPath, file(), createReader().readEntries() handing out entries
# in batches until an empty one). Everything after that is real: Uppy's drop handler walks the tree, the page uploads
# each file, the server stores and analyses them.
DROP_FOLDER = """
async ({selector, folders}) => {
  const target = document.querySelector(selector);
  const toFile = (f) => new File([Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0))], f.path.split("/").pop(),
                                 {type: f.type});
  function directory(path, files) {  // path: "export/SERIES_A", files: those under it
    const children = new Map();
    for (const f of files) {
      const child = f.path.slice(path.length + 1).split("/")[0];
      if (!children.has(child)) children.set(child, []);
      children.get(child).push(f);
    }
    const entries = [...children].map(([child, list]) => list.length === 1 && list[0].path === path + "/" + child
      ? {isFile: true, isDirectory: false, name: child, fullPath: "/" + list[0].path,
         file: (ok) => setTimeout(() => ok(toFile(list[0])))}
      : directory(path + "/" + child, list));
    return {isFile: false, isDirectory: true, name: path.split("/").pop(), fullPath: "/" + path, createReader() {
      let offset = 0;  // like Chromium: batches (of 2 here), then an empty batch
      return {readEntries: (ok) => setTimeout(() => { ok(entries.slice(offset, offset + 2)); offset += 2; })};
    }};
  }
  const roots = new Map();
  const transfer = new DataTransfer();
  for (const [name, files] of Object.entries(folders)) {
    const placeholder = new File([], name);  // what getAsFile() gives for a dropped folder
    roots.set(placeholder.name, directory(name, files));
    transfer.items.add(placeholder);
  }
  const browsers = DataTransferItem.prototype.webkitGetAsEntry;
  DataTransferItem.prototype.webkitGetAsEntry = function () { return roots.get(this.getAsFile().name) || null; };
  try {
    for (const type of ["dragenter", "dragover", "drop"]) {
      target.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
    }
    await new Promise((resolve) => setTimeout(resolve, 0));  // Uppy asks for the entries within the drop event
  } finally {
    DataTransferItem.prototype.webkitGetAsEntry = browsers;
  }
}
"""


def _two_series_folder() -> dict[str, bytes]:
    """A scanner export: two CT series of one study in sub-folders, files without extension and with the same names
    in both folders (as DICOM exports name them)."""
    second = []
    for i in range(2):
        ds = fx.ct_dataset(instance_number=11 + i, z=5.0 * i, series_uid=fx.UID_ROOT + "11")
        ds.SeriesNumber = 4
        second.append(ds)
    files = {f"export/SERIES_A/IM{i + 1:04d}": fx.dicom_bytes(ds) for i, ds in enumerate(fx.ct_series(count=3))}
    files |= {f"export/SERIES_B/IM{i + 1:04d}": fx.dicom_bytes(ds) for i, ds in enumerate(second)}
    return files


def _assert_two_series_uploaded(page, org) -> None:
    from imaging.models import Study

    page.wait_for_selector("#upload-studies a.button")
    rows = _result_rows(page)
    # each row names the file with its folder (the server only sees the file name): the two IM0001 are told apart
    assert sorted(rows) == sorted((path, "result-accepted") for path in _two_series_folder())
    assert page.locator("#upload-studies a.button").inner_text().endswith("(5 images)")
    study = Study.objects.get(organization=org)
    assert sorted(study.series.values_list("image_count", flat=True)) == [2, 3]
    assert study.latest_job.images_total == 5


def test_dropping_a_folder_uploads_every_file_in_its_sub_folders(page, login, screenshot, org, make_member, models):
    from imaging.models import JobStatus, Study

    _open_uploader(page, login, org, make_member)
    export = _two_series_folder()
    page.evaluate(DROP_FOLDER, {"selector": ".uppy-Dashboard-inner", "folders": {"export": [
        {"path": path, "data": base64.b64encode(data).decode(), "type": ""} for path, data in export.items()]}})
    page.wait_for_selector(".uppy-Dashboard-Item >> nth=4")
    # the same file name in two folders is two files: Uppy keeps each file's path inside the dropped folder
    assert sorted(page.evaluate("window.lumenUppy.getFiles().map((f) => f.meta.relativePath)")) == sorted(export)
    page.click(".uppy-StatusBar-actionBtn--upload")
    _assert_two_series_uploaded(page, org)
    assert page.locator(".uppy-Dashboard-Item.is-complete").count() == 5
    screenshot("imaging-upload-folder")

    page.click("#upload-studies a.button")
    page.wait_for_selector("[data-viewer][data-drawn-overlay]:not([data-drawn-overlay=''])")
    assert Study.objects.get(organization=org).latest_job.status == JobStatus.SUCCEEDED
    assert sorted(page.locator(".series-card").evaluate_all(
        "cards => cards.map((c) => c.querySelectorAll('.attention-bar').length)")) == [2, 3]
    assert page.locator(".image-card .probabilities").count() == 5


def test_folder_picker_uploads_a_folder_from_disk(page, login, org, make_member, models, tmp_path):
    _open_uploader(page, login, org, make_member)
    for path, data in _two_series_folder().items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    # the dashboard's "browse folders" link opens this input; Chromium fills in webkitRelativePath from the real folder
    folder_input = page.locator(".uppy-Dashboard-input[webkitdirectory]")
    assert folder_input.count() == 1
    folder_input.set_input_files(tmp_path / "export")
    page.wait_for_selector(".uppy-Dashboard-Item >> nth=4")
    assert sorted(page.evaluate("window.lumenUppy.getFiles().map((f) => f.meta.relativePath)")) == sorted(
        _two_series_folder())
    page.click(".uppy-StatusBar-actionBtn--upload")
    _assert_two_series_uploaded(page, org)


def _multipart_filename(request) -> str:
    body = request.post_data_buffer or b""
    start = body.index(b'filename="') + len(b'filename="')
    return body[start:body.index(b'"', start)].decode()


def test_failed_files_are_marked_retried_and_analysed_with_the_others(
        page, login, screenshot, org, make_member, models):
    from imaging.models import AnalysisJob, JobStatus, Study

    _open_uploader(page, login, org, make_member)
    attempts: dict[str, int] = {}
    outage = {"on": True}
    held = []

    def upload_route(route):
        name = _multipart_filename(route.request)
        attempts[name] = attempts.get(name, 0) + 1
        if name == "slice0.dcm" and attempts[name] == 1:
            held.append(route)  # answered below, to look at the page while an upload is in flight
        elif name == "slice1.dcm" and attempts[name] == 1:  # one proxy hiccup: the uploader retries on its own
            route.fulfill(status=502, content_type="text/html", body="<h1>502 Bad Gateway</h1>")
        elif name == "slice2.dcm" and outage["on"]:  # server unreachable for longer than the automatic retries
            route.abort("connectionrefused")
        elif name == "slice3.dcm" and outage["on"]:  # the proxy answers, the app behind it is down
            route.fulfill(status=503, content_type="text/html", body="<h1>503 Service Unavailable</h1>")
        else:
            route.continue_()

    page.route("**/imaging/uploads/files/", upload_route)
    page.evaluate(DROP_FILES, {"selector": ".uppy-Dashboard-inner", "files": [
        _dicom(f"slice{i}.dcm", ds) for i, ds in enumerate(fx.ct_series(count=4))]})
    page.wait_for_selector(".uppy-Dashboard-Item >> nth=3")
    page.click(".uppy-StatusBar-actionBtn--upload")

    # mid-upload (the first file's request held back): the total progress bar is there, in the uploading state and
    # not full, and the first tile shows its own progress while the others wait
    for _ in range(200):  # the route handler runs when Playwright next hears from the browser
        if held:
            break
        page.wait_for_timeout(50)
    assert held, f"slice0.dcm should be in flight; requests so far: {attempts}"
    page.wait_for_selector(".uppy-StatusBar.is-uploading .uppy-StatusBar-progress[role=progressbar]", state="attached")
    assert 0 <= _total_progress(page) < 100
    assert "is-inprogress" in _dashboard_item(page, "slice0.dcm").get_attribute("class")
    assert page.locator(".uppy-Dashboard-Item.is-complete, .uppy-Dashboard-Item.is-error").count() == 0
    screenshot("imaging-upload-in-progress")
    held[0].continue_()

    # slice2 and slice3 failed after the automatic retries: each tile says so and why, the results table lists them
    # as not uploaded (not as refused), and the analysis waits for them
    page.wait_for_selector('#upload-errors [data-pending="2"]')
    assert attempts == {"slice0.dcm": 1, "slice1.dcm": 2, "slice2.dcm": 4, "slice3.dcm": 4}  # first try + 3 retries
    assert page.locator(".uppy-StatusBar.is-error").is_visible()
    assert page.locator(".uppy-Dashboard-Item.is-complete").count() == 2
    unreachable, unavailable = _dashboard_item(page, "slice2.dcm"), _dashboard_item(page, "slice3.dcm")
    assert "is-error" in unreachable.get_attribute("class") and "is-error" in unavailable.get_attribute("class")
    assert "network error" in unreachable.locator(".uppy-Dashboard-Item-errorDetails").get_attribute("aria-label")
    assert "HTTP 503" in unavailable.locator(".uppy-Dashboard-Item-errorDetails").get_attribute("aria-label")
    assert dict(_result_rows(page)) == {"slice0.dcm": "result-accepted", "slice1.dcm": "result-accepted",
                                        "slice2.dcm": "result-failed", "slice3.dcm": "result-failed"}
    failed_rows = page.locator("#upload-results tr.result-failed").all_inner_texts()
    assert "could not be reached" in failed_rows[0] and "HTTP 503" in failed_rows[1]
    assert page.locator("#upload-studies a").count() == 0 and not AnalysisJob.objects.exists()
    screenshot("imaging-upload-failed-files")

    # the outage is over: retry slice2 from its tile; the analysis still waits for slice3
    outage["on"] = False
    unreachable.locator("button.uppy-Dashboard-Item-progressIndicator[title='Retry upload']").click()
    page.wait_for_selector('#upload-errors [data-pending="1"]')
    assert "is-complete" in unreachable.get_attribute("class")
    assert page.locator("#upload-studies a").count() == 0 and not AnalysisJob.objects.exists()
    # ... then slice3 with the status bar's Retry: every file is in, and one analysis starts for all four
    page.click(".uppy-StatusBar-actionBtn--retry")
    page.wait_for_selector("#upload-studies a.button")
    assert attempts == {"slice0.dcm": 1, "slice1.dcm": 2, "slice2.dcm": 5, "slice3.dcm": 5}
    assert page.locator(".uppy-Dashboard-Item.is-complete").count() == 4
    page.wait_for_selector(".uppy-StatusBar.is-complete")  # Uppy updates the total at most every 500 ms
    assert _total_progress(page) == 100
    assert dict(_result_rows(page)) == {f"slice{i}.dcm": "result-accepted" for i in range(4)}
    assert page.locator("#upload-errors").inner_text() == ""
    assert page.locator("#upload-studies a.button").inner_text().endswith("(4 images)")
    screenshot("imaging-upload-retried")

    # one analysis of the whole series, not one of the first slices and others of each retried one
    page.click("#upload-studies a.button")
    page.wait_for_selector("[data-viewer][data-drawn-overlay]:not([data-drawn-overlay=''])")
    study = Study.objects.get(organization=org)
    job = AnalysisJob.objects.get(study=study)
    assert study.image_count == 4 and job.images_total == 4 and job.status == JobStatus.SUCCEEDED
    assert page.locator(".series-card .attention-bar").count() == 4
    assert page.locator(".image-card .probabilities").count() == 4


def test_going_ahead_without_files_that_keep_failing(page, login, screenshot, org, make_member, models):
    from imaging.models import AnalysisJob, JobStatus

    _open_uploader(page, login, org, make_member)
    page.route("**/imaging/uploads/files/", lambda route: route.abort("connectionrefused")
               if _multipart_filename(route.request) != "slice0.dcm" else route.continue_())
    page.evaluate(DROP_FILES, {"selector": ".uppy-Dashboard-inner", "files": [
        _dicom(f"slice{i}.dcm", ds) for i, ds in enumerate(fx.ct_series(count=3))]})
    page.wait_for_selector(".uppy-Dashboard-Item >> nth=2")
    page.click(".uppy-StatusBar-actionBtn--upload")
    notice = page.locator('#upload-errors [data-pending="2"]')
    notice.wait_for()
    assert "slice1.dcm, slice2.dcm" in notice.inner_text()
    assert notice.locator("button").inner_text() == "Start the analysis without them"
    # removing one failed file from the dashboard: the other is still awaited
    _dashboard_item(page, "slice2.dcm").locator(".uppy-Dashboard-Item-action--remove").click()
    notice = page.locator('#upload-errors [data-pending="1"]')
    notice.wait_for()
    assert notice.inner_text().startswith("slice1.dcm did not upload")
    assert _result_rows(page) == [("slice0.dcm", "result-accepted"), ("slice1.dcm", "result-failed")]
    assert page.locator("#upload-studies a").count() == 0 and not AnalysisJob.objects.exists()
    screenshot("imaging-upload-waiting-for-retry")
    # going ahead analyses what is in
    notice.locator("button", has_text="Start the analysis without it").click()
    page.wait_for_selector("#upload-studies a.button")
    assert page.locator("#upload-studies a.button").inner_text().endswith("(1 image)")
    assert page.locator("#upload-errors").inner_text() == ""
    job = AnalysisJob.objects.get()
    assert job.images_total == 1 and job.status == JobStatus.SUCCEEDED
