"""The training faces of a mapper: every photo of a folder encoded once, cached in one file.

The cache is a safetensors file (never a pickle) holding z_sem [N, D], x_T [N, 3, S, S]
and the aligned crops [N, S, S, 3] (uint8), with metadata naming the backend, its
weights and a key over everything that changes the encoding (the photos' names and
sha256s, the backend, its weights, the inversion steps): a cache whose key differs
is encoded again, a file given with ``--latents`` is used as it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chatface.engine.types import Latents
from chatface.errors import ChatFaceError, ImageError

if TYPE_CHECKING:
    import torch

    from chatface.engine.editor import Engine
    from chatface.engine.types import Progress

logger = logging.getLogger(__name__)

FORMAT = "chatface-training-faces-1"
SINGLE_FACE_FORMAT = "chatface-latents-1"  # `chatface encode`'s files are accepted too


@dataclass(frozen=True)
class TrainingFaces:
    """Encoded training faces: latents, their aligned crops, and what encoded them."""

    latents: Latents  # z_sem [N, D], x_T [N, 3, S, S]
    images: torch.Tensor  # aligned crops [N, 3, S, S] in [-1, 1]
    backend: str
    backend_sha256: str
    key: str = ""
    skipped: tuple[str, ...] = ()  # photos without a usable face, "name: reason"

    def __len__(self) -> int:
        return int(self.latents.z_sem.shape[0])


def photo_paths(folder: Path) -> list[Path]:
    """The files of ``folder`` (not hidden, not in subfolders), sorted by name."""
    if not folder.is_dir():
        raise ChatFaceError(f"{folder} is not a folder of face photos.")
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def cache_key(photos: Sequence[Path], backend: str, backend_sha256: str, steps: int) -> str:
    """sha256 over what the encoding depends on (photo contents by their sha256)."""
    from chatface.engine.weights import sha256_file

    parts = {
        "backend": backend,
        "weights": backend_sha256,
        "encode_steps": steps,
        "photos": [[p.name, sha256_file(p)] for p in photos],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def load_or_encode(
    engine: Engine,
    folder: Path,
    cache: Path,
    *,
    backend: str,
    progress: Progress | None = None,
) -> TrainingFaces:
    """The faces of ``folder``: from ``cache`` when its key matches, else encoded and cached."""
    model = engine.backend(backend)
    steps = engine.config["render.encode_steps"]
    photos = photo_paths(folder)
    key = cache_key(photos, backend, model.weights_sha256, steps)
    if cache.is_file():
        try:
            cached = read_faces(cache)
        except ChatFaceError as exc:
            logger.warning("ignoring the face cache %s: %s", cache, exc)
        else:
            if cached.key == key:
                return cached
    faces = encode_photos(engine, photos, backend=backend, key=key, progress=progress)
    write_faces(cache, faces)
    return faces


@dataclass(frozen=True)
class OpenedPhotos:
    """The faces of a list of photos, each opened once (training and evaluation)."""

    names: tuple[str, ...]  # the files with a usable face, in order
    latents: Latents
    crops: torch.Tensor  # their aligned crops, [N, 3, S, S] in [-1, 1]
    skipped: tuple[tuple[str, str], ...]  # (file name, why) of the others


def open_photos(
    engine: Engine, photos: Sequence[Path], *, backend: str, progress: Progress | None = None
) -> OpenedPhotos | None:
    """Find, align and encode the largest face of each photo; photos without a usable
    face are skipped. None when no photo has one."""
    import torch

    from chatface.engine.photos import to_tensor

    names, z_sem, x_T, crops, skipped = [], [], [], [], []
    for done, photo in enumerate(photos, 1):
        try:
            face = engine.open_face(photo, backend=backend)
        except ImageError as exc:
            skipped.append((photo.name, str(exc)))
            logger.info("skipped %s: %s", photo.name, exc)
        else:
            names.append(photo.name)
            z_sem.append(face.latents.z_sem)
            x_T.append(face.latents.x_T)
            crops.append(to_tensor(face.aligned.image))
        if progress is not None:
            progress(done, len(photos))
    if not names:
        return None
    latents = Latents(torch.cat(z_sem), torch.cat(x_T))
    return OpenedPhotos(tuple(names), latents, torch.cat(crops), tuple(skipped))


def encode_photos(
    engine: Engine,
    photos: Sequence[Path],
    *,
    backend: str,
    key: str = "",
    progress: Progress | None = None,
) -> TrainingFaces:
    """Encode the largest face of each photo; photos without a usable face are skipped."""
    opened = open_photos(engine, photos, backend=backend, progress=progress)
    if opened is None:
        raise ChatFaceError(
            f"Found no usable face in the {len(photos)} file(s) given; train on face photos."
        )
    return TrainingFaces(
        opened.latents,
        opened.crops,
        backend,
        engine.backend(backend).weights_sha256,
        key,
        tuple(f"{name}: {why}" for name, why in opened.skipped),
    )


def write_faces(path: Path, faces: TrainingFaces) -> None:
    import torch
    from safetensors.torch import save

    from chatface.files import atomic_write

    crops = ((faces.images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    tensors = {
        "z_sem": faces.latents.z_sem.detach().float().cpu().contiguous(),
        "x_T": faces.latents.x_T.detach().float().cpu().contiguous(),
        "aligned": crops.permute(0, 2, 3, 1).cpu().contiguous(),
    }
    metadata = {
        "format": FORMAT,
        "backend": faces.backend,
        "backend_sha256": faces.backend_sha256,
        "key": faces.key,
        "skipped": json.dumps(list(faces.skipped)),
    }
    atomic_write(path, save(tensors, metadata=metadata))


def read_faces(path: Path) -> TrainingFaces:
    """A training-faces file, or a one-face latents file of ``chatface encode``."""
    from chatface.engine.latents_file import read_tensors

    tensors, metadata = read_tensors(path, "give a latents file or a folder of photos.")
    kind = metadata.get("format")
    if kind not in (FORMAT, SINGLE_FACE_FORMAT):
        raise ChatFaceError(f"{path} is not a chatface latents or training-faces file.")
    aligned = tensors["aligned"]
    if aligned.dim() == 3:  # one face
        aligned = aligned[None]
    images = aligned.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return TrainingFaces(
        Latents(tensors["z_sem"].float(), tensors["x_T"].float()),
        images,
        metadata.get("backend", ""),
        metadata.get("backend_sha256", ""),
        metadata.get("key", ""),
        tuple(json.loads(metadata.get("skipped", "[]"))),
    )
