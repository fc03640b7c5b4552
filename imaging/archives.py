"""Read .zip uploads (DICOM series, exported images) member by member, safely.

Pure Python (no Django, no torch). Nothing is extracted to disk: members come out as bytes. Sizes are counted while
decompressing, because zip headers are written by the uploader and can lie. A bad member is rejected on its own
(`ArchiveRejection`) so the rest of the upload still goes through; a problem with the archive as a whole (not a zip,
corrupt directory, too many members, too much data in total) raises `ArchiveError`.
"""

from __future__ import annotations

import io
import logging
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from imaging.decoding import DecodeLimits, ImageDecodeError, describe_content, display_name

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst")
# (magic, description) of archives inside the archive; checked on content as well as on names.
_ARCHIVE_MAGICS = (
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip"),
    (b"Rar!", "RAR"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
_SKIPPED_NAMES = frozenset({"DICOMDIR", "Thumbs.db", "desktop.ini"})  # index files and OS litter, not images


class ArchiveError(ImageDecodeError):
    """The archive as a whole cannot be used; the message names it and says what to do."""


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """Limits for one archive; ratio is uncompressed/compressed bytes, enforced past `ratio_floor_bytes`."""

    max_archive_bytes: int = 1024 * 1024 * 1024
    max_members: int = 5_000
    max_member_bytes: int = DecodeLimits().max_bytes
    max_total_bytes: int = 2 * 1024 * 1024 * 1024
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 1024 * 1024  # small members may compress well without being dangerous
    max_name_length: int = 255


@dataclass(frozen=True, slots=True)
class ArchiveMember:
    """A member that passed the archive checks; `name` is its normalised relative path inside the archive."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ArchiveRejection:
    """A member refused on its own; `message` names archive and member and says what to do."""

    name: str
    message: str
    code: str = "rejected"


def iter_archive(
    *, data: bytes, filename: str, limits: ArchiveLimits
) -> Iterator[ArchiveMember | ArchiveRejection]:
    """Yield each file member of the zip `data` as an ArchiveMember or an ArchiveRejection, in archive order.

    Directories, `__MACOSX/`, dotfiles, DICOMDIR and OS litter are skipped silently. Raises ArchiveError for the
    archive as a whole, possibly after some members were yielded (the total-size limit is counted while reading).
    """
    archive = display_name(filename)
    zf = _open(data=data, archive=archive, limits=limits)
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise ArchiveError(
                f"{archive}: archive has {len(infos)} entries, above the limit of {limits.max_members}; "
                "split it into smaller zips.",
                code="too_many_members",
            )
        total, seen = 0, set()
        for info in infos:
            name = info.filename.replace("\\", "/")
            if _skipped(name) or info.is_dir():
                continue
            label = f"{archive}: {display_name(name) if len(name) > limits.max_name_length else name}"
            problem = _member_problem(info=info, name=name, label=label, seen=seen, limits=limits)
            if problem is not None:
                yield problem
                continue
            seen.add(name)
            if total + info.file_size > limits.max_total_bytes:
                raise _total_error(archive=archive, limits=limits)
            result = _read_member(zf=zf, info=info, name=name, label=label, budget=limits.max_total_bytes - total,
                                  limits=limits)
            if isinstance(result, ArchiveMember):
                total += len(result.data)
            elif result is None:
                raise _total_error(archive=archive, limits=limits)
            yield result


def _open(*, data: bytes, archive: str, limits: ArchiveLimits) -> zipfile.ZipFile:
    if len(data) > limits.max_archive_bytes:
        raise ArchiveError(
            f"{archive}: archive is {len(data) / 1e6:.0f} MB, above the {limits.max_archive_bytes / 1e6:.0f} MB "
            "limit; split it into smaller zips.",
            code="too_large",
        )
    if not data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        what = describe_content(data)
        detail = f"file is {what}, not a zip archive" if what else "file is not a zip archive"
        raise ArchiveError(f"{archive}: {detail}; upload a .zip of the images.", code="not_a_zip")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        logger.info("Unreadable zip %s", archive, exc_info=True)
        raise ArchiveError(
            f"{archive}: zip archive is corrupt or incomplete; create it again and re-upload.", code="corrupt"
        ) from exc


def _skipped(name: str) -> bool:
    parts = [part for part in name.split("/") if part]
    if not parts:
        return True
    hidden = any(part.startswith(".") and part not in (".", "..") for part in parts)
    return hidden or parts[0] == "__MACOSX" or parts[-1] in _SKIPPED_NAMES


def _member_problem(
    *, info: zipfile.ZipInfo, name: str, label: str, seen: set[str], limits: ArchiveLimits
) -> ArchiveRejection | None:
    def reject(message: str, code: str) -> ArchiveRejection:
        return ArchiveRejection(name=name, message=f"{label}: {message}", code=code)

    parts = name.split("/")
    if name.startswith("/") or (len(parts[0]) == 2 and parts[0][1] == ":") or "\x00" in name:
        return reject("absolute path in archive; zip the files with relative paths.", "absolute_path")
    if ".." in parts:
        return reject("path leaves the archive ('..'); zip the files without '..' in their paths.", "path_traversal")
    if len(name) > limits.max_name_length:
        return reject("path inside the archive is too long; shorten the folder names.", "name_too_long")
    if stat.S_ISLNK(info.external_attr >> 16):
        return reject("symbolic links are not accepted; zip the files themselves.", "symlink")
    if info.flag_bits & 0x1:
        return reject("member is password-protected; upload an unencrypted zip.", "encrypted")
    if name.lower().endswith(_ARCHIVE_SUFFIXES):
        return reject("archives inside archives are not accepted; extract it and zip its files.", "nested_archive")
    if name in seen:
        return reject("duplicate name in archive; keep one copy of each file.", "duplicate")
    if info.file_size > limits.max_member_bytes:
        return reject(
            f"file is {info.file_size / 1e6:.0f} MB, above the {limits.max_member_bytes / 1e6:.0f} MB limit; "
            "upload it separately or export smaller files.",
            "too_large",
        )
    return None


def _read_member(
    *, zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, label: str, budget: int, limits: ArchiveLimits
) -> ArchiveMember | ArchiveRejection | None:
    """Decompress one member in chunks, counting real bytes; None means the archive-wide budget ran out."""

    def reject(message: str, code: str) -> ArchiveRejection:
        return ArchiveRejection(name=name, message=f"{label}: {message}", code=code)

    compressed = max(info.compress_size, 1)
    chunks, size = [], 0
    try:
        with zf.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > budget:
                    return None
                if size > limits.max_member_bytes:
                    return reject(f"file is above the {limits.max_member_bytes / 1e6:.0f} MB limit.", "too_large")
                if size > limits.ratio_floor_bytes and size / compressed > limits.max_ratio:
                    return reject(
                        "file expands far more than real images do (possible zip bomb); it was not extracted.",
                        "zip_bomb",
                    )
                chunks.append(chunk)
    except NotImplementedError:
        return reject("member uses a compression method we cannot read; re-create the zip with Deflate.", "method")
    except (RuntimeError, zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        logger.info("Corrupt member %s in zip", name, exc_info=True)
        if isinstance(exc, RuntimeError) and "encrypted" in str(exc):
            return reject("member is password-protected; upload an unencrypted zip.", "encrypted")
        return reject("member is corrupt (bad checksum or truncated); create the zip again.", "corrupt")
    data = b"".join(chunks)
    nested = next((kind for magic, kind in _ARCHIVE_MAGICS if data.startswith(magic)), None)
    nested = nested or ("tar" if data[257:262] == b"ustar" else None)
    if nested is not None:
        return reject(
            f"file is a {nested} archive; archives inside archives are not accepted, extract it and zip its files.",
            "nested_archive",
        )
    return ArchiveMember(name=str(PurePosixPath(name)), data=data)


def _total_error(*, archive: str, limits: ArchiveLimits) -> ArchiveError:
    return ArchiveError(
        f"{archive}: archive expands to more than {limits.max_total_bytes / 1e6:.0f} MB; "
        "split it into smaller zips.",
        code="too_large_total",
    )
