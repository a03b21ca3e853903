"""Loading photos safely, and converting between PIL images and model tensors.

Limits are checked before decoding (so decompression bombs are refused cheaply), EXIF
orientation is applied, and every colour mode becomes RGB. Each problem raises one
``ImageError`` subclass with a message a person can act on.
"""

from __future__ import annotations

import functools
import io
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from chatface.errors import (
    CorruptImageError,
    ImageError,
    ImageTooLargeError,
    NotAnImageError,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- loading


def load_image(
    source: bytes | str | Path, *, max_bytes: int = 20_000_000, max_pixels: int = 40_000_000
) -> Image.Image:
    """Open a photo from bytes or a path as an upright 8-bit RGB image, refusing bad input.

    Raises NotAnImageError, CorruptImageError or ImageTooLargeError (byte size, or pixel
    count read from the header before anything is decoded) with a message for a person.
    """
    data = read_source(source, max_bytes)
    if len(data) > max_bytes:
        raise ImageTooLargeError(
            f"The file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB. "
            "Send a smaller photo, for example a JPEG export at most 4000 pixels wide."
        )
    if not data:
        raise NotAnImageError("The file is empty. Send a photo (JPEG or PNG).")
    if _is_heif(data):
        _read_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(None, max_pixels) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise NotAnImageError(_not_an_image_message(data)) from exc
    if im.width * im.height > max_pixels:
        raise _too_many_pixels(im.size, max_pixels)
    try:
        im.seek(0)
        im.load()
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
        raise CorruptImageError(
            "The photo is damaged or incomplete (perhaps the upload was cut off). "
            "Send the original file again, or export it again as JPEG or PNG."
        ) from exc
    try:
        im = ImageOps.exif_transpose(im)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError, ZeroDivisionError):
        log.warning("ignoring unreadable EXIF orientation")
    return to_rgb(im)


def read_source(source: bytes | str | Path, max_bytes: int) -> bytes:
    """The bytes of a photo given as bytes or a path; a file over ``max_bytes`` is not read."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    path = Path(source)
    try:
        size = path.stat().st_size
        if size > max_bytes:  # refuse before reading it into memory
            raise ImageTooLargeError(
                f"{path.name} is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB. "
                "Use a smaller photo, for example a JPEG export at most 4000 pixels wide."
            )
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"Cannot read {path}: {exc.strerror or exc}. Check the path.") from exc


def _too_many_pixels(size: tuple[int, int] | None, max_pixels: int) -> ImageTooLargeError:
    what = f"{size[0]}x{size[1]} pixels" if size else "far too many pixels"
    return ImageTooLargeError(
        f"The image has {what}; the limit is {max_pixels / 1e6:.0f} megapixels. "
        "Send a smaller version of the photo (a few megapixels are plenty)."
    )


def _not_an_image_message(data: bytes) -> str:
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        from PIL import features

        if features.check("avif"):
            return "This AVIF image is damaged. Send it again, or export it as JPEG or PNG."
        return (
            "This Pillow cannot read AVIF images (Pillow 11.3 or newer can). "
            "Send the photo as JPEG or PNG, or upgrade Pillow."
        )
    if _is_heif(data):
        return (
            "This HEIC photo is damaged or uses a variant chatface cannot read. Export or "
            "share it as JPEG (most phones offer 'Most compatible') and send it again."
        )
    return "This file is not an image chatface can read. Send a photo as JPEG, PNG or WebP."


def _is_heif(data: bytes) -> bool:
    """HEIC/HEIF, as phones save photos (AVIF, the same container, is Pillow's own)."""
    return data[4:8] == b"ftyp" and data[8:12] not in (b"avif", b"avis")


@functools.cache
def _read_heif() -> None:
    """Teach Pillow to open HEIC/HEIF (pillow-heif), the first time one arrives."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; transparency is composited on white."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        if mode.startswith("I;16") or (mode == "I" and a.max(initial=0) > 255):
            a = a / 257.0  # 16-bit range to 8-bit
        elif mode == "F" and a.max(initial=0) <= 1.0:
            a = a * 255.0
        grey = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
        return grey.convert("RGB")
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError as exc:
        raise ImageError(
            f"This image uses the {mode} colour mode, which chatface cannot convert. "
            "Save it as an ordinary RGB JPEG or PNG and send it again."
        ) from exc


# ------------------------------------------------------------------------------ tensors


def to_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL image as a float tensor [1, 3, H, W] with values in [-1, 1]."""
    import torch

    a = np.asarray(to_rgb(img), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]


def to_image(tensor: torch.Tensor) -> Image.Image:
    """A tensor [1, 3, H, W] or [3, H, W] in [-1, 1] as an RGB PIL image (clamped)."""
    import torch

    t = tensor.detach().float().cpu()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
        t = t[0]
    a = ((t.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(a.permute(1, 2, 0).numpy(), "RGB")


IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def encode_image(image: Image.Image, fmt: str = "PNG") -> tuple[bytes, str]:
    """``image`` encoded once as PNG (lossless, the default), JPEG or WebP, with its
    media type: what replies carry and result files hold."""
    buffer = io.BytesIO()
    options = {"quality": 92} if fmt in ("JPEG", "WEBP") else {}
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue(), IMAGE_TYPES[fmt]
