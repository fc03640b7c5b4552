"""Decoding of uploads: every rejection says what and what to do; every accepted variant has the right pixels."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000, MPEG2MPML, JPEG2000Lossless, JPEGLSLossless, RLELossless

from imaging.decoding import (
    DecodeLimits,
    ImageDecodeError,
    apply_window,
    decode_frames,
    decode_image,
    display_for_window,
    load_pixels,
    png_without_metadata,
    sniff,
)
from tests.imaging import dicom_fixtures as fx

LIMITS = DecodeLimits()


def decode(data: bytes, name: str = "scan.dcm", limits: DecodeLimits = LIMITS):
    return decode_image(data=data, filename=name, limits=limits)


def rejection(data: bytes, name: str, limits: DecodeLimits = LIMITS) -> ImageDecodeError:
    with pytest.raises(ImageDecodeError) as info:
        decode(data, name, limits)
    message = str(info.value)
    assert message.startswith(f"{name}: ")
    assert "Traceback" not in message and "Error" not in message
    return info.value


# --- sniffing -----------------------------------------------------------------------------------------------------


def test_sniff_by_content_never_by_name():
    assert sniff(fx.png_bytes()) == "png"
    assert sniff(fx.jpeg_bytes()) == "jpeg"
    assert sniff(fx.dicom_bytes(fx.ct_dataset())) == "dicom"
    assert sniff(fx.dicom_bytes(fx.ct_dataset(), preamble=False)) == "dicom"
    assert sniff(fx.pdf_bytes()) is None
    assert sniff(b"hello world, this is text") is None
    assert sniff(b"\x08\x00\x05\x00" + b"\xff" * 200) is None  # looks like a tag, but no VR and an absurd length


# --- rejections -----------------------------------------------------------------------------------------------------


def test_empty_file():
    error = rejection(b"", "scan.png")
    assert error.code == "empty" and "file is empty" in str(error)


def test_size_limit():
    error = rejection(fx.png_bytes(), "big.png", DecodeLimits(max_bytes=10))
    assert error.code == "too_large" and "above the" in str(error)


def test_pdf_renamed_png_is_rejected_as_pdf():
    error = rejection(fx.pdf_bytes(), "scan.png")
    assert error.code == "unsupported_type"
    assert str(error) == "scan.png: file is a PDF document, not an image; upload PNG, JPEG or DICOM."


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"GIF89a" + b"\x00" * 20, "a GIF image"),
        (b"II*\x00" + b"\x00" * 20, "a TIFF image"),
        (b"plain notes\n", "a text file"),
    ],
)
def test_other_formats_say_what_they_are(data, what):
    assert what in str(rejection(data, "scan.jpg"))


def test_unrecognised_binary():
    error = rejection(b"\x00\x01\x02\x03" * 64, "scan.bin")
    assert "file type not recognised" in str(error)


def test_decompression_bomb_png_rejected_before_decoding():
    bomb = fx.bomb_png(side=10_000)  # 100 megapixels in ~100 KB
    assert len(bomb) < 200_000
    error = rejection(bomb, "bomb.png")
    assert error.code == "too_many_pixels"
    # Even with our own limit lifted, Pillow's bomb warning is an error, not a warning.
    error = rejection(bomb, "bomb.png", DecodeLimits(max_pixels=10**10))
    assert error.code == "too_many_pixels" and "decompression bomb" in str(error)


def test_pixel_limit_names_dimensions():
    error = rejection(fx.png_bytes(size=(300, 200)), "wide.png", DecodeLimits(max_pixels=50_000))
    assert error.code == "too_many_pixels" and "300x200" in str(error)


def test_dicom_pixel_limit_checked_from_header():
    error = rejection(fx.dicom_bytes(fx.ct_dataset()), "ct.dcm", DecodeLimits(max_pixels=100))
    assert error.code == "too_many_pixels" and "32x32" in str(error)


def test_truncated_png_and_jpeg():
    assert rejection(fx.truncated(fx.png_bytes(size=(200, 200))), "cut.png").code == "corrupt"
    assert "truncated or corrupt" in str(rejection(fx.truncated(fx.jpeg_bytes(size=(200, 200))), "cut.jpg"))


def test_truncated_dicom():
    error = rejection(fx.truncated(fx.dicom_bytes(fx.ct_dataset()), keep=0.7), "cut.dcm")
    assert error.code == "truncated" and "upload the file again" in str(error)


def test_dicom_without_pixel_data():
    error = rejection(fx.dicom_bytes(fx.report_dataset()), "report.dcm")
    assert error.code == "no_pixel_data"
    assert "report.dcm: DICOM file has no pixel data" in str(error)
    assert "upload the image series, not the report." in str(error)


def test_unsupported_transfer_syntax():
    ds = fx.ct_dataset()
    ds.file_meta.TransferSyntaxUID = MPEG2MPML  # video: no pixel decoder exists for it
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 12])
    error = rejection(fx.dicom_bytes(ds), "odd.dcm")
    assert error.code == "unsupported_transfer_syntax"
    assert "transfer syntax" in str(error) and "Explicit VR Little Endian" in str(error)


def test_unsupported_photometric():
    ds = fx.mono8_dataset()
    ds.PhotometricInterpretation = "CMYK"
    assert rejection(fx.dicom_bytes(ds), "cmyk.dcm").code == "unsupported_photometric"


def test_corrupt_compressed_dicom():
    ds = fx.compressed(fx.ct_dataset(), RLELossless)
    ds.PixelData = ds.PixelData[:40] + b"\xff" * 16
    assert rejection(fx.dicom_bytes(ds), "rle.dcm").code == "corrupt"


# --- accepted files -------------------------------------------------------------------------------------------------


def test_png_grayscale_and_rgba():
    gray = decode(fx.png_bytes(), "a.png")
    assert (gray.kind, gray.channels, gray.bits_stored, gray.pixels.shape) == ("png", 1, 8, (16, 24))
    assert gray.pixels.dtype == np.float32 and gray.display.dtype == np.uint8
    assert gray.pixels.min() == 0.0 and gray.pixels.max() == 1.0 and gray.window is None
    rgba = decode(fx.png_bytes(mode="RGBA"), "a.png")
    assert rgba.pixels.shape == (16, 24, 3) and rgba.photometric == "RGB"


def test_png_16_bit_keeps_full_range():
    image = decode(fx.png_bytes(mode="I;16"), "a16.png")
    assert image.bits_stored == 16 and image.pixels.shape == (16, 24)
    assert image.value_range == (0.0, 65535.0)
    assert image.pixels[0, -1] == pytest.approx(1.0) and image.display[0, -1] == 255


def test_jpeg_rgb_and_dicom_named_jpg():
    jpeg = decode(fx.jpeg_bytes(), "photo.jpeg")
    assert jpeg.kind == "jpeg" and jpeg.pixels.shape == (16, 24, 3)
    dicom = decode(fx.dicom_bytes(fx.ct_dataset()), "actually_dicom.jpg")
    assert dicom.kind == "dicom" and dicom.dicom is not None


def test_jpeg_exif_orientation_applied():
    assert decode(fx.jpeg_bytes(exif_orientation=6), "phone.jpg").pixels.shape == (24, 16, 3)


def test_ct_modality_lut_and_first_window():
    image = decode(fx.dicom_bytes(fx.ct_dataset()))
    assert (image.channels, image.bits_stored, image.photometric) == (1, 12, "MONOCHROME2")
    assert image.values[0, 0] == fx.CT_INTERCEPT  # stored 0 -> -1024 HU
    assert image.values[0, 1] == 40.0 and image.values[0, 2] == 3071.0
    assert image.window == fx.CT_WINDOW
    assert image.value_range == (-1024.0, 3071.0)
    assert image.display[0, 0] == 0 and image.display[0, 2] == 255
    assert abs(int(image.display[0, 1]) - 128) <= 1  # the window center is mid-gray
    assert image.pixels.min() >= 0.0 and image.pixels.max() <= 1.0


def test_signed_ct():
    image = decode(fx.dicom_bytes(fx.signed_ct_dataset()))
    assert (image.values[0, 0], image.values[0, 1], image.values[0, 2]) == (-1000.0, 40.0, 2000.0)
    assert image.display[0, 0] == 0 and abs(int(image.display[0, 1]) - 128) <= 1 and image.display[0, 2] == 255


def test_palette_colour_expands_to_rgb():
    image = decode(fx.dicom_bytes(fx.palette_dataset()))
    assert image.photometric == "RGB" and image.channels == 3 and image.bits_stored == 16
    assert tuple(image.display[0, 0]) == (0, 255, 0) and tuple(image.display[0, -1]) == (240, 15, 0)


def test_rewindow_for_viewer():
    image = decode(fx.dicom_bytes(fx.ct_dataset()))
    bone = display_for_window(image=image, center=300.0, width=2000.0)
    assert bone.dtype == np.uint8 and bone.shape == image.display.shape
    assert 0 < bone[0, 1] < 128  # 40 HU is below the bone window's center
    assert np.array_equal(display_for_window(image=image, center=40.0, width=400.0), image.display)


def test_monochrome1_is_inverted():
    image = decode(fx.dicom_bytes(fx.monochrome1_dataset()))
    assert image.photometric == "MONOCHROME1"
    assert image.display[0, 0] == 0  # max stored value shows dark
    assert image.display[0, 1] == 255  # zero shows white
    assert image.window == (2048.0, 4096.0)  # no window in the file: min/max fallback


def test_mono8_without_window_shows_stored_values():
    image = decode(fx.dicom_bytes(fx.mono8_dataset()))
    assert image.bits_stored == 8 and image.window == (128.0, 256.0)
    assert np.array_equal(image.display, image.values.astype(np.uint8))


@pytest.mark.parametrize(("photometric", "tolerance"), [("RGB", 0), ("YBR_FULL", 2), ("YBR_FULL_422", 12)])
def test_colour_dicom_comes_out_rgb(photometric, tolerance):
    image = decode(fx.dicom_bytes(fx.rgb_dataset(photometric=photometric)))
    assert image.photometric == "RGB" and image.pixels.shape == (16, 24, 3) and image.channels == 3
    # YBR conversion rounds; 4:2:2 also shares chroma between pixel pairs
    assert np.abs(image.display.astype(int) - fx.rgb_pixels().astype(int)).max() <= tolerance


def test_dicom_without_preamble_implicit_vr():
    image = decode(fx.dicom_bytes(fx.ct_dataset(), preamble=False), "IM0001")
    assert image.window == fx.CT_WINDOW and image.values[0, 0] == fx.CT_INTERCEPT
    assert image.dicom.transfer_syntax_name == "Implicit VR Little Endian"


@pytest.mark.parametrize("transfer_syntax", [RLELossless, JPEG2000Lossless])
def test_lossless_compressed_ct_matches_uncompressed(transfer_syntax):
    plain = decode(fx.dicom_bytes(fx.ct_dataset()))
    packed = decode(fx.dicom_bytes(fx.compressed(fx.ct_dataset(), transfer_syntax)))
    assert packed.dicom.transfer_syntax_uid == transfer_syntax
    assert np.array_equal(packed.values, plain.values) and packed.window == plain.window


def test_lossy_jpeg2000_is_close():
    ds = fx.compressed(fx.ct_dataset(rows=64, columns=64), JPEG2000, j2k_cr=[4])
    image = decode(fx.dicom_bytes(ds))
    assert image.pixels.shape == (64, 64) and image.dicom.transfer_syntax_uid == JPEG2000
    reference = fx.ct_pixels(rows=64, columns=64) + fx.CT_INTERCEPT
    assert np.abs(image.values - reference).mean() < 100  # lossy, but the same picture


def test_jpeg_baseline_colour_and_gray():
    colour = decode(fx.dicom_bytes(fx.jpeg_baseline(fx.rgb_dataset())))
    assert colour.photometric == "RGB" and colour.channels == 3
    assert np.abs(colour.display.astype(int) - fx.rgb_pixels().astype(int)).mean() < 6
    gray = decode(fx.dicom_bytes(fx.jpeg_baseline(fx.mono8_dataset())))
    assert gray.channels == 1 and np.abs(gray.values - fx.mono8_dataset().pixel_array).mean() < 4


def test_multiframe_frames():
    data = fx.dicom_bytes(fx.multiframe_dataset(frames=3))
    frames = decode_frames(data=data, filename="cine.dcm", limits=LIMITS)
    assert [f.frame_index for f in frames] == [0, 1, 2] and {f.frame_count for f in frames} == {3}
    assert [float(f.values.mean()) for f in frames] == [40.0, 80.0, 120.0]
    second = decode_image(data=data, filename="cine.dcm", limits=LIMITS, frame=1)
    assert float(second.values.mean()) == 80.0
    error = rejection(data, "cine.dcm", DecodeLimits(max_frames=2))
    assert error.code == "too_many_pixels" and "3 frames" in str(error)


def test_dicom_info():
    info = decode(fx.dicom_bytes(fx.ct_dataset(instance_number=7, z=35.0))).dicom
    assert (info.study_instance_uid, info.series_instance_uid) == (fx.STUDY_UID, fx.SERIES_UID)
    assert info.sop_instance_uid == fx.UID_ROOT + "2.7" and info.instance_number == 7
    assert info.slice_location == 35.0 and info.slice_position == 35.0
    assert info.image_position == (-100.0, -100.0, 35.0) and info.pixel_spacing == (0.7, 0.8)
    assert (info.modality, info.series_description, info.study_description) == (
        "CT", fx.SERIES_DESCRIPTION, fx.STUDY_DESCRIPTION)
    assert (info.body_part_examined, info.rows, info.columns) == ("CHEST", 32, 32)
    assert info.transfer_syntax_name == "Explicit VR Little Endian"


def test_series_slices_sort_by_position():
    infos = [decode(fx.dicom_bytes(ds)).dicom for ds in reversed(fx.ct_series(count=4))]
    assert {i.series_instance_uid for i in infos} == {fx.SERIES_UID}
    assert sorted(i.slice_position for i in infos) == [0.0, 5.0, 10.0, 15.0]


def test_apply_window_linear_formula():
    values = np.array([-161.0, 40.0, 240.0], dtype=np.float32)
    out = apply_window(values=values, center=40.0, width=400.0)
    assert out[0] == 0.0 and out[2] == 1.0 and out[1] == pytest.approx(0.5, abs=0.01)


def test_load_pixels_contract(tmp_path):
    for name, data, shape in [
        ("a.png", fx.png_bytes(), (16, 24)),
        ("a.jpg", fx.jpeg_bytes(), (16, 24, 3)),
        ("ct.dcm", fx.dicom_bytes(fx.ct_dataset()), (32, 32)),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        pixels = load_pixels(path)
        assert pixels.dtype == np.float32 and pixels.shape == shape
        assert pixels.min() >= 0.0 and pixels.max() <= 1.0
    with pytest.raises(ImageDecodeError):
        (tmp_path / "x.png").write_bytes(fx.pdf_bytes())
        load_pixels(tmp_path / "x.png")


def test_jpeg_ls_is_decodable_in_principle():
    # We cannot encode JPEG-LS here (no encoder installed); assert the decoder plugin is present so it is not rejected.
    from pydicom.pixels import get_decoder

    assert get_decoder(JPEGLSLossless).is_available


def _chunk_kinds(data: bytes) -> list[bytes]:
    kinds, position = [], 8
    while position < len(data):
        (length,) = struct.unpack_from(">I", data, position)
        kinds.append(data[position + 4:position + 8])
        position += 12 + length
    return kinds


@pytest.mark.parametrize("mode", ["I;16", "L"])
def test_png_without_metadata_keeps_the_pixel_chunks_byte_for_byte(mode):
    original = fx.png_with_identity(mode=mode)
    assert fx.PATIENT_NAME.encode() in original and fx.OPERATOR_NAME.encode() in original
    stripped = png_without_metadata(original)
    assert _chunk_kinds(stripped) == [b"IHDR", b"IDAT", b"IEND"]
    for value in (fx.PATIENT_NAME, fx.PATIENT_ID, fx.PATIENT_ADDRESS, fx.INSTITUTION_NAME, fx.REFERRING_PHYSICIAN,
                  fx.OPERATOR_NAME):
        assert value.encode() not in stripped
    idat = original.index(b"IDAT") - 4
    assert original[idat:idat + 12 + struct.unpack_from(">I", original, idat)[0]] in stripped  # not re-encoded
    before, after = decode(original, "a.png"), decode(stripped, "a.png")
    assert np.array_equal(before.values, after.values) and before.bits_stored == after.bits_stored


def test_png_without_metadata_keeps_palette_and_transparency_and_ends_a_truncated_file():
    from PIL import Image as PILImage

    image = PILImage.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8) % 4).convert("P")
    image.info["transparency"] = 2
    buf = io.BytesIO()
    image.save(buf, "PNG", transparency=2)
    data = buf.getvalue()
    stripped = png_without_metadata(data)
    assert _chunk_kinds(stripped) == [b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"]
    assert np.array_equal(decode(stripped, "p.png").values, decode(data, "p.png").values)
    without_end = png_without_metadata(data[: data.index(b"IEND") - 4])
    assert without_end.endswith(stripped[-12:]) and _chunk_kinds(without_end)[-1] == b"IEND"
