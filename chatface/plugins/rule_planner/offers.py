"""Zero-shot offers: learning a free-text attribute nobody provides, and the user's yes.

When zero-shot learning is on (``PlanContext.learn_seconds``), an English request for
something unknown ("make her look like a vampire", "give him a mohawk") is answered with
an offer naming a short phrase that completes "a photo of a face ..." ("looking like a
vampire", "with a mohawk"); a plain yes right after the offer confirms it, with the
strength the request asked for ("a lot like a vampire": 0.8).
"""

from __future__ import annotations

import re

from chatface.engine.types import EditPlan, LearnRequest, PlanContext
from chatface.engine.zero_shot import offer_reply, offered_text
from chatface.plugins.rule_planner.lexemes import Kind
from chatface.plugins.rule_planner.parse import DEFAULT_MAGNITUDE, Analysis
from chatface.plugins.rule_planner.vocabulary import Vocabulary

MAX_WORDS = 6
MAX_CHARS = 40
_WHO = r"(?:him|her|them|me|it|this|this person|the face|the person|my face)"
_HOW = r"(?:(?:a (?:bit|little|lot)|very|much|slightly|more|really|totally) )*"
# (pattern, how the phrase completes "a photo of a face ...")
_PATTERNS = (
    (re.compile(rf"\blook(?:s|ing)? {_HOW}like (.+)"), "looking like {}"),
    (re.compile(rf"\b(?:turn|transform|change) {_WHO} into (.+)"), "looking like {}"),
    (re.compile(rf"\bmake {_WHO} (?:look )?{_HOW}(.+)"), "looking {}"),
    (re.compile(rf"\b(?:give|add)(?: {_WHO})? (.+)"), "with {}"),
)
_TAIL = re.compile(r"\b(?:please|for me|to (?:him|her|them|me|it))\b.*$")


def free_text(message: str, analysis: Analysis) -> str | None:
    """The phrase to learn for an English request about unknown words, or None."""
    if analysis.chinese or not analysis.unknown:
        return None
    text = " ".join(re.sub(r"[^a-z0-9' -]", " ", message.lower()).split())
    for pattern, form in _PATTERNS:
        match = pattern.search(text)
        if match is None:
            continue
        phrase = _TAIL.sub("", match.group(1)).strip(" '-")
        words = phrase.split()
        if not words or len(words) > MAX_WORDS or not set(words) & set(analysis.unknown):
            return None
        learned = form.format(phrase)
        return learned if len(learned) <= MAX_CHARS else None
    return None


def offer(
    message: str, analysis: Analysis, context: PlanContext, vocab: Vocabulary
) -> EditPlan | None:
    """The offer to learn what ``message`` asks for, when zero-shot is on and it fits."""
    if context.learn_seconds is None:
        return None
    text = free_text(message, analysis)
    if text is None:
        return None
    return EditPlan(
        "chat",
        reply=offer_reply(text, context.learn_seconds),
        learn=LearnRequest(text, _magnitude(message, vocab)),
    )


def confirmation(analysis: Analysis, context: PlanContext, vocab: Vocabulary) -> EditPlan | None:
    """A yes to the offer in the last bot turn: learn it, at the strength first asked for."""
    if context.learn_seconds is None or "ack" not in analysis.chat or analysis.unknown:
        return None
    recent = [turn for turn in context.recent if isinstance(turn, tuple | list) and len(turn) == 2]
    bots = [i for i, (role, _) in enumerate(recent) if role == "bot"]
    if not bots:
        return None
    text = offered_text(str(recent[bots[-1]][1]))
    if text is None:
        return None
    asked = [t for role, t in recent[: bots[-1]] if role == "user"]
    strength = _magnitude(str(asked[-1]), vocab) if asked else DEFAULT_MAGNITUDE
    return EditPlan(
        "chat",
        reply=f"Learning '{text}' for this photo; the result follows.",
        learn=LearnRequest(text, strength, confirmed=True),
    )


def _magnitude(message: str, vocab: Vocabulary) -> float:
    amounts = [x.value for x in vocab.lex(message).lexemes if x.kind is Kind.INTENSITY and x.value]
    return max(amounts) if amounts else DEFAULT_MAGNITUDE
