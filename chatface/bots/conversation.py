"""The platform-neutral dialogue: photos and messages in, replies (text + image) out.

Every front end (the terminal ``chatface chat``, the Telegram and Discord bots) is a thin
adapter over :class:`ConversationCore`, which is async and never blocks the event loop:
storage runs in worker threads, a new face is encoded on the render queue's model
thread, renders go through the queue as data-only requests (so many users' edits share
model calls), and paste-back and image encoding run in the queue's small pool.

A photo is encoded once and stored with its latents; each text message is planned,
recorded in the face's history and rendered from the stored original latents with the
whole accumulated state, so undo and redo are exact and many turns never drift. User
errors become replies, never exceptions.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatface.engine.batch import RenderRequest
from chatface.engine.queue import JobReplacedError
from chatface.engine.types import EditPlan, Latents, Progress, SessionState
from chatface.errors import ChatFaceError, StorageError
from chatface.files import atomic_write

if TYPE_CHECKING:
    from PIL import Image

    from chatface.engine.editor import Engine, OpenedFace
    from chatface.engine.queue import RenderQueue
    from chatface.storage import Edit, Face, Store

logger = logging.getLogger(__name__)

HELP = (
    "Send a photo with a face, then tell me what to change: 'make her smile', 'add glasses "
    "and make him older', 'a bit more', 'less'. Commands: undo, redo, reset, show original, "
    "list attributes, help."
)
RECENT_TURNS = 10
NO_FACE = "Send me a photo with a face first."


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True)
class Reply:
    """What to send back: a short text, and an image (encoded once) when there is one.

    ``error``: the text explains why the request could not be done (a bad photo, ...).
    ``replaced``: a newer message from the same user replaced this turn's render before
    it started; front ends send nothing for it (the newer turn answers).
    """

    text: str
    image: bytes | None = None
    image_type: str | None = None  # "image/png", ...
    plan: EditPlan | None = None
    error: bool = False
    replaced: bool = False


class ConversationCore:
    """One engine, store and render queue shared by every user of a front end."""

    def __init__(
        self,
        engine: Engine,
        store: Store,
        queue: RenderQueue,
        platform: str,
        backend: str | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.queue = queue
        self.platform = platform
        self.backend = backend or engine.config["engine.backend"]  # for new photos
        self._faces: OrderedDict[int, OpenedFace] = OrderedDict()  # face id -> decoded, LRU
        self._cache_size = max(1, int(engine.config["bots.face_cache"]))

    # --- storage, off the event loop ---------------------------------------------------

    def _ids(self, user: str, chat: str) -> tuple[int, int]:
        row = self.store.get_or_create_user(self.platform, user)
        conversation = self.store.get_or_create_conversation(row.id or 0, chat)
        return row.id or 0, conversation.id or 0

    async def _log(self, conversation_id: int, reply: Reply) -> Reply:
        await asyncio.to_thread(self.store.log_message, conversation_id, "bot", reply.text)
        return reply

    # --- photos -------------------------------------------------------------------------

    async def receive_photo(
        self, user: str, chat: str, photo: bytes, name: str = "", progress: Progress | None = None
    ) -> Reply:
        """Find and encode the face; it becomes the chat's active face."""

        def log() -> int:
            _, conversation_id = self._ids(user, chat)
            self.store.log_message(conversation_id, "user", f"[photo {name}]".replace(" ]", "]"))
            return conversation_id

        conversation_id = await asyncio.to_thread(log)
        try:
            opened = await self.queue.run_model(
                self.engine.open_face, photo, backend=self.backend, progress=progress
            )
        except ChatFaceError as exc:
            return await self._log(conversation_id, Reply(str(exc), error=True))
        return await self.add_face(user, chat, opened, photo, name)

    async def add_face(
        self, user: str, chat: str, opened: OpenedFace, photo: bytes, name: str = ""
    ) -> Reply:
        """Store a face opened by ``Engine.open_face`` as the chat's active face."""
        from chatface.engine.photos import encode_image

        def encode_both() -> tuple[bytes, bytes]:
            return encode_image(opened.photo)[0], encode_image(opened.aligned.image)[0]

        photo_png, crop_png = await self.queue.postprocess(encode_both)
        weights_sha256 = self.engine.backend(opened.backend).weights_sha256

        def store_face() -> tuple[int, int]:
            user_id, conversation_id = self._ids(user, chat)
            # Named by content, so the file exists before the face row that points at it.
            photo_file = self.store.user_files_dir(user_id) / f"photo-{_digest(photo)}.png"
            if not photo_file.exists():
                atomic_write(photo_file, photo_png)
            face = self.store.add_face(
                conversation_id,
                aligned_png=crop_png,
                inverse_transform=opened.aligned.to_photo.reshape(-1).tolist(),
                latents=opened.latents.to_bytes(),
                backend=opened.backend,
                weights_sha256=weights_sha256,
                source_name=name,
                photo_path=str(photo_file.relative_to(self.store.files_dir)),
            )
            return face.id or 0, conversation_id

        face_id, conversation_id = await asyncio.to_thread(store_face)
        self._remember(face_id, opened)
        text = "Got the face. What should I change?"
        if opened.note:
            text = f"{opened.note} {text}"
        return await self._log(conversation_id, Reply(text))

    def _remember(self, face_id: int, opened: OpenedFace) -> None:
        self._faces[face_id] = opened
        self._faces.move_to_end(face_id)
        while len(self._faces) > self._cache_size:
            self._faces.popitem(last=False)

    def _opened(self, face: Face) -> OpenedFace:
        """The decoded face, from the cache or rebuilt from storage (after a restart, or
        when the cache dropped it). Runs in a worker thread."""
        cached = self._faces.get(face.id or 0)
        if cached is not None:
            return cached
        from PIL import Image

        from chatface.engine.editor import OpenedFace
        from chatface.engine.faces import AlignedFace, load_image

        if not face.photo_path:
            raise StorageError("This face has no stored photo; please send the photo again.")
        aligned = AlignedFace.from_to_photo(
            Image.open(io.BytesIO(face.aligned_png)).convert("RGB"),
            json.loads(face.inverse_transform),
        )
        photo = load_image(self.store.files_dir / face.photo_path)
        latents = Latents.from_bytes(face.latents)
        return OpenedFace(photo, aligned, latents, face.backend, 1)

    # --- messages -----------------------------------------------------------------------

    async def receive_text(
        self, user: str, chat: str, text: str, progress: Progress | None = None
    ) -> Reply:
        """Plan the message and carry it out."""

        def context() -> tuple[int, int, list[tuple[str, str]], SessionState]:
            user_id, conversation_id = self._ids(user, chat)
            recent = [(m.role, m.text) for m in self.store.messages(conversation_id, RECENT_TURNS)]
            self.store.log_message(conversation_id, "user", text)
            face = self.store.active_face(conversation_id)
            state = self.store.current_state_json(face.id) if face else "{}"
            return user_id, conversation_id, recent, SessionState.from_json(state)

        user_id, conversation_id, recent, state = await asyncio.to_thread(context)
        try:
            # A planner may call a network API: never on the event loop.
            plan = await asyncio.to_thread(self.engine.plan, text, state, recent)
        except ChatFaceError as exc:
            plan = EditPlan("chat", reply=str(exc))
        return await self._answer(plan, user, user_id, conversation_id, progress)

    async def carry_out(
        self, user: str, chat: str, plan: EditPlan, progress: Progress | None = None
    ) -> Reply:
        """Carry out a plan on the chat's active face and reply."""
        user_id, conversation_id = await asyncio.to_thread(self._ids, user, chat)
        return await self._answer(plan, user, user_id, conversation_id, progress)

    async def _answer(
        self,
        plan: EditPlan,
        user: str,
        user_id: int,
        conversation_id: int,
        progress: Progress | None,
    ) -> Reply:
        try:
            reply = await self._carry_out(plan, user, user_id, conversation_id, progress)
        except ChatFaceError as exc:
            reply = Reply(str(exc), error=True)
        if reply.replaced:
            return reply
        return await self._log(conversation_id, reply)

    async def _carry_out(
        self,
        plan: EditPlan,
        user: str,
        user_id: int,
        conversation_id: int,
        progress: Progress | None,
    ) -> Reply:
        if plan.action in ("help", "chat"):
            return Reply(plan.reply or HELP, plan=plan)
        if plan.action == "list_attributes":
            names = ", ".join(sorted(a.name for a in self.engine.attributes()))
            return Reply(f"I can change: {names}.", plan=plan)
        face = await asyncio.to_thread(self.store.active_face, conversation_id)
        if face is None:
            return Reply(NO_FACE, plan=plan)
        if plan.action == "show_original":
            opened = await asyncio.to_thread(self._opened, face)
            return await self._image_reply(plan.reply or "The original photo.", opened.photo, plan)
        current, text = await asyncio.to_thread(self._move, face, plan)
        stored = await asyncio.to_thread(self._stored_result, current)
        if stored is not None:  # undo/redo: the very image shown before, at no cost
            return Reply(text, stored, "image/png", plan)
        state = SessionState.from_json(current.state_json) if current else SessionState()
        opened = await asyncio.to_thread(self._opened, face)
        self._remember(face.id or 0, opened)
        if not state.strengths:
            return await self._image_reply(text, opened.photo, plan)
        request = RenderRequest.make(
            uuid.uuid4().hex,
            face.latents,
            state,
            steps=plan.steps or self.engine.config["render.steps"],
            schedule=self.engine.config["render.schedule"],
            backend=face.backend,
            user=f"{self.platform}:{user}",
        )
        job = await self.queue.submit(request, progress)
        try:
            result = await job.result()
        except JobReplacedError:
            return Reply("", plan=plan, replaced=True)
        path = None
        if current is not None:
            path = self.store.user_files_dir(user_id) / f"face-{face.id}-edit-{current.seq}.png"
        image = await self.queue.postprocess(_finish, opened, result.crop, path)
        if current is not None and path is not None:
            relative = str(path.relative_to(self.store.files_dir))
            await asyncio.to_thread(self.store.set_result, current.id or 0, relative)
        return Reply(text, image, "image/png", plan)

    def _move(self, face: Face, plan: EditPlan) -> tuple[Edit | None, str]:
        """Apply the plan to the face's history; the edit that is current afterwards (None:
        the original) and the reply text. Runs in a worker thread."""
        face_id = face.id or 0
        if plan.action == "undo":
            return self.store.undo(face_id), plan.reply or "Undone."
        if plan.action == "redo":
            return self.store.redo(face_id), plan.reply or "Redone."
        if plan.action == "reset":
            return self.store.reset(face_id, plan.to_json()), plan.reply or "Back to the original."
        attributes = {a.name: a for a in self.engine.attributes()}
        state = SessionState.from_json(self.store.current_state_json(face_id))
        new_state = state.apply(plan.edits, attributes)
        current = self.store.append_edit(
            face_id, plan_json=plan.to_json(), state_json=new_state.to_json()
        )
        return current, plan.reply or "Done."

    def _stored_result(self, current: Edit | None) -> bytes | None:
        if current is None or not current.result_path:
            return None
        path = self.store.files_dir / current.result_path
        return path.read_bytes() if path.is_file() else None

    async def _image_reply(self, text: str, image: Image.Image, plan: EditPlan) -> Reply:
        from chatface.engine.photos import encode_image

        data, kind = await self.queue.postprocess(encode_image, image)
        return Reply(text, data, kind, plan)


def _finish(opened: OpenedFace, crop: object, path: object) -> bytes:
    """Paste the rendered crop back into the photo, encode it once, keep it on disk.
    Runs in the queue's post-processing pool, never on the model thread."""
    from chatface.engine import faces
    from chatface.engine.photos import encode_image

    photo = faces.paste_back(opened.photo, faces.to_image(crop), opened.aligned)
    data, _ = encode_image(photo)
    if path is not None:
        atomic_write(path, data)  # type: ignore[arg-type]
    return data
