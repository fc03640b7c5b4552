"""The PNG writer behind previews, overlays and JPEG originals: lossless for every array it accepts."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imaging.storage import encode_png


@pytest.mark.parametrize(("shape", "dtype"), [
    ((37, 53), np.uint8), ((37, 53), np.uint16), ((20, 31, 3), np.uint8), ((20, 31, 4), np.uint8),
    ((1, 1), np.uint8), ((1, 7, 3), np.uint8), ((9, 1), np.uint16),
])
def test_encode_png_round_trips_exactly(shape, dtype):
    rng = np.random.default_rng(0)
    array = rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype, endpoint=True)
    decoded = Image.open(io.BytesIO(encode_png(array)))
    decoded.load()  # verifies every chunk's CRC and the zlib stream
    assert decoded.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(decoded).astype(np.int64), array.astype(np.int64))


def test_colour_16_bit_is_reduced_to_8_bits_and_other_arrays_are_refused():
    array = np.full((4, 5, 3), 0x1234, dtype=np.uint16)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(array)))), np.full((4, 5, 3), 0x12, np.uint8))
    for bad in (np.zeros((4, 4), np.float32), np.zeros((4, 4, 2), np.uint8), np.zeros((2, 2, 2, 2), np.uint8)):
        with pytest.raises(ValueError, match="cannot encode"):
            encode_png(bad)


def test_smaller_than_raw_on_smooth_images():
    ramp = np.tile(np.arange(256, dtype=np.uint8), (256, 1))
    assert len(encode_png(ramp)) < ramp.nbytes / 20
