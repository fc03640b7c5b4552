"""Upload intake: neutral names for DICOM, burned-in annotations refused, request bodies kept in memory and bounded."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from imaging.models import Image, Series, Study
from tests.imaging import dicom_fixtures as fx
from tests.imaging.conftest import upload

pytestmark = pytest.mark.django_db

STORED_PATH = re.compile(r"^imaging/org_\d+/images/[0-9a-f]{2}/(originals|previews|values)/[0-9a-f]{32}"
                         r"\.(dcm|png|u16)$")
BURNED_IN_MESSAGE = ("burned.dcm: DICOM file has patient details burned into the pixels (BurnedInAnnotation=YES); "
                     "remove them or export without annotations before uploading.")


def _burned_in() -> bytes:
    ds = fx.rgb_dataset()
    ds.BurnedInAnnotation = "YES"
    return fx.dicom_bytes(ds)


def _csrf_client(user) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get(reverse("imaging:upload"))  # the page sets the CSRF cookie
    return client, client.cookies["csrftoken"].value


def test_dicom_gets_neutral_names_and_titles_while_png_keeps_its_name(org, owner, other_org, other_owner,
                                                                       tiny_models):
    from imaging.uploads import study_upload

    slices = fx.ct_series(count=3)
    members = {f"{fx.ZIP_MEMBER_DIR}/DOE_JANE_CT_00{i + 2}.dcm": fx.dicom_bytes(ds) for i, ds in enumerate(slices[1:])}
    members[f"{fx.ZIP_MEMBER_DIR}/DOE_JANE_CINE.dcm"] = fx.dicom_bytes(fx.multiframe_dataset())
    result = study_upload(organization=org, uploaded_by=owner, files=[
        upload(fx.DICOM_FILE_NAME, fx.dicom_bytes(slices[0])), upload(fx.ZIP_FILE_NAME, fx.zip_bytes(members)),
        upload("left_hand.png", fx.png_bytes())])
    study_upload(organization=other_org, uploaded_by=other_owner, files=[upload("theirs.png", fx.png_bytes())])

    # the response echoes what the client sent (it has those names already) ...
    assert [f.name for f in result.files] == [fx.DICOM_FILE_NAME, *(f"{fx.ZIP_FILE_NAME}/{m}" for m in members),
                                              "left_hand.png"]
    assert all(f.status == "accepted" for f in result.files), [f.message for f in result.files]
    # ... but the rows only hold neutral labels for DICOM, and no description
    day = f"{timezone.localtime(result.session.created_at):%d %b %Y}"
    dicom_study = Study.objects.get(organization=org, study_instance_uid__gt="")
    assert (dicom_study.title, dicom_study.description) == (f"CT study uploaded {day}", "")
    assert set(Series.objects.filter(study=dicom_study).values_list("description", flat=True)) == {
        "CT series 3", "OT series 3"}
    names = sorted(Image.objects.filter(study=dicom_study).values_list("original_name", flat=True))
    assert names == ["Series 3, image 1", "Series 3, image 1, frame 1", "Series 3, image 1, frame 2",
                     "Series 3, image 1, frame 3", "Series 3, image 2", "Series 3, image 3"]
    assert list(Image.objects.filter(organization=org, kind="png").values_list("original_name", flat=True)) == [
        "left_hand.png"]
    assert not Image.objects.filter(organization=org, original_name="theirs.png").exists()
    # no stored path carries a client file name, for DICOM or PNG
    for image in Image.objects.filter(organization=org):
        for path in filter(None, (image.file, image.preview, image.values)):
            assert STORED_PATH.match(path), path


def test_burned_in_annotation_is_refused_and_the_rest_of_the_batch_is_stored(settings, org, owner, tiny_models):
    from pathlib import Path

    from imaging.uploads import study_upload

    first, second = fx.ct_series(count=2)
    result = study_upload(organization=org, uploaded_by=owner, files=[
        upload("a.dcm", fx.dicom_bytes(first)), upload("burned.dcm", _burned_in()),
        upload("b.dcm", fx.dicom_bytes(second))])
    assert [f.status for f in result.files] == ["accepted", "rejected", "accepted"]
    assert (result.files[1].code, result.files[1].message) == ("burned_in_annotation", BURNED_IN_MESSAGE)
    assert Image.objects.filter(organization=org).count() == 2 and result.jobs[0].images_total == 2
    stored = {str(p.relative_to(settings.MEDIA_ROOT)) for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()}
    referenced = {p for image in Image.objects.all() for p in (image.file, image.preview, image.values) if p}
    assert stored == referenced  # nothing of the refused file was written


def test_page_refuses_a_burned_in_file_with_the_reason(client, clinician, tiny_models):
    client.force_login(clinician)
    session = client.post(reverse("imaging:upload-session-create")).json()["id"]
    response = client.post(reverse("imaging:upload-file"), {"session": session, "file": upload("burned.dcm",
                                                                                                _burned_in())})
    assert response.status_code == 422 and response.json()["message"] == BURNED_IN_MESSAGE
    assert not Image.objects.exists()


def test_page_upload_over_5_mb_never_reaches_a_temporary_file_and_csrf_still_holds(
        settings, org, clinician, tiny_models, upload_temp_dir):
    big = fx.dicom_bytes(fx.large_ct_dataset())
    assert len(big) > settings.FILE_UPLOAD_MAX_MEMORY_SIZE
    client, token = _csrf_client(clinician)
    session = client.post(reverse("imaging:upload-session-create"), HTTP_X_CSRFTOKEN=token).json()["id"]
    url = reverse("imaging:upload-file")

    forged = client.post(url, {"session": session, "file": upload(fx.DICOM_FILE_NAME, big)})
    assert forged.status_code == 403 and not Image.objects.exists()
    # the token in the form body: the check itself has to read the body, through the in-memory handler
    in_body = client.post(url, {"session": session, "csrfmiddlewaretoken": token,
                                "file": upload(fx.DICOM_FILE_NAME, big)})
    assert in_body.status_code == 200, in_body.content
    assert in_body.json()["files"][0]["name"] == fx.DICOM_FILE_NAME  # echoed, not stored
    in_header = client.post(url, {"session": session, "file": upload("again.dcm", big)}, HTTP_X_CSRFTOKEN=token)
    assert in_header.status_code == 200 and in_header.json()["files"][0]["status"] == "duplicate"

    image = Image.objects.get(organization=org)
    assert image.width == 1700 and image.original_name == "Series 10, image 1"
    assert upload_temp_dir.created == [] and upload_temp_dir.seen == [[], []]
    assert not any(upload_temp_dir.path.iterdir())


@pytest.mark.parametrize("auth", ["api_key", "session"])
def test_api_upload_over_5_mb_never_reaches_a_temporary_file(auth, org, clinician, api_key_for, tiny_models,
                                                             upload_temp_dir):
    client = APIClient(enforce_csrf_checks=True)
    headers = {}
    if auth == "api_key":
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(org, scope='write')}")
    else:  # session authentication checks CSRF, which reads the body before the view runs
        client.force_login(clinician)
        client.get(reverse("imaging:upload"))
        headers["HTTP_X_CSRFTOKEN"] = client.cookies["csrftoken"].value
    response = client.post("/api/v1/imaging/studies/", {"files": [upload(fx.DICOM_FILE_NAME, fx.dicom_bytes(
        fx.large_ct_dataset())), upload("small.png", fx.png_bytes())]}, format="multipart", **headers)
    assert response.status_code == 201, response.content
    assert [f["status"] for f in response.json()["files"]] == ["accepted", "accepted"]
    assert upload_temp_dir.created == [] and upload_temp_dir.seen == [[]]
    assert not any(upload_temp_dir.path.iterdir())


def test_request_over_the_upload_limit_is_refused_before_it_is_read(settings, org, clinician, api_key_for,
                                                                   tiny_models, upload_temp_dir):
    settings.IMAGING_MAX_FILE_BYTES = settings.IMAGING_MAX_ARCHIVE_BYTES = 1_000_000
    data = fx.dicom_bytes(fx.large_ct_dataset())  # 5.8 MB
    client = Client()
    client.force_login(clinician)
    session = client.post(reverse("imaging:upload-session-create")).json()["id"]
    page = client.post(reverse("imaging:upload-file"), {"session": session, "file": upload("big.dcm", data)})
    assert page.status_code == 413
    assert page.json()["code"] == "too_large" and "above the 1 MB limit per request" in page.json()["message"]

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(org, scope='write')}")
    response = api.post("/api/v1/imaging/studies/", {"files": [upload("big.dcm", data)]}, format="multipart")
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "too_large" and "split the series" in error["message"]
    assert not Image.objects.exists() and upload_temp_dir.seen == [] and upload_temp_dir.created == []


def test_in_memory_handler_counts_the_bytes_when_content_length_understates(settings, rf):
    from django.core.files.uploadhandler import StopFutureHandlers

    from imaging.uploads import InMemoryUploadHandler, UploadTooLarge

    settings.IMAGING_MAX_FILE_BYTES = settings.IMAGING_MAX_ARCHIVE_BYTES = 1000
    handler = InMemoryUploadHandler(rf.post("/"))
    handler.handle_raw_input(None, {}, 100, b"boundary")
    with pytest.raises(StopFutureHandlers):  # it takes every file, so no handler after it writes to disk
        handler.new_file("file", "a.dcm", "application/dicom", None)
    assert handler.receive_data_chunk(b"x" * 600, 0) is None
    with pytest.raises(UploadTooLarge):
        handler.receive_data_chunk(b"x" * 600, 600)
    with pytest.raises(UploadTooLarge):
        handler.handle_raw_input(None, {}, 5_000_000, b"boundary")
