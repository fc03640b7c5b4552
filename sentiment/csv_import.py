"""CSV upload in two steps: upload (encoding detection, delimiter sniffing, columns and a preview, a guessed
mapping), then import with the chosen mapping, listing per-row errors while every good row is imported."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from charset_normalizer import from_bytes
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django_scopes import scope

from accounts.exceptions import ServiceError
from accounts.models import Organization, User
from accounts.services import audit_record
from sentiment import services
from sentiment.models import CsvImport, CsvImportStatus, SourceKind

FIELDS = ("text", "title", "date", "source", "url")
FIELD_LABELS = {"text": "Text (required)", "title": "Title", "date": "Date", "source": "Source / publisher",
                "url": "URL"}
_GUESSES = {
    "text": ("text", "body", "content", "sentence", "headline", "message", "article", "summary", "description",
             "inhalt", "texte"),
    "title": ("title", "headline", "subject", "titel", "überschrift", "titre"),
    "date": ("date", "published", "published_at", "datetime", "time", "timestamp", "pubdate", "created_at", "datum"),
    "source": ("source", "publisher", "outlet", "site", "feed", "quelle"),
    "url": ("url", "link", "href", "permalink"),
}
_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y", "%d/%m/%Y %H:%M", "%d.%m.%Y",
                 "%Y/%m/%d", "%d %b %Y", "%b %d, %Y", "%B %d, %Y")
PREVIEW_ROWS = 5
MAX_ERRORS_KEPT = 500


class CsvRejected(ServiceError):
    code = "csv_rejected"


def detect_encoding(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(data[:200_000]).best()
    return best.encoding if best is not None else "cp1252"


def _decode(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return data.decode("cp1252", errors="replace")


def _sniff_delimiter(text: str) -> str:
    try:
        return csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def guess_mapping(headers: list[str]) -> dict[str, str]:
    lowered = {h.strip().lower(): h for h in headers}
    mapping: dict[str, str] = {}
    for field in FIELDS:
        for candidate in _GUESSES[field]:
            header = lowered.get(candidate)
            if header and header not in mapping.values():
                mapping[field] = header
                break
    if "text" not in mapping and headers:
        mapping["text"] = headers[0]
    return mapping


def _read_file(csv_import: CsvImport) -> str:
    with default_storage.open(csv_import.file, "rb") as handle:
        return _decode(handle.read(), csv_import.encoding)


@transaction.atomic
def csv_import_create(*, organization: Organization, upload, created_by: User | None) -> CsvImport:
    """Store an uploaded CSV and read its columns; the import itself waits for the column mapping."""
    name = getattr(upload, "name", "upload.csv") or "upload.csv"
    if upload.size > settings.SENTIMENT_CSV_MAX_BYTES:
        raise CsvRejected(f"{name} is {upload.size / 1e6:.1f} MB; the limit is "
                          f"{settings.SENTIMENT_CSV_MAX_BYTES / 1e6:.0f} MB. Split the file and upload the parts.")
    data = upload.read()
    if not data.strip():
        raise CsvRejected(f"{name} is empty; export the CSV again with a header row and one text per row.")
    if b"\x00" in data[:4096]:
        raise CsvRejected(f"{name} is not a text file (it looks like a spreadsheet or binary); save it as CSV "
                          "(comma-separated values) and upload that.")
    encoding = detect_encoding(data)
    text = _decode(data, encoding)
    delimiter = _sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        headers = [h.strip() for h in next(reader)]
        preview = [row for _, row in zip(range(PREVIEW_ROWS), reader, strict=False)]
    except (StopIteration, csv.Error) as exc:
        raise CsvRejected(f"{name} could not be read as CSV ({exc}); check that it has a header row.") from None
    if not any(headers):
        raise CsvRejected(f"{name} has no header row; add one naming the columns (e.g. text,date,source,url,title).")
    if len(set(headers)) != len(headers):
        raise CsvRejected(f"{name} has repeated column names; give every column a distinct name.")
    path = default_storage.save(f"sentiment/csv/{organization.pk}/{uuid.uuid4().hex}.csv", ContentFile(data))
    with scope(organization=organization):
        csv_import = CsvImport.objects.create(
            organization=organization, original_name=name[:255], file=path, size_bytes=len(data), encoding=encoding,
            delimiter=delimiter, headers=headers, preview=preview, mapping=guess_mapping(headers),
            created_by=created_by)
    return csv_import


def parse_date(value: str) -> datetime:
    value = value.strip()
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        moment = None
        for fmt in _DATE_FORMATS:
            try:
                moment = datetime.strptime(value, fmt)  # noqa: DTZ007 - naive dates are taken as UTC below
                break
            except ValueError:
                continue
        if moment is None:
            try:
                moment = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                raise ValueError(f"date '{value[:40]}' is not understood; use ISO dates such as 2024-03-01 or "
                                 "2024-03-01T14:30:00Z.") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def csv_import_run(*, csv_import: CsvImport, mapping: dict[str, str], created_by: User | None,
                   explain: bool | None = None) -> CsvImport:
    """Import every good row with `mapping` (field -> column); rows with problems are listed, not fatal."""
    if csv_import.status != CsvImportStatus.MAPPING:
        raise ServiceError("This file was already imported; upload it again to import it once more.")
    mapping = {f: c for f, c in mapping.items() if f in FIELDS and c}
    unknown = [c for c in mapping.values() if c not in csv_import.headers]
    if unknown:
        raise ServiceError(f"Column(s) {', '.join(unknown)} are not in the file; pick columns from the list.")
    if "text" not in mapping:
        raise ServiceError("Choose which column holds the text; it is the one thing every row needs.")
    index = {h: i for i, h in enumerate(csv_import.headers)}
    reader = csv.reader(io.StringIO(_read_file(csv_import)), delimiter=csv_import.delimiter)
    next(reader, None)
    items: list[services.IngestItem] = []
    item_rows: list[int] = []
    errors: list[dict] = []
    rows_total = 0

    def cell(row: list[str], field: str) -> str:
        column = mapping.get(field)
        position = index[column] if column else None
        return row[position].strip() if position is not None and position < len(row) else ""

    for line_no, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue
        rows_total += 1
        if rows_total > settings.SENTIMENT_CSV_MAX_ROWS:
            errors.append({"row": line_no, "message": f"the file has more than {settings.SENTIMENT_CSV_MAX_ROWS:,} "
                           "rows; the rest was not imported. Split the file and upload the remainder."})
            rows_total -= 1
            break
        text = cell(row, "text")
        if not text:
            errors.append({"row": line_no, "message": f"the text column '{mapping['text']}' is empty."})
            continue
        published = None
        if cell(row, "date"):
            try:
                published = parse_date(cell(row, "date"))
            except ValueError as exc:
                errors.append({"row": line_no, "message": str(exc)})
                continue
        url = cell(row, "url")
        if url and not url.lower().startswith(("http://", "https://")):
            errors.append({"row": line_no, "message": f"URL '{url[:60]}' does not start with http:// or https://."})
            continue
        items.append(services.IngestItem(text=text, title=cell(row, "title"), url=url, publisher=cell(row, "source"),
                                         published_at=published))
        item_rows.append(line_no)
    source = services.source_builtin(organization=csv_import.organization, kind=SourceKind.CSV)
    result = services.documents_ingest(organization=csv_import.organization, source=source, items=items,
                                       created_by=created_by, explain=explain)
    for item_result in result.results:
        if item_result.status == "rejected":
            errors.append({"row": item_rows[item_result.index], "message": item_result.message})
    errors.sort(key=lambda e: e["row"])
    with scope(organization=csv_import.organization):
        csv_import.mapping = mapping
        csv_import.status = CsvImportStatus.IMPORTED
        csv_import.rows_total = rows_total
        csv_import.rows_imported = result.created
        csv_import.rows_duplicate = result.duplicates
        csv_import.row_errors = errors[:MAX_ERRORS_KEPT]
        csv_import.batch = result.batch
        csv_import.save()
    audit_record(organization=csv_import.organization, actor=created_by, verb="sentiment.csv.import",
                 target=csv_import, details={"imported": result.created, "requeued": result.requeued,
                                             "duplicates": result.duplicates, "errors": len(errors)})
    return csv_import
