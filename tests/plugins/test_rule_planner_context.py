"""The rule planner with session context: follow-ups, removals, commands, steps,
replies in the user's language, and attributes declared by a third-party plugin."""

from __future__ import annotations

import pytest

from chatface.config import load_config
from chatface.engine.types import Attribute, EditPlan, PlanContext, SessionState
from chatface.plugins.celeba_directions import CelebaDirections
from chatface.plugins.rule_planner import RulePlanner

ATTRS = tuple(CelebaDirections().attributes())
GLOW = Attribute(
    "glow", "Demonstration direction (a fixed random unit vector)", aliases=("shine", "radiance")
)
FRECKLES = Attribute("freckles", "Freckles on the cheeks")


@pytest.fixture(scope="module")
def planner() -> RulePlanner:
    return RulePlanner(load_config({}))


def plan(planner, message, state=None, recent=(), attributes=ATTRS) -> EditPlan:
    return planner.plan(message, PlanContext(attributes, SessionState(state or {}), recent))


def edits(result: EditPlan) -> dict[str, float]:
    return {op.attribute: op.strength for op in result.edits}


# --- follow-ups -------------------------------------------------------------------

OLDER = [("user", "make him older"), ("bot", "Making the face older.")]


@pytest.mark.parametrize(
    ("message", "expected"),
    [("more", 0.5), ("a bit more", 0.25), ("even more", 0.5), ("much more", 0.8),
     ("more please!", 0.5), ("keep going", 0.5), ("not enough", 0.25)],
)  # fmt: skip
def test_more_repeats_the_last_edit_from_recent_turns(planner, message, expected) -> None:
    result = plan(planner, message, {"age": 0.5, "smile": 0.9}, OLDER)
    assert result.action == "edit"
    assert edits(result) == {"age": expected}  # the recent turn wins over the larger smile


@pytest.mark.parametrize("message", ["less", "tone it down", "too much", "weaker", "a bit less"])
def test_less_goes_the_opposite_way_by_a_small_step(planner, message) -> None:
    recent = [("user", "add lipstick"), ("bot", "Adding lipstick.")]
    assert edits(plan(planner, message, {"lipstick": 0.5}, recent)) == {"lipstick": -0.25}


def test_less_never_overshoots_the_current_value(planner) -> None:
    recent = [("user", "add lipstick")]
    assert edits(plan(planner, "less", {"lipstick": 0.1}, recent)) == {"lipstick": -0.1}


def test_more_of_a_negative_edit_keeps_its_direction(planner) -> None:
    recent = [("user", "make her younger"), ("bot", "Making the face younger.")]
    assert edits(plan(planner, "even more", {"age": -0.5}, recent)) == {"age": -0.5}
    assert edits(plan(planner, "too much", {"age": -0.5}, recent)) == {"age": 0.25}


def test_several_last_edits_are_repeated_together(planner) -> None:
    recent = [("user", "add a smile and glasses")]
    assert edits(plan(planner, "more", {}, recent)) == {"smile": 0.5, "eyeglasses": 0.5}


def test_the_other_way_mirrors_the_current_value(planner) -> None:
    assert edits(plan(planner, "the other way", {"age": 0.5}, OLDER)) == {"age": -1.0}
    # Without a state to mirror, it is a plain edit the other way.
    assert edits(plan(planner, "the other way", {}, OLDER)) == {"age": -0.5}


def test_a_flip_in_the_history_turns_later_follow_ups_around(planner) -> None:
    recent = [*OLDER, ("user", "the other way"), ("bot", "Making the face younger.")]
    assert edits(plan(planner, "more", {"age": -0.5}, recent)) == {"age": -0.5}
    chain = [("user", "make him older"), ("user", "more"), ("user", "a bit more")]
    assert edits(plan(planner, "even more", {"age": 1.0}, chain)) == {"age": 0.5}


def test_the_current_message_logged_in_recent_is_not_counted_twice(planner) -> None:
    recent = [*OLDER, ("user", "the other way")]
    assert edits(plan(planner, "the other way", {"age": 0.5}, recent)) == {"age": -1.0}


def test_bot_confirmations_are_read_when_user_turns_say_nothing(planner) -> None:
    recent = [("user", "hmm"), ("bot", "Adding a medium smile.")]
    assert edits(plan(planner, "more", {}, recent)) == {"smile": 0.5}
    chat = [("bot", "I can change smile: say e.g. 'more smile'.")]  # not a confirmation
    assert plan(planner, "more", {}, chat).action == "chat"


def test_without_recent_turns_the_largest_state_entry_is_used(planner) -> None:
    assert edits(plan(planner, "more", {"smile": 0.2, "beard": -0.7})) == {"beard": -0.5}


def test_a_reset_ends_the_search_and_nothing_known_is_a_chat(planner) -> None:
    recent = [("user", "make him older"), ("user", "reset")]
    result = plan(planner, "more", {}, recent)
    assert result.action == "chat" and "what" in result.reply.lower()
    assert plan(planner, "a bit less", {}, ()).action == "chat"


def test_remove_it_takes_the_last_attribute_back_to_neutral(planner) -> None:
    recent = [("user", "add glasses")]
    assert edits(plan(planner, "remove it", {"eyeglasses": 0.4}, recent)) == {"eyeglasses": -0.4}
    assert plan(planner, "no", {"eyeglasses": 0.4}, recent).action == "chat"


def test_malformed_recent_turns_are_ignored(planner) -> None:
    recent = [None, ("user",), ("robot", 5), ("user", "add a beard")]
    assert edits(plan(planner, "more", {}, recent)) == {"beard": 0.5}


# --- removal and absolute values ------------------------------------------------


def test_removal_goes_back_to_neutral_when_the_state_has_some(planner) -> None:
    assert edits(plan(planner, "no glasses", {"eyeglasses": 0.3})) == {"eyeglasses": -0.3}
    assert edits(plan(planner, "without makeup", {"makeup": 1.0})) == {"makeup": -1.0}
    # An original bearded photo has no beard in the state: a plain negative edit.
    assert edits(plan(planner, "remove the beard")) == {"beard": -0.5}
    assert edits(plan(planner, "remove the beard", {"beard": -0.5})) == {"beard": -0.5}


def test_set_to_a_value_is_relative_to_the_state(planner) -> None:
    assert edits(plan(planner, "set smile to 0.3", {"smile": 0.5})) == {"smile": -0.2}
    assert edits(plan(planner, "smile = 0.5")) == {"smile": 0.5}
    result = plan(planner, "set smile to 0.5", {"smile": 0.5})
    assert result.action == "chat" and not result.edits


# --- commands and steps ------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "action"),
    [("/undo@chatface_bot", "undo"), ("/START", "help"), ("can you undo that?", "undo"),
     ("please reset everything", "reset"), ("let me see the original", "show_original"),
     ("how does this work?", "help"), ("which attributes can I edit?", "list_attributes"),
     ("撤销上一步", "undo"), ("显示原图", "show_original"), ("有哪些属性", "list_attributes")],
)  # fmt: skip
def test_commands(planner, message, action) -> None:
    result = plan(planner, message)
    assert result.action == action and not result.edits and result.reply


def test_undo_with_an_attribute_removes_that_attribute(planner) -> None:
    assert edits(plan(planner, "undo the smile", {"smile": 0.5})) == {"smile": -0.5}


def test_unknown_slash_commands(planner) -> None:
    result = plan(planner, "/frobnicate")
    assert result.action == "chat" and "/frobnicate" in result.reply
    assert edits(plan(planner, "/smile")) == {"smile": 0.5}


def test_list_attributes_names_every_attribute(planner) -> None:
    result = plan(planner, "list attributes", attributes=(*ATTRS, GLOW))
    assert all(a.name in result.reply for a in (*ATTRS, GLOW))


@pytest.mark.parametrize(
    ("message", "steps", "expected"),
    [("quick preview", 4, {}), ("fast", 4, {}), ("best quality", 50, {}),
     ("high quality please", 50, {}), ("add glasses, best quality", 50, {"eyeglasses": 0.5}),
     ("smile, quick preview", 4, {"smile": 0.5}), ("render with 20 steps", 20, {}),
     ("older in 30 steps", 30, {"age": 0.5}), ("高质量", 50, {}), ("快速预览", 4, {})],
)  # fmt: skip
def test_speed_and_quality_set_steps(planner, message, steps, expected) -> None:
    result = plan(planner, message)
    assert (result.action, result.steps, edits(result)) == ("edit", steps, expected)


# --- replies ------------------------------------------------------------------------


def test_replies_are_short_sentences_in_the_users_language(planner) -> None:
    assert plan(planner, "add a smile and glasses").reply == "Adding a medium smile and glasses."
    assert plan(planner, "remove the beard").reply == "Removing the beard."
    chinese = plan(planner, "老一点，戴眼镜").reply
    assert chinese.startswith("好的") and "眼镜" in chinese
    for message in ["撤销", "你好", "把我变成猫", "帮助"]:
        assert any("\u4e00" <= ch <= "\u9fff" for ch in plan(planner, message).reply)
    for message in ["undo", "hello", "make me a cat", "help"]:
        assert plan(planner, message).reply.isascii()


def test_every_attribute_reads_as_english_and_back(planner) -> None:
    from chatface.plugins.rule_planner.replies import edit_reply

    sentences = {
        "remove the blond hair and the baldness": (
            "Removing the blond hair and making the head less bald."
        ),
        "make him bald": "Making the head balder.",
        "a bit blurry": "Making the photo a little blurrier.",
        "more attractive": "Making the face more attractive.",
        "an oval face": "Adding an oval face.",
        "open his mouth": "Adding an open mouth.",
    }  # fmt: skip
    for message, reply in sentences.items():
        assert plan(planner, message).reply == reply
    # Adjectives never follow "adding"; every confirmation reads back as its own edit.
    for attribute in ATTRS:
        for strength, removal in ((0.5, False), (0.9, False), (-0.5, True), (-0.2, False)):
            reply = edit_reply([(attribute.name, strength, removal)], None, False)
            assert not reply.startswith(("Adding bald", "Adding attractive", "Adding blurry"))
            again = edits(plan(planner, reply))
            assert list(again) == [attribute.name] and again[attribute.name] * strength > 0, reply


def test_bot_confirmations_read_back_as_the_same_edits(planner) -> None:
    for message in ["older, with glasses and less smile", "a little younger", "no beard",
                    "much more makeup", "加一点微笑", "去掉胡子"]:  # fmt: skip
        result = plan(planner, message)
        again = plan(planner, result.reply)
        signs = {a: s > 0 for a, s in edits(result).items()}
        assert {a: s > 0 for a, s in edits(again).items()} == signs, result.reply


def test_unknown_requests_list_close_matches_without_echoing(planner) -> None:
    result = plan(planner, "make his eyes blue")
    assert result.action == "chat" and "narrow_eyes" in result.reply
    long = "please make me look like " + "supercalifragilistic" * 50
    reply = plan(planner, long).reply
    assert len(reply) < 300 and "supercalifragilistic" * 2 not in reply
    secret = "sk-ant-api03-" + "A" * 40
    assert secret not in plan(planner, f"my key is {secret}, add a hat").reply
    assert "list attributes" in plan(planner, "what is the weather").reply


# --- third-party attributes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [("more glow", {"glow": 0.5}), ("less shine", {"glow": -0.5}),
     ("a bit of radiance", {"glow": 0.25}), ("glowing", {"glow": 0.5}),
     ("no glow", {"glow": -0.5}), ("glwo", {"glow": 0.5}), ("加一点glow", {"glow": 0.25}),
     ("glow and a smile", {"glow": 0.5, "smile": 0.5}), ("add freckles", {"freckles": 0.5}),
     ("remove the freckles", {"freckles": -0.5})],
)  # fmt: skip
def test_plugin_attributes_join_the_vocabulary(planner, message, expected) -> None:
    assert edits(plan(planner, message, attributes=(*ATTRS, GLOW, FRECKLES))) == expected


def test_only_registered_attributes_are_produced(planner) -> None:
    only_glow = (GLOW,)
    assert plan(planner, "add a smile and glasses", attributes=only_glow).action == "chat"
    assert edits(plan(planner, "more shine and a smile", attributes=only_glow)) == {"glow": 0.5}
    # A built-in synonym falls back to the next registered attribute ("stubble" -> beard).
    no_stubble = tuple(a for a in ATTRS if a.name != "stubble")
    assert edits(plan(planner, "add stubble", attributes=no_stubble)) == {"beard": 0.5}
    assert edits(plan(planner, "add stubble")) == {"stubble": 0.5}
    assert plan(planner, "add a smile", attributes=()).action == "chat"
    # Without the plugin, "glow" is not a typo of the grammar word "grow".
    assert plan(planner, "glow", attributes=ATTRS).action == "chat"


def test_plugin_words_never_take_over_grammar_words(planner) -> None:
    lighting = Attribute("lighting", "Lighting", aliases=("light", "more", "undo"))
    attributes = (*ATTRS, lighting)
    assert edits(plan(planner, "more smile", attributes=attributes)) == {"smile": 0.5}
    assert edits(plan(planner, "light makeup", attributes=attributes)) == {"makeup": 0.25}
    assert plan(planner, "undo", attributes=attributes).action == "undo"
    assert edits(plan(planner, "less lighting", attributes=attributes)) == {"lighting": -0.5}
