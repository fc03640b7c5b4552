"""Where imaging files live in the default storage, and how arrays become the PNGs and raw files we store.

Every path starts with the organisation id, so an operator can export or purge one tenant's files. Files are never
served by URL: views read them through the storage after checking the organisation.
"""

from __future__ import annotations

import struct
import uuid
import zlib

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
    """uint8/uint16 (H, W), uint8 (H, W, 3|4) -> PNG bytes (colour uint16 is reduced to 8 bits).

    Written here with numpy and zlib rather than Pillow: previews, overlays and JPEG originals are encoded on the hot
    path, and Pillow tries all five PNG filters on every row, which doubled the cost (measured on 512x512 phantoms:
    8-bit 8.0 -> 3.4 ms, 16-bit 17.4 -> 9.6 ms) for files within 1-3% of the size. Every row uses the 'Sub' filter.
    Grayscale is deflated with run-length matching only (Z_RLE): on noisy, smooth and flat grayscale it was both
    faster (3.1 -> 1.6 ms for a noisy 512x512 preview) and 6-33% smaller than the default; colour overlays keep
    the default strategy, which made them 30% smaller.
    """
    if array.dtype == np.uint16 and array.ndim == 3:
        array = (array >> 8).astype(np.uint8)
    if array.dtype not in (np.uint8, np.uint16) or array.ndim not in (2, 3) or (
            array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"cannot encode a {array.dtype} array of shape {array.shape} as PNG")
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    depth = 16 if array.dtype == np.uint16 else 8
    rows = np.ascontiguousarray(array, dtype=">u2" if depth == 16 else np.uint8).view(np.uint8).reshape(height, -1)
    step = channels * depth // 8  # bytes per pixel: 'Sub' subtracts the same byte of the pixel to the left
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = 1
    filtered[:, 1:step + 1] = rows[:, :step]
    np.subtract(rows[:, step:], rows[:, :-step], out=filtered[:, step + 1:])
    color_type = {1: 0, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    deflate = zlib.compressobj(compress_level, zlib.DEFLATED, 15, 8, zlib.Z_RLE if channels == 1 else
                               zlib.Z_DEFAULT_STRATEGY)
    return (PNG_SIGNATURE + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", deflate.compress(filtered.tobytes()) + deflate.flush()) + _png_chunk(b"IEND", b""))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


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
