"""Chinese numerals written as digits, so "老十岁" is read exactly like "老10岁".

Only numerals that count something are rewritten: before 岁 (years) or 步 (steps),
and after 百分之 (percent: "百分之三十" -> "30%"). Everywhere else the characters keep
their word meaning, because many everyday words contain them: 一点 and 一些 (a
little), 十分 (very), 一下, 一个, 两边, 上一步 (undo).
"""

from __future__ import annotations

import re

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
           "七": 7, "八": 8, "九": 9}  # fmt: skip
_UNITS = {"十": 10, "百": 100, "千": 1000}
_NUMERAL = "".join(_DIGITS) + "".join(_UNITS)
# A numeral right before a counted unit; the unit itself is left in place.
_COUNTED = re.compile(rf"([{_NUMERAL}]+)(?=\s*[岁步])")
_PERCENT = re.compile(rf"百分之\s*([{_NUMERAL}]+|\d+(?:\.\d+)?)")


def chinese_number(text: str) -> int | None:
    """The value of a numeral such as 十五, 二十, 一百零五 or 两千; None when malformed.

    Digit strings (二五) and repeated units (十十) are not numbers here: they are not
    how anyone writes an age or a step count. 十 alone is 10 (十五 = 15); 百 and 千
    need a digit before them (一百), as in writing.
    """
    if not text:
        return None
    total = 0
    digit: int | None = None
    last_unit = 10_000  # units must fall: 一百二十, not 十百
    zero = False  # after 零 a trailing digit is a unit digit (一百零五 = 105)
    for char in text:
        if char in _DIGITS:
            if digit is not None:
                return None
            value = _DIGITS[char]
            zero = zero or value == 0
            digit = value if value else None
            continue
        unit = _UNITS[char]
        if unit >= last_unit:
            return None
        if digit is None:
            if unit != 10 or total or zero:
                return None
            digit = 1
        total += digit * unit
        last_unit, digit, zero = unit, None, False
    if digit is not None:
        # 一百二 is 120 and 两千五 2500: a bare digit after a unit counts in the next unit down.
        total += digit * (last_unit // 10 if last_unit <= 1000 and not zero else 1)
    elif total == 0:
        return None  # 零 alone is no count
    return total


def digits_for_numerals(text: str) -> str:
    """Counted Chinese numerals written as digits ("老十岁" -> "老10岁", "百分之三十" -> "30%")."""
    return _COUNTED.sub(_counted, _PERCENT.sub(_percent, text))


def _percent(match: re.Match[str]) -> str:
    amount = match.group(1)
    if amount[:1].isdigit():
        return f"{amount}%"
    value = chinese_number(amount)
    return match.group() if value is None else f"{value}%"


def _counted(match: re.Match[str]) -> str:
    value = chinese_number(match.group(1))
    after = match.string[match.end() :].lstrip()[:1]
    # "上一步", "退一步", "返回上一步" are undo commands, and one render step means nothing.
    if value is None or (value == 1 and after == "步"):
        return match.group()
    return str(value)
