"""One-page PDF report of a study's analysis: images with their heatmap overlay, probabilities and the model card."""

from __future__ import annotations

import io

from PIL import Image as PILImage

from accounts.models import Organization
from imaging import selectors, storage
from imaging.models import AnalysisJob, ExplanationSource, Study

MAX_TILES = 6
SERIES_TILES = 3  # most attended slices shown per series
DEMO_BANNER = "Demo model, not for clinical use"


def _composite(preview_path: str, overlay_path: str | None) -> PILImage.Image:
    base = PILImage.open(io.BytesIO(storage.read_bytes(preview_path))).convert("RGBA")
    if overlay_path:
        overlay = PILImage.open(io.BytesIO(storage.read_bytes(overlay_path))).convert("RGBA")
        if overlay.size != base.size:
            overlay = overlay.resize(base.size)
        overlay.putalpha(overlay.getchannel("A").point(lambda a: int(a * 0.6)))
        base = PILImage.alpha_composite(base, overlay)
    base.thumbnail((360, 360))
    return base.convert("RGB")


def _tiles(*, organization: Organization, job: AnalysisJob) -> list[tuple[object, PILImage.Image, str]]:
    """(prediction, picture, note) of the images to show: each analysed series' most attended slices first, with the
    series model's slice heatmap, then the other images, most confident first, with their own heatmap."""
    predictions = {p.image_id: p for p in selectors.job_predictions(organization=organization, job=job)}
    series_overlays = {e.image_id: e.overlay for e in selectors.job_explanations(organization=organization, job=job)
                       .filter(source=ExplanationSource.SERIES).exclude(overlay="")}
    chosen: list[tuple[object, str | None, str]] = []
    for series in selectors.job_series_predictions(organization=organization, job=job):
        ranked = sorted(series.slice_attention, key=lambda pair: -pair[1])[:SERIES_TILES]
        chosen += [(predictions[image_id], series_overlays.get(image_id), f"series attention {weight:.2f}")
                   for image_id, weight in ranked if image_id in predictions]
    shown = {prediction.image_id for prediction, _overlay, _note in chosen}
    for prediction in sorted(predictions.values(), key=lambda p: -p.confidence):
        if len(chosen) >= MAX_TILES:
            break
        if prediction.image_id in shown:
            continue
        explanations = getattr(prediction.image, "job_explanations", [])
        overlay = next((e.overlay for e in explanations if e.source == ExplanationSource.IMAGE
                        and e.label == prediction.predicted_label and e.overlay), None)
        chosen.append((prediction, overlay, ""))
    return [(prediction, _composite(prediction.image.preview, overlay), note)
            for prediction, overlay, note in chosen[:MAX_TILES]]


def study_report_pdf(*, organization: Organization, study: Study, job: AnalysisJob) -> bytes:
    """Render the report; reads only files of `organization` through its selectors."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pagesize=A4)
    width, height = A4
    margin = 36
    y = height - margin
    model = job.model
    pdf.setTitle(f"Lumen Insight report: {study.title}")
    if model.is_demo:
        pdf.setFillColor(colors.HexColor("#b42318"))
        pdf.rect(0, height - 28, width, 28, fill=1, stroke=0)
        pdf.setFillColor(colors.white)
        pdf.setFont("Helvetica-Bold", 12)
        pdf.drawCentredString(width / 2, height - 19, DEMO_BANNER)
        y -= 24
    pdf.setFillColor(colors.black)
    pdf.setFont("Helvetica-Bold", 16)
    pdf.drawString(margin, y - 10, study.title[:70])
    pdf.setFont("Helvetica", 9)
    y -= 26
    pdf.drawString(margin, y, f"Study {study.pk} · {study.image_count} image(s) · {study.modality or 'images'} · "
                              f"analysis {job.pk} (attempt {job.attempt}) finished "
                              f"{job.finished_at:%Y-%m-%d %H:%M} UTC" if job.finished_at else "")
    y -= 14

    tiles = _tiles(organization=organization, job=job)
    tile_w, gap, text_h = 170, 12, 40
    per_row = 3
    for index, (prediction, picture, note) in enumerate(tiles):
        col, row = index % per_row, index // per_row
        x = margin + col * (tile_w + gap)
        top = y - row * (tile_w + text_h + gap)
        scale = tile_w / max(picture.size)
        w, h = picture.size[0] * scale, picture.size[1] * scale
        pdf.drawImage(ImageReader(picture), x, top - h, width=w, height=h)
        pdf.setFont("Helvetica-Bold", 8)
        pdf.drawString(x, top - h - 10, prediction.image.original_name[:38])
        pdf.setFont("Helvetica", 8)
        probs = ", ".join(f"{label} {p:.0%}" for label, p in prediction.sorted_probabilities[:3])
        pdf.drawString(x, top - h - 21, probs[:45])
        if note:
            pdf.drawString(x, top - h - 32, note[:45])
    rows = (len(tiles) + per_row - 1) // per_row
    y -= rows * (tile_w + text_h + gap) + 4
    if len(tiles) < job.images_total:
        pdf.setFont("Helvetica-Oblique", 8)
        pdf.drawString(margin, y, f"Showing {len(tiles)} of {job.images_total} images (most attended slices, then "
                                  "most confident); the full results are in the application.")
        y -= 14

    series_predictions = list(selectors.job_series_predictions(organization=organization, job=job))
    if series_predictions:
        pdf.setFont("Helvetica-Bold", 11)
        pdf.drawString(margin, y, "Series predictions")
        y -= 14
        pdf.setFont("Helvetica", 9)
        for s in series_predictions[:4]:
            probs = ", ".join(f"{k} {v:.0%}" for k, v in sorted(s.probabilities.items(), key=lambda kv: -kv[1]))
            top = max(range(len(s.slice_attention)), key=lambda i: s.slice_attention[i][1]) + 1 \
                if s.slice_attention else 0
            pdf.drawString(margin, y, f"{s.series}: {s.predicted_label} ({probs}); most attended slice {top} of "
                                      f"{len(s.slice_attention)}")
            y -= 12
        y -= 6

    pdf.setFont("Helvetica-Bold", 11)
    pdf.drawString(margin, y, "Model card")
    y -= 14
    pdf.setFont("Helvetica", 9)
    metrics = model.metrics
    training = model.manifest.get("training_data", {})
    lines = [
        f"Model: {model.name} {model.version} ({model.manifest.get('arch', '')}, {model.task}); "
        f"labels: {', '.join(model.labels)}",
        f"SHA-256: {model.sha256}",
        f"Held-out metrics: accuracy {metrics.get('accuracy', 0):.3f}, ROC AUC {metrics.get('roc_auc') or 0:.3f}, "
        f"n={metrics.get('n', '?')}" + (f", pointing game {metrics['pointing_game']:.2f}"
                                        if metrics.get("pointing_game") is not None else ""),
        f"Training data: {training.get('train_csv', 'not recorded')} {training.get('train_counts', '')}"[:120],
        f"Intended use: {model.intended_use or 'not stated'}"[:120],
        "Heatmaps are Grad-CAM of the predicted class: they show where the evidence is, not a diagnosis.",
    ]
    for line in lines:
        pdf.drawString(margin, y, line)
        y -= 12
    pdf.setFont("Helvetica-Oblique", 7)
    pdf.drawString(margin, 20, "Generated by Lumen Insight. De-identified data; decisions remain with the clinician.")
    pdf.showPage()
    pdf.save()
    return buf.getvalue()
