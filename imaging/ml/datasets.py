"""Labelled CSV datasets (`path,label[,mask_path]`, paths relative to the CSV): validation and pixel loading."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PixelLoader = Callable[[Path], np.ndarray]


class DatasetError(ValueError):
    """A training or evaluation CSV that cannot be used; the message names the file, line and fix."""


@dataclass(frozen=True)
class DatasetRow:
    """One CSV row; `line` is the 1-based line number in the file (the header is line 1)."""

    line: int
    path: Path
    label: str
    mask_path: Path | None


@dataclass(frozen=True)
class LabelledDataset:
    """Validated rows of one CSV."""

    csv_path: Path
    task: str
    rows: list[DatasetRow]

    @property
    def labels(self) -> list[str]:
        return sorted({row.label for row in self.rows})

    @property
    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(row.label for row in self.rows).items()))


def slice_files(directory: Path) -> list[Path]:
    """Slice files of a series directory, sorted by file name (hidden files ignored)."""
    return sorted((p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")), key=lambda p: p.name)


def _check_exists(csv_name: str, line: int, path: Path, raw: str, *, task: str, what: str) -> None:
    if task == "series":
        if not path.is_dir():
            raise DatasetError(f"{csv_name} line {line}: {what} folder not found: {raw} (relative to the CSV's folder)")
        if not slice_files(path):
            raise DatasetError(f"{csv_name} line {line}: {what} folder {raw} holds no slice files")
    elif not path.is_file():
        raise DatasetError(f"{csv_name} line {line}: {what} file not found: {raw} (relative to the CSV's folder)")


def read_dataset_csv(*, csv_path: str | Path, task: str) -> LabelledDataset:
    """Read and validate a `path,label[,mask_path]` CSV; extra columns are ignored.

    For task 'series' each path (and mask path) is a folder of slices. Raises DatasetError with the line number
    of the first bad row.
    """
    if task not in ("image", "series"):
        raise DatasetError(f"unknown task '{task}'; expected 'image' or 'series'")
    csv_file = Path(csv_path)
    if not csv_file.is_file():
        raise DatasetError(f"{csv_file}: CSV file not found")
    name, base = csv_file.name, csv_file.parent
    with csv_file.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [column for column in ("path", "label") if column not in header]
        if missing:
            raise DatasetError(f"{name}: missing column(s) {', '.join(missing)}; the header must include 'path,label'")
        reader.fieldnames = header
        rows = []
        for line, record in enumerate(reader, start=2):
            raw_path, label = (record.get("path") or "").strip(), (record.get("label") or "").strip()
            if not raw_path and not label and not any((v or "").strip() for v in record.values()):
                continue  # blank line
            if not raw_path:
                raise DatasetError(f"{name} line {line}: empty path")
            if not label:
                raise DatasetError(f"{name} line {line}: empty label for {raw_path}")
            path = base / raw_path
            _check_exists(name, line, path, raw_path, task=task, what="image" if task == "image" else "series")
            raw_mask = (record.get("mask_path") or "").strip()
            mask_path = base / raw_mask if raw_mask else None
            if mask_path is not None:
                _check_exists(name, line, mask_path, raw_mask, task=task, what="mask")
            rows.append(DatasetRow(line=line, path=path, label=label, mask_path=mask_path))
    if not rows:
        raise DatasetError(f"{name}: no data rows")
    return LabelledDataset(csv_path=csv_file, task=task, rows=rows)


def check_training_pair(*, train: LabelledDataset, evaluation: LabelledDataset) -> list[str]:
    """Validate that training has at least 2 classes and evaluation only uses those; returns the sorted labels."""
    labels = train.labels
    if len(labels) < 2:
        raise DatasetError(
            f"{train.csv_path.name}: needs at least 2 classes to train a classifier, found {len(labels)} "
            f"({', '.join(labels)})"
        )
    check_known_labels(dataset=evaluation, labels=labels)
    return labels


def check_known_labels(*, dataset: LabelledDataset, labels: list[str]) -> None:
    """Raise DatasetError at the first row whose label the model does not know."""
    for row in dataset.rows:
        if row.label not in labels:
            raise DatasetError(
                f"{dataset.csv_path.name} line {row.line}: label '{row.label}' is not one the model was trained on "
                f"({', '.join(labels)})"
            )


def _decode(load_pixels: PixelLoader, dataset: LabelledDataset, row: DatasetRow, path: Path) -> np.ndarray:
    try:
        return load_pixels(path)
    except Exception as exc:  # any decoder failure becomes a row-numbered dataset error
        raise DatasetError(f"{dataset.csv_path.name} line {row.line}: cannot decode {path.name}: {exc}") from exc


def load_row_pixels(*, dataset: LabelledDataset, row: DatasetRow, load_pixels: PixelLoader) -> list[np.ndarray]:
    """Decoded pixels of a row: one array for an image, one per slice (sorted by file name) for a series."""
    files = slice_files(row.path) if dataset.task == "series" else [row.path]
    return [_decode(load_pixels, dataset, row, path) for path in files]


def load_row_masks(*, dataset: LabelledDataset, row: DatasetRow, load_pixels: PixelLoader) -> list[np.ndarray] | None:
    """Boolean masks of a row (one per slice for a series), or None when the row has no mask."""
    if row.mask_path is None:
        return None
    files = slice_files(row.mask_path) if dataset.task == "series" else [row.mask_path]
    masks = []
    for path in files:
        pixels = _decode(load_pixels, dataset, row, path)
        masks.append((pixels.mean(axis=2) if pixels.ndim == 3 else pixels) > 0.5)
    return masks
