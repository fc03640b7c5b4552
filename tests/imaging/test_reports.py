"""The PDF report shows a series' most attended slices with the series model's heatmap, then other images."""

from __future__ import annotations

import pytest

from tests.imaging import dicom_fixtures as fx
from tests.imaging.conftest import upload

pytestmark = pytest.mark.django_db


def test_report_tiles_lead_with_the_most_attended_slices(org, other_org, owner, other_owner, tiny_models,
                                                         django_capture_on_commit_callbacks):
    from imaging.models import ExplanationSource, JobStatus, SeriesPrediction
    from imaging.reports import SERIES_TILES, _tiles, study_report_pdf
    from imaging.uploads import study_upload

    files = [upload(f"s{i}.dcm", fx.dicom_bytes(ds)) for i, ds in enumerate(fx.ct_series(count=5))]
    with django_capture_on_commit_callbacks(execute=True):
        job = study_upload(organization=org, uploaded_by=owner, files=files).jobs[0]
        study_upload(organization=other_org, uploaded_by=other_owner, files=[upload("t.png", fx.png_bytes())])
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    series = SeriesPrediction.objects.get(job=job)
    attended = [image_id for image_id, _ in sorted(series.slice_attention, key=lambda pair: -pair[1])]

    tiles = _tiles(organization=org, job=job)
    assert [prediction.image_id for prediction, _picture, _note in tiles[:SERIES_TILES]] == attended[:SERIES_TILES]
    assert all(note.startswith("series attention") for _p, _pic, note in tiles[:SERIES_TILES])
    assert {prediction.image_id for prediction, _picture, _note in tiles} == set(attended)  # 5 images, all shown
    assert all(note == "" for _p, _pic, note in tiles[SERIES_TILES:])
    # the series tiles carry the series model's slice heatmaps (drawn over the preview)
    assert job.explanations.filter(source=ExplanationSource.SERIES).count() == SERIES_TILES
    assert study_report_pdf(organization=org, study=job.study, job=job).startswith(b"%PDF")
    assert all(prediction.organization_id == org.pk for prediction, _picture, _note in tiles)
