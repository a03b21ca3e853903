"""Photo jobs: a photo a user sent becomes a stored face (found, aligned, encoded once).

``PhotoJobs`` is the photo half of :class:`chatface.bots.jobs.Jobs`, which provides the
engine, store, queue, face cache, backend and ``_fail`` it uses. A photo the same user
sent before (the same bytes, backend and weights) is not encoded again: the new face
copies the stored encoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from chatface.bots.faces import StoredFace
from chatface.bots.replies import FAILED, SILENT, Reply
from chatface.engine.queue import JobCancelledError, forward_progress
from chatface.errors import ChatFaceError
from chatface.files import atomic_write
from chatface.storage.models import Face

if TYPE_CHECKING:
    from chatface.bots.faces import FaceCache
    from chatface.engine.editor import Engine, OpenedFace
    from chatface.engine.queue import RenderQueue
    from chatface.engine.types import Progress
    from chatface.storage import Store

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.25  # a new face's encoding steps are reported at most this often


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def discard(path: Path) -> None:
    """Remove a file written for a user who was forgotten meanwhile (and its folder if
    that leaves it empty): no personal data may stay behind."""
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty, or gone
        path.parent.rmdir()


class PhotoJobs:
    """The photo jobs of :class:`chatface.bots.jobs.Jobs` (see the module docstring)."""

    engine: Engine
    store: Store
    queue: RenderQueue
    faces: FaceCache
    backend: str  # the backend for new photos

    if TYPE_CHECKING:  # Jobs provides it

        async def _fail(
            self, job_id: int, message: str, error: str | None = None, *, undo: bool = False
        ) -> Reply: ...

        run_id: str

    async def encode(
        self,
        job_id: int,
        user_id: int,
        photo: bytes,
        name: str,
        progress: Progress | None,
        incoming: Path | None = None,
    ) -> Reply:
        """A photo job: find and encode the face, store it; a photo the user sent before
        is not encoded again. ``incoming``: the stored photo, removed once the job ends."""
        if progress is not None:  # the encoding reports from the model thread
            loop = asyncio.get_running_loop()
            progress = forward_progress(loop, [progress], PROGRESS_INTERVAL_S)
        try:
            earlier = await self._encoded_before(user_id, photo)
            if earlier is None:
                opened = await self.queue.open_face(photo, backend=self.backend, progress=progress)
        except JobCancelledError:
            return SILENT  # the queue closed: the next start does the job
        except ChatFaceError as exc:  # not an image, no face, ...
            reply = await self._fail(job_id, str(exc))
        except Exception:
            logger.exception("Encoding a photo failed (job %s)", job_id)
            reply = await self._fail(job_id, FAILED, "unexpected error")
        else:
            if earlier is not None:
                reply = await self._store_copy(job_id, earlier, name)
            else:
                reply = await self.store_face(job_id, user_id, opened, photo, name)
        if incoming is not None and reply is not SILENT:
            incoming.unlink(missing_ok=True)
        return reply

    def _photo_file(self, user_id: int, photo: bytes) -> Path:
        """Where the user's photo is kept: named by its content."""
        return self.store.user_files_dir(user_id) / f"photo-{_digest(photo)}.png"

    async def _encoded_before(self, user_id: int, photo: bytes) -> Face | None:
        """The user's newest face of the same photo, encoded by the backend for new photos
        with the weights it has now; None when there is none.

        Every stored face is face 0 of its photo (bots and ``chatface chat`` edit that
        one). The match leaves out ``render.encode_steps``: a changed setting does not
        make stored latents wrong (every existing face keeps rendering from the x_T it
        was encoded with), and a photo sent again is the same face as before.
        """

        def find() -> Face | None:
            path = self._photo_file(user_id, photo)
            if not path.is_file():
                return None
            relative = str(path.relative_to(self.store.files_dir))
            return self.store.face_of_photo(user_id, relative, self.backend)

        earlier = await asyncio.to_thread(find)
        if earlier is None:
            return None
        weights = await self.queue.weights_of(self.backend)  # where faces are encoded
        return earlier if earlier.weights_sha256 == weights else None

    async def _store_copy(self, job_id: int, earlier: Face, name: str) -> Reply:
        """End photo job ``job_id`` with a new face that copies ``earlier``'s encoding
        (latents, aligned crop, transform and photo file)."""
        text = "Got the face. What should I change?"
        face = Face(
            conversation_id=0,  # the job's
            aligned_png=earlier.aligned_png,
            inverse_transform=earlier.inverse_transform,
            latents=earlier.latents,
            backend=earlier.backend,
            weights_sha256=earlier.weights_sha256,
            source_name=name,
            photo_path=earlier.photo_path,
        )
        finish = functools.partial(
            self.store.finish_job, job_id, "done", reply=text, face=face, owner=self.run_id
        )
        try:
            end = await asyncio.to_thread(finish)
        except Exception:
            logger.exception("Storing a face failed (job %s)", job_id)
            return await self._fail(job_id, FAILED, "unexpected error")
        if end.face is None:  # forgotten meanwhile
            return SILENT
        if (cached := self.faces.get(earlier.id or 0)) is not None:
            self.faces.remember(end.face.id or 0, cached)
        return Reply(text)

    async def store_face(
        self, job_id: int, user_id: int, opened: OpenedFace, photo: bytes, name: str
    ) -> Reply:
        """Store a face opened by ``Engine.open_face`` as the end of photo job ``job_id``."""
        from chatface.engine.photos import encode_image

        def encode_both() -> tuple[bytes, bytes]:
            return encode_image(opened.photo)[0], encode_image(opened.aligned.image)[0]

        try:
            photo_png, crop_png = await self.queue.postprocess(encode_both)
            weights = await self.queue.weights_of(opened.backend)
        except JobCancelledError:
            return SILENT
        except Exception:
            logger.exception("Storing a face failed (job %s)", job_id)
            return await self._fail(job_id, FAILED, "unexpected error")
        latents = opened.latents.to_bytes()
        text = "Got the face. What should I change?"
        if opened.note:
            text = f"{opened.note} {text}"
        face = Face(
            conversation_id=0,  # the job's
            aligned_png=crop_png,
            inverse_transform=json.dumps(opened.aligned.to_photo.reshape(-1).tolist()),
            latents=latents,
            backend=opened.backend,
            weights_sha256=weights,
            source_name=name,
        )

        def store() -> Face | None:
            # Named by content, so the file exists before the face row that points at it.
            photo_file = self._photo_file(user_id, photo)
            if not photo_file.exists():
                atomic_write(photo_file, photo_png)
            face.photo_path = str(photo_file.relative_to(self.store.files_dir))
            end = self.store.finish_job(job_id, "done", reply=text, face=face, owner=self.run_id)
            if not end.found:  # forgotten meanwhile
                discard(photo_file)
            return end.face

        try:
            stored = await asyncio.to_thread(store)
        except Exception:
            logger.exception("Storing a face failed (job %s)", job_id)
            return await self._fail(job_id, FAILED, "unexpected error")
        if stored is None:
            return SILENT
        self.faces.remember(stored.id or 0, StoredFace(opened, latents, crop_png))
        return Reply(text)
