"""Labelled sentences on disk: the `text,label` CSV format shared by the corpus, training and evaluation.

Pure Python (no torch) so the web process can validate an uploaded training file before queueing work.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Fixed label order: class index i of every sentiment model means LABELS[i].
LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
CSV_COLUMNS: tuple[str, str] = ("text", "label")
# Enough problems to fix a file in one pass without flooding the message.
_MAX_REPORTED = 10


@dataclass(frozen=True, slots=True)
class LabelledText:
    """One sentence with its sentiment label (one of LABELS)."""

    text: str
    label: str


class DatasetError(ValueError):
    """A labelled CSV cannot be used; the message says what is wrong and how to fix it."""


def label_index(label: str) -> int:
    """Class index of `label` in LABELS; raises DatasetError for an unknown label."""
    try:
        return LABELS.index(label)
    except ValueError:
        raise DatasetError(f"unknown label {label!r}; expected one of {', '.join(LABELS)}.") from None


def _join_limited(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_REPORTED])
    more = len(items) - _MAX_REPORTED
    return f"{shown} (and {more} more)" if more > 0 else shown


def read_labelled_csv(*, path: Path | str) -> list[LabelledText]:
    """Read and validate a `text,label` CSV (UTF-8, header row, extra columns ignored).

    Labels are matched case-insensitively after trimming. Every problem in the file is collected and reported in
    one DatasetError: missing columns, unknown labels (with their line numbers, the header being line 1) and
    rows whose text is empty.
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise DatasetError(f"{path}: file not found; pass the path of a CSV with columns text,label.")
    rows: list[LabelledText] = []
    empty_lines: list[str] = []
    bad_labels: list[str] = []
    # utf-8-sig: spreadsheets often prepend a byte-order mark that would otherwise corrupt the first header.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [column.strip().lower() for column in (reader.fieldnames or [])]
        missing = [column for column in CSV_COLUMNS if column not in header]
        if missing:
            found = ", ".join(reader.fieldnames or []) or "nothing"
            raise DatasetError(
                f"{name}: missing column(s) {', '.join(missing)}; the first row must be a header with columns "
                f"text,label (found {found})."
            )
        reader.fieldnames = header
        for record in reader:
            line = reader.line_num
            text = (record.get("text") or "").strip()
            label = (record.get("label") or "").strip().lower()
            if not text:
                empty_lines.append(str(line))
                continue
            if label not in LABELS:
                bad_labels.append(f"line {line}: {label!r}")
                continue
            rows.append(LabelledText(text=text, label=label))
    problems: list[str] = []
    if bad_labels:
        problems.append(f"unknown label at {_join_limited(bad_labels)}; expected one of {', '.join(LABELS)}")
    if empty_lines:
        problems.append(f"empty text at line(s) {_join_limited(empty_lines)}; fill in the text or remove the rows")
    if problems:
        raise DatasetError(f"{name}: " + "; ".join(problems) + ".")
    if not rows:
        raise DatasetError(f"{name}: no data rows; add rows of text,label below the header.")
    return rows


def write_labelled_csv(*, path: Path | str, rows: Iterable[LabelledText]) -> Path:
    """Write rows as a `text,label` CSV (UTF-8, minimal quoting) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow((row.text, row.label))
    return path
