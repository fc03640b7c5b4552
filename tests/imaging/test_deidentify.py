"""De-identification: no identifying value survives anywhere in the bytes; structure, pixels and geometry do."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, RLELossless

from imaging.decoding import DecodeLimits, ImageDecodeError, decode_image
from imaging.deidentify import deidentify_dicom
from tests.imaging import dicom_fixtures as fx

ORG_A, ORG_B = "salt-of-org-a", "salt-of-org-b"


def deid(ds, salt: str = ORG_A):
    return deidentify_dicom(data=fx.dicom_bytes(ds), organization_salt=salt, filename="ct.dcm")


def read(data: bytes):
    return pydicom.dcmread(io.BytesIO(data))


def assert_no_identifying_bytes(data: bytes) -> None:
    lowered = data.lower()
    for value in fx.IDENTIFYING_VALUES:
        assert value.lower().encode() not in lowered, value
    # Names can also be written with spaces instead of the PN caret.
    assert b"doe jane" not in lowered and b"jane^doe" not in lowered


@pytest.mark.parametrize(
    "build",
    [
        fx.ct_dataset,
        fx.monochrome1_dataset,
        fx.rgb_dataset,
        fx.multiframe_dataset,
        fx.report_dataset,
        lambda: fx.compressed(fx.ct_dataset(), RLELossless),
        lambda: fx.jpeg_baseline(fx.mono8_dataset()),
    ],
)
def test_no_identifying_value_survives_in_raw_bytes(build):
    original = fx.dicom_bytes(build())
    assert fx.PATIENT_NAME.encode() in original and fx.PRIVATE_VALUE.encode() in original  # the fixture carries them
    result = deidentify_dicom(data=original, organization_salt=ORG_A, filename="x.dcm")
    assert_no_identifying_bytes(result.data)


def test_identifying_values_replaced_or_removed():
    ds = read(deid(fx.ct_dataset()).data)
    assert str(ds.PatientName) != fx.PATIENT_NAME and ds.PatientID != fx.PATIENT_ID
    assert ds.AccessionNumber != fx.ACCESSION_NUMBER and ds.PatientBirthDate == ""
    for keyword in ("PatientAddress", "ImageComments"):
        assert keyword not in ds
    assert not any(elem.tag.is_private for elem in ds.iterall())
    assert ds.InstitutionName != fx.INSTITUTION_NAME and str(ds.ReferringPhysicianName) != fx.REFERRING_PHYSICIAN
    assert ds.StudyDate != fx.STUDY_DATE and ds.StudyDate == ds.SeriesDate  # shifted by whole days, consistently


def test_marks_dataset_and_reports_changes():
    result = deid(fx.ct_dataset())
    ds = read(result.data)
    assert ds.PatientIdentityRemoved == "YES" and result.identity_removed
    assert "DICOGNITO" in ds.DeidentificationMethod
    assert "113100" in [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert {"ImageComments", "PatientAddress", "PatientBirthDate"} <= set(result.removed)
    assert any(name.startswith("(0009,") for name in result.removed)  # the private tags
    assert {"PatientName", "PatientID", "StudyInstanceUID", "AccessionNumber"} <= set(result.replaced)
    assert ds.preamble == b"\x00" * 128


def test_burned_in_annotation_is_not_claimed_removed():
    ds = fx.rgb_dataset()
    ds.BurnedInAnnotation = "YES"
    result = deid(ds)
    assert not result.identity_removed and read(result.data).PatientIdentityRemoved == "NO"


def test_uids_consistent_within_org_and_different_across_orgs():
    series = fx.ct_series(count=3)
    org_a = [deid(ds, ORG_A).info for ds in series]
    org_a_again = [deid(ds, ORG_A).info for ds in fx.ct_series(count=3)]
    org_b = [deid(ds, ORG_B).info for ds in series]
    assert org_a == org_a_again  # same UID + same org -> same output (a series uploaded twice stays one series)
    assert len({i.study_instance_uid for i in org_a}) == 1 and len({i.series_instance_uid for i in org_a}) == 1
    assert len({i.sop_instance_uid for i in org_a}) == 3
    assert org_a[0].study_instance_uid != fx.STUDY_UID and org_a[0].series_instance_uid != fx.SERIES_UID
    assert {i.study_instance_uid for i in org_a}.isdisjoint({i.study_instance_uid for i in org_b})
    assert {i.sop_instance_uid for i in org_a}.isdisjoint({i.sop_instance_uid for i in org_b})
    for a, b in zip(org_a, org_b, strict=True):
        assert len(a.sop_instance_uid) <= 64 and len(b.sop_instance_uid) <= 64


def test_pseudonyms_consistent_within_org():
    first, second = read(deid(fx.ct_dataset(instance_number=1)).data), read(deid(fx.ct_dataset(instance_number=2)).data)
    other = read(deid(fx.ct_dataset(instance_number=1), ORG_B).data)
    assert first.PatientID == second.PatientID and first.PatientName == second.PatientName
    assert first.StudyDate == second.StudyDate and first.PatientID != other.PatientID


def test_file_meta_matches_remapped_sop_instance():
    ds = read(deid(fx.ct_dataset()).data)
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID == fx.ct_dataset().SOPClassUID
    assert ds.FrameOfReferenceUID != fx.FRAME_OF_REFERENCE_UID


@pytest.mark.parametrize("transfer_syntax", [None, RLELossless, JPEG2000Lossless])
def test_pixel_data_and_model_tags_unchanged(transfer_syntax):
    source = fx.ct_dataset(instance_number=4, z=15.0)
    if transfer_syntax:
        source = fx.compressed(source, transfer_syntax)
    before = read(fx.dicom_bytes(source))
    result = deid(source)
    after = read(result.data)
    assert after.PixelData == before.PixelData
    assert after.file_meta.TransferSyntaxUID == before.file_meta.TransferSyntaxUID
    for keyword in (
        "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "PhotometricInterpretation",
        "RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth", "PixelSpacing", "Modality",
        "InstanceNumber", "ImagePositionPatient", "ImageOrientationPatient", "SliceLocation", "SliceThickness",
        "SOPClassUID", "PatientSex", "PatientAge", "BodyPartExamined",
    ):
        assert after[keyword].value == before[keyword].value, keyword
    decoded_before = decode_image(data=fx.dicom_bytes(before), filename="a.dcm", limits=DecodeLimits())
    decoded_after = decode_image(data=result.data, filename="a.dcm", limits=DecodeLimits())
    assert (decoded_after.values == decoded_before.values).all() and decoded_after.window == decoded_before.window
    assert result.info.instance_number == 4 and result.info.slice_position == 15.0
    assert result.info.study_instance_uid == after.StudyInstanceUID


def test_bare_dicom_without_file_meta_gets_valid_output():
    result = deidentify_dicom(
        data=fx.dicom_bytes(fx.ct_dataset(), preamble=False), organization_salt=ORG_A, filename="IM1"
    )
    assert result.data[128:132] == b"DICM"
    assert_no_identifying_bytes(result.data)


def test_malformed_date_is_blanked_not_fatal():
    ds = fx.ct_dataset()
    ds.SeriesDate = "2024-3-1"
    after = read(deid(ds).data)
    assert after.SeriesDate == "" and after.StudyDate not in ("", fx.STUDY_DATE)


def test_unreadable_input_is_a_clear_error():
    with pytest.raises(ImageDecodeError) as info:
        deidentify_dicom(data=fx.pdf_bytes(), organization_salt=ORG_A, filename="scan.dcm")
    assert str(info.value).startswith("scan.dcm: ")
    with pytest.raises(ValueError, match="organization_salt"):
        deidentify_dicom(data=fx.dicom_bytes(fx.ct_dataset()), organization_salt="")


def test_descriptions_comments_and_protocol_names_are_removed_everywhere():
    source = fx.ct_dataset()
    nested = source.ReferencedImageSequence[0]
    nested.DerivationDescription = "Nested note on Jane Doe"  # descriptions inside kept sequences go too
    result = deid(source)
    ds = read(result.data)
    present = {elem.keyword for elem in ds.iterall()}
    for keyword in (*fx.DESCRIPTORS, "ImageComments"):
        assert keyword not in present, keyword
        assert keyword in result.removed, keyword
    assert "ReferencedImageSequence" in ds  # the sequence itself stays (UIDs remapped)
    assert_no_identifying_bytes(result.data)
    assert b"nested note" not in result.data.lower()
    # what the model and the viewer read is not free text and stays
    assert ds.BodyPartExamined == "CHEST" and ds.Modality == "CT" and ds.WindowCenter == source.WindowCenter


def test_every_listed_keyword_is_a_dicom_keyword():
    from pydicom.datadict import keyword_dict

    from imaging.deidentify import _BLANK_KEYWORDS, _REMOVE_KEYWORDS

    unknown = sorted(k for k in (*_REMOVE_KEYWORDS, *_BLANK_KEYWORDS) if k not in keyword_dict)
    assert not unknown  # a misspelt keyword would silently remove nothing

