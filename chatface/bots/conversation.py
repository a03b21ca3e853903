"""The platform-neutral dialogue: photos and messages in, replies (text + image) out.

Every front end (the terminal chat, and the Telegram and Discord bots to come) is a thin
adapter over ``Conversation``. A photo is encoded once and stored with its latents; each
text message is planned, recorded in the face's history and rendered from the stored
original latents with the whole accumulated state, so undo and redo are exact and many
turns never drift. User errors become replies, never exceptions.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatface.engine.types import EditPlan, Latents, Progress, SessionState
from chatface.errors import ChatFaceError, StorageError

if TYPE_CHECKING:
    from PIL import Image

    from chatface.engine.editor import Engine, OpenedFace
    from chatface.storage import Edit, Face, Store

logger = logging.getLogger(__name__)

HELP = (
    "Send a photo with a face, then tell me what to change: 'make her smile', 'add glasses "
    "and make him older', 'a bit more', 'less'. Commands: undo, redo, reset, show original, "
    "list attributes, help."
)
RECENT_TURNS = 10


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True)
class Reply:
    """What to send back: a short text, and an image when something was rendered."""

    text: str
    image: Image.Image | None = None
    plan: EditPlan | None = None


class Conversation:
    """One engine and one store shared by every user of a front end."""

    def __init__(
        self, engine: Engine, store: Store, platform: str, backend: str | None = None
    ) -> None:
        self.engine = engine
        self.store = store
        self.platform = platform
        self.backend = backend or engine.config["engine.backend"]  # for new photos
        self._faces: dict[int, OpenedFace] = {}  # face id -> decoded face, a cache

    def _conversation_id(self, user: str, chat: str) -> tuple[int, int]:
        row = self.store.get_or_create_user(self.platform, user)
        conversation = self.store.get_or_create_conversation(row.id or 0, chat)
        return row.id or 0, conversation.id or 0

    def _reply(self, conversation_id: int, reply: Reply) -> Reply:
        self.store.log_message(conversation_id, "bot", reply.text)
        return reply

    def receive_photo(
        self, user: str, chat: str, photo: bytes, name: str = "", progress: Progress | None = None
    ) -> Reply:
        """Find and encode the face; it becomes the chat's active face."""
        _, conversation_id = self._conversation_id(user, chat)
        self.store.log_message(conversation_id, "user", f"[photo {name}]".replace(" ]", "]"))
        try:
            opened = self.engine.open_face(photo, backend=self.backend, progress=progress)
        except ChatFaceError as exc:
            return self._reply(conversation_id, Reply(str(exc)))
        return self.add_face(user, chat, opened, photo, name)

    def add_face(
        self, user: str, chat: str, opened: OpenedFace, photo: bytes, name: str = ""
    ) -> Reply:
        """Store a face opened by ``Engine.open_face`` as the chat's active face."""
        user_id, conversation_id = self._conversation_id(user, chat)
        # Named by content, so the file exists before the face row that points at it.
        photo_file = self.store.user_files_dir(user_id) / f"photo-{_digest(photo)}.png"
        if not photo_file.exists():
            opened.photo.save(photo_file)
        crop = io.BytesIO()
        opened.aligned.image.save(crop, format="PNG")
        face = self.store.add_face(
            conversation_id,
            aligned_png=crop.getvalue(),
            inverse_transform=opened.aligned.to_photo.reshape(-1).tolist(),
            latents=opened.latents.to_bytes(),
            backend=opened.backend,
            weights_sha256=self.engine.backend(opened.backend).weights_sha256,
            source_name=name,
            photo_path=str(photo_file.relative_to(self.store.files_dir)),
        )
        self._faces[face.id or 0] = opened
        text = "Got the face. What should I change?"
        if opened.note:
            text = f"{opened.note} {text}"
        return self._reply(conversation_id, Reply(text))

    def _opened(self, face: Face) -> OpenedFace:
        """The decoded face, from the cache or rebuilt from storage (e.g. after a restart)."""
        if face.id not in self._faces:
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
            self._faces[face.id or 0] = OpenedFace(photo, aligned, latents, face.backend, 1)
        return self._faces[face.id or 0]

    def receive_text(
        self, user: str, chat: str, text: str, progress: Progress | None = None
    ) -> Reply:
        """Plan the message and carry it out."""
        _, conversation_id = self._conversation_id(user, chat)
        recent = [(m.role, m.text) for m in self.store.messages(conversation_id, RECENT_TURNS)]
        self.store.log_message(conversation_id, "user", text)
        face = self.store.active_face(conversation_id)
        state = SessionState.from_json(self.store.current_state_json(face.id)) if face else None
        try:
            plan = self.engine.plan(text, state or SessionState(), recent)
        except ChatFaceError as exc:
            return self._reply(conversation_id, Reply(str(exc)))
        return self.carry_out(user, chat, plan, progress)

    def carry_out(
        self, user: str, chat: str, plan: EditPlan, progress: Progress | None = None
    ) -> Reply:
        """Carry out a plan on the chat's active face and reply."""
        user_id, conversation_id = self._conversation_id(user, chat)
        try:
            reply = self._carry_out(
                plan, self.store.active_face(conversation_id), user_id, progress
            )
        except ChatFaceError as exc:
            reply = Reply(str(exc))
        return self._reply(conversation_id, reply)

    def _carry_out(
        self, plan: EditPlan, face: Face | None, user_id: int, progress: Progress | None
    ) -> Reply:
        if plan.action == "help":
            return Reply(plan.reply or HELP, plan=plan)
        if plan.action == "list_attributes":
            names = ", ".join(sorted(a.name for a in self.engine.attributes()))
            return Reply(f"I can change: {names}.", plan=plan)
        if plan.action == "chat":
            return Reply(plan.reply or HELP, plan=plan)
        if face is None:
            return Reply("Send me a photo with a face first.", plan=plan)
        face_id = face.id or 0
        if plan.action == "show_original":
            return Reply(plan.reply or "The original photo.", self._opened(face).photo, plan)
        # Each store call returns the edit that is current afterwards (None: the original).
        current: Edit | None
        if plan.action == "undo":
            current = self.store.undo(face_id)
            text = plan.reply or "Undone."
        elif plan.action == "redo":
            current = self.store.redo(face_id)
            text = plan.reply or "Redone."
        elif plan.action == "reset":
            current = self.store.reset(face_id, plan.to_json())
            text = plan.reply or "Back to the original."
        else:  # edit
            attributes = {a.name: a for a in self.engine.attributes()}
            state = SessionState.from_json(self.store.current_state_json(face_id))
            new_state = state.apply(plan.edits, attributes)
            current = self.store.append_edit(
                face_id, plan_json=plan.to_json(), state_json=new_state.to_json()
            )
            text = plan.reply or "Done."
        stored = self._stored_result(current.result_path if current else None)
        if stored is not None:  # undo/redo: the very image shown before, at no cost
            return Reply(text, stored, plan)
        now = SessionState.from_json(current.state_json) if current else SessionState()
        image = self.render(face, now, plan.steps, progress)
        if current is not None:
            folder = self.store.user_files_dir(user_id)
            path = folder / f"face-{face_id}-edit-{current.seq}.png"
            image.save(path)
            self.store.set_result(current.id or 0, str(path.relative_to(self.store.files_dir)))
        return Reply(text, image, plan)

    def _stored_result(self, result_path: str | None) -> Image.Image | None:
        if not result_path or not (self.store.files_dir / result_path).is_file():
            return None
        from PIL import Image

        with Image.open(self.store.files_dir / result_path) as image:
            return image.convert("RGB")

    def render(
        self, face: Face, state: SessionState, steps: int | None, progress: Progress | None
    ) -> Image.Image:
        """The photo edited to ``state``; the untouched original photo for an empty state."""
        opened = self._opened(face)
        if not state.strengths:
            return opened.photo
        return self.engine.render(opened, state, steps=steps, progress=progress)
