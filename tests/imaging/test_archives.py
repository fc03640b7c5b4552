"""Zip uploads: hostile members are rejected one by one, good members still come through, bombs stop early."""

from __future__ import annotations

import io
import zipfile

import pytest

from imaging.archives import ArchiveError, ArchiveLimits, ArchiveMember, ArchiveRejection, iter_archive
from tests.imaging import dicom_fixtures as fx

LIMITS = ArchiveLimits()


def run(data: bytes, limits: ArchiveLimits = LIMITS) -> tuple[dict[str, bytes], dict[str, ArchiveRejection]]:
    members, rejections = {}, {}
    for item in iter_archive(data=data, filename="series.zip", limits=limits):
        if isinstance(item, ArchiveMember):
            members[item.name] = item.data
        else:
            rejections[item.name] = item
    return members, rejections


def good_members() -> dict[str, bytes]:
    return {f"CT/IM{i:04d}.dcm": fx.dicom_bytes(ds) for i, ds in enumerate(fx.ct_series(count=2))}


def test_good_series_comes_through_with_clean_names():
    members, rejections = run(fx.zip_bytes({**good_members(), "./scan.png": fx.png_bytes()}))
    assert not rejections
    assert set(members) == {"CT/IM0000.dcm", "CT/IM0001.dcm", "scan.png"}
    assert members["scan.png"] == fx.png_bytes()


def test_skips_directories_macos_litter_dotfiles_and_dicomdir():
    data = fx.zip_bytes(
        {
            "CT/": b"",
            "__MACOSX/CT/._IM0000.dcm": b"junk",
            ".DS_Store": b"junk",
            "CT/.hidden": b"junk",
            "DICOMDIR": b"index",
            "CT/IM0000.dcm": fx.dicom_bytes(fx.ct_dataset()),
        }
    )
    members, rejections = run(data)
    assert list(members) == ["CT/IM0000.dcm"] and not rejections


@pytest.mark.parametrize(
    ("name", "code", "text"),
    [
        ("../evil.dcm", "path_traversal", "'..'"),
        ("CT/../../evil.dcm", "path_traversal", "'..'"),
        ("/etc/evil.dcm", "absolute_path", "absolute path"),
        ("C:/evil.dcm", "absolute_path", "absolute path"),
        ("..\\evil.dcm", "path_traversal", "'..'"),
    ],
)
def test_hostile_paths_reject_only_that_member(name, code, text):
    members, rejections = run(fx.zip_bytes({**good_members(), name: b"payload"}))
    assert set(members) == set(good_members())
    (rejection,) = rejections.values()
    assert rejection.code == code and text in rejection.message
    assert rejection.message.startswith("series.zip: ")


def test_symlink_member_rejected():
    data = fx.zip_with_special_member(good=good_members(), name="CT/link.dcm", data=b"/etc/passwd", symlink=True)
    members, rejections = run(data)
    assert set(members) == set(good_members())
    assert rejections["CT/link.dcm"].code == "symlink" and "symbolic links" in rejections["CT/link.dcm"].message


def test_encrypted_member_rejected():
    data = fx.zip_with_special_member(good=good_members(), name="CT/secret.dcm", data=b"x" * 100, encrypted=True)
    members, rejections = run(data)
    assert set(members) == set(good_members())
    assert rejections["CT/secret.dcm"].code == "encrypted"
    assert "password-protected; upload an unencrypted zip" in rejections["CT/secret.dcm"].message


def test_nested_archive_rejected_by_name_and_by_content():
    inner = fx.zip_bytes({"IM1.dcm": fx.dicom_bytes(fx.ct_dataset())})
    members, rejections = run(fx.zip_bytes({**good_members(), "more.zip": inner, "disguised.dcm": inner}))
    assert set(members) == set(good_members())
    assert {r.code for r in rejections.values()} == {"nested_archive"}
    assert set(rejections) == {"more.zip", "disguised.dcm"}
    assert "archives inside archives are not accepted" in rejections["disguised.dcm"].message


def test_zip_bomb_by_ratio_rejected_while_reading():
    bomb = fx.zip_bytes({**good_members(), "CT/bomb.dcm": fx.zip_bomb_member(size=20 * 1024 * 1024)})
    assert len(bomb) < 200_000
    members, rejections = run(bomb)
    assert set(members) == set(good_members())
    assert rejections["CT/bomb.dcm"].code == "zip_bomb" and "zip bomb" in rejections["CT/bomb.dcm"].message


def test_total_size_limit_stops_the_archive():
    files = {f"IM{i}.dcm": bytes(range(256)) * 400 for i in range(5)}  # 100 KB each, incompressible enough
    with pytest.raises(ArchiveError) as info:
        run(fx.zip_bytes(files), ArchiveLimits(max_total_bytes=250_000))
    assert info.value.code == "too_large_total" and "split it into smaller zips" in str(info.value)


def test_lying_header_is_not_trusted():
    # The header says 100 bytes; the member really inflates to 2 MB. Reading counts real bytes and checks the CRC.
    data = fx.zip_with_lying_size(name="IM1.dcm", data=b"\x00" * (2 * 1024 * 1024), declared=100)
    members, rejections = run(data)
    assert not members
    assert rejections["IM1.dcm"].code in {"corrupt", "zip_bomb", "too_large"}


def test_declared_oversize_member_rejected_without_reading():
    members, rejections = run(fx.zip_bytes({"IM1.dcm": b"a" * 5000}), ArchiveLimits(max_member_bytes=1000))
    assert not members and rejections["IM1.dcm"].code == "too_large"


def test_too_many_members():
    with pytest.raises(ArchiveError) as info:
        run(fx.zip_bytes({f"IM{i}.dcm": b"x" for i in range(6)}), ArchiveLimits(max_members=5))
    assert info.value.code == "too_many_members" and "6 entries" in str(info.value)


def test_duplicate_names():
    buf = io.BytesIO(fx.zip_bytes({"IM1.dcm": b"first"}))
    with zipfile.ZipFile(buf, "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("IM1.dcm", b"second")
    members, rejections = run(buf.getvalue())
    assert members == {"IM1.dcm": b"first"} and rejections["IM1.dcm"].code == "duplicate"


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (fx.pdf_bytes(), "series.zip: file is a PDF document, not a zip archive"),
        (b"not a zip at all", "series.zip: file is a text file, not a zip archive"),
        (b"PK\x03\x04" + b"\x00" * 40, "series.zip: zip archive is corrupt or incomplete"),
    ],
)
def test_not_a_zip_or_corrupt_is_one_clear_error(data, text):
    with pytest.raises(ArchiveError) as info:
        run(data)
    assert str(info.value).startswith(text)


def test_corrupt_member_rejects_only_that_member():
    raw = bytearray(fx.zip_bytes({"a.dcm": b"A" * 5000, "b.dcm": b"B" * 5000}, compression=zipfile.ZIP_STORED))
    raw[raw.find(b"AAAA") + 10] = ord("Z")  # flips the stored bytes: CRC mismatch on read
    members, rejections = run(bytes(raw))
    assert set(members) == {"b.dcm"} and rejections["a.dcm"].code == "corrupt"
