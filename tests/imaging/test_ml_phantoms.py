"""Phantom generator: masks are exact, lesions vary, datasets on disk decode back to what was generated."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from imaging.decoding import load_pixels
from imaging.ml.phantoms import generate_phantom, generate_series, write_image_dataset, write_series_dataset


@pytest.mark.parametrize("lesion", [True, False])
def test_mask_is_non_empty_iff_lesion(lesion: bool) -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        phantom = generate_phantom(rng=rng, size=64, lesion=lesion)
        assert phantom.image.shape == (64, 64) and phantom.image.dtype == np.float32
        assert phantom.mask.shape == (64, 64) and phantom.mask.dtype == bool
        assert phantom.image.min() >= 0.0 and phantom.image.max() <= 1.0
        assert phantom.mask.any() == lesion


def test_lesion_is_brighter_than_its_surroundings() -> None:
    rng = np.random.default_rng(1)
    contrasts = []
    for _ in range(60):
        phantom = generate_phantom(rng=rng, size=96, lesion=True)
        ys, xs = np.nonzero(phantom.mask)
        outer, inner = np.zeros_like(phantom.mask), np.zeros_like(phantom.mask)
        outer[max(ys.min() - 10, 0):ys.max() + 11, max(xs.min() - 10, 0):xs.max() + 11] = True
        inner[max(ys.min() - 3, 0):ys.max() + 4, max(xs.min() - 3, 0):xs.max() + 4] = True
        contrasts.append(phantom.image[phantom.mask].mean() - phantom.image[outer & ~inner].mean())
    # a lesion can sit on a dark organ next to a bright one, so only nearly all are brighter than their ring
    assert np.mean(np.asarray(contrasts) > 0.05) >= 0.9
    assert np.median(contrasts) > 0.15


def test_lesions_vary_in_size_and_position() -> None:
    rng = np.random.default_rng(2)
    masks = [generate_phantom(rng=rng, size=128, lesion=True).mask for _ in range(30)]
    areas = np.array([m.sum() for m in masks])
    centres = np.array([np.argwhere(m).mean(axis=0) for m in masks])
    assert areas.max() > 2.5 * areas.min()
    assert centres.std(axis=0).min() > 8.0  # pixels: positions spread over the body, not one spot
    assert areas.min() >= 20  # the smallest lesion is still a few pixels across at 128 px


def test_same_seed_same_phantom_different_seed_different() -> None:
    a = generate_phantom(rng=np.random.default_rng(7), size=64, lesion=True)
    b = generate_phantom(rng=np.random.default_rng(7), size=64, lesion=True)
    c = generate_phantom(rng=np.random.default_rng(8), size=64, lesion=True)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.image, c.image)


def test_series_lesion_spans_a_few_contiguous_slices() -> None:
    rng = np.random.default_rng(3)
    for _ in range(10):
        series = generate_series(rng=rng, slices=8, size=64, lesion=True)
        assert series.volume.shape == (8, 64, 64) and series.masks.shape == (8, 64, 64)
        present = np.flatnonzero(series.masks.any(axis=(1, 2)))
        assert 1 <= len(present) <= 6
        assert np.array_equal(present, np.arange(present[0], present[-1] + 1))
    empty = generate_series(rng=rng, slices=6, size=64, lesion=False)
    assert not empty.masks.any()


def test_image_dataset_on_disk(tmp_path) -> None:
    csv_path = write_image_dataset(out_dir=tmp_path / "ds", n=12, size=48, seed=0)
    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [*rows[0].keys()] == ["path", "label", "mask_path"]
    assert sorted({r["label"] for r in rows}) == ["lesion", "no_lesion"]
    assert sum(r["label"] == "lesion" for r in rows) == 6
    depths = set()
    for row in rows:
        image = load_pixels(csv_path.parent / row["path"])
        assert image.shape == (48, 48)
        from PIL import Image

        with Image.open(csv_path.parent / row["path"]) as im:
            depths.add(im.mode)
        if row["label"] == "lesion":
            mask = load_pixels(csv_path.parent / row["mask_path"]) > 0.5
            assert mask.any()
            assert image[mask].mean() > image[~mask & (image > 0.1)].mean()
        else:
            assert row["mask_path"] == ""
    assert len(depths) == 2  # both 8-bit and 16-bit PNGs


def test_series_dataset_on_disk(tmp_path) -> None:
    csv_path = write_series_dataset(out_dir=tmp_path / "ds", n=4, slices=5, size=32, seed=0)
    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    for row in rows:
        folder = csv_path.parent / row["path"]
        assert folder.is_dir() and len(sorted(folder.iterdir())) == 5
        if row["label"] == "lesion":
            masks = [load_pixels(p) > 0.5 for p in sorted((csv_path.parent / row["mask_path"]).iterdir())]
            assert len(masks) == 5 and any(m.any() for m in masks) and not all(m.any() for m in masks)
        else:
            assert row["mask_path"] == ""
