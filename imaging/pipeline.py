"""The worker side of an analysis: decode stored images, batch them through the model, write results back.

Imported only by imaging/tasks.py inside task bodies (it pulls in torch via imaging.ml). Decoding, PNG encoding
and storage writes run on a thread pool and overlap with inference: on a GPU they, not the model, are the limit.
Work already written by an earlier, interrupted run of the same job is skipped, so a re-run finishes the job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from django.conf import settings
from django.db import transaction
from django_scopes import scope, scopes_disabled

from imaging import storage
from imaging.decoding import decode_image
from imaging.ml.inference import ImagePrediction, predict_images, predict_series
from imaging.ml.runtime import get_model, select_device
from imaging.models import (
    AnalysisJob,
    Explanation,
    ExplanationSource,
    Image,
    ImagingModel,
    JobStatus,
    Prediction,
    SeriesPrediction,
)
from imaging.services import analysis_job_progress, model_path
from imaging.uploads import decode_limits

logger = logging.getLogger(__name__)
OVERLAY_MAX_SIDE = 256


def load_model(model: ImagingModel):
    """The registered model, loaded once per worker process (CUDA when present)."""
    return get_model(model_dir=model_path(model), sha256=model.sha256)


def decode_stored(image: Image) -> np.ndarray:
    """Model input pixels of a stored image: float32 [0, 1], (H, W) or (H, W, 3)."""
    data = storage.read_bytes(image.file)
    return decode_image(data=data, filename=image.original_name, limits=decode_limits(), frame=image.frame_index).pixels


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _write_overlay(*, job: AnalysisJob, image: Image, source: str, label: str, heatmap: np.ndarray) -> Explanation:
    path = storage.overlay_path(organization_id=job.organization_id, job_id=job.pk, image_id=image.pk, source=source,
                                label=label)
    storage.delete_quietly([path])  # a re-run rewrites the same name instead of piling up copies
    # Grad-CAM maps are smooth (upsampled from the layer's grid): a <=256 px overlay, stretched by the viewer,
    # looks the same and costs a fraction of the colouring and PNG encoding of a full-size one.
    step = max(1, -(-max(heatmap.shape) // OVERLAY_MAX_SIDE))
    saved = storage.save_bytes(path, storage.encode_png(storage.heatmap_to_overlay(heatmap[::step, ::step])))
    x, y = storage.heatmap_peak(heatmap)
    return Explanation(organization_id=job.organization_id, job=job, image=image, source=source, label=label,
                       overlay=saved, status=JobStatus.SUCCEEDED, peak_x=x, peak_y=y)


def _prediction_row(job: AnalysisJob, image: Image, result: ImagePrediction) -> Prediction:
    model = job.model
    return Prediction(organization_id=job.organization_id, job=job, image=image, probabilities=result.probabilities,
                      predicted_label=result.predicted, confidence=result.probabilities[result.predicted],
                      model_name=model.name, model_version=model.version, model_sha256=model.sha256)


def io_threads() -> int:
    """IMAGING_IO_THREADS, or when it is 0: 4 next to a GPU, 2 on CPU (the model's threads use every core there)."""
    if settings.IMAGING_IO_THREADS > 0:
        return settings.IMAGING_IO_THREADS
    return 4 if select_device().type == "cuda" else 2


def run_job(*, job_id: int) -> bool:
    """Analyse every image of a RUNNING job not analysed yet; False when the job was cancelled meanwhile."""
    with scopes_disabled():
        job = AnalysisJob.objects.select_related("organization", "model", "series_model").get(pk=job_id)
    with scope(organization=job.organization), ThreadPoolExecutor(io_threads()) as pool:
        if not _image_stage(job=job, pool=pool):
            return False
        if job.series_model_id:
            _series_stage(job=job, pool=pool)
    return True


def _image_stage(*, job: AnalysisJob, pool: ThreadPoolExecutor) -> bool:
    loaded = load_model(job.model)
    images = list(job.images.order_by("series_id", "slice_position", "instance_number", "frame_index", "id"))
    done = set(Prediction.objects.filter(job=job).values_list("image_id", flat=True))
    todo = [image for image in images if image.pk not in done]
    batches = list(_chunks(todo, settings.IMAGING_BATCH_SIZE))
    pending: list[Future] = [pool.submit(decode_stored, image) for image in batches[0]] if batches else []
    writes: list[Future] = []
    count = len(done)
    for index, batch in enumerate(batches):
        pixels = [future.result() for future in pending]
        # decode the next batch while the model runs on this one
        upcoming = batches[index + 1] if index + 1 < len(batches) else []
        pending = [pool.submit(decode_stored, image) for image in upcoming]
        results = predict_images(loaded=loaded, images=pixels, batch_size=len(batch), explain=job.explain)
        writes = [pool.submit(_write_overlay, job=job, image=image, source=ExplanationSource.IMAGE,
                              label=result.predicted, heatmap=result.heatmap)
                  for image, result in zip(batch, results, strict=True) if result.heatmap is not None]
        explanations = [future.result() for future in writes]
        with transaction.atomic():
            Explanation.objects.bulk_create(explanations, ignore_conflicts=True)
            Prediction.objects.bulk_create([_prediction_row(job, image, result)
                                            for image, result in zip(batch, results, strict=True)],
                                           ignore_conflicts=True)
        count += len(batch)
        if analysis_job_progress(job_id=job.pk, images_done=count) != JobStatus.RUNNING:
            for future in pending:
                future.cancel()
            return False
    return True


def _series_stage(*, job: AnalysisJob, pool: ThreadPoolExecutor) -> None:
    loaded = load_model(job.series_model)
    model = job.series_model
    series_ids = set(job.images.exclude(series__series_instance_uid="").values_list("series_id", flat=True))
    done = set(SeriesPrediction.objects.filter(job=job).values_list("series_id", flat=True))
    for series_id in sorted(series_ids - done):
        slices = list(Image.objects.filter(series_id=series_id).order_by("slice_position", "instance_number",
                                                                          "frame_index", "id"))
        if len(slices) < settings.IMAGING_SERIES_MIN_SLICES:
            continue
        pixels = list(pool.map(decode_stored, slices))
        result = predict_series(loaded=loaded, slices=pixels, explain=job.explain,
                                top_k=settings.IMAGING_SERIES_TOP_SLICES)
        writes = [pool.submit(_write_overlay, job=job, image=slices[index], source=ExplanationSource.SERIES,
                              label=result.predicted, heatmap=heatmap)
                  for index, heatmap in result.slice_heatmaps.items()]
        explanations = [future.result() for future in writes]
        with transaction.atomic():
            Explanation.objects.bulk_create(explanations, ignore_conflicts=True)
            SeriesPrediction.objects.get_or_create(
                organization_id=job.organization_id, job=job, series_id=series_id,
                defaults={"probabilities": result.probabilities, "predicted_label": result.predicted,
                          "confidence": result.probabilities[result.predicted],
                          "slice_attention": [[image.pk, weight] for image, weight in
                                              zip(slices, result.slice_attention, strict=True)],
                          "model_name": model.name, "model_version": model.version, "model_sha256": model.sha256})


def run_explanation(*, explanation_id: int) -> None:
    """Compute one requested Grad-CAM (any class) and store its overlay."""
    with scopes_disabled():
        explanation = Explanation.objects.select_related("organization", "image", "job__model").get(pk=explanation_id)
    with scope(organization=explanation.organization):
        loaded = load_model(explanation.job.model)
        [result] = predict_images(loaded=loaded, images=[decode_stored(explanation.image)], batch_size=1,
                                  explain=True, target_label=explanation.label)
        built = _write_overlay(job=explanation.job, image=explanation.image, source=explanation.source,
                               label=explanation.label, heatmap=result.heatmap)
        Explanation.objects.filter(pk=explanation.pk).update(overlay=built.overlay, status=JobStatus.SUCCEEDED,
                                                             peak_x=built.peak_x, peak_y=built.peak_y)
