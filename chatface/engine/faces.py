"""Faces for editing: align one the FFHQ way, and paste the edited crop back.

DiffAE was trained on FFHQ crops, so a face must be cut out the way FFHQ did it before
encoding, and the edited crop must go back into the photo without a visible seam.
``prepare_face`` does the whole photo -> aligned crop step (chatface.engine.photos loads,
chatface.engine.face_detection finds faces); both affine matrices use the continuous
pixel coordinates described in face_detection.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageFilter

from chatface.engine.face_detection import Face5, detect_faces
from chatface.engine.photos import load_image, to_image, to_rgb, to_tensor
from chatface.errors import (
    FaceTooSmallError,
    NoFaceError,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

# Re-exported: callers need only this module for the whole photo -> crop -> photo trip.
__all__ = [
    "AlignedFace",
    "Face5",
    "PreparedFace",
    "align_face",
    "detect_faces",
    "load_image",
    "paste_back",
    "prepare_face",
    "to_image",
    "to_tensor",
]

MIN_FACE_PX = 48  # shorter side of the face box, in photo pixels
_RESAMPLE = Image.Resampling


@dataclass(eq=False)
class AlignedFace:
    """An FFHQ-aligned square crop and the affine maps between crop and photo (2x3 each)."""

    image: Image.Image
    to_crop: np.ndarray
    to_photo: np.ndarray

    @classmethod
    def from_to_photo(cls, image: Image.Image, to_photo: Any) -> AlignedFace:
        """Rebuild from a stored crop and its ``to_photo`` matrix (e.g. ``to_photo.tolist()``)."""
        m = np.asarray(to_photo, dtype=np.float64).reshape(2, 3)
        return cls(image, _invert(m), m)

    @property
    def size(self) -> int:
        return self.image.width


@dataclass(eq=False)
class PreparedFace:
    """What ``prepare_face`` returns: the photo, the chosen face, its crop and transforms."""

    photo: Image.Image
    face: Face5
    aligned: AlignedFace
    faces_found: int
    face_index: int
    note: str | None

    @property
    def crop(self) -> Image.Image:
        return self.aligned.image

    @property
    def to_photo(self) -> np.ndarray:
        return self.aligned.to_photo


# ---------------------------------------------------------------------------- alignment


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The FFHQ crop square (corners: top-left, bottom-left, bottom-right, top-right).

    The recipe of FFHQ's align script, fed 5 points instead of 68: the eye centres are the
    detected eyes and the mouth centre is the mean of the two mouth corners.
    """
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    eye_left, eye_right = lm[0], lm[1]  # FFHQ's names: left and right in the image
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (lm[3] + lm[4]) / 2 - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def align_face(image: Image.Image, landmarks: np.ndarray, size: int) -> AlignedFace:
    """Cut the FFHQ-aligned ``size`` x ``size`` crop of the face with these landmarks.

    As in FFHQ: a big photo is first shrunk by a whole factor, the crop is rendered at 4x
    and reduced with Lanczos, and where the square leaves the photo the photo is extended
    by reflection, blurred and faded to its median colour (FFHQ's padding).
    """
    quad = ffhq_quad(landmarks)
    to_photo = np.column_stack([(quad[3] - quad[0]) / size, (quad[1] - quad[0]) / size, quad[0]])
    img = to_rgb(image)
    qsize = float(np.hypot(*(quad[3] - quad[0])))
    border = max(int(np.rint(qsize * 0.1)), 3)
    lo, hi = np.floor(quad.min(axis=0)).astype(int), np.ceil(quad.max(axis=0)).astype(int)
    box = (max(lo[0] - border, 0), max(lo[1] - border, 0))
    box += (min(hi[0] + border, img.width), min(hi[1] + border, img.height))
    img, q = img.crop(box), quad - box[:2]
    shrink = int(np.floor(qsize / size * 0.5))
    if shrink > 1:  # pixels in a whole-number box filter, as FFHQ shrinks big photos
        img, q, qsize = img.reduce(shrink), q / shrink, qsize / shrink
        border = max(int(np.rint(qsize * 0.1)), 3)
    qlo, qhi = np.floor(q.min(axis=0)).astype(int), np.ceil(q.max(axis=0)).astype(int)
    pad = np.maximum(
        [
            border - qlo[0],
            border - qlo[1],
            qhi[0] - img.width + border,
            qhi[1] - img.height + border,
        ],
        0,
    )
    if pad.max() > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        img = _ffhq_pad(img, pad, qsize)
        q = q + pad[:2]
    big = 4 * size
    data = np.column_stack([(q[3] - q[0]) / big, (q[1] - q[0]) / big, q[0]]).ravel()
    crop = img.transform((big, big), Image.Transform.AFFINE, tuple(data), _RESAMPLE.BILINEAR)
    crop = crop.resize((size, size), _RESAMPLE.LANCZOS)
    return AlignedFace(crop, _invert(to_photo), to_photo)


def _ffhq_pad(img: Image.Image, pad: np.ndarray, qsize: float) -> Image.Image:
    left, top, right, bottom = (int(p) for p in pad)
    a = np.pad(np.asarray(img, np.float32), ((top, bottom), (left, right), (0, 0)), "reflect")
    h, w = a.shape[:2]
    yy, xx = np.ogrid[:h, :w]
    mask = np.maximum(
        1.0 - np.minimum(xx / max(left, 1), (w - 1 - xx) / max(right, 1)),
        1.0 - np.minimum(yy / max(top, 1), (h - 1 - yy) / max(bottom, 1)),
    ).astype(np.float32)[:, :, None]
    padded = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))
    blurred = np.asarray(padded.filter(ImageFilter.GaussianBlur(qsize * 0.02)), np.float32)
    a += (blurred - a) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    a += (np.median(a, axis=(0, 1)) - a) * np.clip(mask, 0.0, 1.0)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))


def _invert(m: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points with a 2x3 affine matrix (e.g. ``aligned.to_crop``)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return p @ np.asarray(m)[:, :2].T + np.asarray(m)[:, 2]


# ---------------------------------------------------------------------------- paste back


def paste_back(
    photo: Image.Image, edited_crop: Image.Image, aligned: AlignedFace, feather: float = 0.1
) -> Image.Image:
    """Put an edited crop back into the photo; same size and mode as ``photo``.

    The crop is blended through a soft mask: a rounded square over the face and hair
    whose edge fades over ``feather`` x the crop side and stays clear of the crop's own
    border. Near that edge the crop's colours are matched to the photo's (mean and spread
    per channel, measured in the fading ring), fading out towards the middle, so the
    model's colour drift leaves no seam while the edit itself is kept. The crop may have
    another size than ``aligned.image`` (a model working at 128, say).
    """
    if not 0.0 < feather <= 0.4:
        raise ValueError(f"feather must be in (0, 0.4], got {feather}")
    base = to_rgb(photo)
    s = edited_crop.width
    to_photo = np.column_stack(
        [aligned.to_photo[:, :2] * (aligned.size / s), aligned.to_photo[:, 2]]
    )
    edited = np.array(to_rgb(edited_crop).resize((s, s)), np.float32)
    original = to_rgb(aligned.image)
    if original.width != s:
        original = original.resize((s, s), _RESAMPLE.LANCZOS)
    mask, fade = _seam_masks(s, feather * s)
    ring = (mask > 0.02) & (mask < 0.98) & _inside_photo(to_photo, s, base.size)
    if ring.sum() >= 16:
        orig = np.asarray(original, np.float32)[ring]
        mu_e, sd_e = edited[ring].mean(0), edited[ring].std(0) + 1e-3
        gain = np.clip((orig.std(0) + 1e-3) / sd_e, 0.8, 1.25)
        matched = (edited - mu_e) * gain + orig.mean(0)
        edited += (matched - edited) * fade[:, :, None]
    crop = Image.fromarray(np.clip(np.rint(edited), 0, 255).astype(np.uint8), "RGB")
    alpha = Image.fromarray(np.rint(mask * 255).astype(np.uint8), "L")
    # Resize to the face's size in the photo first (fast, and no aliasing when shrinking),
    # so that the warp itself is about 1:1 and bilinear is enough.
    n = max(8, round(s * math.sqrt(abs(np.linalg.det(to_photo[:, :2])))))
    if n != s:
        how = _RESAMPLE.LANCZOS if n < s else _RESAMPLE.BICUBIC
        crop, alpha = (im.resize((n, n), how) for im in (crop, alpha))
        to_photo = np.column_stack([to_photo[:, :2] * (s / n), to_photo[:, 2]])
    corners = apply_affine(to_photo, np.array([[0, 0], [n, 0], [0, n], [n, n]]))
    x0, y0 = (int(v) for v in np.maximum(np.floor(corners.min(0)), 0))
    x1, y1 = (int(v) for v in np.minimum(np.ceil(corners.max(0)), base.size))
    result = base.copy()
    if x1 > x0 and y1 > y0:
        to_crop = _invert(to_photo)
        offset = to_crop @ [x0, y0, 1.0]
        data = (*to_crop[0, :2], offset[0], *to_crop[1, :2], offset[1])
        warp = functools.partial(
            Image.Image.transform,
            size=(x1 - x0, y1 - y0),
            method=Image.Transform.AFFINE,
            data=data,
            resample=_RESAMPLE.BILINEAR,
        )
        result.paste(warp(crop), (x0, y0), warp(alpha))  # blends through the soft mask
    return _like(result, photo)


def _seam_masks(s: int, band: float) -> tuple[np.ndarray, np.ndarray]:
    """The blend mask (0 at the rounded square's edge, 1 from one band inside) and the
    weight of the colour fix (1 up to one band inside, 0 from three bands inside)."""
    half = 0.47 * s
    c = (np.arange(s, dtype=np.float32) + 0.5 - s / 2) / half
    r = (np.abs(c)[None, :] ** 4 + np.abs(c)[:, None] ** 4) ** 0.25
    depth = (1.0 - r) * half  # about the distance inside the edge, in crop pixels
    return _smoothstep(depth / band), 1.0 - _smoothstep((depth - band) / (2 * band))


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def _inside_photo(to_photo: np.ndarray, s: int, size: tuple[int, int]) -> np.ndarray:
    u = np.arange(s) + 0.5
    px = to_photo[0, 0] * u[None, :] + to_photo[0, 1] * u[:, None] + to_photo[0, 2]
    py = to_photo[1, 0] * u[None, :] + to_photo[1, 1] * u[:, None] + to_photo[1, 2]
    return (px >= 0) & (py >= 0) & (px < size[0]) & (py < size[1])


def _like(result: Image.Image, photo: Image.Image) -> Image.Image:
    """``result`` (RGB) in the mode of ``photo``, keeping its alpha channel."""
    mode = photo.mode
    if mode == "RGB":
        return result
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(result.convert("L"), np.float64) * (257.0 if mode != "F" else 1.0)
        return Image.fromarray(a.astype(np.uint16 if mode.startswith("I;16") else np.float32))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = photo.getchannel("A")
        out = result.convert("RGBA" if mode != "LA" else "LA")
        out.putalpha(alpha)
        return out if mode in ("RGBA", "LA") else out.convert(mode)
    return result.convert(mode)


# ------------------------------------------------------------------------------ prepare


def prepare_face(
    source: bytes | str | Path | Image.Image,
    size: int,
    *,
    face_index: int = 0,
    min_face_px: int = MIN_FACE_PX,
    max_bytes: int = 20_000_000,
    max_pixels: int = 40_000_000,
) -> PreparedFace:
    """Load a photo, pick a face (0 = the largest), check its size and align it.

    Raises the ``load_image`` errors, NoFaceError (no face, or no face number
    ``face_index``) and FaceTooSmallError (face box shorter side below ``min_face_px``).
    """
    if isinstance(source, Image.Image):
        photo = to_rgb(source)
    else:
        photo = load_image(source, max_bytes=max_bytes, max_pixels=max_pixels)
    faces = detect_faces(photo)
    n = len(faces)
    if n == 0:
        raise NoFaceError(
            "No face found in this photo. Send a photo with a face looking roughly at the "
            "camera, well lit and not covered; if the face is small, crop the photo around it."
        )
    if not 0 <= face_index < n:
        pick = "Use face 0." if n == 1 else f"Pick one from 0 (the largest) to {n - 1}."
        raise NoFaceError(
            f"There is no face number {face_index}: the photo has {n} face{'s' * (n > 1)}. {pick}"
        )
    face = faces[face_index]
    if face.size < min_face_px:
        raise FaceTooSmallError(
            f"The face is only {face.size:.0f} pixels across; chatface needs at least "
            f"{min_face_px}. Send a larger or sharper photo, or one taken closer to the face."
        )
    note = None
    if n > 1 and face_index == 0:
        note = f"Found {n} faces; editing the largest (use --face N to pick another, 0-{n - 1})."
    elif n > 1:
        note = f"Found {n} faces; editing face {face_index} (0 is the largest)."
    aligned = align_face(photo, face.landmarks, size)
    return PreparedFace(photo, face, aligned, n, face_index, note)
