"""Turning parsed edits and follow-ups into changes relative to the session state.

Which attribute does "more" mean? The rule (also in docs/planners.md):

1. Walk ``context.recent`` from the newest user turn back (at most 12 turns). The
   first user turn that named attributes gives them, with the direction the user
   asked for ("younger" -> age, negative). Each "the other way" passed on the way
   flips that direction; other follow-ups ("more", "less") are skipped over; a
   reset ends the search.
2. Failing that, the newest bot turn that confirms an edit ("Adding a medium
   smile.") is read the same way, so a conversation planned by another planner
   still works.
3. Failing that, the state: the attribute(s) with the largest absolute strength,
   in the direction of their sign.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from chatface.plugins.rule_planner.parse import SMALL_MAGNITUDE, Analysis, RawEdit

MAX_TURNS = 12
Topic = tuple[tuple[str, int], ...]
# A bot turn is read only when it confirms an edit, not when it chats.
_BOT_EDIT_PREFIXES = (
    "adding", "removing", "reducing", "making", "increasing", "changing", "toning", "setting",
    "giving", "more", "less", "好的，",
)  # fmt: skip


def resolve_edits(edits: Sequence[RawEdit], state: Mapping[str, float]) -> list[tuple[str, float]]:
    """Each parsed edit as a change: removals go back to neutral, targets are absolute."""
    changes = []
    for edit in edits:
        current = _current(state, edit.attribute)
        if edit.target is not None:
            change = edit.target - current
        elif edit.removal and current * edit.sign < 0:
            change = -current  # "remove the beard" on a bearded state: back to none
        else:
            change = edit.sign * edit.magnitude
        changes.append((edit.attribute, change))
    return changes


def find_topic(
    message: str,
    recent: Sequence[tuple[str, str]],
    state: Mapping[str, float],
    attributes: Sequence[str],
    analyze: Callable[[str], Analysis],
) -> Topic:
    """The attribute(s) and direction a follow-up refers to (see the module docstring)."""
    turns = [t for t in list(recent)[-MAX_TURNS:] if _is_turn(t)]
    if turns and turns[-1][0] == "user" and turns[-1][1].strip() == message.strip():
        turns.pop()  # the caller may already have logged the current message
    flips = 0
    for role, text in reversed(turns):
        if role != "user":
            continue
        analysis = analyze(text)
        if analysis.edits:
            return _known(_flipped(_topic_of(analysis), flips), attributes)
        if analysis.command == "reset":
            break
        if analysis.followup == "flip":
            flips += 1
    for role, text in reversed(turns):
        if role == "bot" and text.strip().lower().startswith(_BOT_EDIT_PREFIXES):
            analysis = analyze(text)
            if analysis.edits:
                return _known(_flipped(_topic_of(analysis), flips), attributes)
    return _known(_from_state(state), attributes)


def followup_changes(
    kind: str, magnitude: float | None, topic: Topic, state: Mapping[str, float]
) -> list[tuple[str, float]]:
    """The changes of "more", "less", "remove it" or "the other way" on ``topic``."""
    changes = []
    for attribute, sign in topic:
        current = _current(state, attribute)
        along = current * sign > 0  # the state already went in the topic's direction
        if kind == "more":
            change = sign * (magnitude or 0.5)
        elif kind == "less":
            step = magnitude or SMALL_MAGNITUDE
            change = -sign * (min(step, abs(current)) if along else step)
        elif kind == "remove":
            change = -current if current else -sign * (magnitude or 0.5)
        else:  # "flip": mirror the current value, e.g. from 0.5 older to 0.5 younger
            change = -2 * current if along else -sign * (magnitude or 0.5)
        changes.append((attribute, change))
    return changes


def _current(state: Mapping[str, float], attribute: str) -> float:
    value = state.get(attribute, 0.0)
    return float(value) if isinstance(value, int | float) and value == value else 0.0


def user_messages(recent: Sequence[tuple[str, str]]) -> list[str]:
    """The user's messages among the last MAX_TURNS turns, newest first."""
    turns = [t for t in list(recent)[-MAX_TURNS:] if _is_turn(t)]
    return [text for role, text in reversed(turns) if role == "user"]


def _is_turn(turn: object) -> bool:
    return (
        isinstance(turn, tuple | list)
        and len(turn) == 2
        and isinstance(turn[0], str)
        and isinstance(turn[1], str)
    )


def _topic_of(analysis: Analysis) -> Topic:
    return tuple((edit.attribute, edit.sign) for edit in analysis.edits)


def _flipped(topic: Topic, flips: int) -> Topic:
    if flips % 2 == 0:
        return topic
    return tuple((attribute, -sign) for attribute, sign in topic)


def _from_state(state: Mapping[str, float]) -> Topic:
    values = {k: _current(state, k) for k in state if isinstance(k, str)}
    values = {k: v for k, v in values.items() if v}
    if not values:
        return ()
    largest = max(abs(v) for v in values.values())
    return tuple((k, 1 if v > 0 else -1) for k, v in sorted(values.items()) if abs(v) == largest)


def _known(topic: Topic, attributes: Sequence[str]) -> Topic:
    return tuple((attribute, sign) for attribute, sign in topic if attribute in attributes)
