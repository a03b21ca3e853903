"""Latents files: one encoded face saved to disk (``chatface encode`` / ``chatface render``).

A safetensors file (never a pickle) holding z_sem, x_T, the aligned crop and the
crop-to-photo transform, with metadata naming the backend and the photo (path and
sha256) so the face can be pasted back without encoding again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatface import __version__
from chatface.engine.types import Latents
from chatface.engine.weights import sha256_file
from chatface.errors import ChatFaceError
from chatface.files import atomic_write

if TYPE_CHECKING:
    from PIL import Image

    from chatface.engine.editor import OpenedFace
    from chatface.engine.faces import AlignedFace

FORMAT = "chatface-latents-1"


@dataclass(frozen=True)
class LatentsFile:
    latents: Latents
    backend: str
    aligned: AlignedFace
    photo_path: str
    photo_sha256: str

    def opened_face(self, photo: Image.Image) -> OpenedFace:
        from chatface.engine.editor import OpenedFace

        return OpenedFace(photo, self.aligned, self.latents, self.backend, faces_found=1)


def write_latents_file(path: Path, face: OpenedFace, photo_path: Path) -> None:
    import numpy as np
    import torch
    from safetensors.torch import save

    tensors = {
        "z_sem": face.latents.z_sem.detach().cpu().contiguous(),
        "x_T": face.latents.x_T.detach().cpu().contiguous(),
        "aligned": torch.from_numpy(np.asarray(face.aligned.image, dtype=np.uint8).copy()),
        "to_photo": torch.from_numpy(np.asarray(face.aligned.to_photo, dtype=np.float64).copy()),
    }
    metadata = {
        "format": FORMAT,
        "backend": face.backend,
        "photo": str(photo_path.resolve()),
        "photo_sha256": sha256_file(photo_path),
        "chatface_version": __version__,
    }
    atomic_write(path, save(tensors, metadata=metadata))


def read_tensors(path: Path, missing: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The tensors and metadata of a safetensors latents file; ChatFaceError saying
    ``missing`` (how to make one) when there is none, or that it is no latents file."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    if not path.is_file():
        raise ChatFaceError(f"{path} does not exist; {missing}")
    try:
        with safe_open(str(path), "pt") as fh:
            metadata = fh.metadata() or {}
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError) as exc:
        raise ChatFaceError(f"{path} is not a latents file: {exc}") from None


def read_latents_file(path: Path) -> LatentsFile:
    from PIL import Image

    from chatface.engine.faces import AlignedFace

    tensors, metadata = read_tensors(path, f"make it with `chatface encode PHOTO -o {path}`.")
    if metadata.get("format") != FORMAT:
        raise ChatFaceError(f"{path} is not a chatface latents file (format {FORMAT}).")
    aligned = AlignedFace.from_to_photo(
        Image.fromarray(tensors["aligned"].numpy(), "RGB"), tensors["to_photo"].numpy()
    )
    return LatentsFile(
        Latents(tensors["z_sem"], tensors["x_T"]),
        metadata["backend"],
        aligned,
        metadata.get("photo", ""),
        metadata.get("photo_sha256", ""),
    )
