"""The rule planner's phrasing table: message (+ optional state) -> expected plan.

Each row names the expected action and, for edits, a list of
``(attribute, sign, bucket)``. Buckets are rough magnitudes of the strength:
S (<= 0.35: "a little"), M (0.35-0.7: plain), L (0.7-0.95: "very"), X (>= 0.95:
"max"), ``*`` (any). Follow-ups, commands in context, Chinese replies, plugin
attributes and robustness live in test_rule_planner_context.py. A second, larger table
at the attribute + sign level is rule_planner_phrasings.tsv.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chatface.config import load_config
from chatface.engine.types import EditPlan, PlanContext, SessionState
from chatface.plugins.celeba_directions import CelebaDirections
from chatface.plugins.rule_planner import RulePlanner

ATTRS = tuple(CelebaDirections().attributes())
BUCKETS = {
    "S": (0.0, 0.35),
    "M": (0.35, 0.7),
    "L": (0.7, 0.95),
    "X": (0.95, 1.0),
    "*": (0.0, 1.0),
}


@pytest.fixture(scope="module")
def planner() -> RulePlanner:
    return RulePlanner(load_config({}))


def in_bucket(strength: float, bucket: str) -> bool:
    low, high = BUCKETS[bucket]
    return low < abs(strength) <= high + 1e-9 if bucket != "S" else 0 < abs(strength) <= high


E = "edit"
# (message, state, action, [(attribute, sign, bucket), ...])
TABLE: list[tuple[str, dict[str, float] | None, str, list[tuple[str, int, str]]]] = [
    # smile
    ("add a smile", None, E, [("smile", 1, "M")]),
    ("smile", None, E, [("smile", 1, "M")]),
    ("make him smile", None, E, [("smile", 1, "M")]),
    ("Make her smile a little", None, E, [("smile", 1, "S")]),
    ("slightly happier", None, E, [("smile", 1, "S")]),
    ("a big grin", None, E, [("smile", 1, "L")]),
    ("beaming", None, E, [("smile", 1, "*")]),
    ("give me a huge smile!", None, E, [("smile", 1, "L")]),
    ("SMILE MORE", None, E, [("smile", 1, "M")]),
    ("not smiling", None, E, [("smile", -1, "M")]),
    ("stop smiling", None, E, [("smile", -1, "M")]),
    ("serious face", None, E, [("smile", -1, "M")]),
    ("less smile", None, E, [("smile", -1, "*")]),
    ("make him frown", None, E, [("smile", -1, "M")]),
    ("a sad expression", None, E, [("smile", -1, "M")]),
    ("not smiling", {"smile": 0.8}, E, [("smile", -1, "L")]),
    # age
    ("older", None, E, [("age", 1, "M")]),
    ("make me older", None, E, [("age", 1, "M")]),
    ("a little older", None, E, [("age", 1, "S")]),
    ("much older", None, E, [("age", 1, "L")]),
    ("make him look elderly", None, E, [("age", 1, "*")]),
    ("younger", None, E, [("age", -1, "M")]),
    ("make her a bit younger", None, E, [("age", -1, "S")]),
    ("way younger please", None, E, [("age", -1, "L")]),
    ("10 years older", None, E, [("age", 1, "S")]),
    ("aged", None, E, [("age", 1, "M")]),
    ("as old as possible", None, E, [("age", 1, "X")]),
    ("30% older", None, E, [("age", 1, "S")]),
    ("age 0.3", None, E, [("age", 1, "S")]),
    ("age -0.6", None, E, [("age", -1, "M")]),
    ("smile 80%", None, E, [("smile", 1, "L")]),
    ("extremely old", None, E, [("age", 1, "X")]),
    ("somewhat older", None, E, [("age", 1, "S")]),
    # beard and facial hair
    ("add a beard", None, E, [("beard", 1, "M")]),
    ("remove the beard", None, E, [("beard", -1, "M")]),
    ("remove the beard", {"beard": 0.8}, E, [("beard", -1, "L")]),
    ("clean-shaven", None, E, [("beard", -1, "*")]),
    ("clean shaven please", None, E, [("beard", -1, "*")]),
    ("shave him", None, E, [("beard", -1, "*")]),
    ("more facial hair", None, E, [("beard", 1, "M")]),
    ("no facial hair", None, E, [("beard", -1, "M")]),
    ("add some stubble", None, E, [("stubble", 1, "M")]),
    ("give him a mustache", None, E, [("mustache", 1, "M")]),
    ("moustache", None, E, [("mustache", 1, "M")]),
    ("add a goatee", None, E, [("goatee", 1, "M")]),
    ("sideburns", None, E, [("sideburns", 1, "M")]),
    ("maximum beard", None, E, [("beard", 1, "X")]),
    # glasses
    ("add glasses", None, E, [("eyeglasses", 1, "M")]),
    ("specs", None, E, [("eyeglasses", 1, "M")]),
    ("put some spectacles on him", None, E, [("eyeglasses", 1, "M")]),
    ("no glasses", None, E, [("eyeglasses", -1, "M")]),
    ("take off the glasses", {"eyeglasses": 0.5}, E, [("eyeglasses", -1, "M")]),
    ("take his glasses off", None, E, [("eyeglasses", -1, "*")]),
    ("without glasses", None, E, [("eyeglasses", -1, "*")]),
    ("sunglasses", None, E, [("eyeglasses", 1, "*")]),
    # hair
    ("blonde", None, E, [("blond_hair", 1, "M")]),
    ("make her hair blonde", None, E, [("blond_hair", 1, "M")]),
    ("blond hair", None, E, [("blond_hair", 1, "M")]),
    ("very blonde", None, E, [("blond_hair", 1, "L")]),
    ("gray hair", None, E, [("gray_hair", 1, "M")]),
    ("grey hair", None, E, [("gray_hair", 1, "M")]),
    ("white hair", None, E, [("gray_hair", 1, "M")]),
    ("silver hair", None, E, [("gray_hair", 1, "M")]),
    ("black hair", None, E, [("black_hair", 1, "M")]),
    ("dark hair", None, E, [("black_hair", 1, "M")]),
    ("brown hair", None, E, [("brown_hair", 1, "M")]),
    ("brunette", None, E, [("brown_hair", 1, "M")]),
    ("bangs", None, E, [("bangs", 1, "M")]),
    ("add a fringe", None, E, [("bangs", 1, "M")]),
    ("no bangs", None, E, [("bangs", -1, "M")]),
    ("wavy hair", None, E, [("wavy_hair", 1, "M")]),
    ("curly hair", None, E, [("wavy_hair", 1, "*")]),
    ("straight hair", None, E, [("straight_hair", 1, "M")]),
    ("make him bald", None, E, [("bald", 1, "M")]),
    ("shaved head", None, E, [("bald", 1, "*")]),
    ("fully bald", None, E, [("bald", 1, "X")]),
    ("receding hairline", None, E, [("receding_hairline", 1, "M")]),
    # make-up and skin
    ("add makeup", None, E, [("makeup", 1, "M")]),
    ("heavy makeup", None, E, [("makeup", 1, "*")]),
    ("without makeup", None, E, [("makeup", -1, "*")]),
    ("natural look, no make-up", None, E, [("makeup", -1, "*")]),
    ("a lot more makeup", None, E, [("makeup", 1, "L")]),
    ("red lipstick", None, E, [("lipstick", 1, "*")]),
    ("remove the lipstick", None, E, [("lipstick", -1, "M")]),
    ("pale skin", None, E, [("pale_skin", 1, "M")]),
    ("very pale", None, E, [("pale_skin", 1, "L")]),
    ("more tanned", None, E, [("pale_skin", -1, "M")]),
    ("rosy cheeks", None, E, [("rosy_cheeks", 1, "M")]),
    # face shape and features
    ("make him chubby", None, E, [("chubby", 1, "M")]),
    ("slimmer face", None, E, [("chubby", -1, "M")]),
    ("thinner", None, E, [("chubby", -1, "M")]),
    ("double chin", None, E, [("double_chin", 1, "M")]),
    ("open mouth", None, E, [("mouth_open", 1, "M")]),
    ("close his mouth", None, E, [("mouth_open", -1, "*")]),
    ("bigger lips", None, E, [("big_lips", 1, "M")]),
    ("smaller nose", None, E, [("big_nose", -1, "M")]),
    ("pointy nose", None, E, [("pointy_nose", 1, "M")]),
    ("bushy eyebrows", None, E, [("bushy_eyebrows", 1, "M")]),
    ("arched eyebrows", None, E, [("arched_eyebrows", 1, "M")]),
    ("bags under the eyes", None, E, [("bags_under_eyes", 1, "M")]),
    ("more attractive", None, E, [("attractive", 1, "M")]),
    ("blurry", None, E, [("blurry", 1, "M")]),
    ("sharpen it", None, E, [("blurry", -1, "*")]),
    # gender
    ("more masculine", None, E, [("male", 1, "M")]),
    ("more feminine", None, E, [("male", -1, "M")]),
    ("make him look like a woman", None, E, [("male", -1, "M")]),
    # accessories
    ("earrings", None, E, [("earrings", 1, "M")]),
    ("add a hat", None, E, [("hat", 1, "M")]),
    ("no hat", None, E, [("hat", -1, "M")]),
    ("necklace", None, E, [("necklace", 1, "M")]),
    ("put a tie on him", None, E, [("necktie", 1, "M")]),
    # several edits in one message
    (
        "older, with glasses and less smile",
        None,
        E,
        [("age", 1, "M"), ("eyeglasses", 1, "M"), ("smile", -1, "*")],
    ),
    ("add a smile and glasses", None, E, [("smile", 1, "M"), ("eyeglasses", 1, "M")]),
    ("younger and blonde", None, E, [("age", -1, "M"), ("blond_hair", 1, "M")]),
    ("remove the beard and glasses", None, E, [("beard", -1, "*"), ("eyeglasses", -1, "*")]),
    ("a little older with a beard", None, E, [("age", 1, "S"), ("beard", 1, "M")]),
    (
        "big smile, no glasses, gray hair",
        None,
        E,
        [("smile", 1, "L"), ("eyeglasses", -1, "M"), ("gray_hair", 1, "M")],
    ),
    (
        "slightly younger, more makeup and red lipstick",
        None,
        E,
        [("age", -1, "S"), ("makeup", 1, "M"), ("lipstick", 1, "*")],
    ),
    ("much older and bald", None, E, [("age", 1, "L"), ("bald", 1, "*")]),
    ("smile 0.3 and age 0.6", None, E, [("smile", 1, "S"), ("age", 1, "M")]),
    ("max smile", None, E, [("smile", 1, "X")]),
    ("smile +0.9", None, E, [("smile", 1, "L")]),
    # typos, case and punctuation
    ("smle", None, E, [("smile", 1, "M")]),
    ("add glases", None, E, [("eyeglasses", 1, "M")]),
    ("make him oldr", None, E, [("age", 1, "M")]),
    ("yonger", None, E, [("age", -1, "M")]),
    ("more lipstik", None, E, [("lipstick", 1, "M")]),
    ("blnde hair", None, E, [("blond_hair", 1, "M")]),
    ("beerd", None, E, [("beard", 1, "M")]),
    ("Add A SMILE!!!", None, E, [("smile", 1, "M")]),
    ("eyeglases", None, E, [("eyeglasses", 1, "M")]),
    ("moustach", None, E, [("mustache", 1, "M")]),
    # relative edits on an attribute
    ("too much lipstick", {"lipstick": 0.8}, E, [("lipstick", -1, "S")]),
    ("the lipstick is too thick", {"lipstick": 0.8}, E, [("lipstick", -1, "S")]),
    ("he looks too old", {"age": 0.8}, E, [("age", -1, "S")]),
    ("not enough smile", {"smile": 0.25}, E, [("smile", 1, "S")]),
    # follow-ups resolved from the state alone
    ("more", {"smile": 0.5}, E, [("smile", 1, "M")]),
    ("a bit more", {"age": 0.5}, E, [("age", 1, "S")]),
    ("even more", {"age": -0.5}, E, [("age", -1, "M")]),
    ("less", {"smile": 0.5}, E, [("smile", -1, "S")]),
    ("tone it down", {"makeup": 0.8}, E, [("makeup", -1, "S")]),
    ("too much", {"beard": 0.5}, E, [("beard", -1, "S")]),
    ("the other way", {"age": 0.5}, E, [("age", -1, "X")]),
    # commands
    ("undo", None, "undo", []),
    ("undo that", None, "undo", []),
    ("go back", None, "undo", []),
    ("/undo", None, "undo", []),
    ("redo", None, "redo", []),
    ("/redo", None, "redo", []),
    ("reset", None, "reset", []),
    ("start over", None, "reset", []),
    ("original settings", None, "reset", []),
    ("show original", None, "show_original", []),
    ("show me the original", None, "show_original", []),
    ("help", None, "help", []),
    ("/help", None, "help", []),
    ("what can you do?", None, "help", []),
    ("list attributes", None, "list_attributes", []),
    ("/attributes", None, "list_attributes", []),
    ("what can I change?", None, "list_attributes", []),
    # speed and quality alone re-render the current state
    ("quick preview", None, E, []),
    ("best quality", None, E, []),
    # small talk, questions, unknown attributes
    ("can you make me look like a cat?", None, "chat", []),
    ("what is the weather", None, "chat", []),
    ("hello", None, "chat", []),
    ("thanks!", None, "chat", []),
    ("make his eyes blue", None, "chat", []),
    ("red hair", None, "chat", []),
    # Chinese
    ("笑一下", None, E, [("smile", 1, "M")]),
    ("微笑", None, E, [("smile", 1, "M")]),
    ("老一点", None, E, [("age", 1, "S")]),
    ("年轻一点", None, E, [("age", -1, "S")]),
    ("变年轻", None, E, [("age", -1, "M")]),
    ("加胡子", None, E, [("beard", 1, "M")]),
    ("去掉胡子", None, E, [("beard", -1, "M")]),
    ("戴眼镜", None, E, [("eyeglasses", 1, "M")]),
    ("不要眼镜", None, E, [("eyeglasses", -1, "M")]),
    ("金发", None, E, [("blond_hair", 1, "M")]),
    ("白发", None, E, [("gray_hair", 1, "M")]),
    ("加刘海", None, E, [("bangs", 1, "M")]),
    ("化妆", None, E, [("makeup", 1, "M")]),
    ("涂口红", None, E, [("lipstick", 1, "M")]),
    ("秃头", None, E, [("bald", 1, "M")]),
    ("非常老", None, E, [("age", 1, "L")]),
    ("稍微笑一点", None, E, [("smile", 1, "S")]),
    ("老一点，戴眼镜", None, E, [("age", 1, "S"), ("eyeglasses", 1, "M")]),
    ("撤销", None, "undo", []),
    ("重做", None, "redo", []),
    ("重置", None, "reset", []),
    ("重新开始", None, "reset", []),
    ("今天天气怎么样", None, "chat", []),
]


def matches(result: EditPlan, action: str, expected: list[tuple[str, int, str]]) -> bool:
    """Action, attributes and signs all equal, and every magnitude in its bucket."""
    if result.action != action or len(result.edits) != len(expected):
        return False
    got = {op.attribute: op.strength for op in result.edits}
    for attribute, sign, bucket in expected:
        strength = got.get(attribute)
        if strength is None or (strength > 0) != (sign > 0) or not in_bucket(strength, bucket):
            return False
    return True


def test_table_is_large_enough() -> None:
    assert len(TABLE) >= 120
    assert len({(message, str(state)) for message, state, *_ in TABLE}) == len(TABLE)


@pytest.mark.parametrize(
    ("message", "state", "action", "expected"),
    TABLE,
    ids=[f"{i:03d}-{row[0][:30]}" for i, row in enumerate(TABLE)],
)
def test_phrasing(planner, message, state, action, expected) -> None:
    result = planner.plan(message, PlanContext(ATTRS, SessionState(state or {}), ()))
    assert matches(result, action, expected), result.to_dict()
    assert result.reply
    assert action == "list_attributes" or len(result.reply) <= 300
    assert all(-1.0 <= op.strength <= 1.0 for op in result.edits)


def load_phrasings() -> list[tuple[str, str, str, dict[str, float]]]:
    """Rows of rule_planner_phrasings.tsv: message, action, "attr+ attr-", state."""
    rows = []
    text = Path(__file__).with_name("rule_planner_phrasings.tsv").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        message, action, expected, state = [*line.split("\t"), "", ""][:4]
        pairs = (item.split("=") for item in state.split(",") if item)
        rows.append((message, action, expected, {k: float(v) for k, v in pairs}))
    return rows


PHRASINGS = load_phrasings()


def test_phrasings_file_is_large_enough() -> None:
    assert len(PHRASINGS) >= 500


@pytest.mark.parametrize(
    ("message", "action", "expected", "state"),
    PHRASINGS,
    ids=[f"{i:03d}-{row[0][:30]}" for i, row in enumerate(PHRASINGS)],
)
def test_more_phrasings(planner, message, action, expected, state) -> None:
    result = planner.plan(message, PlanContext(ATTRS, SessionState(state), ()))
    got = sorted(f"{op.attribute}{'+' if op.strength > 0 else '-'}" for op in result.edits)
    assert (result.action, got) == (action, sorted(expected.split())), result.to_dict()
