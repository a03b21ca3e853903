"""Identity in the chat: the state the identity guard scales a turn back toward, what
its note says, and the answer to /identity."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from chatface.bots.replies import NO_FACE, Reply
from chatface.engine.types import SessionState

if TYPE_CHECKING:
    from chatface.engine.batch import Guarded
    from chatface.storage import Edit, Store
    from chatface.storage.turns import TurnView

SCALES = {2: "2/3", 1: "1/3"}  # the guard's fractions, in thirds, as the reply says them


def turn_before(store: Store, current: Edit) -> SessionState | None:
    """The state before ``current``'s edit (the guard scales the edit back toward it),
    or None when ``current`` is not an edit turn. Runs in a worker thread."""
    try:
        action = json.loads(current.plan_json).get("action")
    except (ValueError, AttributeError):
        return None
    if action != "edit":
        return None
    earlier = [e for e in store.history(current.face_id) if e.seq == current.seq - 1]
    return SessionState.from_json(earlier[0].state_json) if earlier else SessionState()


def guard_note(guarded: Guarded, identity: float | None) -> str:
    """What the reply adds when the identity guard lowered the edit."""
    part = SCALES.get(round(guarded.scale * 3), f"{guarded.scale:.0%}")
    kept = f"{identity:.2f}" if identity is not None else "?"
    note = (
        f"(Identity guard: the full edit kept an identity similarity of only "
        f"{guarded.full:.2f}, below {guarded.threshold:.2f}, so I applied {part} of it: "
        f"similarity {kept}"
    )
    return note + (").", ", still below the threshold).")[not guarded.passed]


def identity_label(edit: Edit) -> str:
    """`` (identity 0.83)`` for a history line, or nothing when it was not measured."""
    return "" if edit.identity is None else f" (identity {edit.identity:.2f})"


def identity_reply(view: TurnView) -> Reply:
    """/identity: how alike the current result is to the original face."""
    if view.face is None:
        return Reply(NO_FACE)
    current = view.current
    if current is None:
        return Reply("This is the original photo: nothing has changed who it shows.")
    if current.identity is None:
        return Reply(
            "Identity was not measured for this edit (measuring is off, the face-recognition "
            "weights are not installed, or the result is still being made)."
        )
    return Reply(
        f"Identity similarity of this edit with the original face: {current.identity:.2f} "
        "(1 = the same face; below about 0.5 it may look like someone else)."
    )
