"""No identifying value of the DICOM fixtures survives anywhere we write: storage files or any database table."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection

from tests.imaging import dicom_fixtures as fx
from tests.imaging.conftest import upload

pytestmark = pytest.mark.django_db


def _database_text() -> str:
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names come from introspection
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def test_no_identifying_value_reaches_storage_or_database(settings, org, owner, tiny_models,
                                                          django_capture_on_commit_callbacks):
    from imaging.models import Image, JobStatus
    from imaging.uploads import study_upload

    datasets = [*fx.ct_series(count=3), fx.monochrome1_dataset(), fx.rgb_dataset(), fx.multiframe_dataset(),
                fx.jpeg_baseline(fx.mono8_dataset())]
    files = [upload(f"scan{i}.dcm", fx.dicom_bytes(ds)) for i, ds in enumerate(datasets)]
    files.append(upload("series.zip", fx.zip_bytes({f"s/{i}.dcm": fx.dicom_bytes(ds)
                                                    for i, ds in enumerate(fx.ct_series(count=2, spacing=2.5))})))
    with django_capture_on_commit_callbacks(execute=True):
        result = study_upload(organization=org, uploaded_by=owner, files=files)
    assert all(f.status != "rejected" for f in result.files), [f.message for f in result.files]
    assert Image.objects.filter(organization=org, kind="dicom").count() >= 9
    for job in result.jobs:
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED, job.error_message

    media = Path(settings.MEDIA_ROOT)
    written = [p for p in media.rglob("*") if p.is_file()]
    assert any(p.suffix == ".dcm" for p in written) and any("jobs" in p.parts for p in written)
    database = _database_text()
    for value in fx.IDENTIFYING_VALUES:
        needle = value.encode()
        leaks = [str(p.relative_to(media)) for p in written if needle in p.read_bytes()]
        assert not leaks, f"{value!r} found in stored files {leaks}"
        assert value not in database, f"{value!r} found in the database"
    # the structure the model and the viewer need is kept
    ct_images = Image.objects.filter(organization=org, photometric="MONOCHROME2", window_center__isnull=False)
    assert ct_images.exists()
    assert all(image.sop_instance_uid and not image.sop_instance_uid.startswith(fx.UID_ROOT) for image in ct_images)


def test_same_dicom_series_uploaded_twice_stays_one_series_and_skips_duplicates(org, owner, tiny_models):
    from imaging.models import Series, Study
    from imaging.uploads import study_upload

    first, second = fx.ct_series(count=4)[:2], fx.ct_series(count=4)[1:]
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
