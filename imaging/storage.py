"""Where imaging files live in the default storage, and how arrays become the PNGs and raw files we store.

Every path starts with the organisation id, so an operator can export or purge one tenant's files. Files are never
served by URL: views read them through the storage after checking the organisation.
"""

from __future__ import annotations

import io
import uuid

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage


def org_root(organization_id: int) -> str:
    return f"imaging/org_{organization_id}"


def image_paths(*, organization_id: int, original_ext: str) -> dict[str, str]:
    """Fresh, unguessable names for one image's original, preview and raw values (written before the rows)."""
    stem = uuid.uuid4().hex
    base = f"{org_root(organization_id)}/images/{stem[:2]}"
    return {"file": f"{base}/originals/{stem}.{original_ext}", "preview": f"{base}/previews/{stem}.png",
            "values": f"{base}/values/{stem}.u16"}


def report_name(*, study_id: int) -> str:
    return f"study-{study_id}-report.pdf"


def overlay_path(*, organization_id: int, job_id: int, image_id: int, source: str, label: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in label)[:40]
    return f"{org_root(organization_id)}/jobs/{job_id}/{source}_{image_id}_{safe}.png"


def save_bytes(path: str, data: bytes) -> str:
    """Write `data` at `path` (the storage may pick a different free name) and return the name it used."""
    return default_storage.save(path, ContentFile(data))


def read_bytes(path: str) -> bytes:
    with default_storage.open(path, "rb") as handle:
        return handle.read()


def delete_quietly(paths: list[str]) -> None:
    for path in paths:
        if path:
            try:
                default_storage.delete(path)
            except OSError:
                pass


def encode_png(array: np.ndarray, *, compress_level: int = 1) -> bytes:
    """uint8/uint16 (H, W), uint8 (H, W, 3|4) -> PNG bytes. Level 1: previews and overlays are written on the
    hot path, and fast compression costs little size on medical images."""
    from PIL import Image as PILImage

    if array.dtype == np.uint16:
        # Pillow 13 infers I;16 from a 2-D little-endian uint16 array; colour 16-bit is reduced to 8 bits
        image = PILImage.fromarray(array.astype("<u2")) if array.ndim == 2 else PILImage.fromarray(
            (array >> 8).astype(np.uint8))
    else:
        image = PILImage.fromarray(np.ascontiguousarray(array))
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def values_to_u16(values: np.ndarray, *, value_min: float, value_max: float) -> bytes:
    """Grayscale modality values mapped linearly onto 0..65535, little-endian: what the viewer windows."""
    span = max(value_max - value_min, 1e-6)
    scaled = np.clip((values.astype(np.float32) - value_min) * (65535.0 / span), 0, 65535)
    return np.rint(scaled).astype("<u2").tobytes()


# A perceptually ordered colour ramp (dark blue -> cyan -> yellow -> red), sampled at 5 stops.
_RAMP = np.array([[0, 0, 130], [0, 120, 255], [0, 230, 200], [255, 230, 0], [230, 20, 20]], dtype=np.float32)


def heatmap_to_overlay(heatmap: np.ndarray) -> np.ndarray:
    """[0, 1] float heatmap (H, W) -> uint8 RGBA overlay; weak evidence is transparent so the scan stays visible."""
    h = np.clip(np.nan_to_num(heatmap.astype(np.float32)), 0.0, 1.0)
    position = h * (len(_RAMP) - 1)
    low = np.floor(position).astype(np.int32).clip(0, len(_RAMP) - 2)
    frac = (position - low)[..., None]
    rgb = _RAMP[low] * (1 - frac) + _RAMP[low + 1] * frac
    alpha = np.clip((h - 0.15) / 0.85, 0.0, 1.0) ** 0.8 * 230.0
    return np.dstack([rgb, alpha]).astype(np.uint8)


def heatmap_peak(heatmap: np.ndarray) -> tuple[float, float]:
    """(x, y) of the heatmap maximum as fractions of width and height."""
    y, x = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return (float(x) + 0.5) / heatmap.shape[1], (float(y) + 0.5) / heatmap.shape[0]
