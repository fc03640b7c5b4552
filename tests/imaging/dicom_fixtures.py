"""Builders of synthetic test files: DICOMs made with pydicom from our own generated pixels, PNG/JPEG, hostile files.

Every DICOM carries the same known identifying values (see IDENTIFYING_VALUES) so de-identification tests can search
the output bytes for them. Nothing here reads third-party files.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
)

PATIENT_NAME = "DOE^JANE"
PATIENT_ID = "MRN-0042"
PATIENT_BIRTH_DATE = "19610415"
PATIENT_ADDRESS = "12 Elm Street, Springfield"
INSTITUTION_NAME = "Saint Elsewhere Hospital"
REFERRING_PHYSICIAN = "HOUSE^GREGORY"
OPERATOR_NAME = "QUINN^MICHAELA"
IMAGE_COMMENTS = "Follow-up for Jane Doe, see prior"
ACCESSION_NUMBER = "ACC-778899"
STUDY_DATE = "20240311"
PRIVATE_CREATOR = "ACME IMAGING 1.0"
PRIVATE_VALUE = "private note on MRN-0042"
REPORT_TEXT = "Jane Doe has no acute findings"
# Descriptions and comments as technologists fill them in: free text that names the patient. The basic profile removes
# them all; ReconstructionDescription is in no list of ours, only the rule for any *Description attribute catches it.
STUDY_DESCRIPTION = "CHEST CT Jane Doe follow-up"
SERIES_DESCRIPTION = "AXIAL 5MM Jane Doe"
DESCRIPTORS: dict[str, str] = {
    "StudyDescription": STUDY_DESCRIPTION,
    "SeriesDescription": SERIES_DESCRIPTION,
    "ProtocolName": "Protocol DOE JANE 1961-04-15",
    "RequestedProcedureDescription": "CT thorax requested for Mrs Doe",
    "PerformedProcedureStepDescription": "Performed on Jane Doe by Dr House",
    "DerivationDescription": "Derived from MRN-0042 prior exam",
    "AcquisitionComments": "Patient Jane Doe anxious, sedated",
    "AdditionalPatientHistory": "Jane Doe smoker since 1980",
    "StudyComments": "Call Jane Doe at 555-0199",
    "ReconstructionDescription": "Recon for patient Jane Doe",
}
# File names as PACS exports write them: the patient's name first.
DICOM_FILE_NAME = "DOE_JANE_CT_001.dcm"
ZIP_FILE_NAME = "DOE_JANE_19610415_series.zip"
ZIP_MEMBER_DIR = "DOE^JANE MRN-0042"
FILE_NAME_TOKEN = "DOE_JANE"

UID_ROOT = "1.2.826.0.1.3680043.10.1234."  # original UIDs the de-identified output must not contain
STUDY_UID = UID_ROOT + "1.1"
SERIES_UID = UID_ROOT + "1.2"
FRAME_OF_REFERENCE_UID = UID_ROOT + "1.3"

IDENTIFYING_VALUES: tuple[str, ...] = (
    PATIENT_NAME, PATIENT_ID, PATIENT_BIRTH_DATE, PATIENT_ADDRESS, INSTITUTION_NAME, REFERRING_PHYSICIAN,
    OPERATOR_NAME, IMAGE_COMMENTS, "Jane Doe", ACCESSION_NUMBER, STUDY_DATE, PRIVATE_CREATOR, PRIVATE_VALUE,
    REPORT_TEXT, UID_ROOT, *DESCRIPTORS.values(), FILE_NAME_TOKEN, ZIP_MEMBER_DIR,
)

CT_WINDOW = (40.0, 400.0)  # first of the two windows in the CT fixture
CT_INTERCEPT = -1024.0


def _base_dataset(*, sop_class_uid: str, sop_uid: str, modality: str, study_uid: str, series_uid: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class_uid
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class_uid, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.FrameOfReferenceUID = FRAME_OF_REFERENCE_UID
    ds.Modality = modality
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT_NAME, PATIENT_ID, PATIENT_BIRTH_DATE
    ds.PatientSex, ds.PatientAge = "F", "062Y"
    ds.PatientAddress = PATIENT_ADDRESS
    ds.InstitutionName = INSTITUTION_NAME
    ds.ReferringPhysicianName = REFERRING_PHYSICIAN
    ds.OperatorsName = OPERATOR_NAME
    ds.AccessionNumber = ACCESSION_NUMBER
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = STUDY_DATE
    ds.StudyTime = "101500"
    ds.StudyID = "4711"
    for keyword, value in DESCRIPTORS.items():
        setattr(ds, keyword, value)
    ds.BodyPartExamined = "CHEST"
    ds.SeriesNumber = 3
    ds.ImageComments = IMAGE_COMMENTS
    reference, request = Dataset(), Dataset()  # nested values: a UID to remap and a sequence to drop
    reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID = sop_class_uid, UID_ROOT + "9.9"
    request.AccessionNumber, request.ScheduledProcedureStepDescription = ACCESSION_NUMBER, IMAGE_COMMENTS
    ds.ReferencedImageSequence, ds.RequestAttributesSequence = Sequence([reference]), Sequence([request])
    block = ds.private_block(0x0009, PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", PRIVATE_VALUE)
    return ds


def _set_pixels(ds: Dataset, arr: np.ndarray, *, photometric: str, bits_stored: int | None = None) -> Dataset:
    ds.Rows, ds.Columns = arr.shape[-3:-1] if arr.ndim == 3 and arr.shape[-1] == 3 else arr.shape[-2:]
    ds.SamplesPerPixel = 3 if photometric in ("RGB", "YBR_FULL") else 1
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if arr.dtype.kind == "i" else 0
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    ds.BurnedInAnnotation = "NO"
    return ds


def ct_pixels(*, rows: int = 32, columns: int = 32) -> np.ndarray:
    """12-bit stored values: (0,0)=0 (-1024 HU, air), (0,1)=1064 (40 HU, window center), (0,2)=4095 (bone)."""
    arr = (np.arange(rows * columns, dtype=np.uint16).reshape(rows, columns) * 3) % 4096
    arr[0, 0], arr[0, 1], arr[0, 2] = 0, 1064, 4095
    return arr


def ct_dataset(
    *, instance_number: int = 1, z: float = 0.0, study_uid: str = STUDY_UID, series_uid: str = SERIES_UID,
    rows: int = 32, columns: int = 32,
) -> Dataset:
    """CT-like 16-bit MONOCHROME2 slice with rescale intercept -1024 and two windows (40/400 first, 300/2000)."""
    ds = _base_dataset(
        sop_class_uid=CTImageStorage, sop_uid=f"{UID_ROOT}2.{instance_number}", modality="CT",
        study_uid=study_uid, series_uid=series_uid,
    )
    _set_pixels(ds, ct_pixels(rows=rows, columns=columns), photometric="MONOCHROME2", bits_stored=12)
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = CT_INTERCEPT, 1.0, "HU"
    ds.WindowCenter, ds.WindowWidth = [CT_WINDOW[0], 300.0], [CT_WINDOW[1], 2000.0]
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [-100.0, -100.0, z]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.SliceLocation = z
    ds.PixelSpacing = [0.7, 0.8]
    ds.SliceThickness = 5.0
    return ds


def large_ct_dataset(*, side: int = 1700) -> Dataset:
    """A CT slice of its own series over 5 MB (Django's FILE_UPLOAD_MAX_MEMORY_SIZE): side**2 16-bit pixels."""
    ds = ct_dataset(rows=side, columns=side, series_uid=UID_ROOT + "10")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID_ROOT + "10.1"
    ds.SeriesNumber = 10
    return ds


def ct_series(*, count: int = 4, spacing: float = 5.0) -> list[Dataset]:
    """A multi-slice CT series sharing study/series/frame-of-reference UIDs, slices ascending in z."""
    return [ct_dataset(instance_number=i + 1, z=i * spacing) for i in range(count)]


def signed_ct_dataset() -> Dataset:
    """CT slice stored as signed 16-bit Hounsfield units (intercept 0): (0,0) = -1000, (0,1) = 40, (0,2) = 2000."""
    ds = ct_dataset()
    arr = ct_pixels().astype(np.int16) - 1024
    arr[0, 0], arr[0, 1], arr[0, 2] = -1000, 40, 2000
    _set_pixels(ds, arr, photometric="MONOCHROME2", bits_stored=16)
    ds.RescaleIntercept = 0.0
    return ds


def palette_dataset() -> Dataset:
    """8-bit PALETTE COLOR image: index i maps to red = i, green = 255 - i, blue = 0 (16-bit LUT entries)."""
    ds = _base_dataset(
        sop_class_uid=SecondaryCaptureImageStorage, sop_uid=UID_ROOT + "8.1", modality="OT",
        study_uid=STUDY_UID, series_uid=UID_ROOT + "8",
    )
    _set_pixels(ds, np.tile(np.arange(0, 256, 16, dtype=np.uint8), (4, 1)), photometric="PALETTE COLOR")
    ramp = np.arange(256, dtype=np.uint16) * 257
    for colour, lut in (("Red", ramp), ("Green", ramp[::-1].copy()), ("Blue", np.zeros(256, np.uint16))):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", lut.tobytes())
    return ds


def monochrome1_dataset() -> Dataset:
    """16-bit (12 stored) MONOCHROME1 radiograph, no window: (0,0) holds 4095, the max stored value (shows dark)."""
    ds = _base_dataset(
        sop_class_uid="1.2.840.10008.5.1.4.1.1.1.1", sop_uid=UID_ROOT + "3.1", modality="DX",
        study_uid=STUDY_UID, series_uid=UID_ROOT + "3",
    )
    arr = np.tile(np.linspace(0, 4095, 24, dtype=np.uint16), (16, 1))
    arr[0, 0] = 4095
    arr[0, 1] = 0
    return _set_pixels(ds, arr, photometric="MONOCHROME1", bits_stored=12)


def mono8_dataset() -> Dataset:
    """8-bit MONOCHROME2 secondary capture without rescale or window."""
    ds = _base_dataset(
        sop_class_uid=SecondaryCaptureImageStorage, sop_uid=UID_ROOT + "4.1", modality="OT",
        study_uid=STUDY_UID, series_uid=UID_ROOT + "4",
    )
    arr = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (20, 1))
    arr[0, 0] = 255
    return _set_pixels(ds, arr, photometric="MONOCHROME2")


def rgb_pixels(*, rows: int = 16, columns: int = 24) -> np.ndarray:
    arr = np.zeros((rows, columns, 3), dtype=np.uint8)
    arr[..., 0] = np.linspace(0, 255, columns, dtype=np.uint8)
    arr[..., 1] = 128
    arr[: rows // 2, :, 2] = 255
    return arr


def rgb_dataset(*, photometric: str = "RGB") -> Dataset:
    """8-bit colour secondary capture; "YBR_FULL" stores the same picture converted to YBR, "YBR_FULL_422"
    additionally subsamples chroma horizontally (native, uncompressed: Y0 Y1 Cb Cr per pixel pair)."""
    ds = _base_dataset(
        sop_class_uid=SecondaryCaptureImageStorage, sop_uid=UID_ROOT + "5.1", modality="OT",
        study_uid=STUDY_UID, series_uid=UID_ROOT + "5",
    )
    arr = rgb_pixels()
    if photometric == "RGB":
        return _set_pixels(ds, arr, photometric=photometric)
    ybr = pydicom.pixels.convert_color_space(arr, "RGB", "YBR_FULL")
    _set_pixels(ds, ybr, photometric="YBR_FULL")
    if photometric == "YBR_FULL_422":
        packed = np.empty((ybr.shape[0], ybr.shape[1] // 2, 4), dtype=np.uint8)
        packed[..., 0], packed[..., 1] = ybr[:, 0::2, 0], ybr[:, 1::2, 0]
        packed[..., 2], packed[..., 3] = ybr[:, 0::2, 1], ybr[:, 0::2, 2]
        ds.PixelData, ds.PhotometricInterpretation = packed.tobytes(), "YBR_FULL_422"
    return ds


def multiframe_dataset(*, frames: int = 3) -> Dataset:
    """8-bit MONOCHROME2 multi-frame: frame i is filled with the value 40 * (i + 1)."""
    ds = _base_dataset(
        sop_class_uid="1.2.840.10008.5.1.4.1.1.7.2", sop_uid=UID_ROOT + "6.1", modality="OT",
        study_uid=STUDY_UID, series_uid=UID_ROOT + "6",
    )
    arr = np.stack([np.full((8, 10), 40 * (i + 1), dtype=np.uint8) for i in range(frames)])
    _set_pixels(ds, arr, photometric="MONOCHROME2")
    ds.NumberOfFrames = frames
    return ds


def report_dataset() -> Dataset:
    """A Basic Text SR (a report): no pixel data, free text naming the patient."""
    ds = _base_dataset(
        sop_class_uid="1.2.840.10008.5.1.4.1.1.88.11", sop_uid=UID_ROOT + "7.1", modality="SR",
        study_uid=STUDY_UID, series_uid=UID_ROOT + "7",
    )
    item = Dataset()
    item.RelationshipType, item.ValueType, item.TextValue = "CONTAINS", "TEXT", REPORT_TEXT
    ds.ValueType = "CONTAINER"
    ds.ContentSequence = Sequence([item])
    return ds


def compressed(ds: Dataset, transfer_syntax: str, **options: object) -> Dataset:
    """Re-encode with pydicom's encoders (RLE Lossless natively, JPEG 2000 via pylibjpeg-openjpeg).

    Lossy JPEG 2000 needs an option such as `j2k_cr=[10]` (compression ratio).
    """
    ds.compress(transfer_syntax, encoding_plugin="pylibjpeg" if "4.9" in transfer_syntax else "", **options)
    return ds


def jpeg_baseline(ds: Dataset, *, quality: int = 95) -> Dataset:
    """Encode an 8-bit dataset as JPEG Baseline with Pillow (pydicom has no JPEG encoder) and encapsulate it."""
    arr = ds.pixel_array
    frames = arr if ds.get("NumberOfFrames", 1) > 1 else arr[None]
    rgb = ds.SamplesPerPixel == 3
    fragments = []
    for frame in frames:
        buf = io.BytesIO()
        Image.fromarray(frame, "RGB" if rgb else "L").save(buf, "JPEG", quality=quality, subsampling=1)
        fragments.append(buf.getvalue())
    ds.PixelData = encapsulate(fragments)
    ds["PixelData"].VR = "OB"
    ds.PhotometricInterpretation = "YBR_FULL_422" if rgb else "MONOCHROME2"
    ds.LossyImageCompression = "01"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    return ds


def dicom_bytes(ds: Dataset, *, preamble: bool = True) -> bytes:
    """Serialise; without `preamble`, write a bare implicit-VR dataset (no preamble, no 'DICM', no file meta)."""
    buf = io.BytesIO()
    if preamble:
        ds.save_as(buf, enforce_file_format=True)
        return buf.getvalue()
    bare = Dataset()
    bare.update(ds)
    bare.file_meta = FileMetaDataset()
    bare.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    pydicom.dcmwrite(buf, bare, implicit_vr=True, little_endian=True)
    return buf.getvalue()


def png_bytes(*, mode: str = "L", size: tuple[int, int] = (24, 16)) -> bytes:
    """A PNG gradient; mode "L", "RGB", "RGBA" or "I;16" (16-bit grayscale, max value 65535 at the right)."""
    width, height = size
    ramp = np.linspace(0, 65535 if mode == "I;16" else 255, width)
    gray = np.tile(ramp, (height, 1)).astype(np.uint16 if mode == "I;16" else np.uint8)
    image = Image.fromarray(gray) if mode in ("L", "I;16") else Image.fromarray(gray).convert(mode)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_identity(*, mode: str = "I;16") -> bytes:
    """A PNG whose metadata names the patient: tEXt, iTXt, eXIf, a private chunk and bytes after IEND."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Patient", f"{PATIENT_NAME} {PATIENT_ID}")
    info.add_itxt("Comment", f"{PATIENT_ADDRESS}, born {PATIENT_BIRTH_DATE}")
    image = Image.open(io.BytesIO(png_bytes(mode=mode)))
    buf = io.BytesIO()
    image.save(buf, "PNG", pnginfo=info)
    data = buf.getvalue()
    end = data.index(b"IEND") - 4
    extra = (_png_chunk(b"eXIf", b"MM\x00*" + INSTITUTION_NAME.encode())
             + _png_chunk(b"prVt", REFERRING_PHYSICIAN.encode()))
    return data[:end] + extra + data[end:] + OPERATOR_NAME.encode()


def jpeg_with_identity() -> bytes:
    """A JPEG whose EXIF (Artist, ImageDescription) and comment name the patient."""
    image = Image.fromarray(rgb_pixels(rows=16, columns=24))
    exif = Image.Exif()
    exif[0x013B] = PATIENT_NAME  # Artist
    exif[0x010E] = f"{PATIENT_ID} {INSTITUTION_NAME}"  # ImageDescription
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90, exif=exif.tobytes(), comment=REFERRING_PHYSICIAN.encode())
    return buf.getvalue()


def jpeg_bytes(*, size: tuple[int, int] = (24, 16), mode: str = "RGB", exif_orientation: int | None = None) -> bytes:
    """A JPEG of the RGB test picture; `exif_orientation=6` marks it as needing a 90 degree turn to display."""
    image = Image.fromarray(rgb_pixels(rows=size[1], columns=size[0])).convert(mode)
    exif = Image.Exif()
    if exif_orientation is not None:
        exif[0x0112] = exif_orientation
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(*, side: int = 10_000) -> bytes:
    """A valid 8-bit grayscale PNG of side x side black pixels: ~100 KB on disk, `side**2` pixels decoded."""
    compressor, row = zlib.compressobj(9), b"\x00" * (side + 1)  # filter byte + zero pixels
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def truncated(data: bytes, *, keep: float = 0.6) -> bytes:
    return data[: int(len(data) * keep)]


def pdf_bytes() -> bytes:
    """Something that is a PDF document (uploaded under an image name in the tests)."""
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def zip_bytes(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of `members` (names are written verbatim, so '../x' and '/x' stay hostile)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data, compress_type=compression)
    return buf.getvalue()


def zip_with_special_member(
    *, good: dict[str, bytes], name: str, data: bytes, symlink: bool = False, encrypted: bool = False
) -> bytes:
    """A zip of `good` plus one member marked as a symlink (unix mode) or as encrypted (flag bit 0, set by patching
    the headers, since zipfile cannot write encrypted members and resets the flags)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for good_name, good_data in good.items():
            zf.writestr(good_name, good_data)
        info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
        if symlink:
            info.external_attr = 0o120777 << 16
        zf.writestr(info, data)
    raw = bytearray(buf.getvalue())
    if encrypted:
        encoded = name.encode()
        for signature, flags_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
            start = 0
            while (start := raw.find(signature, start)) != -1:
                if raw[start + name_at : start + name_at + len(encoded)] == encoded:
                    raw[start + flags_at] |= 0x1
                start += 4
    return bytes(raw)


def zip_bomb_member(*, size: int = 20 * 1024 * 1024) -> bytes:
    """Zeros that deflate about 1000:1 (a 20 MB member becomes ~20 KB)."""
    return b"\x00" * size


def zip_with_lying_size(*, name: str, data: bytes, declared: int) -> bytes:
    """A zip whose headers claim `name` uncompresses to `declared` bytes while it really holds `data`."""
    raw = bytearray(zip_bytes({name: data}))
    local = raw.find(b"PK\x03\x04")
    struct.pack_into("<I", raw, local + 22, declared)
    central = raw.find(b"PK\x01\x02")
    struct.pack_into("<I", raw, central + 24, declared)
    return bytes(raw)
