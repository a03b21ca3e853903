"""The faces a bot is editing, decoded and kept in memory (least recently used go first),
and the images it shows of them."""

from __future__ import annotations

import asyncio
import io
import json
from collections import OrderedDict
from typing import TYPE_CHECKING, NamedTuple

from chatface.bots.replies import Reply
from chatface.engine.types import EditPlan, Latents
from chatface.errors import StorageError

if TYPE_CHECKING:
    from PIL import Image

    from chatface.engine.editor import OpenedFace
    from chatface.engine.queue import RenderQueue
    from chatface.storage import Edit, Face, Store


class StoredFace(NamedTuple):
    """A face as a render needs it: decoded, and the blobs it is stored with."""

    opened: OpenedFace
    latents: bytes  # safetensors of z_sem and x_T
    aligned_png: bytes  # the aligned crop, which identity is measured against


class FaceCache:
    """Face id -> :class:`StoredFace`, at most ``size`` of them."""

    def __init__(self, store: Store, queue: RenderQueue, size: int) -> None:
        self.store = store
        self.queue = queue
        self.size = max(1, size)
        self._faces: OrderedDict[int, StoredFace] = OrderedDict()

    def ids(self) -> frozenset[int]:
        return frozenset(self._faces)

    def clear(self) -> None:
        self._faces.clear()

    def get(self, face_id: int) -> StoredFace | None:
        return self._faces.get(face_id)

    def remember(self, face_id: int, stored: StoredFace) -> None:
        self._faces[face_id] = stored
        self._faces.move_to_end(face_id)
        while len(self._faces) > self.size:
            self._faces.popitem(last=False)

    async def opened(self, face: Face) -> StoredFace:
        """The face from the cache, or rebuilt from storage (after a restart, or when the
        cache dropped it)."""
        cached = self._faces.get(face.id or 0)
        if cached is None:
            cached = await asyncio.to_thread(self._decode, face.id or 0)
        self.remember(face.id or 0, cached)
        return cached

    def _decode(self, face_id: int) -> StoredFace:
        from PIL import Image

        from chatface.engine.editor import OpenedFace
        from chatface.engine.faces import AlignedFace, load_image

        # Read again, blobs included: the row a turn read may have come without them
        # (the face was cached then), and the face may be gone (/forget).
        face = self.store.get_face(face_id)
        if not face.photo_path:
            raise StorageError("This face has no stored photo; please send the photo again.")
        aligned = AlignedFace.from_to_photo(
            Image.open(io.BytesIO(face.aligned_png)).convert("RGB"),
            json.loads(face.inverse_transform),
        )
        photo = load_image(self.store.files_dir / face.photo_path)
        latents = Latents.from_bytes(face.latents)
        opened = OpenedFace(photo, aligned, latents, face.backend, 1)
        return StoredFace(opened, face.latents, face.aligned_png)

    def stored_result(self, current: Edit | None, *, read: bool = True) -> bytes | None:
        """The stored image of ``current`` (with ``read=False``: b"" when there is one).
        Runs in a worker thread."""
        if current is None or not current.result_path:
            return None
        path = self.store.files_dir / current.result_path
        if not path.is_file():
            return None
        return path.read_bytes() if read else b""

    async def image_reply(self, text: str, image: Image.Image, plan: EditPlan | None) -> Reply:
        """A reply showing ``image``, encoded in the queue's pool."""
        from chatface.engine.photos import encode_image

        data, kind = await self.queue.postprocess(encode_image, image)
        return Reply(text, data, kind, plan)
