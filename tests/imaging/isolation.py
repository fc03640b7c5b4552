"""Objects behind imaging's id-taking URLs, built in a given organisation (see tests/test_tenant_isolation.py).

Everything is made through the real upload service (files really in storage), so the owning organisation's
requests reach the object instead of failing for a missing file."""

from __future__ import annotations

from accounts.capabilities import Role
from accounts.models import Membership


def _owner(org):
    return Membership.objects.filter(organization=org, role=Role.OWNER).first().user


def _model():
    from imaging.models import ImagingModel

    model, _ = ImagingModel.objects.get_or_create(
        name="isolation-model", version="v1",
        defaults={"task": "image", "path": "/nonexistent", "sha256": "0" * 64, "is_active": True,
                  "manifest": {"labels": ["lesion", "no_lesion"], "metrics": {}}})
    return model


def _analysed(org):
    """A stored CT image with a queued job, a prediction and an overlay (the worker is not needed)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from imaging import storage
    from imaging.models import Explanation, Prediction
    from imaging.uploads import study_upload
    from tests.imaging import dicom_fixtures as fx

    model = _model()
    result = study_upload(organization=org, uploaded_by=_owner(org),
                          files=[SimpleUploadedFile("ct.dcm", fx.dicom_bytes(fx.ct_dataset()))])
    job = result.jobs[0]
    image = job.images.get()
    prediction = Prediction.objects.create(
        organization=org, job=job, image=image, probabilities={"lesion": 0.7, "no_lesion": 0.3},
        predicted_label="lesion", confidence=0.7, model_name=model.name, model_version=model.version,
        model_sha256=model.sha256)
    import numpy as np

    path = storage.save_bytes(storage.overlay_path(organization_id=org.pk, job_id=job.pk, image_id=image.pk,
                                                   source="image", label="lesion"),
                              storage.encode_png(storage.heatmap_to_overlay(np.ones((4, 4), dtype=np.float32))))
    explanation = Explanation.objects.create(organization=org, job=job, image=image, label="lesion", overlay=path)
    return {"study": job.study, "job": job, "image": image, "prediction": prediction, "explanation": explanation}


def _pk(kind):
    return lambda org: {"pk": _analysed(org)[kind].pk}


OBJECT_ROUTES = {
    "imaging:study-detail": _pk("study"),
    "imaging:study-results": _pk("study"),
    "imaging:study-analyze": _pk("study"),
    "imaging:study-report": _pk("study"),
    "imaging:job-cancel": _pk("job"),
    "imaging:job-retry": _pk("job"),
    "imaging:image-preview": _pk("image"),
    "imaging:image-values": _pk("image"),
    "imaging:image-original": _pk("image"),
    "imaging:image-feedback": _pk("image"),
    "imaging:prediction-explain": _pk("prediction"),
    "imaging:explanation-overlay": _pk("explanation"),
    "imaging_api:study-detail": _pk("study"),
    "imaging_api:job-detail": _pk("job"),
    "imaging_api:job-cancel": _pk("job"),
    "imaging_api:job-retry": _pk("job"),
    "imaging_api:image-feedback": _pk("image"),
    "imaging_api:image-preview": _pk("image"),
    "imaging_api:image-original": _pk("image"),
    "imaging_api:explanation-overlay": _pk("explanation"),
    "imaging_api:study-report": _pk("study"),
    "imaging_api:prediction-explain": _pk("prediction"),
}
