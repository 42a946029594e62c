"""The single place where uploaded bytes become an :class:`~faceledger.domain.faces.Image`.

Limits, and why:

* ``MAX_IMAGE_BYTES`` (5 MiB) — Rekognition's limit for ``Image.Bytes``; checked first, before
  anything is parsed.
* ``MAX_IMAGE_PIXELS`` (40 million decoded pixels) — a decompression-bomb guard. A tiny PNG can
  declare 60000×60000 px (3.6 billion pixels, ~10 GB as BGR). The dimensions are read from the
  PNG ``IHDR`` chunk or the JPEG ``SOF`` segment by this module's own parser, before any pixel
  is decoded; Pillow never opens the image, so its ``DecompressionBombError`` cannot occur.
* ``MAX_DECODE_BYTES`` (128 MiB of decoded samples) — the decode's cost. Pixels alone do
  not bound it: a 331 KB 16-bit RGBA PNG of 39.6 Mpx inflates 317 MB of samples (seconds of
  CPU, hundreds of MB). The header gives the samples the decoder must produce — PNG: width ×
  height × channels (1 gray, 2 gray+alpha, 3 RGB or palette, 4 RGBA) × 2 bytes at 16 bits;
  JPEG: width × height × components × (2 above 8-bit precision), plus 2 bytes per coefficient
  for progressive JPEGs, which keep every coefficient in memory — and an image over the budget
  is refused before decoding. A 40 Mpx 8-bit RGB photo (120 MB) passes.
* Large decodes (over ``LARGE_DECODE_BYTES``) wait for a slot of the caller's semaphore
  (``large_decodes``; ``FaceService`` holds one per process), so that a burst of worst-case
  images decodes one (or a few) at a time instead of all at once: bounded memory, and each
  decode keeps its own core.
* ``MIN_IMAGE_SIDE_PX`` (80 px) — Rekognition needs at least 80 px on each side.

Only JPEG and PNG are accepted, recognised from their magic bytes (never from a file name).
Truncation is refused even though decoders tolerate it (they fill the missing rows with gray):
a JPEG must reach its end-of-image marker (``FFD9``) by walking its segments and entropy-coded
scans, and a PNG must reach its ``IEND`` chunk. Bytes after the end marker are ignored, as
decoders do (cameras append trailers, "motion photos" append a video).

Pixels are decoded by OpenCV as 8-bit BGR, H×W×3 (grayscale, paletted, 16-bit and alpha PNGs
are converted; alpha is dropped). OpenCV is told to ignore EXIF orientation; this module applies
the orientation tag (0x0112, values 1–8) itself, read with Pillow's ``Image.Exif`` from the
JPEG ``APP1`` "Exif" segment or the PNG ``eXIf`` chunk. Unreadable EXIF means orientation 1.

Every failure raises a :class:`~faceledger.domain.errors.FaceLedgerError` subclass with a
message that says what was wrong and what is accepted; no other exception leaves
:func:`decode_image`.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import threading
import zlib
from contextlib import nullcontext
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image as PILImage

from faceledger.domain.errors import (
    FaceLedgerError,
    ImageTooLargeError,
    InvalidImageFormatError,
    InvalidParameterError,
)
from faceledger.domain.faces import Image

__all__ = [
    "LARGE_DECODE_BYTES",
    "MAX_DECODE_BYTES",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MIN_IMAGE_SIDE_PX",
    "decode_image",
    "load_image",
    "sniff_format",
]

MAX_IMAGE_BYTES = 5_242_880  # Rekognition's limit for Image.Bytes (5 MiB)
MAX_IMAGE_PIXELS = 40_000_000  # decompression-bomb guard (decoded pixels, width × height)
MIN_IMAGE_SIDE_PX = 80  # Rekognition: at least 80 px on each side
MAX_DECODE_BYTES = 128 * 1024 * 1024  # decoded samples (see the module docstring)
LARGE_DECODE_BYTES = 16 * 1024 * 1024  # decodes above this take a ``large_decodes`` slot

# PNG colour type → channels the decoder inflates (palette indices are one byte or less).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_JPEG_PROGRESSIVE_MARKERS = frozenset({0xC2, 0xC6, 0xCA, 0xCE})

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_ACCEPTED = "send a JPEG or PNG image"
_EXIF_ORIENTATION_TAG = 0x0112

# JPEG start-of-frame markers that carry the frame dimensions (not DHT C4, JPG C8, DAC CC).
_JPEG_SOF_MARKERS = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0–RST7
# In entropy-coded data a real marker is FF followed by anything but 00 (stuffing),
# D0–D7 (restart markers, part of the scan) or FF (fill byte before the marker).
_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# Real JPEGs have tens of segments (hundreds at most); a file made of millions of empty
# segments is refused rather than walked for seconds.
_JPEG_MAX_SEGMENTS = 10_000

# (test on the first bytes, name used in "<name> images are not supported") for helpful errors.
_OTHER_FORMATS: tuple[tuple[bytes, int, str], ...] = (
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"BM", 0, "BMP"),
    (b"WEBP", 8, "WebP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"ftypavif", 4, "AVIF"),
    (b"ftypavis", 4, "AVIF"),
    (b"ftypheic", 4, "HEIC"),
    (b"ftypheix", 4, "HEIC"),
    (b"ftyphevc", 4, "HEIC"),
    (b"ftypmif1", 4, "HEIF"),
    (b"ftypmsf1", 4, "HEIF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", 0, "JPEG 2000"),
    (b"\xff\x4f\xff\x51", 0, "JPEG 2000"),
    (b"\xff\x0a", 0, "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", 0, "JPEG XL"),
    (b"\x00\x00\x01\x00", 0, "ICO"),
    (b"8BPS", 0, "PSD"),
    (b"\x76\x2f\x31\x01", 0, "OpenEXR"),
)


def sniff_format(data: bytes) -> str | None:
    """``"jpeg"`` or ``"png"`` from the magic bytes of ``data``, else ``None``.

    Never looks at a file name; renaming a GIF to ``.jpg`` does not make it a JPEG.
    """
    if data.startswith(_JPEG_MAGIC):
        return "jpeg"
    if data.startswith(_PNG_MAGIC):
        return "png"
    return None


def decode_image(
    data: bytes,
    *,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
    min_side_px: int = MIN_IMAGE_SIDE_PX,
    max_decode_bytes: int = MAX_DECODE_BYTES,
    large_decodes: threading.Semaphore | None = None,
) -> Image:
    """Validate and decode JPEG or PNG bytes into a BGR, orientation-corrected ``Image``.

    Checks, in order: empty → byte size (``max_bytes``) → format by magic bytes → declared
    dimensions against ``max_pixels`` (from the header, before decoding) → structure
    (truncation) → each side ≥ ``min_side_px`` → decoded samples against
    ``max_decode_bytes`` → pixel decode (holding a ``large_decodes`` slot, when given, if the
    decode is over ``LARGE_DECODE_BYTES``).

    Raises:
        InvalidImageFormatError: empty, not JPEG/PNG, truncated, corrupt or undecodable.
        ImageTooLargeError: more than ``max_bytes`` bytes, ``max_pixels`` declared pixels or
            ``max_decode_bytes`` decoded samples.
        InvalidParameterError: a side shorter than ``min_side_px``.
    """
    try:
        return _decode(
            data,
            max_bytes=max_bytes,
            max_pixels=max_pixels,
            min_side_px=min_side_px,
            max_decode_bytes=max_decode_bytes,
            large_decodes=large_decodes,
        )
    except FaceLedgerError:
        raise
    except Exception as exc:  # a decoder bug or an input we did not foresee: never a traceback
        raise InvalidImageFormatError(
            f"The image could not be decoded (corrupt or unsupported data); {_ACCEPTED}."
        ) from exc


def load_image(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
    min_side_px: int = MIN_IMAGE_SIDE_PX,
    max_decode_bytes: int = MAX_DECODE_BYTES,
    large_decodes: threading.Semaphore | None = None,
) -> Image:
    """Read the file at ``path`` (:func:`read_image_file`) and :func:`decode_image` it (same
    limits, same errors)."""
    data = read_image_file(path, max_bytes=max_bytes)
    return decode_image(
        data,
        max_bytes=max_bytes,
        max_pixels=max_pixels,
        min_side_px=min_side_px,
        max_decode_bytes=max_decode_bytes,
        large_decodes=large_decodes,
    )


def read_image_file(path: str | os.PathLike[str], *, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of the file at ``path``, undecoded (for verbs that take encoded bytes).

    A file larger than ``max_bytes`` is refused from its size before it is read, and at most
    ``max_bytes + 1`` bytes are ever read (the file may grow, or not be a regular file).
    Raises ``ImageTooLargeError``, or ``InvalidParameterError`` naming the path as given when
    the file cannot be read.
    """
    shown = os.fspath(path)
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise _too_many_bytes(size, max_bytes)
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InvalidParameterError(f"Cannot read the image file {shown!r}: {reason}.") from exc
    if len(data) > max_bytes:
        raise _too_many_bytes(len(data), max_bytes, at_least=True)
    return data


# --------------------------------------------------------------------------------------------
# Implementation


@dataclass(frozen=True)
class _Header:
    """What the structural walk learnt: declared size and the raw EXIF block, if any."""

    width_px: int
    height_px: int
    exif: bytes | None
    decode_bytes: int  # the samples the decoder produces (and, progressive, coefficients)


def _decode(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    min_side_px: int,
    max_decode_bytes: int,
    large_decodes: threading.Semaphore | None,
) -> Image:
    if len(data) == 0:
        raise InvalidImageFormatError(f"The image is empty (0 bytes); {_ACCEPTED}.")
    if len(data) > max_bytes:
        raise _too_many_bytes(len(data), max_bytes)
    fmt = sniff_format(data)
    if fmt is None:
        raise InvalidImageFormatError(_describe_unsupported(data))

    header = (
        _walk_jpeg(data, max_pixels) if fmt == "jpeg" else _walk_png(data, max_pixels)
    )  # raises ImageTooLargeError as soon as the dimensions are known
    _check_min_side(header.width_px, header.height_px, min_side_px)
    _check_decode_bytes(header, fmt, max_decode_bytes)

    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    slot = (
        large_decodes
        if large_decodes is not None and header.decode_bytes > LARGE_DECODE_BYTES
        else nullcontext()
    )
    try:
        with slot:
            decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error as exc:
        raise _corrupt(fmt, "the decoder rejected it") from exc
    if decoded is None:
        raise _corrupt(fmt, "the decoder could not read its pixel data")
    if decoded.ndim != 3 or decoded.shape[2] != 3 or decoded.dtype != np.uint8:
        raise _corrupt(fmt, f"it decoded to an unexpected {decoded.dtype} array {decoded.shape}")
    if (decoded.shape[1], decoded.shape[0]) != (header.width_px, header.height_px):
        raise _corrupt(fmt, "its decoded size differs from its header")

    stored: NDArray[np.uint8] = np.asarray(decoded, dtype=np.uint8)  # no copy: already uint8
    pixels = _apply_orientation(stored, _exif_orientation(header.exif))
    pixels = np.ascontiguousarray(pixels)
    pixels.setflags(write=False)
    return Image(
        pixels_bgr=pixels,
        format=fmt,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
    )


def _too_many_bytes(size: int, max_bytes: int, *, at_least: bool = False) -> ImageTooLargeError:
    more = "at least " if at_least else ""
    return ImageTooLargeError(
        f"The image is {more}{size:,} bytes ({size / 1_048_576:.1f} MiB); the maximum is "
        f"{max_bytes:,} bytes ({max_bytes / 1_048_576:.1f} MiB). "
        "Send a smaller or more compressed JPEG or PNG."
    )


def _check_pixels(width_px: int, height_px: int, max_pixels: int) -> None:
    if width_px * height_px > max_pixels:
        raise ImageTooLargeError(
            f"The image is {width_px}×{height_px} px ({width_px * height_px:,} pixels); "
            f"the maximum is {max_pixels:,} pixels. Send a smaller JPEG or PNG."
        )


def _check_decode_bytes(header: _Header, fmt: str, max_decode_bytes: int) -> None:
    if header.decode_bytes > max_decode_bytes:
        megapixels = header.width_px * header.height_px / 1e6
        raise ImageTooLargeError(
            f"The {fmt.upper()} image is {header.width_px}×{header.height_px} px "
            f"({megapixels:.1f} Mpx) with {header.decode_bytes / 1_048_576:,.0f} MiB of "
            f"samples to decode (deep colour, alpha or progressive coding); the maximum is "
            f"{max_decode_bytes / 1_048_576:,.0f} MiB. Send an 8-bit JPEG or PNG, or fewer pixels."
        )


def _check_min_side(width_px: int, height_px: int, min_side_px: int) -> None:
    if min(width_px, height_px) < min_side_px:
        raise InvalidParameterError(
            f"The image is {width_px}×{height_px} px; each side must be at least {min_side_px} px."
        )


def _corrupt(fmt: str, detail: str) -> InvalidImageFormatError:
    name = fmt.upper()
    return InvalidImageFormatError(
        f"The {name} image is corrupt: {detail}. Send a complete, valid JPEG or PNG file."
    )


def _truncated(fmt: str, detail: str) -> InvalidImageFormatError:
    name = fmt.upper()
    return InvalidImageFormatError(
        f"The {name} image is truncated: {detail}. Send the complete JPEG or PNG file."
    )


def _describe_unsupported(data: bytes) -> str:
    head = data[:64]
    for magic, offset, name in _OTHER_FORMATS:
        if head[offset : offset + len(magic)] == magic:
            return f"{name} images are not supported; {_ACCEPTED}."
    stripped = head.lstrip()
    if stripped.startswith((b"/9j/", b"iVBORw0KGgo")):
        kind = "JPEG" if stripped.startswith(b"/9j/") else "PNG"
        return (
            f"The data looks like base64-encoded {kind}; send the raw image bytes "
            "(decode the base64 first)."
        )
    if stripped.startswith(b"data:"):
        return "The data looks like a data: URL; send the raw JPEG or PNG bytes it encodes."
    lowered = stripped.lower()
    if lowered.startswith(b"<svg") or (lowered.startswith(b"<?xml") and b"<svg" in data[:4096]):
        return f"SVG images are not supported; {_ACCEPTED}."
    if stripped.startswith(b"%PDF"):
        return f"PDF documents are not supported; {_ACCEPTED}."
    if _looks_like_text(data[:4096]):
        return f"The data is text, not an image; {_ACCEPTED}."
    return f"The image format is not recognised (neither JPEG nor PNG); {_ACCEPTED}."


def _looks_like_text(sample: bytes) -> bool:
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 3:  # not merely a multi-byte character cut at the end
            return False
        text = sample[: exc.start].decode("utf-8")
    return bool(text) and all(ch.isprintable() or ch in "\t\r\n\f" for ch in text)


# JPEG ---------------------------------------------------------------------------------------


def _walk_jpeg(data: bytes, max_pixels: int) -> _Header:
    """Walk the JPEG's segments and scans up to the EOI marker; raise if it is never reached."""
    pos = 2  # after SOI
    size: tuple[int, int] | None = None
    decode_bytes = 0
    exif: bytes | None = None
    seen_scan = False
    for _ in range(_JPEG_MAX_SEGMENTS):
        marker, pos = _next_jpeg_marker(data, pos)  # now just after the marker byte
        if marker == 0xD9:  # EOI
            if not seen_scan or size is None:
                raise _corrupt("jpeg", "it ends before any image data")
            return _Header(size[0], size[1], exif, decode_bytes)
        if marker in _JPEG_STANDALONE_MARKERS or marker == 0x00:
            continue
        if marker == 0xD8:
            raise _corrupt("jpeg", "it contains a second start-of-image marker")
        end = _jpeg_segment_end(data, pos, marker)
        body = data[pos + 2 : end]
        if marker in _JPEG_SOF_MARKERS:
            if size is not None:
                raise _corrupt("jpeg", "it has two start-of-frame segments")
            size, decode_bytes = _jpeg_frame(marker, body, max_pixels)
        elif marker == 0xE1 and exif is None and body.startswith(b"Exif\x00\x00"):
            exif = body
        elif marker == 0xDA:  # SOS: entropy-coded data follows, up to the next real marker
            if size is None:
                raise _corrupt("jpeg", "image data comes before its start-of-frame segment")
            seen_scan = True
            match = _JPEG_NEXT_MARKER.search(data, end)
            if match is None:
                raise _truncated("jpeg", "it ends before the end-of-image marker (FFD9)")
            pos = match.start()
            continue
        pos = end
    raise _corrupt("jpeg", f"it has more than {_JPEG_MAX_SEGMENTS:,} segments")


def _next_jpeg_marker(data: bytes, pos: int) -> tuple[int, int]:
    """The next marker byte at or after ``pos`` and the offset just after it.

    Decoders skip stray bytes and FF fill bytes, so do we; the data ending first raises.
    """
    n = len(data)
    ff = data.find(b"\xff", pos)
    if ff < 0:
        raise _truncated("jpeg", "it ends before the end-of-image marker (FFD9)")
    pos = ff
    while pos < n and data[pos] == 0xFF:
        pos += 1
    if pos >= n:
        raise _truncated("jpeg", "it ends before the end-of-image marker (FFD9)")
    return data[pos], pos + 1


def _jpeg_segment_end(data: bytes, pos: int, marker: int) -> int:
    """The end offset of the segment whose 2-byte length field starts at ``pos``; raise when
    the length is invalid or runs past the data."""
    n = len(data)
    if pos + 2 > n:
        raise _truncated("jpeg", "it ends inside a segment header")
    (length,) = struct.unpack_from(">H", data, pos)
    if length < 2:
        raise _corrupt("jpeg", f"a segment (marker FF{marker:02X}) has an invalid length")
    end = pos + length
    if end > n:
        raise _truncated("jpeg", f"it ends inside a segment (marker FF{marker:02X})")
    return end


def _jpeg_frame(marker: int, body: bytes, max_pixels: int) -> tuple[tuple[int, int], int]:
    """(width_px, height_px) and the bytes decoding needs, from a start-of-frame segment's
    ``body``; raise on a short segment, an empty image or one over ``max_pixels``."""
    if len(body) < 6:
        raise _corrupt("jpeg", "its start-of-frame segment is too short")
    height_px, width_px = struct.unpack_from(">HH", body, 1)
    if width_px == 0 or height_px == 0:
        raise _corrupt("jpeg", f"its header declares a {width_px}×{height_px} px image")
    _check_pixels(width_px, height_px, max_pixels)
    sample_bytes = 2 if body[0] > 8 else 1
    components = max(1, body[5])
    per_px = components * sample_bytes
    if marker in _JPEG_PROGRESSIVE_MARKERS:
        per_px += 2 * components  # every DCT coefficient is kept until the end
    return (width_px, height_px), width_px * height_px * per_px


# PNG ----------------------------------------------------------------------------------------


def _walk_png(data: bytes, max_pixels: int) -> _Header:
    """Walk the PNG's chunks up to IEND; raise if it is never reached."""
    n = len(data)
    pos = len(_PNG_MAGIC)
    if n < pos + 8 + 13 + 4:
        raise _truncated("png", "it ends inside its IHDR header")
    length, ctype = struct.unpack_from(">I4s", data, pos)
    if ctype != b"IHDR" or length != 13:
        raise _corrupt("png", "it does not start with an IHDR header")
    ihdr = data[pos + 4 : pos + 8 + 13]
    (crc,) = struct.unpack_from(">I", data, pos + 8 + 13)
    if zlib.crc32(ihdr) != crc:
        raise _corrupt("png", "its IHDR header fails its CRC check")
    width_px, height_px, bit_depth, colour_type = struct.unpack_from(">IIBB", ihdr, 4)
    if width_px == 0 or height_px == 0:
        raise _corrupt("png", f"its header declares a {width_px}×{height_px} px image")
    _check_pixels(width_px, height_px, max_pixels)
    if colour_type not in _PNG_CHANNELS:
        raise _corrupt("png", f"its header declares an unknown colour type {colour_type}")
    sample_bytes = 2 if bit_depth == 16 else 1
    decode_bytes = width_px * height_px * _PNG_CHANNELS[colour_type] * sample_bytes
    pos += 8 + 13 + 4

    exif: bytes | None = None
    seen_idat = False
    while pos + 8 <= n:
        length, ctype = struct.unpack_from(">I4s", data, pos)
        if length > 0x7FFF_FFFF:
            raise _corrupt("png", "a chunk has an invalid length")
        end = pos + 8 + length + 4
        if end > n:
            kind = f"its {ctype.decode('ascii')}" if ctype.isalpha() else "a"
            raise _truncated("png", f"it ends in the middle of {kind} chunk")
        if ctype == b"IEND":
            if not seen_idat:
                raise _corrupt("png", "it has no image data (IDAT chunk)")
            return _Header(width_px, height_px, exif, decode_bytes)
        if ctype == b"IDAT":
            seen_idat = True
        elif ctype == b"eXIf" and exif is None:
            exif = data[pos + 8 : pos + 8 + length]
        pos = end
    raise _truncated("png", "it ends before its IEND chunk")


# EXIF orientation ---------------------------------------------------------------------------


def _exif_orientation(exif: bytes | None) -> int:
    """The EXIF orientation tag (1–8) of a raw EXIF block; 1 when absent or unreadable."""
    if not exif:
        return 1
    try:
        parsed = PILImage.Exif()
        parsed.load(exif)
        value = parsed.get(_EXIF_ORIENTATION_TAG)
    except Exception:  # malformed EXIF is common and harmless: show the image as stored
        return 1
    if isinstance(value, int) and 1 <= value <= 8:
        return value
    return 1


def _apply_orientation(pixels: NDArray[np.uint8], orientation: int) -> NDArray[np.uint8]:
    """Turn stored pixels upright per EXIF orientation (same mapping as Pillow's exif_transpose).

    1 as stored · 2 mirror left-right · 3 rotate 180° · 4 mirror top-bottom ·
    5 transpose (swap axes) · 6 rotate 90° clockwise · 7 transverse · 8 rotate 90° anticlockwise.
    """
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1, :]
    if orientation == 5:
        return pixels.transpose(1, 0, 2)
    if orientation == 6:
        return pixels[::-1, :].transpose(1, 0, 2)
    if orientation == 7:
        return pixels[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return pixels[:, ::-1].transpose(1, 0, 2)
    return pixels
