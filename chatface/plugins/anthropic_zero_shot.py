"""The Anthropic planner's part of zero-shot learning: the ``learn`` field of its tool,
what the system prompt says about it, and reading the model's answer back.

The model may offer to learn something no attribute covers only when the context says
learning is possible (``PlanContext.learn_seconds``); the offer's wording is always
``engine.zero_shot.offer_reply``, so the next turn (and any planner) can recognise it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatface.engine.types import LearnRequest, PlanContext
from chatface.engine.zero_shot import offer_reply
from chatface.errors import PlanError

FIELD = {
    "type": ["object", "null"],
    "properties": {
        "text": {"type": "string", "maxLength": 40},
        "strength": {"type": "number", "minimum": -1.0, "maximum": 1.0},
        "confirmed": {"type": "boolean"},
    },
    "required": ["text", "strength", "confirmed"],
    "additionalProperties": False,
}


def prompt_note(context: PlanContext) -> str:
    """The system prompt's paragraph on learning (empty when learning is off)."""
    if context.learn_seconds is None:
        return ""
    return (
        "\nLearning: for a request about a look no attribute covers, you may instead offer "
        'to learn it: action "chat" and learn = {text, strength, confirmed: false}, where '
        "text is a short English phrase completing 'a photo of a face ...' (e.g. 'looking "
        "like a vampire', 'with a mohawk', 'looking surprised'). When the user says yes to "
        'such an offer in the previous turn, answer action "chat" with the same text and '
        "confirmed: true. Otherwise learn is null.\n"
    )


def learn_from(data: Mapping[str, Any], action: str, context: PlanContext) -> LearnRequest | None:
    """The ``learn`` request of the model's answer, or None; PlanError when malformed."""
    raw = data.get("learn")
    if raw is None or action != "chat" or context.learn_seconds is None:
        return None
    request = LearnRequest.from_dict(raw)
    if not all(ch.isascii() and (ch.isalnum() or ch in " '-") for ch in request.text):
        raise PlanError("learn.text is not a plain phrase")
    return request


def reply_for(request: LearnRequest, context: PlanContext) -> str:
    """The fixed offer, or the confirmation."""
    if request.confirmed:
        return f"Learning '{request.text}' for this photo; the result follows."
    return offer_reply(request.text, context.learn_seconds or 0.0)
