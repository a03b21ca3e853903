"""Rewrites of a message's lexemes before its edits are composed.

Each pass takes the list of lexemes and returns a new one: speed/quality words
become a step count, "10 years" becomes a magnitude, "look 60" an age edit, gender
nouns that only name the person are dropped, and an attribute word right before
another one becomes its modifier ("pretty old").
"""

from __future__ import annotations

from chatface.plugins.rule_planner.lexemes import Kind, Lexeme
from chatface.plugins.rule_planner.synonyms import ADJECTIVE_MODIFIERS

# Kinds that make a message a request, so a lone gender noun in it is an edit.
_REQUESTS = frozenset(
    {Kind.REQUEST, Kind.MORE, Kind.REDUCE, Kind.REMOVE, Kind.WITH, Kind.WITHOUT,
     Kind.INTENSITY, Kind.TOO}
)  # fmt: skip


def take_steps(lexemes: list[Lexeme]) -> tuple[list[Lexeme], int | None]:
    """Remove speed/quality words and "20 steps"; return the step count they ask for."""
    steps: int | None = None
    out: list[Lexeme] = []
    i = 0
    while i < len(lexemes):
        lexeme = lexemes[i]
        after = lexemes[i + 1] if i + 1 < len(lexemes) else None
        if lexeme.kind is Kind.STEPS and lexeme.value:
            steps = int(lexeme.value)
        elif lexeme.kind is Kind.NUMBER and after is not None and after.kind is Kind.STEP_WORD:
            steps = _step_count(lexeme) or steps
            i += 1
        elif lexeme.kind is Kind.STEP_WORD:
            rest = lexemes[i + 1 : i + 3]
            number = next((x for x in rest if x.kind is Kind.NUMBER), None)
            if number is not None and all(x.kind in (Kind.NUMBER, Kind.SET) for x in rest[:1]):
                steps = _step_count(number) or steps
                i += rest.index(number) + 1
        else:
            out.append(lexeme)
        i += 1
    return out, steps


def _step_count(number: Lexeme) -> int | None:
    value = number.value or 0.0
    return min(1000, int(round(value))) if value >= 1 else None


def take_years(lexemes: list[Lexeme], has_age: bool) -> list[Lexeme]:
    """ "10 years older": ten years is a quarter of the range (40 years = 1.0).

    Years with no age word after them are an age edit of their own: "add 10 years",
    "take 10 years off" (the "off" then makes it negative).
    """
    out: list[Lexeme] = []
    for i, lexeme in enumerate(lexemes):
        if lexeme.kind is Kind.YEARS:
            if out and out[-1].kind is Kind.NUMBER and (out[-1].value or 0) > 0:
                years = out.pop()
                value = min(1.0, abs(years.value or 0.0) / 40)
                after = lexemes[i + 1] if i + 1 < len(lexemes) else None
                if has_age and (after is None or after.kind is not Kind.MENTION):
                    out.append(Lexeme(Kind.MENTION, "age", 1, value, text=years.text))
                else:
                    out.append(Lexeme(Kind.NUMBER, value=value, tag="frac", text=years.text))
            continue
        out.append(lexeme)
    return out


def ages(lexemes: list[Lexeme], has_age: bool) -> list[Lexeme]:
    """ "look 60", "a 5 year old": an age in years, read against a 35-year-old adult.

    Photos are mostly of adults, so 60 means older and 12 younger; the distance
    from 35 sets the magnitude (40 years = 1.0), at least a quarter.
    """
    if not has_age:
        return lexemes
    out = list(lexemes)
    for i, lexeme in enumerate(lexemes):
        if lexeme.kind is not Kind.NUMBER or lexeme.tag or lexeme.signed:
            continue
        years = lexeme.value or 0.0
        if not (1 <= years <= 120 and years.is_integer()):
            continue
        before = lexemes[i - 1].text if i else ""
        following = lexemes[i + 1 : i + 3]
        kinds = [x.kind for x in following]
        aged = kinds == [Kind.YEARS, Kind.MENTION] and following[1].text == "old"
        looks = before in ("look", "looks", "looking", "like", "aged") and (
            not following or following[0].kind is not Kind.YEARS
        )
        if aged or looks:
            sign = 1 if years >= 35 else -1
            value = max(0.25, min(1.0, abs(years - 35) / 40))
            out[i] = Lexeme(Kind.MENTION, "age", sign, value, text=lexeme.text)
            if aged:  # "years old" is part of the age, not an edit of its own
                out[i + 1] = out[i + 2] = Lexeme(Kind.NEUTRAL)
    return out


def drop_weak(lexemes: list[Lexeme]) -> list[Lexeme]:
    """Gender nouns count only in a request that names nothing else ("make him a woman").

    "make this man older" and "thanks man" name the person, not an edit.
    """
    kinds = {x.kind for x in lexemes}
    strong = any(x.kind is Kind.MENTION and not x.weak for x in lexemes)
    alone = kinds <= {Kind.MENTION, Kind.NEUTRAL, Kind.STOP}  # just "woman"
    if not strong and (kinds & _REQUESTS or alone) and Kind.CHAT not in kinds:
        return lexemes
    return [Lexeme(Kind.NEUTRAL, text=x.text) if x.weak else x for x in lexemes]


def adjectives(lexemes: list[Lexeme]) -> list[Lexeme]:
    """An attribute word right before another mention modifies it.

    "pretty old" is an intensity, "shave the moustache" a removal, and "happy smile"
    or "sad smile" (the same attribute twice) one mention with a direction.
    """
    out = list(lexemes)
    for i, lexeme in enumerate(lexemes[:-1]):
        after = lexemes[i + 1]
        if lexeme.kind is not Kind.MENTION or after.kind is not Kind.MENTION:
            continue
        meaning = ADJECTIVE_MODIFIERS.get(lexeme.text)
        if meaning:
            kind, _, value = meaning.partition(":")
            out[i] = Lexeme(Kind(kind), value=float(value) if value else None, text=lexeme.text)
        elif lexeme.attribute == after.attribute:
            kind = Kind.MORE if lexeme.sign > 0 else Kind.REMOVE if lexeme.removal else Kind.REDUCE
            out[i] = Lexeme(kind, text=lexeme.text)
    return out
