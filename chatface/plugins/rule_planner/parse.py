"""Reading one message, without any session context, into an :class:`Analysis`.

A message is cut into sentences (at . ! ? ;) and items (at "and", ",", "with",
"without"). Each attribute mention takes the modifier words of its item: those
before it, and those after it up to the next mention. A bare item in a list
("remove the beard and the glasses") shares the negation and adverbs of the item
before it. Session-dependent parts (removal back to neutral, follow-ups) are
resolved later by the planner, which knows the state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from chatface.plugins.rule_planner import chinese as zh
from chatface.plugins.rule_planner import modifiers as en
from chatface.plugins.rule_planner.lexemes import Kind, Lexeme, word_set
from chatface.plugins.rule_planner.passes import (
    adjectives,
    ages,
    drop_weak,
    take_steps,
    take_years,
)
from chatface.plugins.rule_planner.text import has_han, is_ascii_word, variants
from chatface.plugins.rule_planner.vocabulary import Lexed, Vocabulary

DEFAULT_MAGNITUDE = 0.5
SMALL_MAGNITUDE = 0.25  # "too much", "not enough", "less" as a follow-up
# Words that, between two mentions, belong to the first one ("glasses off and ...").
_POST_WORDS = word_set(
    "off away gone removed free anymore down up please 一点 一些 点 些 一点点 点儿 一点儿 "
    "一丁点 掉 去掉 刮掉 剃掉 摘掉 拿掉 删掉 很多"
)
# Negations that, alone, are not a request to remove the last edit ("no" is an answer).
_BARE_NEGATORS = word_set("no not never none dont neither nor non 不 没 无 别")
_WH_WORDS = word_set("what whats why who where when which how")
# Questions about the photo, as opposed to requests ("what about a beard?").
_ASKING = word_set("is are does do did was were has have isnt arent doesnt why who")
_HOW_ADJECTIVES = word_set("old young older younger bald fat pale happy sad tall")
_MODIFIES = frozenset(
    {Kind.REMOVE, Kind.REDUCE, Kind.WITHOUT, Kind.MORE, Kind.INTENSITY, Kind.TOO,
     Kind.NOT_ENOUGH, Kind.COMMAND, Kind.NUMBER, Kind.SET, Kind.REQUEST, Kind.WITH, Kind.KEEP}
)  # fmt: skip
_INHERITED = frozenset(
    {Kind.REMOVE, Kind.REDUCE, Kind.WITHOUT, Kind.MORE, Kind.INTENSITY, Kind.TOO,
     Kind.NOT_ENOUGH, Kind.COMMAND}
)  # fmt: skip
_SLASH = re.compile(r"\s*/([A-Za-z_]+)(?:@\S*)?\s*(.*)", re.S)


@dataclass(frozen=True)
class RawEdit:
    """An edit as the message states it, before the session state is applied."""

    attribute: str
    sign: int
    magnitude: float
    removal: bool  # "remove", "no", "without": back to neutral when the state has some
    target: float | None = None  # "set smile to 0.3": an absolute value


@dataclass(frozen=True)
class Analysis:
    """What one message asks for; at most one of edits, command, follow-up is set."""

    edits: tuple[RawEdit, ...] = ()
    command: str | None = None
    followup: str | None = None  # "more", "less", "remove" or "flip"
    magnitude: float | None = None  # of a follow-up, when the message says
    steps: int | None = None
    question: bool = False
    mentioned: tuple[str, ...] = ()
    chat: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()
    chinese: bool = False
    traditional: bool = False  # Traditional-only characters: the reply is Traditional too
    foreign: bool = False
    slash: str | None = None  # an unknown /command
    empty: bool = False  # nothing recognisable at all


@dataclass
class _Item:
    join: str  # how the item starts: start, stop, join, comma, with, without
    lexemes: list[Lexeme] = field(default_factory=list)


def analyze(message: str, vocab: Vocabulary) -> Analysis:
    """Everything one message says, read with ``vocab``."""
    text = message if isinstance(message, str) else ""
    chinese = has_han(text)
    slash = None
    match = _SLASH.match(text[:200])
    if match:
        command = en.SLASH_COMMANDS.get(match.group(1).lower())
        if command:
            return Analysis(command=command, chinese=chinese)
        # "/smile" is read as "smile"; an unknown "/foo" gets a note in the reply.
        slash, text = match.group(1)[:20], f"{match.group(1)} {match.group(2)}"
    lexed = vocab.lex(text)
    lexemes, steps = take_steps(lexed.lexemes)
    has_age = "age" in vocab.attributes
    lexemes = adjectives(drop_weak(take_years(ages(lexemes, has_age), has_age)))
    base = {
        "steps": steps,
        "chinese": chinese,
        "traditional": lexed.traditional,
        "foreign": lexed.foreign and not chinese,
    }
    mentioned = tuple(dict.fromkeys(x.attribute for x in lexemes if x.kind is Kind.MENTION))
    if mentioned:
        if not chinese and _asks_about(lexed):
            return Analysis(question=True, mentioned=mentioned, **base)
        return Analysis(edits=compose(lexemes), mentioned=mentioned, **base)
    others = [x.text for x in lexemes if x.kind is Kind.OTHER and x.text]
    unknown = [w for w in others if is_ascii_word(w) and w not in en.COMMON_WORDS]
    suggestions = _suggest(others, vocab)
    # Commands and follow-ups are short ("undo that", "a bit more please"): unknown
    # words mean the message is about something else ("ignore previous instructions").
    command = next((x.tag for x in lexemes if x.kind is Kind.COMMAND), None)
    if command and len(unknown) <= 1:
        return Analysis(command=command, chinese=chinese, traditional=lexed.traditional)
    question = not chinese and _is_question(lexed)
    followup, magnitude = _followup(lexemes)
    if followup and not question and not unknown and not suggestions:
        return Analysis(followup=followup, magnitude=magnitude, **base)
    unknown += [w for w in others if w in zh.ZH_NEAR_MISSES]
    return Analysis(
        chat=tuple(dict.fromkeys(x.tag for x in lexemes if x.kind is Kind.CHAT)),
        unknown=tuple(dict.fromkeys(unknown))[:3],
        suggestions=suggestions,
        question=question,
        slash=slash,
        empty=not lexemes,
        **base,
    )


def _is_question(lexed: Lexed) -> bool:
    """A question rather than a request ("can you add glasses?" is a request)."""
    words = lexed.words
    if not words or words[0] not in en.QUESTION_WORDS:
        return False
    if not lexed.question_mark and words[0] not in _WH_WORDS:
        return False
    if len(words) > 1 and words[1] == "about":  # "what about a beard?"
        return False
    return not any(w in en.REQUEST_VERBS for w in words)


def _asks_about(lexed: Lexed) -> bool:
    """A question about an attribute ("is he smiling?"), not an edit request.

    "what would he look like with a beard?" is read as a request: the user wants to see it.
    """
    words = lexed.words
    if not _is_question(lexed):
        return False
    second = words[1] if len(words) > 1 else ""
    if words[0] == "how" and second in _HOW_ADJECTIVES:
        return True  # "how old is he?"
    return words[0] in _ASKING or (words[0] in _WH_WORDS and second in _ASKING)


def _followup(lexemes: list[Lexeme]) -> tuple[str | None, float | None]:
    """A message without an attribute that refers to the last edit."""
    kinds = {x.kind for x in lexemes}
    amounts = [x.value for x in lexemes if x.kind is Kind.INTENSITY and x.value]
    numbers = [_number_magnitude(x) for x in lexemes if x.kind is Kind.NUMBER]
    amounts += [n for n in numbers if n]
    magnitude = max(amounts) if amounts else None
    if Kind.FLIP in kinds:
        return "flip", magnitude
    if Kind.TOO in kinds:
        return "less", magnitude
    if Kind.NOT_ENOUGH in kinds:
        return "more", magnitude or SMALL_MAGNITUDE
    if Kind.REDUCE in kinds:
        return "less", magnitude
    removals = [x for x in lexemes if x.kind in (Kind.REMOVE, Kind.WITHOUT)]
    if any(x.text not in _BARE_NEGATORS for x in removals):
        return "remove", magnitude
    if Kind.MORE in kinds:
        return "more", magnitude
    quiet = {Kind.INTENSITY, Kind.NUMBER, Kind.NEUTRAL, Kind.REQUEST, Kind.STOP, Kind.JOIN}
    if amounts and kinds <= quiet:
        return "more", magnitude
    return None, None


def _suggest(words: list[str], vocab: Vocabulary) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for word in words:
        hinted: set[str] = set(vocab.hints.get(word, ()))
        for form in variants(word):
            hinted |= vocab.hints.get(form, set())
        hinted |= set(zh.ZH_NEAR_MISSES.get(word, ()))
        for name in vocab.attributes:
            if name in hinted:
                found[name] = None
    return tuple(found)[:6]


def _number_magnitude(number: Lexeme) -> float | None:
    """0.3, 30% and 30 all mean 0.3; the sign is read separately."""
    value = abs(number.value or 0.0)
    if number.tag == "%" or (number.tag != "frac" and value > 1):
        value = value / 100 if value <= 100 else -1.0
    return min(1.0, value) if value > 0 else None


def compose(lexemes: list[Lexeme]) -> tuple[RawEdit, ...]:
    """The edits of a message that names attributes, in order, one per attribute."""
    edits: dict[str, RawEdit] = {}
    for mention, modifiers in _groups(_items(lexemes)):
        if any(x.kind is Kind.KEEP for x in modifiers):
            continue  # "keep the beard": no change to it
        edit = _edit(mention, modifiers)
        edits.pop(edit.attribute, None)  # the last word on an attribute wins
        edits[edit.attribute] = edit
    return tuple(edits.values())


def _items(lexemes: list[Lexeme]) -> list[_Item]:
    items = [_Item("start")]
    for lexeme in lexemes:
        if lexeme.kind is Kind.STOP:
            items.append(_Item("stop"))
        elif lexeme.kind is Kind.JOIN:
            items.append(_Item("comma" if lexeme.text in (",", "、") else "join"))
        elif lexeme.kind in (Kind.WITH, Kind.WITHOUT):
            items.append(_Item(lexeme.kind.value, [lexeme]))
        else:
            items[-1].lexemes.append(lexeme)
    return items


def _groups(items: list[_Item]) -> list[tuple[Lexeme, list[Lexeme]]]:
    """Pair each mention with its modifiers, sharing modifiers along bare list items."""
    groups: list[tuple[Lexeme, list[Lexeme]]] = []
    previous: list[Lexeme] | None = None  # modifiers of the last mention in this sentence
    for index, item in enumerate(items):
        if item.join == "stop":
            previous = None
        positions = [i for i, x in enumerate(item.lexemes) if x.kind is Kind.MENTION]
        if not positions:
            # "older, but only a little": a mention-less item qualifies the last mention.
            # A number there counts only right after a comma ("smile, 30%"): in "smile' OR
            # '1'='1" or "smile and 1" it is not the smile's strength.
            if groups and previous is not None and item.join != "stop":
                groups[-1][1].extend(
                    x for x in item.lexemes if item.join == "comma" or x.kind is not Kind.NUMBER
                )
            continue
        for n, position in enumerate(positions):
            start = positions[n - 1] + 1 if n else 0
            end = positions[n + 1] if n + 1 < len(positions) else len(item.lexemes)
            before = item.lexemes[start:position]
            if n:  # words between two mentions: post-words go to the first one
                groups[-1][1].extend(x for x in before if x.text in _POST_WORDS)
                before = [x for x in before if x.text not in _POST_WORDS]
            after = item.lexemes[position + 1 : end] if n + 1 == len(positions) else []
            if after and after[-1].text == "too" and after[-1].kind is Kind.TOO:
                after = after[:-1]  # "glasses too" means "also"
            modifiers = before + after
            bare = not any(x.kind in _MODIFIES for x in modifiers)
            if bare and n == 0 and previous is not None and _shares(items, index):
                modifiers = [x for x in previous if _inheritable(x)] + modifiers
            groups.append((item.lexemes[position], modifiers))
        previous = groups[-1][1]
    return groups


def _shares(items: list[_Item], index: int) -> bool:
    """Whether a bare item continues a list: "and"/"or", or a comma before a final "and"."""
    join = items[index].join
    if join == "join":
        return True
    if join != "comma":
        return False
    for item in items[index + 1 :]:
        if item.join in ("stop", "with", "without", "start"):
            return False
        if item.join == "join":
            return True
    return False


def _inheritable(lexeme: Lexeme) -> bool:
    if lexeme.kind not in _INHERITED:
        return False
    if lexeme.kind is Kind.COMMAND:
        return lexeme.removal
    return not (lexeme.kind is Kind.INTENSITY and lexeme.text in en.ADJECTIVE_INTENSITIES)


def _edit(mention: Lexeme, modifiers: list[Lexeme]) -> RawEdit:
    kinds = {x.kind for x in modifiers}
    negated = bool(kinds & {Kind.REMOVE, Kind.WITHOUT, Kind.REDUCE}) or any(
        x.kind is Kind.COMMAND and x.removal for x in modifiers
    )
    sign, removal, default = mention.sign, mention.removal, mention.value or DEFAULT_MAGNITUDE
    if Kind.TOO in kinds:  # "too old": less age, a small step
        sign, removal, default = -sign, False, mention.value or SMALL_MAGNITUDE
    elif Kind.NOT_ENOUGH in kinds:
        default = mention.value or SMALL_MAGNITUDE
    elif negated:
        sign = -sign
        # "not clean-shaven" undoes a removal word; "less beard" is a step, not a removal.
        removal = not mention.removal and Kind.REDUCE not in kinds
    target = None
    numbers = [(i, x) for i, x in enumerate(modifiers) if x.kind is Kind.NUMBER]
    if len(numbers) > 1:  # "smile 1=1", "smile 1 2 3": no number is clearly the strength
        numbers = []
    amounts = [x.value for x in modifiers if x.kind is Kind.INTENSITY and x.value]
    magnitude = default
    for i, number in numbers:
        absolute = Kind.SET in kinds or (
            i > 0 and modifiers[i - 1].kind in (Kind.SET_PREP, Kind.SET)
        )
        value = _number_magnitude(number)
        if absolute and number.value == 0:
            target = 0.0  # "set smile to 0"
            break
        if value is None:
            continue
        magnitude = value
        if number.signed and (number.value or 0) < 0:
            sign = -sign
        if absolute:
            target = sign * value
        break
    else:
        if amounts:
            magnitude = max(amounts)
    return RawEdit(mention.attribute, sign, magnitude, removal, target)
