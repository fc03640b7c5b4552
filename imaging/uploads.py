"""Upload services: every uploaded file is sniffed, limited, decoded, de-identified (DICOM) and stored on its own.

One bad file rejects that file only. Files dropped together share an UploadSession: each file is added by its own
request (per-file progress and retry in the browser), then `upload_session_finish` reserves quota and starts one
analysis per study. The API does all three steps in one request (`study_upload`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np
from django.conf import settings
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.exceptions import ServiceError
from accounts.models import Organization, User
from accounts.services import audit_record
from imaging import storage
from imaging.archives import ArchiveError, ArchiveLimits, ArchiveMember, iter_archive
from imaging.decoding import (
    DecodedImage,
    DecodeLimits,
    DicomInfo,
    ImageDecodeError,
    decode_frames,
    display_name,
    png_without_metadata,
    sniff,
)
from imaging.deidentify import deidentify_dicom
from imaging.models import AnalysisJob, DeidentificationKey, Image, Series, Study, UploadSession

logger = logging.getLogger(__name__)

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass
class FileResult:
    """What happened to one uploaded file (or one member of an uploaded zip)."""

    name: str
    status: str  # accepted | rejected | duplicate
    message: str = ""
    code: str = ""
    study_id: int | None = None
    image_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class FinishResult:
    jobs: list[AnalysisJob]
    errors: list[ServiceError]


@dataclass
class UploadResult:
    session: UploadSession
    files: list[FileResult]
    jobs: list[AnalysisJob]
    errors: list[ServiceError]


@dataclass
class _Frame:
    """What the rows need of one decoded frame (the pixel arrays are dropped once the files are written)."""

    kind: str
    width: int
    height: int
    channels: int
    bits_stored: int
    photometric: str
    window: tuple[float, float] | None
    value_range: tuple[float, float]
    frame_index: int
    dicom: DicomInfo | None

    @classmethod
    def of(cls, frame: DecodedImage) -> _Frame:
        return cls(kind=frame.kind, width=frame.width, height=frame.height, channels=frame.channels,
                   bits_stored=frame.bits_stored, photometric=frame.photometric, window=frame.window,
                   value_range=frame.value_range, frame_index=frame.frame_index, dicom=frame.dicom)


@dataclass
class _Prepared:
    """A decoded file whose bytes are already in storage, ready to become rows."""

    name: str
    kind: str
    frames: list[_Frame]
    paths: list[dict[str, str]]
    sha256: str
    size: int

    @property
    def written(self) -> list[str]:
        return sorted({p for entry in self.paths for p in entry.values() if p})


def decode_limits() -> DecodeLimits:
    return DecodeLimits(max_bytes=settings.IMAGING_MAX_FILE_BYTES, max_pixels=settings.IMAGING_MAX_PIXELS,
                        max_frames=settings.IMAGING_MAX_FRAMES,
                        max_total_pixels=max(settings.IMAGING_MAX_PIXELS * 2, 100_000_000))


def archive_limits() -> ArchiveLimits:
    return ArchiveLimits(max_archive_bytes=settings.IMAGING_MAX_ARCHIVE_BYTES,
                         max_members=settings.IMAGING_MAX_ARCHIVE_MEMBERS,
                         max_member_bytes=settings.IMAGING_MAX_FILE_BYTES)


def deidentification_salt(*, organization: Organization) -> str:
    """The organisation's de-identification secret, created on first use."""
    key = DeidentificationKey.objects.filter(organization=organization).first()
    if key is not None:
        return key.salt
    try:
        with transaction.atomic():
            key = DeidentificationKey.objects.create(organization=organization, salt=secrets.token_hex(32))
    except IntegrityError:  # a parallel upload created it first
        key = DeidentificationKey.objects.get(organization=organization)
    return key.salt


@transaction.atomic
def upload_session_create(*, organization: Organization, created_by: User | None) -> UploadSession:
    return UploadSession.objects.create(organization=organization, created_by=created_by)


def oversize_result(*, name: str, size: int | None) -> FileResult | None:
    """Refuse a request part before reading it when it is larger than any accepted file or archive."""
    limit = max(settings.IMAGING_MAX_FILE_BYTES, settings.IMAGING_MAX_ARCHIVE_BYTES)
    if size is None or size <= limit:
        return None
    return FileResult(name=display_name(name), status="rejected", code="too_large",
                      message=f"{display_name(name)}: file is {size / 1e6:.0f} MB, above the {limit / 1e6:.0f} MB "
                              "limit; upload a smaller export or split the series.")


class UploadTooLarge(ServiceError):
    code = "too_large"
    status = 413


def upload_request_limit() -> int:
    """The most file bytes one upload request may carry: the largest accepted file or archive. The whole request is
    held in memory (see `InMemoryUploadHandler`), so this also bounds the memory one upload takes."""
    return max(settings.IMAGING_MAX_FILE_BYTES, settings.IMAGING_MAX_ARCHIVE_BYTES)


_MULTIPART_OVERHEAD = 1024 * 1024  # part headers, boundaries and small form fields around the file bytes


def upload_request_check(*, content_length: int | str | None) -> None:
    """Refuse an upload request by its declared length, before any of the body is read."""
    try:
        length = int(content_length or 0)
    except (TypeError, ValueError):
        length = 0
    if length > upload_request_limit() + _MULTIPART_OVERHEAD:
        raise _too_large(size=length)


def _too_large(*, size: int | None) -> UploadTooLarge:
    limit = upload_request_limit()
    what = f"is {size / 1e6:.0f} MB, above" if size else "is above"
    return UploadTooLarge(f"The upload {what} the {limit / 1e6:.0f} MB limit per request; upload a smaller export, "
                          "split the series into several uploads, or send fewer files at once.",
                          details={"limit_bytes": limit})


class InMemoryUploadHandler(MemoryFileUploadHandler):
    """Keeps every uploaded file in memory, whatever its size, so no raw (not yet de-identified) DICOM reaches disk:
    Django's default chain writes files over FILE_UPLOAD_MAX_MEMORY_SIZE to a temporary file. The bytes are counted
    as they arrive (Content-Length may be missing or wrong) and refused past `upload_request_limit`."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.activated = True
        self.received = 0
        upload_request_check(content_length=content_length)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > upload_request_limit():
            raise _too_large(size=None)
        return super().receive_data_chunk(raw_data, start)


def in_memory_upload_handlers(request) -> list[InMemoryUploadHandler]:
    """Set as `request.upload_handlers` before anything reads request.POST/FILES (or DRF's request.data)."""
    return [InMemoryUploadHandler(request)]


def upload_file_add(*, session: UploadSession, name: str, data: bytes) -> list[FileResult]:
    """Check and store one uploaded file (a zip gives one result per member). Never raises for a bad file."""
    return _add_items(session=session, items=_expand(name=name, data=data))


def _expand(*, name: str, data: bytes) -> list[tuple[str, str, bytes] | FileResult]:
    """(label, name, bytes) per image file to check; a zip becomes its members, refused members become results."""
    if not (data and data.startswith(_ZIP_MAGICS)):
        return [(display_name(name), name, data)]
    archive = display_name(name)
    items: list[tuple[str, str, bytes] | FileResult] = []
    try:
        for item in iter_archive(data=data, filename=name, limits=archive_limits()):
            if isinstance(item, ArchiveMember):
                items.append((f"{archive}/{item.name}", item.name, item.data))
            else:
                items.append(FileResult(name=f"{archive}/{item.name}", status="rejected", message=item.message,
                                        code=item.code))
    except ArchiveError as exc:  # the archive as a whole is unusable: none of it is stored
        return [FileResult(name=archive, status="rejected", message=str(exc), code=exc.code)]
    if not items:
        return [FileResult(name=archive, status="rejected", code="empty_archive",
                           message=f"{archive}: the zip holds no image files; zip the DICOM or image files "
                                   "themselves.")]
    return items


def _add_items(*, session: UploadSession, items: list, threads: int = 1) -> list[FileResult]:
    """Decode, de-identify and write files (in parallel: it is C code that releases the GIL), then create the rows
    in this thread, in upload order."""
    salt = deidentification_salt(organization=session.organization)

    def prepare(item):
        if isinstance(item, FileResult):
            return item
        label, name, data = item
        try:
            return label, _prepare(organization_id=session.organization_id, name=name, data=data, salt=salt)
        except ImageDecodeError as exc:
            return FileResult(name=label, status="rejected", message=str(exc), code=exc.code)

    if threads > 1 and len(items) > 1:
        with ThreadPoolExecutor(min(threads, len(items))) as pool:
            prepared = list(pool.map(prepare, items))
    else:
        prepared = [prepare(item) for item in items]
    results: list[FileResult] = []
    try:
        # One transaction for the rows of the whole request: a failure leaves no row and (below) no file behind.
        with transaction.atomic():
            # Serialise the requests of one session, so parallel requests agree on the studies they create.
            UploadSession.objects.select_for_update().filter(pk=session.pk).first()
            places: dict[tuple[str, str], tuple[Study, Series]] = {}
            for outcome in prepared:
                if isinstance(outcome, FileResult):
                    results.append(outcome)
                else:
                    label, ready = outcome
                    results.append(_store_rows(session=session, prepared=ready, label=label, places=places))
            for _study, series in places.values():
                Series.objects.filter(pk=series.pk).update(image_count=series.images.count())
            for study_id in {study.pk for study, _series in places.values()}:
                Study.objects.filter(pk=study_id).update(image_count=Image.objects.filter(study_id=study_id).count())
            accepted = sum(1 for r in results if r.status != "rejected")
            rejected = len(results) - accepted
            UploadSession.objects.filter(pk=session.pk).update(files_accepted=F("files_accepted") + accepted,
                                                               files_rejected=F("files_rejected") + rejected)
    except Exception:
        storage.delete_quietly([p for outcome in prepared if not isinstance(outcome, FileResult)
                                for p in outcome[1].written])
        raise
    session.refresh_from_db(fields=["files_accepted", "files_rejected"])
    return results


def _original_bytes(*, data: bytes, kind: str | None, frame: DecodedImage) -> tuple[bytes, str]:
    """A metadata-free lossless PNG of a PNG/JPEG upload: text chunks and EXIF can carry names, so they go.

    A PNG keeps its own pixel chunks byte for byte (no re-encoding: exact, and the costliest step of an upload
    before); a JPEG's decoded pixels are stored as PNG."""
    if kind == "png":
        return png_without_metadata(data), "png"
    values = frame.values
    if frame.channels == 1 and frame.bits_stored > 8:
        return storage.encode_png(np.clip(values, 0, 65535).astype(np.uint16)), "png"
    return storage.encode_png(np.clip(values, 0, 255).astype(np.uint8)), "png"


def _prepare(*, organization_id: int, name: str, data: bytes, salt: str) -> _Prepared:
    limits = decode_limits()
    if len(data) > limits.max_bytes:  # before sniffing or de-identifying: no work on oversized input
        decode_frames(data=data, filename=name, limits=limits)
    kind = sniff(data) if data else None
    if kind == "dicom":
        # De-identify first: nothing of the original file is written anywhere, not even temporarily.
        deid = deidentify_dicom(data=data, organization_salt=salt, filename=name)
        if not deid.identity_removed:  # de-identification cannot reach text in the pixels: refuse, store nothing
            raise ImageDecodeError(
                f"{display_name(name)}: DICOM file has patient details burned into the pixels "
                "(BurnedInAnnotation=YES); remove them or export without annotations before uploading.",
                code="burned_in_annotation")
        frames = decode_frames(data=deid.data, filename=name, limits=limits)
        original, ext = deid.data, "dcm"
    else:
        frames = decode_frames(data=data, filename=name, limits=limits)
        original, ext = _original_bytes(data=data, kind=kind, frame=frames[0])
    digest = hashlib.sha256(original).hexdigest()
    paths: list[dict[str, str]] = []
    file_path = ""
    # An 8-bit PNG/JPEG is shown as stored: its metadata-free original is already the preview.
    shared_preview = kind != "dicom" and frames[0].bits_stored == 8
    try:
        for frame in frames:
            target = storage.image_paths(organization_id=organization_id, original_ext=ext)
            if not file_path:
                file_path = storage.save_bytes(target["file"], original)
            preview = file_path if shared_preview else storage.save_bytes(target["preview"],
                                                                          storage.encode_png(frame.display))
            entry = {"file": file_path, "preview": preview, "values": ""}
            if frame.kind == "dicom" and frame.channels == 1:
                entry["values"] = storage.save_bytes(target["values"], storage.values_to_u16(
                    frame.values, value_min=frame.value_range[0], value_max=frame.value_range[1]))
            paths.append(entry)
    except Exception:
        storage.delete_quietly([p for entry in paths for p in entry.values()] + [file_path])
        raise
    return _Prepared(name=name, kind=kind or frames[0].kind, frames=[_Frame.of(f) for f in frames], paths=paths,
                     sha256=digest, size=len(original))


def _store_rows(*, session: UploadSession, prepared: _Prepared, label: str,
                places: dict[tuple[str, str], tuple[Study, Series]]) -> FileResult:
    """The Image rows of one prepared file (inside `_add_items`' transaction, which holds the session lock);
    `places` caches the study and series rows of the request by UID."""
    org = session.organization
    info = prepared.frames[0].dicom
    key = (info.study_instance_uid, info.series_instance_uid) if info else ("", "")
    if key not in places:
        places[key] = _study_and_series(session=session, info=info)
    study, series = places[key]
    if Image.objects.filter(study=study, sha256=prepared.sha256).exists():
        storage.delete_quietly(prepared.written)
        existing = list(Image.objects.filter(study=study, sha256=prepared.sha256).values_list("pk", flat=True))
        return FileResult(name=label, status="duplicate", study_id=study.pk, image_ids=existing,
                          message=f"{display_name(prepared.name)}: already uploaded to this study; kept the earlier "
                                  "copy.")
    images = []
    # names a DICOM image that has no InstanceNumber
    position = series.images.count() + 1 if info is not None and info.instance_number is None else 0
    for frame, paths in zip(prepared.frames, prepared.paths, strict=True):
        d = frame.dicom
        images.append(Image(
            organization=org, study=study, series=series, upload_session=session,
            original_name=_image_name(prepared=prepared, frame=frame, series=series, position=position)[:255],
            kind=frame.kind, file=paths["file"],
            preview=paths["preview"], values=paths["values"], sha256=prepared.sha256, size_bytes=prepared.size,
            width=frame.width, height=frame.height, channels=frame.channels, bits_stored=frame.bits_stored,
            photometric=frame.photometric[:16], window_center=frame.window[0] if frame.window else None,
            window_width=frame.window[1] if frame.window else None, value_min=frame.value_range[0],
            value_max=frame.value_range[1], sop_instance_uid=(d.sop_instance_uid if d else "")[:64],
            frame_index=frame.frame_index, instance_number=d.instance_number if d else None,
            slice_position=d.slice_position if d else None,
        ))
    try:
        with transaction.atomic():
            Image.objects.bulk_create(images)
    except IntegrityError:
        storage.delete_quietly(prepared.written)
        return FileResult(name=label, status="duplicate", study_id=study.pk,
                          message=f"{display_name(prepared.name)}: this DICOM instance is already in the study; "
                                  "kept the earlier copy.")
    return FileResult(name=label, status="accepted", study_id=study.pk, image_ids=[i.pk for i in images])


def _image_name(*, prepared: _Prepared, frame: _Frame, series: Series, position: int) -> str:
    """What the image is called in the app. A PNG/JPEG keeps its file name (the user maps results to files, and the
    pixels carry no DICOM identity); a DICOM file gets a neutral label, since its name often is the patient's."""
    info = frame.dicom
    if info is None:
        return display_name(prepared.name)
    number = info.instance_number if info.instance_number is not None else position
    parts = [f"Series {series.series_number}" if series.series_number is not None else series.description,
             f"image {number}"]
    if len(prepared.frames) > 1:
        parts.append(f"frame {frame.frame_index + 1}")
    return ", ".join(parts)


def _study_and_series(*, session: UploadSession, info) -> tuple[Study, Series]:
    org = session.organization
    if info is None:
        study = Study.objects.filter(organization=org, upload_session=session, study_instance_uid="").first()
        if study is None:
            study = Study.objects.create(
                organization=org, upload_session=session, uploaded_by=session.created_by,
                title=f"Images uploaded {timezone.localtime(session.created_at):%d %b %Y %H:%M}")
        series = study.series.first() or Series.objects.create(organization=org, study=study, description="Images")
        return study, series
    # Neutral titles: descriptions are free text (often the patient's name or history) and never reach the rows.
    modality = info.modality[:16] or "DICOM"
    study = Study.objects.filter(organization=org, study_instance_uid=info.study_instance_uid).first()
    if study is None:
        title = f"{modality} study uploaded {timezone.localtime(session.created_at):%d %b %Y}"
        study = Study.objects.create(
            organization=org, upload_session=session, uploaded_by=session.created_by, title=title[:200],
            study_instance_uid=info.study_instance_uid[:64], modality=info.modality[:16])
    series = study.series.filter(series_instance_uid=info.series_instance_uid).first()
    if series is None:
        number = f" {info.series_number}" if info.series_number is not None else ""
        series = Series.objects.create(
            organization=org, study=study, series_instance_uid=info.series_instance_uid[:64],
            modality=info.modality[:16], description=f"{modality} series{number}", series_number=info.series_number)
    return study, series


def upload_session_finish(*, session: UploadSession, requested_by: User | None, explain: bool = True) -> FinishResult:
    """Start one analysis per study for the session's images that no analysis covers yet (quota per image).

    Each study is its own transaction: a quota refusal for one leaves the others running and its images stored,
    to be analysed from the study page later."""
    from imaging.services import analysis_job_create

    images = Image.objects.filter(upload_session=session, jobs__isnull=True).order_by("study_id", "id")
    by_study: dict[int, list[Image]] = {}
    for image in images:
        by_study.setdefault(image.study_id, []).append(image)
    jobs, errors = [], []
    for study_id, study_images in by_study.items():
        try:
            jobs.append(analysis_job_create(organization=session.organization, study=Study.objects.get(pk=study_id),
                                            images=study_images, requested_by=requested_by, explain=explain))
        except ServiceError as exc:
            errors.append(exc)
    UploadSession.objects.filter(pk=session.pk).update(finished_at=timezone.now())
    return FinishResult(jobs=jobs, errors=errors)


def upload_part_add(*, session: UploadSession, upload) -> list[FileResult]:
    """Add one request part (a Django UploadedFile or anything with name, size and read())."""
    too_large = oversize_result(name=upload.name, size=getattr(upload, "size", None))
    if too_large is not None:
        return [too_large]
    return upload_file_add(session=session, name=upload.name, data=upload.read())


def study_upload(*, organization: Organization, uploaded_by: User | None, files: Iterable,
                 ip_address: str | None = None, explain: bool = True) -> UploadResult:
    """Add all `files` (UploadedFile-like) as one upload and start the analyses: the API's multipart POST."""
    session = upload_session_create(organization=organization, created_by=uploaded_by)
    items: list = []
    for upload in files:
        too_large = oversize_result(name=upload.name, size=getattr(upload, "size", None))
        items.extend([too_large] if too_large else _expand(name=upload.name, data=upload.read()))
    results = _add_items(session=session, items=items, threads=settings.IMAGING_UPLOAD_THREADS)
    finish = upload_session_finish(session=session, requested_by=uploaded_by, explain=explain)
    audit_record(organization=organization, actor=uploaded_by, verb="imaging.upload", target=session,
                 ip_address=ip_address, details={"accepted": sum(r.status == "accepted" for r in results),
                                                 "rejected": sum(r.status == "rejected" for r in results)})
    return UploadResult(session=session, files=results, jobs=finish.jobs, errors=finish.errors)
