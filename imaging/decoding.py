"""Decode uploaded image files (PNG, JPEG, DICOM) into arrays for the model and the viewer.

Pure Python (no Django, no torch): it runs in the web process during upload, so every input is hostile until
checked. The type comes from the content, never from the file name; size and pixel counts are checked before
anything is decompressed; every failure is an `ImageDecodeError` whose message names the file and says what to do.
"""

from __future__ import annotations

import io
import logging
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np

logger = logging.getLogger(__name__)

ImageKind = Literal["png", "jpeg", "dicom"]
WHAT_TO_UPLOAD = "upload PNG, JPEG or DICOM"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG"}
_DICOM_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)
# (offset, magic, description) of files people upload by mistake, so the rejection can say what the file is.
_FOREIGN_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"%PDF-", "a PDF document"),
    (0, b"PK\x03\x04", "a zip archive or Office document"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Microsoft Office document"),
    (0, b"GIF8", "a GIF image"),
    (0, b"II*\x00", "a TIFF image"),
    (0, b"MM\x00*", "a TIFF image"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "a JPEG 2000 image"),
    (0, b"\xff\x4f\xff\x51", "a JPEG 2000 codestream"),
    (8, b"WEBP", "a WebP image"),
    (4, b"ftyp", "an HEIC/MP4 file"),
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (0, b"Rar!", "a RAR archive"),
    (344, b"n+1\x00", "a NIfTI volume"),
    (0, b"BM", "a BMP image"),
)
_PHOTOMETRICS = frozenset(
    {"MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR"}
)


class ImageDecodeError(ValueError):
    """A file that is not an image we accept, or cannot be decoded; the message is shown to the user.

    `code` is a stable machine-readable reason (e.g. "too_large", "unsupported_type", "no_pixel_data") for the API.
    """

    def __init__(self, message: str, *, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Upper bounds checked before decoding; `max_pixels` is per frame, `max_total_pixels` over all frames."""

    max_bytes: int = 100 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_frames: int = 1_000
    max_total_pixels: int = 100_000_000


@dataclass(frozen=True, slots=True)
class DicomInfo:
    """DICOM header values the app stores and sorts by; no patient attributes. Build it from de-identified data."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    modality: str
    study_description: str
    series_description: str
    body_part_examined: str
    series_number: int | None
    instance_number: int | None
    slice_location: float | None
    image_position: tuple[float, float, float] | None
    slice_position: float | None  # position along the slice normal (IPP . normal), else IPP z, else SliceLocation
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing) in mm
    slice_thickness: float | None
    rows: int | None
    columns: int | None
    number_of_frames: int
    photometric_interpretation: str
    bits_allocated: int | None
    bits_stored: int | None
    transfer_syntax_uid: str
    transfer_syntax_name: str


@dataclass(frozen=True, slots=True, eq=False)
class DecodedImage:
    """One decoded image (one frame of a multi-frame DICOM).

    `values` holds what the viewer windows: modality values (e.g. Hounsfield units) for grayscale DICOM, stored
    values otherwise. `pixels` is the model input, float32 in [0, 1], shape (H, W) or (H, W, 3): the windowed
    (and for MONOCHROME1 inverted) `values`. `display` is the same as uint8 for the viewer. `window` is the
    (center, width) applied, None for PNG/JPEG (shown as stored); `value_range` is the (min, max) of `values`.
    """

    kind: ImageKind
    width: int
    height: int
    channels: int
    bits_stored: int
    photometric: str
    pixels: np.ndarray
    display: np.ndarray
    values: np.ndarray
    window: tuple[float, float] | None
    value_range: tuple[float, float]
    voi_function: str = "LINEAR"
    frame_index: int = 0
    frame_count: int = 1
    dicom: DicomInfo | None = None


def sniff(data: bytes) -> ImageKind | None:
    """Return the accepted image type of `data` from its content (magic bytes), or None."""
    if data.startswith(_PNG_MAGIC):
        return "png"
    if data.startswith(_JPEG_MAGIC):
        return "jpeg"
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    return "dicom" if _looks_like_bare_dicom(data) else None


def decode_image(*, data: bytes, filename: str, limits: DecodeLimits, frame: int = 0) -> DecodedImage:
    """Check and fully decode one uploaded file; for a multi-frame DICOM decode only frame `frame`.

    `frame_count` on the result tells the caller whether there are more frames (see `decode_frames`).
    Raises ImageDecodeError (message names the file and says what to do) for anything we do not accept.
    """
    name = display_name(filename)
    kind = _check_and_sniff(data=data, name=name, limits=limits)
    if kind != "dicom":
        return _decode_pillow(data=data, name=name, kind=kind, limits=limits)
    return _decode_dicom(data=data, name=name, limits=limits, frame=frame)[0]


def decode_frames(*, data: bytes, filename: str, limits: DecodeLimits) -> list[DecodedImage]:
    """Like `decode_image`, but return every frame of a multi-frame DICOM (a one-item list for anything else)."""
    name = display_name(filename)
    kind = _check_and_sniff(data=data, name=name, limits=limits)
    if kind != "dicom":
        return [_decode_pillow(data=data, name=name, kind=kind, limits=limits)]
    return _decode_dicom(data=data, name=name, limits=limits, frame=None)


def display_for_window(*, image: DecodedImage, center: float, width: float) -> np.ndarray:
    """Re-window `image.values` for the viewer: uint8 of the same shape as `image.display`."""
    windowed = apply_window(values=image.values, center=center, width=width, function=image.voi_function)
    if _inverts(image.photometric):
        windowed = 1.0 - windowed
    return np.rint(windowed * 255.0).astype(np.uint8)


def apply_window(*, values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """Map values through a DICOM VOI window (PS3.3 C.11.2.1.2) to float32 in [0, 1]."""
    x = values.astype(np.float32, copy=False)
    if function == "SIGMOID" and width > 0:
        out = 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    elif function == "LINEAR_EXACT" and width > 0:
        out = (x - center) / width + 0.5
    elif width > 1:
        out = (x - (center - 0.5)) / (width - 1.0) + 0.5
    else:  # a width of 1 or less is a threshold
        out = (x > center - 0.5).astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


_PNG_PIXEL_CHUNKS = frozenset({b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"})


def png_without_metadata(data: bytes) -> bytes:
    """The PNG reduced to the chunks that define its pixels (IHDR, PLTE, tRNS, IDAT, IEND), copied byte for byte.

    Text (tEXt, zTXt, iTXt), EXIF, time stamps, colour profiles, private chunks and anything after IEND can carry
    names or other details, and are dropped; the pixels are not re-encoded, so the stored original is exactly what
    was uploaded and costs no compression. Call it only on data that `decode_image` accepted.
    """
    if not data.startswith(_PNG_MAGIC):
        raise ValueError("not a PNG file")
    kept, position = [_PNG_MAGIC], len(_PNG_MAGIC)
    while position + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, position)
        kind, end = data[position + 4:position + 8], position + 12 + length
        if end > len(data):
            break  # truncated after the pixels (the decode succeeded): what follows is not kept
        if kind in _PNG_PIXEL_CHUNKS:
            kept.append(data[position:end])
        if kind == b"IEND":
            return b"".join(kept)
        position = end
    return b"".join(kept) + b"\x00\x00\x00\x00IEND\xaeB`\x82"


def load_pixels(path: str | Path) -> np.ndarray:
    """Return float32 pixels scaled to [0, 1], shape (H, W) for grayscale or (H, W, 3) for colour (frame 0)."""
    path = Path(path)
    return decode_image(data=path.read_bytes(), filename=path.name, limits=DecodeLimits()).pixels


def display_name(filename: str) -> str:
    """The base name of an uploaded file, safe to put in a message (no directories, no control characters)."""
    base = PurePosixPath(filename.replace("\\", "/")).name
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip()
    return (cleaned or "upload") if len(cleaned) <= 120 else cleaned[:117] + "..."


def describe_content(data: bytes) -> str | None:
    """Say what a rejected file looks like ("a PDF document"), or None if we cannot tell."""
    for offset, magic, what in _FOREIGN_SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return what
    head = data[:512]
    if head and b"\x00" not in head:
        try:
            text = head.decode("utf-8").lstrip().lower()
        except UnicodeDecodeError:
            return None
        return "an HTML page" if text.startswith(("<!doctype html", "<html")) else "a text file"
    return None


def _looks_like_bare_dicom(data: bytes) -> bool:
    # A DICOM stream without preamble starts with a (0002|0008, small) tag: explicit VR letters or a sane length.
    if len(data) < 8:
        return False
    group, element = struct.unpack_from("<HH", data, 0)
    if group not in (0x0002, 0x0008) or element > 0x00FF:
        return False
    if data[4:6] in _DICOM_VRS:
        return True
    (length,) = struct.unpack_from("<I", data, 4)
    return 0 < length <= min(len(data) - 8, 1024)


def _check_and_sniff(*, data: bytes, name: str, limits: DecodeLimits) -> ImageKind:
    if not data:
        raise ImageDecodeError(f"{name}: file is empty; {WHAT_TO_UPLOAD}.", code="empty")
    if len(data) > limits.max_bytes:
        raise ImageDecodeError(
            f"{name}: file is {len(data) / 1e6:.1f} MB, above the {limits.max_bytes / 1e6:.0f} MB limit; "
            "upload a smaller export or split the series.",
            code="too_large",
        )
    kind = sniff(data)
    if kind is None:
        what = describe_content(data)
        detail = f"file is {what}, not an image" if what else "file type not recognised (not PNG, JPEG or DICOM)"
        raise ImageDecodeError(f"{name}: {detail}; {WHAT_TO_UPLOAD}.", code="unsupported_type")
    return kind


def _check_pixels(*, name: str, width: int, height: int, limits: DecodeLimits) -> None:
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{name}: image has no pixels ({width}x{height}); export it again.", code="corrupt")
    if width * height > limits.max_pixels:
        raise ImageDecodeError(
            f"{name}: image is {width}x{height} ({width * height / 1e6:.0f} megapixels), above the "
            f"{limits.max_pixels / 1e6:.0f} megapixel limit; downscale it or export a smaller image.",
            code="too_many_pixels",
        )


def _decode_pillow(*, data: bytes, name: str, kind: ImageKind, limits: DecodeLimits) -> DecodedImage:
    from PIL import Image, ImageOps

    label = kind.upper()
    try:
        # catch_warnings is process-global; our own pixel check below is the real guard, this is belt and braces.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[kind]]) as im:
                _check_pixels(name=name, width=im.width, height=im.height, limits=limits)
                im.load()
                # Phones and cameras store rotation in EXIF; browsers honour it, so the model must see the same.
                stored, photometric, bits = _pillow_array(ImageOps.exif_transpose(im) if kind == "jpeg" else im)
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(
            f"{name}: image dimensions are far too large for an upload (possible decompression bomb); "
            "downscale it or export a smaller image.",
            code="too_many_pixels",
        ) from exc
    except Exception as exc:  # hostile input can make Pillow raise almost anything; the user needs one message
        logger.info("Pillow could not decode %s", name, exc_info=True)
        raise ImageDecodeError(
            f"{name}: the {label} file is truncated or corrupt and cannot be decoded; export it again and re-upload.",
            code="corrupt",
        ) from exc
    values = stored.astype(np.float32)
    pixels = np.clip(values / float(2**bits - 1), 0.0, 1.0).astype(np.float32)
    return DecodedImage(
        kind=kind, width=stored.shape[1], height=stored.shape[0], channels=1 if stored.ndim == 2 else 3,
        bits_stored=bits, photometric=photometric, pixels=pixels, display=np.rint(pixels * 255.0).astype(np.uint8),
        values=values, window=None, value_range=(float(values.min()), float(values.max())),
    )


def _pillow_array(im: Any) -> tuple[np.ndarray, str, int]:
    if im.mode.startswith("I;16") or im.mode == "I":
        return np.clip(np.asarray(im), 0, 65535).astype(np.uint16), "MONOCHROME2", 16
    if im.mode in ("1", "L", "LA"):
        return np.asarray(im.convert("L")), "MONOCHROME2", 8
    return np.asarray(im.convert("RGB")), "RGB", 8


def _read_dicom(*, data: bytes, name: str) -> Any:
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        if "TransferSyntaxUID" not in ds.file_meta:  # bare dataset without file meta: pydicom guessed the encoding
            implicit = ds.original_encoding[0]
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    except Exception as exc:
        logger.info("pydicom could not read %s", name, exc_info=True)
        raise ImageDecodeError(
            f"{name}: DICOM file is truncated or corrupt and cannot be read; export it again and re-upload.",
            code="corrupt",
        ) from exc
    return ds


def _decode_dicom(*, data: bytes, name: str, limits: DecodeLimits, frame: int | None) -> list[DecodedImage]:
    ds = _read_dicom(data=data, name=name)
    try:
        return _decode_dataset(ds=ds, name=name, limits=limits, frame=frame)
    except ImageDecodeError:
        raise
    except Exception as exc:  # malformed headers or codec failures surface as many types; the user needs one message
        logger.info("Could not decode DICOM pixel data of %s", name, exc_info=True)
        raise ImageDecodeError(
            f"{name}: DICOM pixel data is corrupt or truncated and cannot be decoded; export it again and re-upload.",
            code="corrupt",
        ) from exc


def _decode_dataset(*, ds: Any, name: str, limits: DecodeLimits, frame: int | None) -> list[DecodedImage]:
    from pydicom.pixels import apply_color_lut, get_decoder
    from pydicom.pixels.utils import get_expected_length

    if "PixelData" not in ds:
        sop = getattr(ds.get("SOPClassUID"), "name", "")
        what = f" (it is a {sop})" if sop and not sop[0].isdigit() else ""
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            what = " (float pixel data, e.g. a parametric map, is not supported)"
        raise ImageDecodeError(
            f"{name}: DICOM file has no pixel data{what}; upload the image series, not the report.",
            code="no_pixel_data",
        )
    ts = ds.file_meta.TransferSyntaxUID
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        decoder = None
    if decoder is None or not decoder.is_available:
        raise ImageDecodeError(
            f"{name}: DICOM transfer syntax '{ts.name}' ({ts}) is not supported; export the series uncompressed "
            "(Explicit VR Little Endian) or as JPEG 2000 and upload again.",
            code="unsupported_transfer_syntax",
        )
    rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    frames = int(ds.get("NumberOfFrames") or 1)
    if photometric not in _PHOTOMETRICS:
        raise ImageDecodeError(
            f"{name}: DICOM photometric interpretation '{photometric or 'missing'}' is not supported; "
            "export the images as MONOCHROME2 or RGB.",
            code="unsupported_photometric",
        )
    _check_pixels(name=name, width=columns, height=rows, limits=limits)
    if frames > limits.max_frames or rows * columns * frames > limits.max_total_pixels:
        raise ImageDecodeError(
            f"{name}: DICOM file has {frames} frames of {columns}x{rows}, above the upload limit; "
            "split the series into smaller files.",
            code="too_many_pixels",
        )
    if frame is not None and not 0 <= frame < frames:
        raise ImageDecodeError(f"{name}: frame {frame} does not exist (file has {frames}).", code="invalid_frame")
    if not ts.is_encapsulated:
        expected = get_expected_length(ds)  # knows YBR_FULL_422 subsampling and 1-bit packing
        if len(ds.PixelData) < expected:
            raise ImageDecodeError(
                f"{name}: DICOM pixel data is truncated ({len(ds.PixelData)} of {expected} bytes); "
                "the upload was cut off or the export failed, so upload the file again.",
                code="truncated",
            )
    info = dicom_info_from_dataset(ds)
    indices = range(frames) if frame is None else [frame]
    decoded = []
    for arr, meta in decoder.iter_array(ds, indices=indices, as_rgb=True):
        out_photometric = str(meta.get("photometric_interpretation", photometric))
        bits = int(ds.get("BitsStored") or ds.BitsAllocated)
        if out_photometric == "PALETTE COLOR":
            arr = apply_color_lut(arr, ds)
            out_photometric, bits = "RGB", int(ds.RedPaletteColorLookupTableDescriptor[2])
        index = indices[len(decoded)]
        decoded.append(_finish_dicom(ds=ds, arr=arr, photometric=out_photometric, bits=bits, index=index, info=info))
    return decoded


def _finish_dicom(
    *, ds: Any, arr: np.ndarray, photometric: str, bits: int, index: int, info: DicomInfo
) -> DecodedImage:
    from pydicom.pixels import apply_modality_lut

    channels = 3 if arr.ndim == 3 else 1
    voi_function, window = "LINEAR", None
    if channels == 3:
        values = arr.astype(np.float32)
        pixels = np.clip(values / float(2**bits - 1), 0.0, 1.0).astype(np.float32)
    else:
        if "ModalityLUTSequence" in ds:
            values, rescaled = apply_modality_lut(arr, ds).astype(np.float32), True
        else:
            slope = _float(_functional(ds, "PixelValueTransformationSequence", "RescaleSlope", index), 1.0)
            intercept = _float(_functional(ds, "PixelValueTransformationSequence", "RescaleIntercept", index), 0.0)
            values = arr.astype(np.float32) * np.float32(slope) + np.float32(intercept)
            rescaled = slope != 1.0 or intercept != 0.0
        centers = _functional(ds, "FrameVOILUTSequence", "WindowCenter", index)
        widths = _functional(ds, "FrameVOILUTSequence", "WindowWidth", index)
        center, width = _float(_first(centers), None), _float(_first(widths), None)
        if center is not None and width is not None and width > 0:
            window = (center, width)
            voi_function = str(_functional(ds, "FrameVOILUTSequence", "VOILUTFunction", index) or "LINEAR").upper()
        elif bits <= 8 and not rescaled:  # 8-bit images are meant to be seen as stored
            window = (float(2 ** (bits - 1)), float(2**bits))
        else:  # no window in the file: show the full range of values present
            low, high = float(values.min()), float(values.max())
            window = (low + (high - low + 1.0) / 2.0, high - low + 1.0)
        pixels = apply_window(values=values, center=window[0], width=window[1], function=voi_function)
        if _inverts(photometric, str(ds.get("PresentationLUTShape", ""))):
            pixels = 1.0 - pixels
    return DecodedImage(
        kind="dicom", width=arr.shape[1], height=arr.shape[0], channels=channels, bits_stored=bits,
        photometric=photometric, pixels=pixels, display=np.rint(pixels * 255.0).astype(np.uint8), values=values,
        window=window, value_range=(float(values.min()), float(values.max())), voi_function=voi_function,
        frame_index=index, frame_count=info.number_of_frames, dicom=info,
    )


def _inverts(photometric: str, presentation_lut_shape: str = "") -> bool:
    return photometric == "MONOCHROME1" or presentation_lut_shape.upper() == "INVERSE"


def dicom_info_from_dataset(dataset: Any) -> DicomInfo:
    """Read the `DicomInfo` of a pydicom Dataset, tolerating missing or malformed optional values."""
    get = dataset.get
    ts = dataset.file_meta.get("TransferSyntaxUID") if hasattr(dataset, "file_meta") else None
    position = _floats(get("ImagePositionPatient"), 3)
    orientation = _floats(get("ImageOrientationPatient"), 6)
    spacing = _floats(get("PixelSpacing") or _functional(dataset, "PixelMeasuresSequence", "PixelSpacing", 0), 2)
    slice_location = _float(get("SliceLocation"), None)
    slice_position = slice_location
    if position is not None:
        slice_position = position[2]
        if orientation is not None:
            normal = np.cross(np.array(orientation[:3]), np.array(orientation[3:]))
            slice_position = float(np.dot(normal, np.array(position)))
    return DicomInfo(
        sop_class_uid=str(get("SOPClassUID", "")), sop_instance_uid=str(get("SOPInstanceUID", "")),
        study_instance_uid=str(get("StudyInstanceUID", "")), series_instance_uid=str(get("SeriesInstanceUID", "")),
        modality=str(get("Modality", "")), study_description=str(get("StudyDescription", "")),
        series_description=str(get("SeriesDescription", "")), body_part_examined=str(get("BodyPartExamined", "")),
        series_number=_int(get("SeriesNumber")), instance_number=_int(get("InstanceNumber")),
        slice_location=slice_location, image_position=position, slice_position=slice_position,  # type: ignore[arg-type]
        pixel_spacing=spacing, slice_thickness=_float(get("SliceThickness"), None),  # type: ignore[arg-type]
        rows=_int(get("Rows")), columns=_int(get("Columns")), number_of_frames=_int(get("NumberOfFrames")) or 1,
        photometric_interpretation=str(get("PhotometricInterpretation", "")),
        bits_allocated=_int(get("BitsAllocated")), bits_stored=_int(get("BitsStored")),
        transfer_syntax_uid=str(ts or ""), transfer_syntax_name=getattr(ts, "name", "") if ts else "",
    )


def _functional(ds: Any, sequence: str, keyword: str, frame: int) -> Any:
    # Enhanced multi-frame objects keep per-frame then shared values in functional groups; classic ones at top level.
    for group_name in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        groups = ds.get(group_name)
        if not groups:
            continue
        item = groups[frame] if group_name.startswith("PerFrame") and frame < len(groups) else groups[0]
        inner = item.get(sequence)
        if inner and keyword in inner[0]:
            return inner[0].get(keyword)
    return ds.get(keyword)


def _first(value: Any) -> Any:
    if value is None or isinstance(value, str | bytes):
        return value
    try:
        return value[0]
    except (TypeError, IndexError):
        return value


def _float(value: Any, default: float | None) -> Any:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return default
    return result if np.isfinite(result) else default


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count and all(np.isfinite(numbers)) else None
