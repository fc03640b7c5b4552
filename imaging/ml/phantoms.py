"""Procedural imaging phantoms with known lesion masks: our own training and test data, no third-party images.

A phantom is a body ellipse holding organ-like blobs, smooth texture, a bias field and noise; a lesion is a
small, sharp-edged, lobulated bright spot of varied size, contrast and position whose boolean mask is exact.
Series phantoms are stacks of slices through the same 3-D scene; a lesion is an ellipsoid spanning a few
contiguous slices. Pure numpy + Pillow (no torch), so importing this module stays light.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

LESION = "lesion"
NO_LESION = "no_lesion"


@dataclass(frozen=True)
class Phantom:
    """One 2-D phantom: image float32 in [0, 1] of shape (H, W) and its lesion mask (all False without one)."""

    image: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class SeriesPhantom:
    """A stack of slices: volume float32 (D, H, W) in [0, 1] and lesion masks bool (D, H, W)."""

    volume: np.ndarray
    masks: np.ndarray


@dataclass(frozen=True)
class _Blob:
    """An ellipsoid in normalised coordinates (y, x in [-1, 1]; z in slice units)."""

    cy: float
    cx: float
    ry: float
    rx: float
    angle: float
    amplitude: float
    sharpness: float
    cz: float = 0.0
    rz: float = np.inf
    lobes: tuple[tuple[float, float], ...] = field(default=())  # (amplitude, phase) per harmonic


@dataclass(frozen=True)
class _Scene:
    body: _Blob
    body_level: float
    organs: tuple[_Blob, ...]
    lesion: _Blob | None
    texture: tuple[np.ndarray, np.ndarray]
    texture_amp: float
    bias: tuple[float, float, float]
    noise_sd: float
    gain: float


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    return np.meshgrid(coords, coords, indexing="ij")


def _radius(blob: _Blob, yy: np.ndarray, xx: np.ndarray, z: float) -> np.ndarray:
    """Normalised radius of each pixel (1.0 on the surface), shrunk by the slice's distance from the centre."""
    dy, dx = yy - blob.cy, xx - blob.cx
    cos, sin = np.cos(blob.angle), np.sin(blob.angle)
    u, v = (cos * dx + sin * dy) / blob.rx, (-sin * dx + cos * dy) / blob.ry
    r = np.sqrt(u * u + v * v)
    if blob.lobes:
        theta = np.arctan2(v, u)
        # lobulated outline: a few low-order harmonics of the radius make lesions irregular, not perfect discs
        wobble = sum(amp * np.cos((k + 2) * theta + phase) for k, (amp, phase) in enumerate(blob.lobes))
        r = r / (1.0 + wobble)
    if np.isfinite(blob.rz):
        frac = 1.0 - ((z - blob.cz) / blob.rz) ** 2
        if frac <= 0.0:
            return np.full_like(r, np.inf)
        r = r / np.sqrt(frac)
    return r


def _profile(blob: _Blob, r: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(np.clip((r - 1.0) * blob.sharpness, -50.0, 50.0)))


def _smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    fine = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(fine, dtype=np.float32)


def _make_scene(*, rng: np.random.Generator, size: int, lesion: bool, slices: int) -> _Scene:
    body = _Blob(
        cy=rng.uniform(-0.05, 0.05), cx=rng.uniform(-0.05, 0.05), ry=rng.uniform(0.7, 0.9), rx=rng.uniform(0.75, 0.92),
        angle=rng.uniform(-0.3, 0.3), amplitude=1.0, sharpness=size / 6.0,
    )
    organs = []
    for _ in range(int(rng.integers(2, 5))):
        dist, theta = rng.uniform(0.0, 0.45), rng.uniform(0, 2 * np.pi)
        organs.append(_Blob(
            cy=body.cy + dist * np.sin(theta), cx=body.cx + dist * np.cos(theta),
            ry=rng.uniform(0.15, 0.35), rx=rng.uniform(0.15, 0.35), angle=rng.uniform(0, np.pi),
            amplitude=rng.uniform(-0.12, 0.12), sharpness=rng.uniform(4.0, 10.0),
            cz=rng.uniform(0, max(slices - 1, 0)),
            rz=np.inf if slices == 1 else rng.uniform(slices * 0.6, slices * 2.0),
        ))
    lesion_blob = None
    if lesion:
        radius = rng.uniform(0.09, 0.2)  # 4.5% to 10% of the image width
        dist, theta = rng.uniform(0.0, 0.62 - radius), rng.uniform(0, 2 * np.pi)
        span = rng.uniform(1.3, max(1.4, min(3.0, slices / 2.5))) if slices > 1 else np.inf
        lesion_blob = _Blob(
            cy=body.cy + dist * np.sin(theta), cx=body.cx + dist * np.cos(theta),
            ry=radius * rng.uniform(0.75, 1.25), rx=radius * rng.uniform(0.75, 1.25), angle=rng.uniform(0, np.pi),
            amplitude=rng.uniform(0.16, 0.4), sharpness=radius * size / 2.0 * rng.uniform(0.8, 1.6),
            cz=rng.uniform(span * 0.6, slices - 1 - span * 0.6) if slices > 1 else 0.0, rz=span,
            lobes=tuple((float(rng.uniform(0, 0.12)), float(rng.uniform(0, 2 * np.pi))) for _ in range(2)),
        )
    cells = int(rng.integers(5, 10))
    return _Scene(
        body=body, body_level=rng.uniform(0.3, 0.45), organs=tuple(organs), lesion=lesion_blob,
        texture=(_smooth_field(rng, size, cells), _smooth_field(rng, size, cells)),
        texture_amp=rng.uniform(0.015, 0.04),
        bias=(rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08), rng.uniform(0, 2 * np.pi)),
        noise_sd=rng.uniform(0.01, 0.035), gain=rng.uniform(0.85, 1.15),
    )


def _render(scene: _Scene, *, rng: np.random.Generator, size: int, z: float) -> Phantom:
    yy, xx = _grid(size)
    body = _profile(scene.body, _radius(scene.body, yy, xx, z))
    image = scene.body_level * body
    for organ in scene.organs:
        image = image + organ.amplitude * _profile(organ, _radius(organ, yy, xx, z)) * body
    phase = scene.bias[2] + 0.35 * z  # texture drifts slowly through the stack, so neighbouring slices look alike
    texture = np.cos(phase) * scene.texture[0] + np.sin(phase) * scene.texture[1]
    image = image + scene.texture_amp * texture * body
    mask = np.zeros((size, size), dtype=bool)
    if scene.lesion is not None:
        r = _radius(scene.lesion, yy, xx, z)
        mask = r <= 1.0
        image = image + scene.lesion.amplitude * _profile(scene.lesion, r) * body
    image = image * (1.0 + scene.bias[0] * yy + scene.bias[1] * xx) * scene.gain
    image = image + rng.normal(0.0, scene.noise_sd, size=image.shape)
    return Phantom(image=np.clip(image, 0.0, 1.0).astype(np.float32), mask=mask)


def generate_phantom(*, rng: np.random.Generator, size: int = 128, lesion: bool) -> Phantom:
    """Generate one 2-D phantom of shape (size, size); the mask is non-empty iff `lesion`."""
    scene = _make_scene(rng=rng, size=size, lesion=lesion, slices=1)
    return _render(scene, rng=rng, size=size, z=0.0)


def generate_series(*, rng: np.random.Generator, slices: int = 8, size: int = 128, lesion: bool) -> SeriesPhantom:
    """Generate a stack of `slices` slices; with `lesion`, a lesion appears in a few contiguous slices only."""
    if slices < 3:
        raise ValueError("a series phantom needs at least 3 slices")
    scene = _make_scene(rng=rng, size=size, lesion=lesion, slices=slices)
    rendered = [_render(scene, rng=rng, size=size, z=float(k)) for k in range(slices)]
    if lesion and not any(p.mask.any() for p in rendered):
        # a very thin lesion can fall between slices; regenerate rather than return a mislabelled series
        return generate_series(rng=rng, slices=slices, size=size, lesion=lesion)
    return SeriesPhantom(volume=np.stack([p.image for p in rendered]), masks=np.stack([p.mask for p in rendered]))


def _write_gray(path: Path, image: np.ndarray, *, sixteen_bit: bool) -> None:
    if sixteen_bit:
        Image.fromarray(np.round(image * 65535.0).astype(np.uint16)).save(path)
    else:
        Image.fromarray(np.round(image * 255.0).astype(np.uint8)).save(path)


def _write_mask(path: Path, mask: np.ndarray) -> None:
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


def _balanced_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    labels = np.arange(n) % 2 == 0
    rng.shuffle(labels)
    return labels


def write_image_dataset(*, out_dir: str | Path, n: int, size: int = 128, seed: int = 0) -> Path:
    """Write `n` phantom PNGs (half with a lesion; 8- and 16-bit mixed), their masks and `labels.csv`.

    The CSV has columns `path,label,mask_path` with paths relative to the CSV; `mask_path` is empty for
    `no_lesion` rows. Returns the CSV path.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i, has_lesion in enumerate(_balanced_labels(rng, n)):
        phantom = generate_phantom(rng=rng, size=size, lesion=bool(has_lesion))
        image_rel = f"images/{i:05d}.png"
        _write_gray(out / image_rel, phantom.image, sixteen_bit=bool(rng.integers(0, 2)))
        mask_rel = ""
        if has_lesion:
            mask_rel = f"masks/{i:05d}.png"
            _write_mask(out / mask_rel, phantom.mask)
        rows.append((image_rel, LESION if has_lesion else NO_LESION, mask_rel))
    return _write_csv(out / "labels.csv", rows)


def write_series_dataset(*, out_dir: str | Path, n: int, slices: int = 8, size: int = 128, seed: int = 0) -> Path:
    """Write `n` series phantoms as directories of slice PNGs (sorted by file name) plus `labels.csv`.

    Each row's `path` is a directory of slices and `mask_path` a directory of slice masks (empty for
    `no_lesion`). Returns the CSV path.
    """
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    rows = []
    for i, has_lesion in enumerate(_balanced_labels(rng, n)):
        series = generate_series(rng=rng, slices=slices, size=size, lesion=bool(has_lesion))
        series_rel = f"series/{i:05d}"
        (out / series_rel).mkdir(parents=True, exist_ok=True)
        sixteen_bit = bool(rng.integers(0, 2))
        for k, image in enumerate(series.volume):
            _write_gray(out / series_rel / f"slice_{k:03d}.png", image, sixteen_bit=sixteen_bit)
        mask_rel = ""
        if has_lesion:
            mask_rel = f"masks/{i:05d}"
            (out / mask_rel).mkdir(parents=True, exist_ok=True)
            for k, mask in enumerate(series.masks):
                _write_mask(out / mask_rel / f"slice_{k:03d}.png", mask)
        rows.append((series_rel, LESION if has_lesion else NO_LESION, mask_rel))
    return _write_csv(out / "labels.csv", rows)


def _write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "mask_path"])
        writer.writerows(rows)
    return path
