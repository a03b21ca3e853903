"""Short human replies, in English or Chinese (the language the user wrote in).

Replies never repeat the user's message: at most a few unknown words, cleaned and
capped at 40 characters, appear in a "close matches" answer. Edit confirmations
are written so that the planner can read them back ("Adding a medium smile."),
which lets a follow-up find the last edit from the bot's own words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from chatface.plugins.rule_planner.chinese import ZH_DIRECTIONS, ZH_LABELS
from chatface.plugins.rule_planner.parse import Analysis

MAX_ECHO = 40
MAX_LISTED = 60
EN_LABELS = {"eyeglasses": "glasses", "mouth_open": "open mouth", "necktie": "tie"}
# Countable things read "adding a beard", "adding a strong beard".
EN_COUNTABLE = frozenset(
    {"beard", "hat", "necklace", "necktie", "mustache", "goatee", "double_chin", "big_nose",
     "pointy_nose", "oval_face", "receding_hairline", "mouth_open"}
)  # fmt: skip
# (positive, negative, what changes) for attributes that read better as a direction,
# adjectives above all ("adding bald" is not English).
EN_DIRECTIONS = {
    "age": ("older", "younger", "the face"),
    "attractive": ("more attractive", "less attractive", "the face"),
    "bald": ("balder", "less bald", "the head"),
    "blurry": ("blurrier", "sharper", "the photo"),
    "chubby": ("chubbier", "slimmer", "the face"),
    "male": ("more masculine", "more feminine", "the look"),
    "pale_skin": ("paler", "more tanned", "the skin"),
}
_EN_ADVERB = {"S": "a little ", "M": "", "L": "much ", "X": "far "}
_EN_AMOUNT = {"S": "a touch of ", "M": "", "L": "a lot of ", "X": "maximum "}
_EN_SMILE = {"S": "a slight", "M": "a medium", "L": "a big", "X": "a maximum"}
_EN_ARTICLE = {"S": "a subtle ", "M": "a ", "L": "a strong ", "X": "a maximum "}
_EN_REDUCE = {"S": " a little", "M": "", "L": " a lot", "X": " fully"}
_ZH_ADVERB = {"S": "稍微", "M": "", "L": "明显", "X": "尽量"}
_ZH_ADD = {"S": "加一点{}", "M": "加上{}", "L": "加很多{}", "X": "把{}加到最大"}
_ZH_REDUCE = {"S": "稍微减少{}", "M": "减少{}", "L": "大幅减少{}", "X": "完全去掉{}"}
_STEPS_EN = {4: "a quick preview", 50: "best quality"}
_STEPS_ZH = {4: "快速预览", 50: "高质量"}
_EXAMPLES_EN = "'add a smile', 'a bit older with glasses' or 'no beard'"
_EXAMPLES_ZH = "“加一点微笑”、“老一点，戴眼镜”或“去掉胡子”"


def bucket(strength: float) -> str:
    size = abs(strength)
    return "S" if size <= 0.35 else "M" if size < 0.7 else "L" if size < 0.95 else "X"


def label(attribute: str, chinese: bool = False) -> str:
    if chinese:
        return ZH_LABELS.get(attribute, attribute.replace("_", " "))
    return EN_LABELS.get(attribute, attribute.replace("_", " "))


def edit_reply(changes: Sequence[tuple[str, float, bool]], steps: int | None, chinese: bool) -> str:
    """Describe (attribute, change, is_removal) triples in one sentence."""
    if chinese:
        items = [_zh_item(a, s, removal) for a, s, removal in changes]
        suffix = f"（{_STEPS_ZH.get(steps, f'{steps} 步')}）" if steps else ""
        return "好的，" + "，".join(items) + suffix + "。"
    groups: list[tuple[str, list[str]]] = []
    for attribute, strength, removal in changes:
        verb, phrase = _en_item(attribute, strength, removal)
        if groups and groups[-1][0] == verb:
            groups[-1][1].append(phrase)
        else:
            groups.append((verb, [phrase]))
    sentence = _and([f"{verb} {_and(phrases)}" for verb, phrases in groups])
    if steps:
        sentence += f" ({_STEPS_EN.get(steps, f'{steps} steps')})"
    return sentence[:1].upper() + sentence[1:] + "."


def _en_item(attribute: str, strength: float, removal: bool) -> tuple[str, str]:
    size = bucket(strength)
    if attribute in EN_DIRECTIONS:
        positive, negative, subject = EN_DIRECTIONS[attribute]
        word = positive if strength > 0 else negative
        return "making", f"{subject} {_EN_ADVERB[size]}{word}"
    name = label(attribute)
    if strength > 0:
        if attribute == "smile":
            return "adding", f"{_EN_SMILE[size]} smile"
        if attribute in EN_COUNTABLE:
            article = _EN_ARTICLE[size]
            if article == "a " and name[:1] in "aeiou":
                article = "an "
            return "adding", f"{article}{name}"
        return "adding", f"{_EN_AMOUNT[size]}{name}"
    if removal:
        return "removing", f"the {name}"
    if attribute == "smile":
        return "making", f"the expression {_EN_ADVERB[size]}more serious"
    return "reducing", f"the {name}{_EN_REDUCE[size]}"


def _zh_item(attribute: str, strength: float, removal: bool) -> str:
    size = bucket(strength)
    if attribute in ZH_DIRECTIONS:
        positive, negative = ZH_DIRECTIONS[attribute]
        return _ZH_ADVERB[size] + (positive if strength > 0 else negative)
    name = label(attribute, chinese=True)
    if strength > 0:
        return _ZH_ADD[size].format(name)
    return f"去掉{name}" if removal else _ZH_REDUCE[size].format(name)


def _and(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def steps_reply(steps: int, chinese: bool) -> str:
    if chinese:
        return f"好的，重新渲染（{_STEPS_ZH.get(steps, f'{steps} 步')}）。"
    if steps == 4:
        return "Rendering a quick preview."
    if steps == 50:
        return "Rendering at best quality."
    return f"Rendering with {steps} steps."


def command_reply(command: str, chinese: bool, attributes: Sequence[str]) -> str:
    if command == "list_attributes":
        names = [label(a, chinese) if chinese else a for a in attributes[:MAX_LISTED]]
        more = len(attributes) - len(names)
        if chinese:
            extra = f"，还有 {more} 个" if more > 0 else ""
            return "我可以修改：" + "、".join(names) + extra + "。例如说“多一点微笑”。"
        extra = f" and {more} more" if more > 0 else ""
        return f"I can change: {', '.join(names)}{extra}. Say e.g. 'more smile' or 'a bit older'."
    if chinese:
        return {
            "undo": "好的，撤销上一步。",
            "redo": "好的，重做刚才撤销的一步。",
            "reset": "好的，从原图重新开始。",
            "show_original": "这是原图。",
            "help": (
                f"用文字告诉我要改什么，例如{_EXAMPLES_ZH}。之后可以说“再多一点”、“少一点”"
                "或“反过来”。命令：撤销、重做、重置、看原图、属性列表。"
            ),
        }.get(command, "好的。")
    return {
        "undo": "Undoing the last edit.",
        "redo": "Redoing the last undone edit.",
        "reset": "Starting over from the original photo.",
        "show_original": "Here is the original photo.",
        "help": (
            f"Tell me what to change in plain words, e.g. {_EXAMPLES_EN}. Then say 'more', "
            "'less' or 'the other way'. Commands: undo, redo, reset, show original, list "
            "attributes. Add 'quick preview' or 'best quality' for speed or detail."
        ),
    }.get(command, "OK.")


def chat_reply(analysis: Analysis, attributes: Sequence[str]) -> str:
    """Small talk, questions, unknown requests: a helpful answer, never an echo."""
    zh = analysis.chinese
    if analysis.question and analysis.mentioned:
        names = _and([label(a, zh) for a in analysis.mentioned[:5]])
        if zh:
            return f"我可以修改{names}，例如说“多一点{label(analysis.mentioned[0], True)}”。"
        first = label(analysis.mentioned[0])
        return f"I can change {names}: say e.g. 'more {first}' or 'less {first}'."
    if analysis.slash and not zh:
        return f"Unknown command /{_clean(analysis.slash)}. Try /help."
    if analysis.foreign and not analysis.unknown:
        return "Sorry, I understand English and Chinese. Say 'help' to see examples."
    for tag in ("greeting", "thanks", "praise", "bye", "no", "ack"):
        if tag in analysis.chat and not analysis.unknown:
            return _ZH_CHAT[tag] if zh else _EN_CHAT[tag]
    suggestions = [a for a in analysis.suggestions if a in attributes]
    fragment = _clean(" ".join(analysis.unknown))
    if zh:
        close = "、".join(label(a, True) for a in suggestions)
        close = f"相近的有：{close}。" if close else ""
        return f"我只能修改人脸属性，例如{_EXAMPLES_ZH}。{close}说“属性列表”查看全部。"
    if suggestions:
        what = f"'{fragment}'" if fragment else "that"
        return (
            f"I can't change {what}. Close matches: {', '.join(suggestions)}. "
            "Say 'list attributes' to see everything I can change."
        )
    if analysis.empty:
        return f"Tell me what to change, e.g. {_EXAMPLES_EN}. Say 'help' for more."
    return (
        "I can only change face attributes such as smile, age, glasses or hair colour. "
        "Say 'list attributes' to see them all."
    )


def missing_topic_reply(chinese: bool) -> str:
    if chinese:
        return "要调整哪一项？请说出属性，例如“多一点微笑”或“老一点”。"
    return "More or less of what? Name an attribute, e.g. 'more smile' or 'a bit older'."


def unchanged_reply(chinese: bool) -> str:
    if chinese:
        return "已经是这个设置了，不需要修改。"
    return "That is already the current setting; nothing to change."


def fallback_reply() -> str:
    return f"Sorry, I did not understand that. Try e.g. {_EXAMPLES_EN}, or say 'help'."


def _clean(text: str) -> str:
    """Letters, digits, spaces and dashes only, at most MAX_ECHO characters."""
    return re.sub(r"[^\w' -]", "", text)[:MAX_ECHO].strip()


_EN_CHAT = {
    "greeting": f"Hi! Send a face photo and tell me what to change, e.g. {_EXAMPLES_EN}.",
    "thanks": "You're welcome! Tell me if you want another change.",
    "praise": "Glad you like it! Want to change anything else?",
    "bye": "Bye! Come back any time.",
    "no": "OK. Say 'undo' to take back the last edit, or tell me what to change.",
    "ack": "OK. Tell me what to change next, or say 'undo'.",
}
_ZH_CHAT = {
    "greeting": f"你好！发一张人脸照片，然后告诉我要改什么，例如{_EXAMPLES_ZH}。",
    "thanks": "不客气！还想改什么随时告诉我。",
    "praise": "很高兴你喜欢！还要改别的吗？",
    "bye": "再见！",
    "no": "好的。说“撤销”可以撤回上一步，或者告诉我要改什么。",
    "ack": "好的。接下来要改什么？也可以说“撤销”。",
}
