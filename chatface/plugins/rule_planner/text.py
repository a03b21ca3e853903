"""Turning a raw chat message into tokens: normalisation, tokenising, word variants.

Messages can be anything (10k characters, emoji, control characters, other
scripts), so everything here is total: it never raises and its cost is bounded by
``MAX_CHARS``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from chatface.plugins.rule_planner.synonyms import EMOJI

# Longer messages are cut: no real edit request needs more, and it bounds the time.
MAX_CHARS = 1000
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
HAN_RUN = re.compile(f"[{HAN}]+")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
_INNER_DASH = re.compile(r"(?<=[^\W\d_])[-_/](?=[^\W\d_])")
_TOKEN = re.compile(
    r"(?P<num>(?:(?<![\w.])[+-])?(?:\d+(?:\.\d+)?|\.\d+)\s?%?)"
    rf"|(?P<han>[{HAN}]+)"
    r"|(?P<word>[^\W\d_]+(?:'[^\W\d_]+)*)"
    r"|(?P<punct>[,;.!?:=&\n。、+/])"
)
_CHINESE_PUNCT = str.maketrans({"。": ".", "、": ",", "，": ",", "！": "!", "？": "?", "；": ";"})


@dataclass(frozen=True)
class Token:
    """One piece of a message: ``kind`` is num, han, word or punct."""

    kind: str
    text: str


def normalize(message: str) -> str:
    """Lower-case NFKC text with emoji spelt out, control characters and inner dashes removed."""
    text = message[:MAX_CHARS]
    for emoji, words in EMOJI.items():
        if emoji in text:
            text = text.replace(emoji, words)
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.translate(_CHINESE_PUNCT)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    text = _CONTROL.sub(" ", text)
    # "clean-shaven", "blond_hair", "w/o" are read as separate words.
    return _INNER_DASH.sub(" ", text).replace("_", " ")


def tokenize(text: str) -> list[Token]:
    """Split normalised text; Han runs stay whole (the vocabulary segments them)."""
    tokens = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "punct"
        value = match.group()
        if kind == "word":
            value = value.replace("'", "")
        elif kind == "num":
            value = value.replace(" ", "")
        tokens.append(Token(kind, value))
    return tokens


def has_han(text: str) -> bool:
    return HAN_RUN.search(text[:MAX_CHARS]) is not None


def is_ascii_word(word: str) -> bool:
    return word.isascii() and word.isalpha()


def variants(word: str) -> list[str]:
    """Inflected forms reduced to candidate base forms ("glowing" -> "glow", "shiny" -> "shine")."""
    out: list[str] = []

    def add(*forms: str) -> None:
        out.extend(form for form in forms if len(form) >= 3)

    if word.endswith("ies"):
        add(word[:-3] + "y")
    if word.endswith("es"):
        add(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        add(word[:-1])
    if word.endswith("ing"):
        add(word[:-3], word[:-3] + "e", word[:-4])
    if word.endswith("ed"):
        add(word[:-2], word[:-1], word[:-3])
    if word.endswith("ier"):
        add(word[:-3] + "y")
    if word.endswith("er"):
        add(word[:-2], word[:-1], word[:-3])
    if word.endswith("est"):
        add(word[:-3], word[:-2])
    if word.endswith("ly"):
        add(word[:-2])
    if word.endswith("y"):
        add(word[:-1], word[:-1] + "e")
    return out


def parse_number(text: str) -> tuple[float, bool, bool] | None:
    """``"30%"`` -> (30.0, percent=True, signed=False); None when not a usable number."""
    percent = text.endswith("%")
    raw = text.rstrip("%")
    try:
        value = float(raw)
    except ValueError:
        return None
    if value != value or abs(value) > 1e6:  # NaN or absurd
        return None
    return value, percent, raw[:1] in "+-"
