"""Zero-shot turns of the dialogue: offering to learn a free text, and learning it.

A planner offers what no provider knows (``EditPlan.learn``, unconfirmed) when the
context says learning is possible (``learn_seconds``); on the user's yes (confirmed) the
registered :class:`~chatface.engine.zero_shot.TextLearner` optimises an offset for the
chat's face on the model thread, the engine's registry is reloaded so the text is an
attribute, and the turn goes on as an ordinary edit of it. An edit of a text learned on
other photos becomes an offer for this one (learning starts from the cached offset).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from chatface.bots.photo_jobs import PROGRESS_INTERVAL_S
from chatface.engine.queue import forward_progress
from chatface.engine.types import EditOp, EditPlan, LearnRequest, Progress
from chatface.engine.zero_shot import TextLearner, find_learner, forget_faces, offer_reply
from chatface.errors import ChatFaceError, StorageError

if TYPE_CHECKING:
    from chatface.bots.faces import FaceCache
    from chatface.engine.editor import Engine
    from chatface.engine.queue import RenderQueue
    from chatface.storage import Store
    from chatface.storage.models import Face

logger = logging.getLogger(__name__)


class ZeroShotTurns:
    """What the conversation core asks about free-text attributes."""

    def __init__(self, engine: Engine, queue: RenderQueue, faces: FaceCache) -> None:
        self.engine, self.queue, self.faces = engine, queue, faces
        self._seconds: dict[str, float | None] = {}  # backend -> expected seconds (or off)

    def learner(self) -> TextLearner | None:
        """The learner; None when renders run elsewhere (on Ray replicas, which would not
        know an offset learned in this process)."""
        return find_learner(self.engine) if self.queue.renders_here else None

    async def seconds(self, face: Face | None) -> float | None:
        """Expected seconds to learn a text for ``face``; None when there is no face, no
        learner or learning is off. Measured once per backend on the model thread."""
        learner = self.learner()
        if face is None or learner is None:
            return None
        if face.backend not in self._seconds:
            try:
                self._seconds[face.backend] = await self.queue.run_model(
                    learner.seconds, self.engine, face.backend
                )
            except ChatFaceError as exc:  # e.g. CLIP's weights are missing: no offers
                logger.warning("Zero-shot learning is off for %s: %s", face.backend, exc)
                self._seconds[face.backend] = None
        return self._seconds[face.backend]

    async def check(self, plan: EditPlan, face: Face | None, seconds: float | None) -> EditPlan:
        """``plan``, or an offer when it edits a text learned only for other photos."""
        learner = self.learner()
        if plan.action != "edit" or face is None or learner is None:
            return plan
        opened = None
        for op in plan.edits:
            attribute = self.engine.registry.attribute(op.attribute)
            text = learner.text(op.attribute)
            if attribute is None or text is None:
                continue
            opened = opened or (await self.faces.opened(face)).opened
            if learner.has_face(op.attribute, opened.latents.z_sem):
                continue
            if seconds is None:
                return EditPlan("chat", reply=f"I can't change {op.attribute} on this photo.")
            reply = offer_reply(text, seconds, learned_elsewhere=True)
            return EditPlan("chat", reply=reply, learn=LearnRequest(text, op.strength))
        return plan

    async def learn(
        self, request: LearnRequest, face: Face | None, progress: Progress | None
    ) -> EditPlan:
        """Learn ``request.text`` for ``face``; the edit plan that applies it, or a chat
        plan saying why not."""
        learner = self.learner()
        if face is None or learner is None or await self.seconds(face) is None:
            return EditPlan("chat", reply="I can't learn new attributes here.")
        opened = (await self.faces.opened(face)).opened
        if progress is not None:  # learning reports from the model thread
            loop = asyncio.get_running_loop()
            progress = forward_progress(loop, [progress], PROGRESS_INTERVAL_S)
        try:
            attribute = await self.queue.run_model(
                learner.learn, self.engine, request.text, opened.latents, face.backend, progress
            )
            # Measured during learning: the next offer says how long it took here.
            self._seconds[face.backend] = await self.queue.run_model(
                learner.seconds, self.engine, face.backend
            )
        except ChatFaceError as exc:  # the queue closed, weights missing, ...
            return EditPlan("chat", reply=str(exc))
        except Exception:  # a bug or a device error: the user gets an answer, we a log
            logger.exception("Learning %r failed", request.text)
            return EditPlan("chat", reply="Sorry, learning that went wrong; nothing changed.")
        if not await asyncio.to_thread(self._still_stored, face.id or 0):
            # Forgotten (/forget) while learning: nothing learned from it may stay.
            await self.queue.run_model(learner.forget, opened.latents.z_sem)
            return EditPlan("chat", reply="Your photo was deleted meanwhile; nothing was kept.")
        self.engine.reload_registry()
        edit = EditOp(attribute.name, request.strength)
        return EditPlan("edit", (edit,), reply=f"Here you are, {request.text}.")

    def _still_stored(self, face_id: int) -> bool:
        try:
            self.faces.store.get_face(face_id)
        except StorageError:
            return False
        return True


def forget_learned(engine: Engine, store: Store, platform: str, user: str) -> int:
    """Delete what was learned from a user's faces (free-text offsets): the first step of
    forgetting the user, before their rows go. Returns how many files went."""
    return forget_faces(engine, store.user_face_latents(platform, user))
