"""CSV upload: encoding detection, delimiter sniffing, column mapping, per-row errors, good rows imported."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.exceptions import ServiceError
from sentiment.csv_import import CsvRejected, csv_import_create, csv_import_run, guess_mapping, parse_date
from sentiment.models import CsvImport, CsvImportStatus, Document

pytestmark = pytest.mark.django_db


def _upload(org, name, data):
    return csv_import_create(organization=org, upload=SimpleUploadedFile(name, data), created_by=None)


def test_cp1252_semicolon_file_is_detected_mapped_and_imported_with_row_errors(org, other_org):
    content = ("Überschrift;Datum;Quelle;Link;Body\n"
               "Société Générale: Gewinn steigt;2024-03-01;Börsen-Zeitung;https://x.example/1;Société Générale "
               "meldet höhere Gewinne und eine Dividende über den Erwartungen\n"
               ";2024-03-02;Wire;;\n"
               "Contoso warns;yesterday-ish;Wire;;Contoso cuts its outlook for the year\n"
               "Fabrikam grows;02/03/2024;Wire;ftp://bad;Fabrikam sales grow\n"
               "Northwind;2024-03-04T10:15:00Z;Wire;https://x.example/4;Northwind raises prices\n")
    upload = _upload(org, "news.csv", content.encode("cp1252"))
    assert upload.encoding.lower().replace("_", "-") in ("cp1252", "windows-1252", "iso-8859-1", "latin-1",
                                                         "iso8859-1", "latin1") or upload.encoding.startswith("cp")
    assert upload.delimiter == ";" and upload.headers[0] == "Überschrift"
    assert upload.mapping == {"text": "Body", "title": "Überschrift", "date": "Datum", "source": "Quelle",
                              "url": "Link"}
    assert upload.preview[0][2] == "Börsen-Zeitung"
    mapping = {"text": "Body", "title": "Überschrift", "date": "Datum", "source": "Quelle", "url": "Link"}
    done = csv_import_run(csv_import=upload, mapping=mapping, created_by=None)
    assert done.status == CsvImportStatus.IMPORTED and done.rows_total == 5 and done.rows_imported == 2
    rows = {e["row"]: e["message"] for e in done.row_errors}
    assert set(rows) == {3, 4, 5}
    assert "empty" in rows[3] and "not understood" in rows[4] and "http" in rows[5]
    docs = list(Document.objects.filter(organization=org).order_by("published_at"))
    assert docs[0].title == "Société Générale: Gewinn steigt" and docs[0].publisher == "Börsen-Zeitung"
    assert docs[0].published_at == datetime(2024, 3, 1, tzinfo=UTC) and docs[0].language == "de"
    assert docs[1].published_at == datetime(2024, 3, 4, 10, 15, tzinfo=UTC)
    assert not Document.objects.filter(organization=other_org).exists()
    with pytest.raises(ServiceError, match="already imported"):
        csv_import_run(csv_import=done, mapping=mapping, created_by=None)


def test_utf8_bom_and_duplicates_on_reimport(org):
    data = "\ufefftext,date\nContoso profit rises,2024-01-05\nFabrikam recalls trucks,2024-01-06\n".encode()
    first = csv_import_run(csv_import=_upload(org, "a.csv", data), mapping={"text": "text", "date": "date"},
                           created_by=None)
    assert first.rows_imported == 2
    second = csv_import_run(csv_import=_upload(org, "a.csv", data), mapping={"text": "text"}, created_by=None)
    assert second.rows_imported == 0 and second.rows_duplicate == 2 and second.batch is None


def test_reimport_after_failed_scoring_imports_the_failed_rows_again(org, other_org):
    from sentiment.services import batch_fail

    data = b"text\nContoso profit rises\nFabrikam recalls trucks\n"
    first = csv_import_run(csv_import=_upload(org, "a.csv", data), mapping={"text": "text"}, created_by=None)
    batch_fail(batch_id=first.batch_id, message="No sentiment model is installed.")
    theirs = csv_import_run(csv_import=_upload(other_org, "a.csv", data), mapping={"text": "text"}, created_by=None)
    data += b"Northwind wins a contract\n\n,\n"
    second = csv_import_run(csv_import=_upload(org, "a.csv", data + b"Contoso profit rises\n"),
                            mapping={"text": "text"}, created_by=None)
    assert second.rows_total == 4 and second.rows_imported == 3 and second.rows_duplicate == 1
    assert second.rows_imported + second.rows_duplicate + len(second.row_errors) == second.rows_total
    assert second.batch is not None and second.batch.total == 3
    assert set(Document.objects.filter(organization=org).values_list("batch", flat=True)) == {second.batch_id}
    assert Document.objects.filter(organization=other_org, batch=theirs.batch).count() == 2


@pytest.mark.parametrize("name,data,message", [
    ("empty.csv", b"  \n", "empty"),
    ("sheet.csv", b"PK\x03\x04\x00\x00binary", "not a text file"),
    ("dup.csv", b"text,text\na,b\n", "repeated column"),
])
def test_unreadable_files_say_what_to_do(org, name, data, message):
    with pytest.raises(CsvRejected, match=message):
        _upload(org, name, data)
    assert not CsvImport.objects.filter(organization=org).exists()


def test_size_limit_and_mapping_checks(org, settings):
    settings.SENTIMENT_CSV_MAX_BYTES = 10
    with pytest.raises(CsvRejected, match="limit"):
        _upload(org, "big.csv", b"text\n" + b"a" * 100)
    settings.SENTIMENT_CSV_MAX_BYTES = 10_000
    upload = _upload(org, "ok.csv", b"headline,when\nContoso rises,2024-01-01\n")
    with pytest.raises(ServiceError, match="not in the file"):
        csv_import_run(csv_import=upload, mapping={"text": "body"}, created_by=None)
    with pytest.raises(ServiceError, match="which column holds the text"):
        csv_import_run(csv_import=upload, mapping={"date": "when"}, created_by=None)


def test_row_limit_imports_the_first_rows_and_says_so(org, settings):
    settings.SENTIMENT_CSV_MAX_ROWS = 3
    data = "text\n" + "".join(f"Headline number {i}\n" for i in range(5))
    done = csv_import_run(csv_import=_upload(org, "many.csv", data.encode()), mapping={"text": "text"},
                          created_by=None)
    assert done.rows_imported == 3 and "more than 3 rows" in done.row_errors[0]["message"]


def test_guess_mapping_and_dates():
    assert guess_mapping(["Title", "Published", "Link", "Publisher", "Content"]) == {
        "text": "Content", "title": "Title", "date": "Published", "source": "Publisher", "url": "Link"}
    assert guess_mapping(["a", "b"]) == {"text": "a"}
    assert parse_date("Tue, 05 Mar 2024 10:00:00 GMT") == datetime(2024, 3, 5, 10, tzinfo=UTC)
    assert parse_date("05/03/2024") == datetime(2024, 3, 5, tzinfo=UTC)
