"""Tests for faceledger.inference.imaging: every image is generated here, none read from disk."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from PIL import Image as PILImage
from PIL import ImageOps

from faceledger.domain.errors import (
    FaceLedgerError,
    ImageTooLargeError,
    InvalidImageFormatError,
    InvalidParameterError,
)
from faceledger.inference import imaging
from faceledger.inference.imaging import (
    MAX_IMAGE_BYTES,
    decode_image,
    load_image,
    sniff_format,
)

RED_BGR = (0, 0, 255)
GENERIC_FALLBACK = "The image could not be decoded (corrupt or unsupported data)"

# --------------------------------------------------------------------------------------------
# Image factories


def noise_bgr(height: int, width: int, seed: int = 0) -> NDArray[np.uint8]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def marked_bgr(height: int = 120, width: int = 200) -> NDArray[np.uint8]:
    """Gray, non-square, with a red block in the top-left corner (survives JPEG)."""
    pixels = np.full((height, width, 3), 128, dtype=np.uint8)
    pixels[:30, :30] = RED_BGR
    return pixels


def cv2_encode(
    pixels: NDArray[np.uint8] | NDArray[np.uint16], ext: str, params: list[int] | None = None
) -> bytes:
    ok, buf = cv2.imencode(ext, pixels, params or [])
    assert ok
    return buf.tobytes()


def jpeg_bytes(pixels: NDArray[np.uint8], **params: int) -> bytes:
    flat = [v for key, value in params.items() for v in (getattr(cv2, key), value)]
    return cv2_encode(pixels, ".jpg", flat)


def png_bytes(pixels: NDArray[np.uint8] | NDArray[np.uint16]) -> bytes:
    return cv2_encode(pixels, ".png")


def pil_bytes(image: PILImage.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def with_orientation(pixels_bgr: NDArray[np.uint8], orientation: int, fmt: str) -> bytes:
    """Encode ``pixels_bgr`` as stored pixels with an EXIF orientation tag, via Pillow."""
    image = PILImage.fromarray(np.ascontiguousarray(pixels_bgr[:, :, ::-1]))
    exif = image.getexif()
    exif[0x0112] = orientation
    extra: dict[str, object] = {"quality": 95} if fmt == "JPEG" else {}
    return pil_bytes(image, fmt, exif=exif.tobytes(), **extra)


def png_chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(ctype + payload)
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


def png_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A tiny, well-formed PNG whose IHDR claims ``width``×``height`` RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def jpeg_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A valid small JPEG with its SOF0 dimensions patched to ``width``×``height``."""
    data = bytearray(jpeg_bytes(noise_bgr(96, 96)))
    sof = data.find(b"\xff\xc0")
    assert sof > 0
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


@pytest.fixture(scope="module")
def small_jpeg() -> bytes:
    return jpeg_bytes(noise_bgr(96, 128, seed=1), IMWRITE_JPEG_QUALITY=80)


@pytest.fixture(scope="module")
def small_png() -> bytes:
    return png_bytes(noise_bgr(96, 128, seed=2))


def assert_error(
    exc_info: pytest.ExceptionInfo[FaceLedgerError],
    cls: type[FaceLedgerError],
    code: str,
    *phrases: str,
) -> None:
    err = exc_info.value
    assert type(err) is cls
    assert err.code == code
    assert err.http_status == 400
    for phrase in phrases:
        assert phrase in err.message, f"{phrase!r} not in {err.message!r}"
    assert not err.message.startswith(GENERIC_FALLBACK)


# --------------------------------------------------------------------------------------------
# sniff_format


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xe0rest", "jpeg"),
        (b"\x89PNG\r\n\x1a\nrest", "png"),
        (b"GIF89a", None),
        (b"BM\x00\x00", None),
        (b"\xff\xd8", None),  # too short to be sure
        (b"", None),
        (b"hello.jpg", None),
    ],
)
def test_sniff_format(data: bytes, expected: str | None) -> None:
    assert sniff_format(data) == expected


# --------------------------------------------------------------------------------------------
# Errors, table-driven


def _text_bytes() -> bytes:
    return b"This is a text file that someone renamed to photo.jpg\n" * 20


def _gif() -> bytes:
    return pil_bytes(PILImage.new("RGB", (100, 100), (255, 0, 0)), "GIF")


def _bmp() -> bytes:
    return pil_bytes(PILImage.new("RGB", (100, 100), (255, 0, 0)), "BMP")


def _webp() -> bytes:
    return cv2_encode(noise_bgr(100, 100), ".webp")


def _tiff() -> bytes:
    return pil_bytes(PILImage.new("RGB", (100, 100), (255, 0, 0)), "TIFF")


def _six_mb() -> bytes:
    return b"\xff\xd8\xff\xe0" + bytes(6 * 1024 * 1024 - 4)


def _random_bytes() -> bytes:
    return bytes(np.random.default_rng(3).integers(0, 256, 2048, dtype=np.uint8)) + b"\x00"


def _truncated_jpeg() -> bytes:
    data = jpeg_bytes(noise_bgr(120, 160))
    return data[: int(len(data) * 0.6)]


def _truncated_progressive_jpeg() -> bytes:
    data = jpeg_bytes(noise_bgr(120, 160), IMWRITE_JPEG_PROGRESSIVE=1)
    return data[: int(len(data) * 0.6)]


def _jpeg_without_eoi() -> bytes:
    data = jpeg_bytes(noise_bgr(120, 160))
    assert data.endswith(b"\xff\xd9")
    return data[:-2]


def _truncated_png() -> bytes:
    data = png_bytes(noise_bgr(120, 160))
    return data[: int(len(data) * 0.6)]


def _png_without_iend() -> bytes:
    data = png_bytes(noise_bgr(120, 160))
    assert data.endswith(png_chunk(b"IEND", b""))
    return data[:-12]


def _png_bad_ihdr_crc() -> bytes:
    data = bytearray(png_bytes(noise_bgr(120, 160)))
    data[29] ^= 0xFF  # last byte of the IHDR CRC
    return bytes(data)


def _png_corrupt_idat() -> bytes:
    data = bytearray(png_bytes(noise_bgr(120, 160)))
    start = data.find(b"IDAT") + 4
    data[start : start + 200] = bytes(200)  # zlib stream destroyed; chunk structure intact
    return bytes(data)


def _jpeg_of_empty_segments() -> bytes:
    return b"\xff\xd8" + b"\xff\xfe\x00\x02" * 1_000_000  # 4 MB of empty comments


def _tiny_png() -> bytes:
    return png_bytes(noise_bgr(8, 8))


def _thin_jpeg() -> bytes:
    return jpeg_bytes(noise_bgr(200, 79))


ERROR_CASES: list[tuple[str, Callable[[], bytes], type[FaceLedgerError], str, tuple[str, ...]]] = [
    ("empty", lambda: b"", InvalidImageFormatError, "InvalidImageFormatException",
     ("The image is empty (0 bytes)", "JPEG or PNG")),
    ("6 MB", _six_mb, ImageTooLargeError, "ImageTooLargeException",
     ("6,291,456 bytes", "5,242,880 bytes")),
    ("text", _text_bytes, InvalidImageFormatError, "InvalidImageFormatException",
     ("text, not an image", "JPEG or PNG")),
    ("gif", _gif, InvalidImageFormatError, "InvalidImageFormatException",
     ("GIF images are not supported", "JPEG or PNG")),
    ("bmp", _bmp, InvalidImageFormatError, "InvalidImageFormatException",
     ("BMP images are not supported", "JPEG or PNG")),
    ("webp", _webp, InvalidImageFormatError, "InvalidImageFormatException",
     ("WebP images are not supported",)),
    ("tiff", _tiff, InvalidImageFormatError, "InvalidImageFormatException",
     ("TIFF images are not supported",)),
    ("base64 jpeg", lambda: b"/9j/4AAQSkZJRgABAQ==", InvalidImageFormatError,
     "InvalidImageFormatException", ("base64-encoded JPEG", "raw image bytes")),
    ("random", _random_bytes, InvalidImageFormatError, "InvalidImageFormatException",
     ("not recognised", "JPEG or PNG")),
    ("png bomb", png_bomb, ImageTooLargeError, "ImageTooLargeException",
     ("60000×60000 px", "3,600,000,000 pixels", "40,000,000 pixels")),
    ("jpeg bomb", jpeg_bomb, ImageTooLargeError, "ImageTooLargeException",
     ("60000×60000 px", "40,000,000 pixels")),
    ("jpeg cut at 60%", _truncated_jpeg, InvalidImageFormatError, "InvalidImageFormatException",
     ("JPEG image is truncated", "FFD9")),
    ("progressive jpeg cut at 60%", _truncated_progressive_jpeg, InvalidImageFormatError,
     "InvalidImageFormatException", ("JPEG image is truncated",)),
    ("jpeg without EOI", _jpeg_without_eoi, InvalidImageFormatError,
     "InvalidImageFormatException", ("JPEG image is truncated", "FFD9")),
    ("png cut at 60%", _truncated_png, InvalidImageFormatError, "InvalidImageFormatException",
     ("PNG image is truncated",)),
    ("png without IEND", _png_without_iend, InvalidImageFormatError,
     "InvalidImageFormatException", ("PNG image is truncated", "IEND")),
    ("png bad IHDR crc", _png_bad_ihdr_crc, InvalidImageFormatError,
     "InvalidImageFormatException", ("PNG image is corrupt", "CRC")),
    ("png corrupt pixel data", _png_corrupt_idat, InvalidImageFormatError,
     "InvalidImageFormatException", ("PNG image is corrupt",)),
    ("jpeg of empty segments", _jpeg_of_empty_segments, InvalidImageFormatError,
     "InvalidImageFormatException", ("JPEG image is corrupt", "10,000 segments")),
    ("8×8 png", _tiny_png, InvalidParameterError, "InvalidParameterException",
     ("The image is 8×8 px", "each side must be at least 80 px")),
    ("79 px wide jpeg", _thin_jpeg, InvalidParameterError, "InvalidParameterException",
     ("79×200 px", "at least 80 px")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "cls", "code", "phrases"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_decode_errors(
    make: Callable[[], bytes],
    cls: type[FaceLedgerError],
    code: str,
    phrases: tuple[str, ...],
) -> None:
    data = make()
    with pytest.raises(FaceLedgerError) as exc_info:
        decode_image(data)
    assert_error(exc_info, cls, code, *phrases)


def test_bombs_are_small_files() -> None:
    assert len(png_bomb()) < 200
    assert len(jpeg_bomb()) < 20_000


def test_size_check_comes_before_format_check() -> None:
    with pytest.raises(FaceLedgerError) as exc_info:
        decode_image(b"GIF89a" + bytes(MAX_IMAGE_BYTES))
    assert_error(exc_info, ImageTooLargeError, "ImageTooLargeException", "5,242,880 bytes")


def test_pixel_bomb_is_refused_even_without_pixel_data() -> None:
    """Only signature + IHDR: the pixel limit is enforced from the header alone."""
    header_only = png_bomb()[: 8 + 25]
    with pytest.raises(FaceLedgerError) as exc_info:
        decode_image(header_only)
    assert_error(exc_info, ImageTooLargeError, "ImageTooLargeException", "60000×60000")


def test_custom_limits(small_png: bytes) -> None:
    with pytest.raises(ImageTooLargeError, match="maximum is 100 bytes"):
        decode_image(small_png, max_bytes=100)
    with pytest.raises(ImageTooLargeError, match="128×96 px"):
        decode_image(small_png, max_pixels=10_000)
    with pytest.raises(InvalidParameterError, match="at least 100 px"):
        decode_image(small_png, min_side_px=100)
    assert decode_image(small_png, min_side_px=96).width_px == 128


def test_huge_max_pixels_never_involves_pillow_bomb_checks() -> None:
    """Raising our limit above Pillow's must not surface DecompressionBombError/Warning."""
    data = png_bomb(20_000, 20_000)  # 400 M pixels, above Pillow's 178 M error threshold
    with pytest.raises(InvalidImageFormatError):  # the fake IDAT cannot decode
        decode_image(data, max_pixels=10**9, max_decode_bytes=10**12)


# --------------------------------------------------------------------------------------------
# Successful decodes


def test_jpeg_round_trip() -> None:
    pixels = marked_bgr(120, 200)
    data = jpeg_bytes(pixels, IMWRITE_JPEG_QUALITY=95)
    image = decode_image(data)
    assert image.format == "jpeg"
    assert image.pixels_bgr.shape == (120, 200, 3)
    assert (image.width_px, image.height_px) == (200, 120)
    assert image.pixels_bgr.dtype == np.uint8
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert image.size_bytes == len(data)
    diff = np.abs(image.pixels_bgr.astype(int) - pixels.astype(int))
    assert diff.mean() < 2.0


def test_png_round_trip_is_lossless() -> None:
    pixels = noise_bgr(90, 110, seed=7)
    data = png_bytes(pixels)
    image = decode_image(data)
    assert image.format == "png"
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert image.size_bytes == len(data)
    np.testing.assert_array_equal(image.pixels_bgr, pixels)


def test_pixels_are_read_only_and_contiguous(small_jpeg: bytes) -> None:
    for data in (small_jpeg, with_orientation(marked_bgr(), 6, "JPEG")):
        pixels = decode_image(data).pixels_bgr
        assert pixels.flags.c_contiguous
        assert not pixels.flags.writeable
        with pytest.raises(ValueError):
            pixels[0, 0, 0] = 1


@pytest.mark.parametrize(
    "make_pil",
    [
        pytest.param(lambda: PILImage.new("L", (100, 90), 77), id="grayscale"),
        pytest.param(lambda: PILImage.new("LA", (100, 90), (77, 10)), id="grayscale+alpha"),
        pytest.param(lambda: PILImage.new("RGBA", (100, 90), (10, 20, 30, 0)), id="rgba"),
        pytest.param(lambda: PILImage.new("RGB", (100, 90), (10, 20, 30)).quantize(8), id="pal"),
        pytest.param(lambda: PILImage.new("I;16", (100, 90), 40_000), id="16-bit gray"),
        pytest.param(lambda: PILImage.new("1", (100, 90), 1), id="1-bit"),
    ],
)
def test_png_modes_decode_to_three_channel_uint8(
    make_pil: Callable[[], PILImage.Image],
) -> None:
    image = decode_image(pil_bytes(make_pil(), "PNG"))
    assert image.format == "png"
    assert image.pixels_bgr.shape == (90, 100, 3)
    assert image.pixels_bgr.dtype == np.uint8


def test_rgba_png_keeps_colour_channels_in_bgr_order() -> None:
    data = pil_bytes(PILImage.new("RGBA", (100, 90), (10, 20, 30, 255)), "PNG")
    assert tuple(decode_image(data).pixels_bgr[0, 0]) == (30, 20, 10)


def test_16_bit_rgb_png_decodes_to_8_bit() -> None:
    pixels16 = np.full((90, 100, 3), 65535, dtype=np.uint16)
    image = decode_image(png_bytes(pixels16))
    assert image.pixels_bgr.dtype == np.uint8
    assert int(image.pixels_bgr.min()) == 255


def test_grayscale_jpeg_decodes_to_three_channels() -> None:
    data = cv2_encode(np.full((90, 100), 200, dtype=np.uint8), ".jpg")
    assert decode_image(data).pixels_bgr.shape == (90, 100, 3)


def test_progressive_jpeg_decodes() -> None:
    data = jpeg_bytes(noise_bgr(100, 130), IMWRITE_JPEG_PROGRESSIVE=1)
    assert decode_image(data).pixels_bgr.shape == (100, 130, 3)


@pytest.mark.parametrize("padding", [b"\x00" * 1000, b"\xff" * 10, b"camera trailer" * 500])
def test_bytes_after_the_end_marker_are_ignored(
    small_jpeg: bytes, small_png: bytes, padding: bytes
) -> None:
    assert decode_image(small_jpeg + padding).format == "jpeg"
    assert decode_image(small_png + padding).format == "png"


# --------------------------------------------------------------------------------------------
# EXIF orientation


def _expected_upright(stored: NDArray[np.uint8], orientation: int) -> NDArray[np.uint8]:
    """Stored BGR pixels turned upright, computed with Pillow's exif_transpose."""
    pil = PILImage.fromarray(np.ascontiguousarray(stored[:, :, ::-1]))
    exif = pil.getexif()
    exif[0x0112] = orientation
    upright = ImageOps.exif_transpose(PILImage.open(io.BytesIO(pil_bytes(pil, "PNG", exif=exif))))
    return np.asarray(upright.convert("RGB"))[:, :, ::-1]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_exif_orientation_matches_pillow_exactly(orientation: int) -> None:
    stored = noise_bgr(90, 130, seed=orientation)
    image = decode_image(with_orientation(stored, orientation, "PNG"))
    np.testing.assert_array_equal(image.pixels_bgr, _expected_upright(stored, orientation))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_matches_pillow(orientation: int) -> None:
    stored = marked_bgr(120, 200)
    plain = decode_image(with_orientation(stored, 1, "JPEG")).pixels_bgr
    image = decode_image(with_orientation(stored, orientation, "JPEG"))
    # Same scan data, only the tag differs: the result is exactly the tag's transform.
    np.testing.assert_array_equal(image.pixels_bgr, _expected_upright(plain, orientation))


def _corner_colour(pixels: NDArray[np.uint8], corner: str) -> tuple[int, ...]:
    rows = slice(0, 10) if corner[0] == "t" else slice(-10, None)
    cols = slice(0, 10) if corner[1] == "l" else slice(-10, None)
    return tuple(int(v) for v in pixels[rows, cols].reshape(-1, 3).mean(axis=0).round())


@pytest.mark.parametrize(
    ("orientation", "shape", "red_corner"),
    [
        (1, (120, 200, 3), "tl"),
        (3, (120, 200, 3), "br"),  # rotated 180°
        (6, (200, 120, 3), "tr"),  # rotated 90° clockwise
        (8, (200, 120, 3), "bl"),  # rotated 90° anticlockwise
    ],
)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_moves_the_red_corner(
    fmt: str, orientation: int, shape: tuple[int, int, int], red_corner: str
) -> None:
    image = decode_image(with_orientation(marked_bgr(120, 200), orientation, fmt))
    assert image.pixels_bgr.shape == shape
    assert (image.width_px, image.height_px) == (shape[1], shape[0])
    red = np.array(RED_BGR)
    for corner in ("tl", "tr", "bl", "br"):
        distance = np.abs(np.array(_corner_colour(image.pixels_bgr, corner)) - red).max()
        assert (distance < 10) == (corner == red_corner), corner


@pytest.mark.parametrize("orientation", [0, 9, 255])
def test_out_of_range_orientation_is_ignored(orientation: int) -> None:
    stored = noise_bgr(90, 130)
    image = decode_image(with_orientation(stored, orientation, "PNG"))
    np.testing.assert_array_equal(image.pixels_bgr, stored)


def test_malformed_exif_is_ignored() -> None:
    stored = noise_bgr(90, 130)
    image = decode_image(
        pil_bytes(PILImage.fromarray(stored[:, :, ::-1].copy()), "PNG", exif=b"Exif\0\0junk")
    )
    np.testing.assert_array_equal(image.pixels_bgr, stored)


# --------------------------------------------------------------------------------------------
# load_image


def test_load_image_sniffs_format_from_bytes_not_name(tmp_path: Path, small_png: bytes) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(small_png)
    image = load_image(path)
    assert image.format == "png"
    assert image.sha256 == hashlib.sha256(small_png).hexdigest()
    assert load_image(str(path)).format == "png"


def test_load_image_refuses_large_file_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff\xd8\xff" + bytes(MAX_IMAGE_BYTES))

    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file must not be opened")

    monkeypatch.setattr(imaging, "open", no_open, raising=False)
    with pytest.raises(FaceLedgerError) as exc_info:
        load_image(path)
    assert_error(exc_info, ImageTooLargeError, "ImageTooLargeException", "5,242,880 bytes")


def test_load_image_passes_limits(tmp_path: Path, small_jpeg: bytes) -> None:
    path = tmp_path / "small.jpg"
    path.write_bytes(small_jpeg)
    with pytest.raises(ImageTooLargeError):
        load_image(path, max_bytes=len(small_jpeg) - 1)
    with pytest.raises(InvalidParameterError):
        load_image(path, min_side_px=500)


def test_load_image_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FaceLedgerError) as exc_info:
        load_image(tmp_path / "nope.jpg")
    assert_error(exc_info, InvalidParameterError, "InvalidParameterException", "nope.jpg")


def test_load_image_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_bytes(_text_bytes())
    with pytest.raises(FaceLedgerError) as exc_info:
        load_image(path)
    assert_error(exc_info, InvalidImageFormatError, "InvalidImageFormatException", "text")


# --------------------------------------------------------------------------------------------
# Fuzzing: an Image or a FaceLedgerError subclass, nothing else


def _decode_or_error(data: bytes) -> None:
    try:
        image = decode_image(data)
    except FaceLedgerError as err:
        assert type(err) in (InvalidImageFormatError, ImageTooLargeError, InvalidParameterError)
        assert err.message
        assert not err.message.startswith(GENERIC_FALLBACK), repr(err.__cause__)
        return
    assert image.pixels_bgr.ndim == 3
    assert image.pixels_bgr.shape[2] == 3
    assert image.format in ("jpeg", "png")


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_SEED_JPEG = jpeg_bytes(noise_bgr(80, 96, seed=11), IMWRITE_JPEG_QUALITY=70)
_SEED_PNG = png_bytes(noise_bgr(80, 96, seed=12))


@FUZZ
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decode_or_error(data)


@FUZZ
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes_behind_magic(tail: bytes) -> None:
    _decode_or_error(b"\xff\xd8\xff" + tail)
    _decode_or_error(b"\x89PNG\r\n\x1a\n" + tail)


def _mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    edits = st.lists(
        st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)), min_size=0, max_size=12
    )
    cut = st.integers(0, len(seed))

    def apply(args: tuple[list[tuple[int, int]], int]) -> bytes:
        changes, length = args
        mutated = bytearray(seed)
        for index, value in changes:
            mutated[index] = value
        return bytes(mutated[:length])

    return st.tuples(edits, cut).map(apply)


@FUZZ
@given(_mutations(_SEED_JPEG))
def test_fuzz_mutated_jpeg(data: bytes) -> None:
    _decode_or_error(data)


@FUZZ
@given(_mutations(_SEED_PNG))
def test_fuzz_mutated_png(data: bytes) -> None:
    _decode_or_error(data)


@FUZZ
@given(st.integers(0, 699), st.integers(0, 255))
def test_fuzz_single_jpeg_header_byte(index: int, value: int) -> None:
    """One changed byte among the header segments (quantisation, Huffman tables, SOF, SOS)."""
    mutated = bytearray(_SEED_JPEG)
    mutated[index] = value
    _decode_or_error(bytes(mutated))


# -- decode cost ---------------------------------------------------------------------------
def _encoded(pixels: NDArray[np.generic], ext: str, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, pixels, list(params))
    assert ok
    return buf.tobytes()


def test_decode_budget_counts_deep_colour_alpha_and_progressive() -> None:
    w, h = 300, 200
    cases = [
        (_encoded(np.full((h, w, 4), 40000, np.uint16), ".png"), w * h * 4 * 2),
        (_encoded(np.full((h, w, 3), 90, np.uint8), ".png"), w * h * 3),
        (_encoded(np.full((h, w), 90, np.uint8), ".png"), w * h),
        (_encoded(np.full((h, w, 3), 90, np.uint8), ".jpg"), w * h * 3),
        (
            _encoded(np.full((h, w, 3), 90, np.uint8), ".jpg", cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
            w * h * (3 + 6),
        ),
    ]
    for data, cost in cases:
        assert decode_image(data, max_decode_bytes=cost).width_px == w
        with pytest.raises(ImageTooLargeError, match="MiB of samples"):
            decode_image(data, max_decode_bytes=cost - 1)


def test_a_deep_colour_bomb_is_refused_before_decoding() -> None:
    """39.6 Mpx of 16-bit RGBA in a few hundred KB: 317 MB of samples, over the budget."""
    w, h = 7280, 5440
    idat = zlib.compress((b"\x00" + bytes(w * 8)) * h, 9)  # zero rows, filter 0
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 6, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    assert len(png) < 1_000_000
    with pytest.raises(ImageTooLargeError, match="7280×5440"):
        decode_image(png)


def test_large_decodes_take_a_slot() -> None:
    import threading

    class Counting:
        def __init__(self) -> None:
            self.entered = 0
            self._lock = threading.Lock()

        def __enter__(self) -> None:
            self.entered += 1
            self._lock.acquire()

        def __exit__(self, *exc: object) -> None:
            self._lock.release()

    slots = Counting()
    small = _encoded(np.full((200, 300, 3), 90, np.uint8), ".jpg")
    decode_image(small, large_decodes=slots)  # type: ignore[arg-type]
    assert slots.entered == 0
    large = _encoded(np.full((2400, 2400, 3), 90, np.uint8), ".jpg")  # 17.3 MB of samples
    decode_image(large, large_decodes=slots)  # type: ignore[arg-type]
    assert slots.entered == 1
