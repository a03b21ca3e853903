"""Traditional Chinese: read as Simplified, answered in Traditional (OpenCC).

The word tables are Simplified, so a message is converted once, before lexing
("鬍子" -> "胡子", "頭髮" -> "头发"), and a reply to someone who writes Traditional
is converted back. OpenCC is imported on the first Chinese message only (plain
``chatface plan "smile"`` never pays for it) and each converter is built once: tw2s in
a few milliseconds, s2tw (about 0.1 s, large phrase tables) only when a Traditional reply
or a chat mixing both scripts needs it. If OpenCC
cannot be loaded, the planner still reads Simplified Chinese and English, with one
warning in the log.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from types import ModuleType

from chatface.plugins.rule_planner.text import HAN_RUN

logger = logging.getLogger(__name__)

# Taiwan's variants ("戴著" -> "戴着") on top of plain t2s; both leave Simplified text as it is.
_TO_SIMPLIFIED = "tw2s"
# Variants OpenCC leaves as they are, though the word tables spell them otherwise.
_KEPT_VARIANTS = str.maketrans({"瞇": "眯", "粧": "妆"})
# Replies follow Taiwan's standard forms ("為", "說"), which Hong Kong readers read too.
# The same converter tells Simplified text from text in characters both scripts share
# ("微笑"): plain s2t would also rewrite shared characters into OpenCC's own standard
# forms (唇 -> 脣), so "嘴唇" would look Simplified. Its phrase tables take ~0.1 s to load.
_TO_TRADITIONAL = "s2tw"
# Reply labels OpenCC gets wrong or leaves in mainland form: 發 is "send", 髮 "hair";
# Taiwan writes 瞇眼 and 鬍渣. The planner still reads each of them back.
_REPLY_FIXES = {"棕發": "棕髮", "發際線": "髮際線", "眯眼": "瞇眼", "胡茬": "鬍渣"}
# Taiwan and Hong Kong quote with corner brackets.
_REPLY_QUOTES = str.maketrans({"“": "「", "”": "」"})

Convert = Callable[[str], str]


@functools.cache
def _opencc() -> ModuleType | None:
    try:
        import opencc
    except ImportError:
        logger.warning(
            "opencc is not installed: Traditional Chinese is read only where it matches "
            "Simplified; install the 'opencc' package"
        )
        return None
    return opencc


@functools.cache
def _converter(config: str) -> Convert | None:
    """The OpenCC converter for ``config``, built once; None when OpenCC is unusable."""
    module = _opencc()
    if module is None:
        return None
    try:
        return module.OpenCC(config).convert
    except Exception:  # the C++ binding raises RuntimeError when a config file is missing
        logger.warning("OpenCC cannot load its %r configuration", config, exc_info=True)
        return None


def _convert_han(convert: Convert, text: str) -> str:
    # Only Han runs go to OpenCC: the rest needs no conversion, and a lone surrogate
    # (which cannot be encoded for the C++ side) is never a Han character.
    return HAN_RUN.sub(lambda match: convert(match.group()), text)


def to_simplified(text: str) -> tuple[str, bool]:
    """``text`` in Simplified characters, and whether it had Traditional-only ones.

    Text without Han characters, or in characters both scripts share ("微笑"), comes
    back as it is and False; so does everything when OpenCC is unavailable.
    """
    if HAN_RUN.search(text) is None:
        return text, False
    to_hans = _converter(_TO_SIMPLIFIED)
    if to_hans is None:
        return text, False
    simplified = _convert_han(to_hans, text).translate(_KEPT_VARIANTS)
    return simplified, simplified != text


def is_simplified(text: str) -> bool:
    """Whether ``text`` has characters only Simplified uses ("头发", not "微笑")."""
    if HAN_RUN.search(text) is None:
        return False
    to_hant = _converter(_TO_TRADITIONAL)
    return to_hant is not None and _convert_han(to_hant, text) != text


def to_traditional(reply: str) -> str:
    """A Chinese reply in Traditional characters; unchanged when OpenCC is unavailable."""
    convert = _converter(_TO_TRADITIONAL)
    if convert is None:
        return reply
    converted = _convert_han(convert, reply)
    for wrong, right in _REPLY_FIXES.items():
        converted = converted.replace(wrong, right)
    return converted.translate(_REPLY_QUOTES)
