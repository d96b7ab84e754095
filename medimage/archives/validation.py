"""Validate image bytes and read their size without a full-resolution decode.

Pillow is used for validation because it reports truncated data as an error (OpenCV's imdecode only warns
and returns a half-grey image). JPEGs are decoded in draft mode (libjpeg's DCT scaling, 1/8 size), which
still walks every scan of the file, so truncation is caught at a fraction of the cost of a full decode.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 20_000 * 20_000  # larger than any medical image here; stops decompression bombs
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

# Extensions that promise an image format: the files `add` and `predict` take for images; in an archive, bytes of
# another format behind one are kept but counted.
EXTENSION_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".gif": "GIF",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
IMAGE_SUFFIXES = frozenset(EXTENSION_FORMATS)

# Channels by Pillow mode; palette and 1-bit images are decoded to what they display.
_CHANNELS = {
    "1": 1,
    "L": 1,
    "I": 1,
    "I;16": 1,
    "F": 1,
    "P": 3,
    "RGB": 3,
    "YCbCr": 3,
    "CMYK": 3,
    "LA": 2,
    "RGBA": 4,
    "PA": 4,
}


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    channels: int
    format: str  # "JPEG", "PNG", ... what the bytes are, whatever the extension says


class InvalidImage(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason  # "corrupt" or "not_image"
        self.detail = detail


def inspect_image(data: bytes) -> ImageInfo:
    """Size, channels and real format of an image; InvalidImage('corrupt'|'not_image') otherwise."""
    if not data:
        raise InvalidImage("corrupt", "zero-byte file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InvalidImage("not_image", "not a recognised image format") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InvalidImage("corrupt", str(error) or type(error).__name__) from None
    info = ImageInfo(
        width=image.width, height=image.height, channels=_CHANNELS.get(image.mode, 3), format=image.format or ""
    )
    try:
        if image.format == "JPEG":
            image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise InvalidImage("corrupt", str(error) or type(error).__name__) from None
    if info.width < 1 or info.height < 1:
        raise InvalidImage("corrupt", f"size {info.width}x{info.height}")
    return info


def file_dimensions(path: Path) -> tuple[int, int]:
    """(width, height) of an image file from its header alone, before anything is decoded; InvalidImage for what
    is no image file: a folder, a FIFO or a device (never opened: reading one could hang or never end), an empty
    file, unknown bytes, or more than MAX_PIXELS pixels (a 30000x30000 header would allocate 2.7 GB)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise InvalidImage("not_image", f"cannot read ({error.strerror})") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise InvalidImage("not_image", f"{kind}, not an image file")
    if os.path.getsize(path) == 0:
        raise InvalidImage("corrupt", "zero-byte file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.size
    except UnidentifiedImageError:
        raise InvalidImage("not_image", "not a recognised image format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(
            "corrupt", f"more than {MAX_PIXELS:,} pixels: refusing a possible decompression bomb"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidImage("corrupt", str(error) or type(error).__name__) from None
