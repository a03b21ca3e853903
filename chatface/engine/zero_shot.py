"""Zero-shot free-text attributes: what planners, front ends and learners share.

A request for something no provider knows ("make her look like a vampire") can be
learned for one photo on the spot: a planner offers it (``EditPlan.learn``), the user
says yes, and a :class:`TextLearner` (a direction provider that can learn, such as the
mapper plugin's ``free_text``) optimises a z_sem offset for that face. The learned text
is then an attribute like any other, so the session state holds it and undo stays exact.

The offer is one fixed sentence (:func:`offer_reply`), so a planner can recognise it
among the recent turns when the user answers "yes" (:func:`offered_text`).
"""

from __future__ import annotations

import logging
import math
import re
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from chatface.engine.editor import Engine
    from chatface.engine.types import Attribute, Latents, Progress

logger = logging.getLogger(__name__)
_OFFER = re.compile(r"^I (?:don't know|learned) '([^']{1,60})' ")


def duration(seconds: float) -> str:
    """``about 12 s`` or ``about 3 min``."""
    if seconds < 90:
        return f"about {max(1, math.ceil(seconds))} s"
    return f"about {math.ceil(seconds / 60)} min"


def offer_reply(text: str, seconds: float, learned_elsewhere: bool = False) -> str:
    """The offer to learn ``text`` for this photo; :func:`offered_text` reads it back."""
    if learned_elsewhere:
        return (
            f"I learned '{text}' on another photo: adapting it to this one takes "
            f"{duration(seconds)}. Say yes to try."
        )
    return (
        f"I don't know '{text}' yet: I can learn it for this photo in {duration(seconds)}. "
        "Say yes to try."
    )


def offered_text(bot_text: str) -> str | None:
    """The text a bot turn offered to learn, or None when it is no offer."""
    match = _OFFER.match(bot_text.strip())
    return match.group(1) if match else None


@runtime_checkable
class TextLearner(Protocol):
    """A direction provider that learns free-text attributes, one face at a time."""

    def learned(self, text: str, backend: str) -> Attribute | None:
        """The attribute ``text`` became when it was learned for any face, or None."""
        ...

    def text(self, attribute: str) -> str | None:
        """The text ``attribute`` was learned from, or None when it is not one of these."""
        ...

    def has_face(self, attribute: str, z_sem: torch.Tensor) -> bool:
        """Whether ``attribute`` was learned for the face whose z_sem ([1, D]) this is."""
        ...

    def seconds(self, engine: Engine, backend: str) -> float | None:
        """Expected seconds to learn a text for one face on this device; None when
        zero-shot learning is off."""
        ...

    def learn(
        self,
        engine: Engine,
        text: str,
        latents: Latents,
        backend: str,
        progress: Progress | None = None,
    ) -> Attribute:
        """Learn ``text`` for the face of ``latents`` (runs the models: call it on the
        model thread) and return its attribute. Until the engine's registry is reloaded,
        the attribute is not yet in ``Engine.attributes()``."""
        ...

    def forget(self, z_sem: torch.Tensor) -> int:
        """Delete everything learned from the face whose z_sem ([1, D]) this is (its
        offsets, and a text's start when it came from this face); returns files removed."""
        ...


def forget_faces(engine: Engine, latents_blobs: list[bytes]) -> int:
    """Delete what learners keep of these faces (stored latents, as in the faces table):
    part of forgetting a user. Returns how many files went."""
    from chatface.engine.types import Latents

    learner = find_learner(engine)
    if learner is None:
        return 0
    removed = 0
    for blob in latents_blobs:
        try:
            z_sem = Latents.from_bytes(blob).z_sem
        except Exception:  # a damaged row must not stop the rest of forgetting
            logger.warning("A stored face's latents are unreadable; nothing learned from it")
            continue
        try:
            removed += learner.forget(z_sem)
        except OSError as exc:  # the user's rows must still go: say what stayed behind
            logger.error("Could not delete what was learned from a forgotten face: %s", exc)
    return removed


def find_learner(engine: Engine) -> TextLearner | None:
    """The first registered direction provider that can learn free text, if any."""
    for entry in engine.registry.providers.values():
        if isinstance(entry.value, TextLearner):
            return entry.value
    return None
