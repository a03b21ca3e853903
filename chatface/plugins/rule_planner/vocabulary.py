"""The words the planner knows, built from the registered attributes plus built-in tables.

A vocabulary is made per set of attributes (the planner caches it), so a plugin's
attribute joins it with no code change: its name, its aliases and the head of its
description ("Freckles on the cheeks" -> "freckles") become phrases, and its words
feed the "close matches" of a chat reply. Built-in synonyms only ever produce
attributes that are registered.

Priority when two tables claim the same phrase (later wins): description heads and
name parts < modifier words < built-in synonyms < aliases < names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from chatface.engine.types import Attribute
from chatface.plugins.rule_planner import chinese as zh
from chatface.plugins.rule_planner import modifiers as en
from chatface.plugins.rule_planner.fuzzy import FuzzyIndex
from chatface.plugins.rule_planner.lexemes import Kind, Lexeme, parse_target, word_set
from chatface.plugins.rule_planner.numerals import digits_for_numerals
from chatface.plugins.rule_planner.script import to_simplified
from chatface.plugins.rule_planner.synonyms import NEAR_MISSES, SYNONYMS, WEAK_WORDS
from chatface.plugins.rule_planner.text import (
    is_ascii_word,
    normalize,
    parse_number,
    tokenize,
    variants,
)

# Name parts too general to stand for one attribute on their own.
_GENERIC_PARTS = word_set("skin hair face eyes head open high big under")
_PUNCT = {
    ",": Lexeme(Kind.JOIN, text=","),
    "&": Lexeme(Kind.JOIN, text="and"),
    "=": Lexeme(Kind.SET, text="="),
    "+": Lexeme(Kind.MORE, text="+"),
}
# Grammar words that a plugin's attribute name or alias never takes over.
_PROTECTED = frozenset(
    {Kind.MORE, Kind.REDUCE, Kind.REMOVE, Kind.TOO, Kind.NOT_ENOUGH, Kind.FLIP, Kind.JOIN,
     Kind.WITH, Kind.WITHOUT, Kind.SET, Kind.SET_PREP, Kind.COMMAND, Kind.INTENSITY,
     Kind.KEEP}
)  # fmt: skip
_CACHE_LIMIT = 4096
_FUZZY_TOKENS = 40


def phrase_key(phrase: str) -> tuple[str, ...]:
    """The lookup key of a phrase: normalised words and numbers, fillers dropped."""
    return tuple(
        t.text
        for t in tokenize(normalize(phrase))
        if t.kind in ("word", "num", "punct") and t.text not in en.FILLERS
    )


@dataclass
class Lexed:
    """A message read into lexemes, plus what question and language checks need."""

    lexemes: list[Lexeme]
    words: list[str]  # every word, fillers included, in order
    question_mark: bool
    foreign: bool  # letters of a script we do not read (Cyrillic, Arabic, ...)
    traditional: bool = False  # written with Traditional-only Chinese characters


@dataclass
class Vocabulary:
    """Phrase tables for one set of attributes."""

    attributes: tuple[str, ...]
    english: dict[tuple[str, ...], Lexeme] = field(default_factory=dict)
    chinese: dict[str, Lexeme] = field(default_factory=dict)
    # word -> attributes it hints at, for "close matches" in chat replies
    hints: dict[str, set[str]] = field(default_factory=dict)
    max_phrase: int = 1  # words in the longest English phrase
    _words: set[str] = field(default_factory=set)
    _mention_words: set[str] = field(default_factory=set)
    _fuzzy: FuzzyIndex | None = None
    _corrections: dict[str, str] = field(default_factory=dict)

    def add(self, phrase: str, lexeme: Lexeme, *, protect: bool = False) -> None:
        """Map a phrase to a meaning; ``protect`` keeps grammar words ("no", "more") as they are."""
        key = phrase_key(phrase)
        if not key:
            return
        claimed = self.english.get(key)
        if protect and claimed is not None and claimed.kind in _PROTECTED:
            return  # a plugin alias "more" must not break "more smile"
        self.english[key] = replace(lexeme, text=" ".join(key))
        self.max_phrase = max(self.max_phrase, len(key))
        self._words.update(key)
        if lexeme.kind is Kind.MENTION:
            self._mention_words.update(key)

    def add_target(
        self,
        spec: str,
        phrases: Iterable[str],
        *,
        weak: Iterable[str] = (),
        protect: bool = True,
    ) -> None:
        """Add synonyms of a table target, if one of its attributes is registered.

        Words from plugins are ``protect``-ed: they never take over a grammar word.
        """
        target = parse_target(spec)
        attribute = next((c for c in target.candidates if c in self.attributes), None)
        if attribute is None:
            return
        weak_words = set(weak)
        for phrase in phrases:
            lexeme = Lexeme(
                Kind.MENTION, attribute, target.sign, target.magnitude, target.removal,
                weak=phrase in weak_words, text=phrase,
            )  # fmt: skip
            self.add(phrase, lexeme, protect=protect)
            for word in phrase_key(phrase):
                if is_ascii_word(word) and len(word) > 3 and word not in en.COMMON_WORDS:
                    self.hints.setdefault(word, set()).add(attribute)

    def correct(self, word: str, fuzzy: bool = True) -> str:
        """A known word, an inflection reduced to a known base, or the nearest typo fix."""
        if word in self._words or word in en.FILLERS or not is_ascii_word(word):
            return word
        cached = self._corrections.get(word)
        if cached is not None:
            return cached
        fixed = next((v for v in variants(word) if v in self._words), None)
        if fixed is None and not fuzzy:
            return word
        if fixed is None and word not in en.COMMON_WORDS:
            if self._fuzzy is None:
                targets = [w for w in self._words if is_ascii_word(w) and len(w) >= 3]
                priority = {w: 0 for w in self._mention_words}
                self._fuzzy = FuzzyIndex(targets, priority)
            fixed = self._fuzzy.best(word)
        if len(self._corrections) < _CACHE_LIMIT:
            self._corrections[word] = fixed or word
        return fixed or word

    def lex(self, message: str) -> Lexed:
        """Read a message into lexemes (longest phrase first, fillers skipped)."""
        # Traditional characters become Simplified and "十岁" becomes "10岁" before
        # tokenising, so both reach exactly the paths "胡子" and "10岁" take.
        text, traditional = to_simplified(normalize(message))
        tokens = tokenize(digits_for_numerals(text))
        words = [t.text for t in tokens if t.kind == "word"]
        foreign = any(not w.isascii() for w in words)
        lexemes: list[Lexeme] = []
        run: list[tuple[str, bool]] = []  # (word or number, preceded by a determiner)
        previous = ""
        for index, token in enumerate(tokens):
            if token.kind in ("word", "num"):
                # Typo fixes are for the words of a request, not for pasted essays.
                fuzzy = index < _FUZZY_TOKENS
                text = self.correct(token.text, fuzzy) if token.kind == "word" else token.text
                if text not in en.FILLERS:
                    run.append((text, previous in en.DETERMINERS))
                previous = token.text
                continue
            self._flush(run, lexemes)
            run = []
            previous = ""
            if token.kind == "han":
                self._scan_chinese(token.text, lexemes)
            elif token.text in en.STOPS:
                lexemes.append(Lexeme(Kind.STOP, text=token.text))
            elif token.text in _PUNCT:
                lexemes.append(_PUNCT[token.text])
        self._flush(run, lexemes)
        question_mark = any(t.kind == "punct" and t.text == "?" for t in tokens[-3:])
        return Lexed(lexemes, words, question_mark, foreign, traditional)

    def _flush(self, run: list[tuple[str, bool]], out: list[Lexeme]) -> None:
        i, longest = 0, self.max_phrase
        while i < len(run):
            for size in range(min(longest, len(run) - i), 0, -1):
                key = tuple(word for word, _ in run[i : i + size])
                lexeme = self.english.get(key)
                if lexeme is not None:
                    if lexeme.weak and run[i][1]:  # "the man" names the person
                        lexeme = Lexeme(Kind.NEUTRAL, text=key[0])
                    out.append(lexeme)
                    i += size
                    break
            else:
                out.append(self._single(run[i][0]))
                i += 1

    def _single(self, word: str) -> Lexeme:
        """A word no phrase claimed: an inflected attribute word, a number, or unknown."""
        for form in variants(word):
            lexeme = self.english.get((form,))
            if lexeme is not None and lexeme.kind is Kind.MENTION:
                return lexeme  # "narrower" when "narrower" only occurs inside a phrase
        return _loose_word(word)

    def _scan_chinese(self, run: str, out: list[Lexeme]) -> None:
        i, longest = 0, 8
        while i < len(run):
            for size in range(min(longest, len(run) - i), 0, -1):
                lexeme = self.chinese.get(run[i : i + size])
                if lexeme is not None:
                    out.append(lexeme)
                    i += size
                    break
            else:
                out.append(Lexeme(Kind.OTHER, text=run[i]))
                i += 1


def _loose_word(word: str) -> Lexeme:
    """A word or number no phrase claimed."""
    if word[:1].isdigit() or word[:1] in "+-.":
        parsed = parse_number(word)
        if parsed is not None:
            value, percent, signed = parsed
            return Lexeme(Kind.NUMBER, value=value, tag="%" if percent else "", signed=signed,
                          text=word)  # fmt: skip
    return Lexeme(Kind.OTHER, text=word)


def _words_of(text: str) -> list[str]:
    words = re.findall(r"[a-z]+", text.lower())
    return [w for w in words if len(w) > 3 and w not in en.FILLERS and w not in en.COMMON_WORDS]


# Modifier tables in insertion order: a later table wins a phrase claimed twice.
_MODIFIER_TABLES: tuple[tuple[Iterable[str], Kind], ...] = (
    (en.NEUTRAL, Kind.NEUTRAL),
    (en.REQUEST, Kind.REQUEST),
    (en.MORE, Kind.MORE),
    (en.REDUCE, Kind.REDUCE),
    (en.REMOVE, Kind.REMOVE),
    (en.TOO, Kind.TOO),
    (en.NOT_ENOUGH, Kind.NOT_ENOUGH),
    (en.FLIP, Kind.FLIP),
    (en.KEEP, Kind.KEEP),
    (en.JOIN, Kind.JOIN),
    (en.WITH, Kind.WITH),
    (en.WITHOUT, Kind.WITHOUT),
    (en.SET_WORDS, Kind.SET),
    (sorted(en.SET_PREPOSITIONS), Kind.SET_PREP),
    (en.STEP_WORDS, Kind.STEP_WORD),
    (en.YEAR_WORDS, Kind.YEARS),
)


def build_vocabulary(attributes: Sequence[Attribute]) -> Vocabulary:
    """Everything the planner understands for these attributes."""
    attributes = [a for a in attributes if isinstance(a.name, str) and a.name]
    names = tuple(dict.fromkeys(a.name for a in attributes))
    vocab = Vocabulary(names)
    _add_attribute_hints(vocab, attributes)
    for phrases, kind in _MODIFIER_TABLES:
        for phrase in phrases:
            vocab.add(phrase, Lexeme(kind, text=phrase))
    for value, phrases in en.INTENSITIES.items():
        for phrase in phrases:
            vocab.add(phrase, Lexeme(Kind.INTENSITY, value=value, text=phrase))
    for steps, phrases in en.STEPS.items():
        for phrase in phrases:
            vocab.add(phrase, Lexeme(Kind.STEPS, value=float(steps), text=phrase))
    for command, phrases in en.COMMANDS.items():
        for phrase in phrases:
            removal = bool(set(phrase_key(phrase)) & en.COMMAND_REMOVALS)
            vocab.add(phrase, Lexeme(Kind.COMMAND, tag=command, removal=removal, text=phrase))
    for tag, phrases in en.CHAT.items():
        for phrase in phrases:
            vocab.add(phrase, Lexeme(Kind.CHAT, tag=tag, text=phrase))
    for spec, phrases in SYNONYMS.items():
        vocab.add_target(spec, phrases, weak=WEAK_WORDS, protect=False)
    for attribute in attributes:
        vocab.add_target(attribute.name, aliases_of(attribute))
    for attribute in attributes:
        vocab.add_target(attribute.name, [attribute.name])
    _add_chinese(vocab)
    _add_chinese_aliases(vocab, attributes)
    for word, suggested in NEAR_MISSES.items():
        vocab.hints.setdefault(word, set()).update(a for a in suggested if a in names)
    return vocab


def aliases_of(attribute: Attribute) -> tuple[str, ...]:
    """The aliases as strings, whatever container a plugin used (a lone string too)."""
    aliases = attribute.aliases
    if isinstance(aliases, str):
        return (aliases,)
    try:
        return tuple(a for a in aliases if isinstance(a, str))
    except TypeError:
        return ()


def _add_attribute_hints(vocab: Vocabulary, attributes: Sequence[Attribute]) -> None:
    """Lowest priority: description heads and distinctive name parts, plus chat hints."""
    part_owners: dict[str, set[str]] = {}
    for attribute in attributes:
        for part in attribute.name.split("_"):
            part_owners.setdefault(part, set()).add(attribute.name)
    for attribute in attributes:
        description = attribute.description if isinstance(attribute.description, str) else ""
        head = re.split(r"[;(:,.]", description, maxsplit=1)[0]
        if 0 < len(phrase_key(head)) <= 4:
            vocab.add_target(attribute.name, [head])
        parts = [
            part
            for part in attribute.name.split("_")
            if len(part) >= 4
            and part_owners[part] == {attribute.name}
            and part not in _GENERIC_PARTS
            and part not in en.COMMON_WORDS
        ]
        if len(attribute.name.split("_")) > 1:
            vocab.add_target(attribute.name, parts)
        text = " ".join([attribute.name.replace("_", " "), description, *aliases_of(attribute)])
        for word in _words_of(text):
            vocab.hints.setdefault(word, set()).add(attribute.name)


def _add_chinese_aliases(vocab: Vocabulary, attributes: Sequence[Attribute]) -> None:
    """Plugins' aliases written in Chinese characters ("小卷毛"): they win a phrase the
    built-in tables give another attribute, never a grammar word."""
    for attribute in attributes:
        for alias in aliases_of(attribute):
            tokens = tokenize(to_simplified(normalize(alias))[0])
            if len(tokens) != 1 or tokens[0].kind != "han":
                continue
            phrase = tokens[0].text
            claimed = vocab.chinese.get(phrase)
            if claimed is None or claimed.kind not in _PROTECTED:
                vocab.chinese[phrase] = Lexeme(Kind.MENTION, attribute.name, text=phrase)


def _add_chinese(vocab: Vocabulary) -> None:
    table = vocab.chinese

    def put(phrases: Iterable[str], lexeme: Lexeme) -> None:
        for phrase in phrases:
            table[phrase] = Lexeme(
                lexeme.kind, lexeme.attribute, lexeme.sign, lexeme.value, lexeme.removal,
                lexeme.weak, lexeme.tag, phrase,
            )  # fmt: skip

    put(zh.ZH_NEAR_MISSES, Lexeme(Kind.OTHER))
    put(zh.ZH_NEUTRAL, Lexeme(Kind.NEUTRAL))
    for value, phrases in zh.ZH_INTENSITIES.items():
        put(phrases, Lexeme(Kind.INTENSITY, value=value))
    for kind, phrases in (
        (Kind.MORE, zh.ZH_MORE), (Kind.REDUCE, zh.ZH_REDUCE), (Kind.REMOVE, zh.ZH_REMOVE),
        (Kind.TOO, zh.ZH_TOO), (Kind.NOT_ENOUGH, zh.ZH_NOT_ENOUGH), (Kind.FLIP, zh.ZH_FLIP),
        (Kind.JOIN, zh.ZH_JOIN), (Kind.WITH, zh.ZH_WITH), (Kind.STEP_WORD, zh.ZH_STEP_WORDS),
        (Kind.YEARS, zh.ZH_YEAR_WORDS),
    ):  # fmt: skip
        put(phrases, Lexeme(kind))
    for steps, phrases in zh.ZH_STEPS.items():
        put(phrases, Lexeme(Kind.STEPS, value=float(steps)))
    for tag, phrases in zh.ZH_CHAT.items():
        put(phrases, Lexeme(Kind.CHAT, tag=tag))
    for command, phrases in zh.ZH_COMMANDS.items():
        for phrase in phrases:
            removal = phrase in ("撤销", "撤回", "撤消", "取消", "清除")
            table[phrase] = Lexeme(Kind.COMMAND, tag=command, removal=removal, text=phrase)
    for spec, phrases in zh.ZH_ATTRIBUTES.items():
        target = parse_target(spec)
        attribute = next((c for c in target.candidates if c in vocab.attributes), None)
        if attribute is not None:
            put(phrases, Lexeme(Kind.MENTION, attribute, target.sign, target.magnitude,
                                target.removal))  # fmt: skip
    for phrase, spec in zh.ZH_WEAK.items():
        target = parse_target(spec)
        if target.candidates[0] in vocab.attributes:
            table[phrase] = Lexeme(Kind.MENTION, target.candidates[0], target.sign, weak=True,
                                   text=phrase)  # fmt: skip
