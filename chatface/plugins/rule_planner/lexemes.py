"""What a recognised word or phrase means to the parser: a kind plus a few values."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.Enum):
    """The role a word plays in a message."""

    MENTION = "mention"  # names an attribute ("smile", "younger")
    INTENSITY = "intensity"  # how much ("slightly", "very")
    MORE = "more"  # "more", "stronger", "increase"
    REDUCE = "reduce"  # "less", "tone down"
    REMOVE = "remove"  # "no", "remove", "without": back to neutral
    TOO = "too"  # excess: "too much", "too old"
    NOT_ENOUGH = "not_enough"  # "not enough", "too subtle"
    FLIP = "flip"  # "the other way"
    REQUEST = "request"  # "add", "make", "give": a neutral verb
    KEEP = "keep"  # "keep the beard": leave that attribute alone
    JOIN = "join"  # "and", "or", ","
    WITH = "with"  # "with" starts a new item and means "more"
    WITHOUT = "without"  # "without" starts a new item and means "remove"
    STOP = "stop"  # end of a sentence
    SET = "set"  # "set smile to 0.3": the number is a target, not a change
    SET_PREP = "set_prep"  # "to", "at": a target only right before a number
    NUMBER = "number"  # 0.3, 30%, +0.5
    YEARS = "years"  # "years" after a number
    STEP_WORD = "step_word"  # "steps" next to a number
    STEPS = "steps"  # "quick preview" (4), "best quality" (50)
    COMMAND = "command"  # undo, redo, reset, show_original, help, list_attributes
    CHAT = "chat"  # greetings, thanks, praise
    NEUTRAL = "neutral"  # recognised, but means nothing for a plan
    OTHER = "other"  # not understood


@dataclass(frozen=True)
class Lexeme:
    """One recognised word or phrase.

    ``value`` is the magnitude for intensities and numbers, the step count for
    STEPS; ``tag`` names the command or chat kind; ``text`` is the surface form
    (for suggestions, never echoed in full).
    """

    kind: Kind
    attribute: str = ""
    sign: int = 1
    value: float | None = None
    removal: bool = False
    weak: bool = False
    tag: str = ""
    text: str = ""
    signed: bool = False  # a number written with "+" or "-"


@dataclass(frozen=True)
class Target:
    """A synonym's meaning before it is resolved against the registered attributes."""

    candidates: tuple[str, ...]
    sign: int
    removal: bool
    magnitude: float | None


def word_set(text: str) -> frozenset[str]:
    """A set of words written as one space-separated string (easier to read in tables)."""
    return frozenset(text.split())


def parse_target(key: str) -> Target:
    """Read the table notation: ``[-|~]attr[|attr...][@magnitude]``.

    ``-`` means "less of it", ``~`` a removal (also "less of it"), ``|`` lists
    fallbacks (the first registered one is used), ``@0.25`` an inherent magnitude.
    """
    magnitude = None
    if "@" in key:
        key, raw = key.split("@", 1)
        magnitude = float(raw)
    sign, removal = 1, False
    if key.startswith("~"):
        key, sign, removal = key[1:], -1, True
    elif key.startswith("-"):
        key, sign = key[1:], -1
    return Target(tuple(key.split("|")), sign, removal, magnitude)
