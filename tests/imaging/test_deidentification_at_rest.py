"""No identifying value of the DICOM fixtures survives anywhere we write: storage files or any database table."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection

from tests.imaging import dicom_fixtures as fx
from tests.imaging.conftest import upload

pytestmark = pytest.mark.django_db


def _database_text() -> str:
    """Every text value in every column of every table (JSON columns are text too)."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names come from introspection
            for row in cursor.fetchall():
                chunks.extend(v if isinstance(v, str) else bytes(v).decode("latin-1") for v in row
                              if isinstance(v, str | bytes | memoryview))
    return "\n".join(chunks)


def _assert_nothing_identifying_at_rest(*, media: Path, temp_dir: Path) -> None:
    written = [p for p in media.rglob("*") if p.is_file()]
    assert any(p.suffix == ".dcm" for p in written) and any("jobs" in p.parts for p in written)
    assert not any(temp_dir.iterdir()), "an upload was left in FILE_UPLOAD_TEMP_DIR"
    database = _database_text().lower()
    for value in fx.IDENTIFYING_VALUES:
        needle = value.lower()
        leaks = [str(p.relative_to(media)) for p in written
                 if needle.encode() in p.read_bytes().lower() or needle in str(p.relative_to(media)).lower()]
        assert not leaks, f"{value!r} found in stored files or their paths {leaks}"
        assert needle not in database, f"{value!r} found in the database"


def _phi_named_files() -> list:
    """The fixtures (descriptions and comments naming the patient) under the names PACS exports give them."""
    datasets = [*fx.ct_series(count=3), fx.monochrome1_dataset(), fx.rgb_dataset(), fx.multiframe_dataset(),
                fx.jpeg_baseline(fx.mono8_dataset())]
    files = [upload(f"{fx.FILE_NAME_TOKEN}_{i:03d}.dcm", fx.dicom_bytes(ds)) for i, ds in enumerate(datasets)]
    files.append(upload(fx.ZIP_FILE_NAME, fx.zip_bytes({
        f"{fx.ZIP_MEMBER_DIR}/{fx.FILE_NAME_TOKEN}_S2_{i}.dcm": fx.dicom_bytes(ds)
        for i, ds in enumerate(fx.ct_series(count=2, spacing=2.5))})))
    # PNG text chunks, EXIF and JPEG comments name the patient too (these keep their neutral file names)
    files += [upload("photo.png", fx.png_with_identity(mode="I;16")),
              upload("photo8.png", fx.png_with_identity(mode="L")), upload("photo.jpg", fx.jpeg_with_identity())]
    return files


def test_no_identifying_value_reaches_storage_or_database(settings, org, owner, tiny_models, upload_temp_dir,
                                                          django_capture_on_commit_callbacks):
    from imaging.models import Image, JobStatus
    from imaging.uploads import study_upload

    files = _phi_named_files()
    assert fx.STUDY_DESCRIPTION.encode() in files[0].read()  # the fixtures carry the descriptions
    files[0].seek(0)
    with django_capture_on_commit_callbacks(execute=True):
        result = study_upload(organization=org, uploaded_by=owner, files=files)
    assert all(f.status != "rejected" for f in result.files), [f.message for f in result.files]
    assert Image.objects.filter(organization=org, kind="dicom").count() >= 9
    for job in result.jobs:
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED, job.error_message

    _assert_nothing_identifying_at_rest(media=Path(settings.MEDIA_ROOT), temp_dir=upload_temp_dir.path)
    # the structure the model and the viewer need is kept
    ct_images = Image.objects.filter(organization=org, photometric="MONOCHROME2", window_center__isnull=False)
    assert ct_images.exists()
    assert all(image.sop_instance_uid and not image.sop_instance_uid.startswith(fx.UID_ROOT) for image in ct_images)


def test_nothing_identifying_at_rest_after_uploads_through_the_page_and_the_api(
        settings, org, clinician, api_key_for, tiny_models, upload_temp_dir, django_capture_on_commit_callbacks):
    from django.test import Client
    from django.urls import reverse
    from rest_framework.test import APIClient

    from imaging.models import AnalysisJob, Image, JobStatus

    files = _phi_named_files()
    big = upload(f"{fx.FILE_NAME_TOKEN}_LARGE.dcm", fx.dicom_bytes(fx.large_ct_dataset()))
    assert big.size > settings.FILE_UPLOAD_MAX_MEMORY_SIZE  # what Django would write to a temporary file
    page = Client()
    page.force_login(clinician)
    session = page.post(reverse("imaging:upload-session-create")).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        for part in [big, *files[:4], files[-1]]:
            response = page.post(reverse("imaging:upload-file"), {"session": session, "file": part})
            assert response.status_code == 200, response.content
        assert page.post(reverse("imaging:upload-finish"), {"session": session}).status_code == 200
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(org, scope='write')}")
    with django_capture_on_commit_callbacks(execute=True):  # after the first analysis: the plan runs one at a time
        response = api.post("/api/v1/imaging/studies/", {"files": files[4:-1]}, format="multipart")
        assert response.status_code == 201, response.content
    assert Image.objects.filter(organization=org, kind="dicom").count() >= 10
    assert AnalysisJob.objects.filter(organization=org).exclude(status=JobStatus.SUCCEEDED).count() == 0
    assert upload_temp_dir.created == []
    _assert_nothing_identifying_at_rest(media=Path(settings.MEDIA_ROOT), temp_dir=upload_temp_dir.path)


def test_same_dicom_series_uploaded_twice_stays_one_series_and_skips_duplicates(
        org, owner, tiny_models, django_capture_on_commit_callbacks):
    from imaging.models import Series, Study
    from imaging.uploads import study_upload

    first, second = fx.ct_series(count=4)[:2], fx.ct_series(count=4)[1:]
    with django_capture_on_commit_callbacks(execute=True):  # the first analysis finishes before the second upload
        study_upload(organization=org, uploaded_by=owner, files=[upload(f"a{i}.dcm", fx.dicom_bytes(d))
                                                                 for i, d in enumerate(first)])
    result = study_upload(organization=org, uploaded_by=owner, files=[upload(f"b{i}.dcm", fx.dicom_bytes(d))
                                                                      for i, d in enumerate(second)])
    assert [f.status for f in result.files] == ["duplicate", "accepted", "accepted"]
    assert "already" in result.files[0].message
    assert Study.objects.filter(organization=org).count() == 1
    assert Series.objects.get(organization=org).image_count == 4
    assert result.jobs[0].images_total == 2  # only the new slices are charged


def test_other_organisations_get_different_uids(org, owner, other_org, other_owner, tiny_models):
    from imaging.models import Study
    from imaging.uploads import study_upload

    data = fx.dicom_bytes(fx.ct_dataset())
    study_upload(organization=org, uploaded_by=owner, files=[upload("a.dcm", data)])
    study_upload(organization=other_org, uploaded_by=other_owner, files=[upload("a.dcm", data)])
    uids = set(Study.objects.values_list("study_instance_uid", flat=True))
    assert len(uids) == 2 and fx.STUDY_UID not in uids
