"""Chinese as people write it: Traditional characters and Chinese numerals.

Traditional requests must plan exactly like their Simplified counterparts (whole
plans: action, edits with strengths, steps), replies follow the user's script, and
counted numerals ("老十岁") plan exactly like Arabic ones ("老10岁") while words that
merely contain numeral characters (一点, 十分, 上一步) keep their meaning.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator, Sequence

import pytest

from chatface.config import load_config
from chatface.engine.types import EditPlan, PlanContext, SessionState
from chatface.plugins.celeba_directions import CelebaDirections
from chatface.plugins.rule_planner import RulePlanner, chinese, replies, script
from chatface.plugins.rule_planner.numerals import chinese_number, digits_for_numerals

ATTRS = tuple(CelebaDirections().attributes())


@pytest.fixture(scope="module")
def planner() -> RulePlanner:
    return RulePlanner(load_config({}))


def plan(
    planner: RulePlanner,
    message: str,
    state: dict[str, float] | None = None,
    recent: Sequence[tuple[str, str]] = (),
) -> EditPlan:
    return planner.plan(message, PlanContext(ATTRS, SessionState(state or {}), tuple(recent)))


def decision(result: EditPlan) -> tuple[object, ...]:
    """Everything of a plan but its reply."""
    return result.action, tuple((op.attribute, op.strength) for op in result.edits), result.steps


# (Traditional, Simplified): the same request as people write it in each script.
TRADITIONAL = [
    ("鬍子", "胡子"),
    ("眼鏡", "眼镜"),
    ("頭髮變白", "头发变白"),
    ("微笑", "微笑"),
    ("變老", "变老"),
    ("年輕一點", "年轻一点"),
    ("去掉鬍子", "去掉胡子"),
    ("戴眼鏡", "戴眼镜"),
    ("戴著眼鏡", "戴着眼镜"),
    ("老一點，戴眼鏡", "老一点，戴眼镜"),
    ("把頭髮染成金色", "把头发染成金色"),
    ("黑頭髮", "黑头发"),
    ("棕髮", "棕发"),
    ("不要化妝", "不要化妆"),
    ("口紅淡一點", "口红淡一点"),
    ("去掉他的鬍子和眼鏡", "去掉他的胡子和眼镜"),
    ("鬍鬚刮乾淨", "胡须刮干净"),
    ("讓她更漂亮", "让她更漂亮"),
    ("皮膚白一點", "皮肤白一点"),
    ("嘴巴張開", "嘴巴张开"),
    ("顯得老一些", "显得老一些"),
    ("非常年輕", "非常年轻"),
    ("變胖一點", "变胖一点"),
    ("加劉海", "加刘海"),
    ("雙下巴", "双下巴"),
    ("髮際線", "发际线"),
    ("八字鬍", "八字胡"),
    ("快速預覽", "快速预览"),
    ("加眼鏡，高質量", "加眼镜，高质量"),
    ("老十歲", "老十岁"),
    ("年輕兩歲", "年轻两岁"),
    ("撤銷上一步", "撤销上一步"),
    ("顯示原圖", "显示原图"),
    ("有哪些屬性", "有哪些属性"),
    ("幫助", "帮助"),
    ("重新開始", "重新开始"),
    ("謝謝", "谢谢"),
    ("把我變成貓", "把我变成猫"),
    # Taiwan spellings
    ("瀏海", "刘海"),
    ("落腮鬍", "络腮胡"),
    ("鬍碴", "胡茬"),
    ("瞇眼", "眯眼"),
    ("化粧", "化妆"),
    ("重設", "重置"),
    ("高品質", "高质量"),
]


@pytest.mark.parametrize(("traditional", "simplified"), TRADITIONAL)
def test_traditional_plans_like_simplified(planner, traditional, simplified) -> None:
    for state in ({}, {"beard": 0.6, "age": -0.3}):
        expected = plan(planner, simplified, state)
        got = plan(planner, traditional, state)
        assert decision(got) == decision(expected)
    assert expected.action != "chat" or simplified in ("谢谢", "把我变成猫")


def test_traditional_plans_with_the_expected_strengths(planner) -> None:
    # Anchors, so that a change breaking both scripts alike is caught too.
    assert decision(plan(planner, "老一點，戴眼鏡")) == (
        "edit",
        (("age", 0.25), ("eyeglasses", 0.5)),
        None,
    )
    assert decision(plan(planner, "去掉鬍子", {"beard": 0.6})) == ("edit", (("beard", -0.6),), None)
    assert decision(plan(planner, "鬍子")) == ("edit", (("beard", 0.5),), None)


def test_traditional_follow_ups_find_their_topic(planner) -> None:
    for traditional, simplified in (
        ("再多一點", "再多一点"),
        ("少一點", "少一点"),
        ("反過來", "反过来"),
    ):
        expected = plan(planner, simplified, {"age": 0.5}, [("user", "变老")])
        got = plan(planner, traditional, {"age": 0.5}, [("user", "變老")])
        assert decision(got) == decision(expected)
        assert got.action == "edit" and got.edits[0].attribute == "age"


def test_traditional_bot_replies_are_read_back(planner) -> None:
    confirmation = plan(planner, "老一點，戴眼鏡").reply
    assert confirmation == "好的，稍微變老，加上眼鏡。"
    result = plan(planner, "再多一點", recent=[("bot", confirmation)])
    assert [op.attribute for op in result.edits] == ["age", "eyeglasses"]


@pytest.mark.parametrize("attribute", [a.name for a in ATTRS])
def test_every_traditional_edit_reply_reads_back_as_the_same_edit(planner, attribute) -> None:
    vocab = planner.vocabulary(ATTRS)
    for strength, removal in ((0.25, False), (0.8, False), (-0.5, True), (-0.5, False)):
        simplified = replies.edit_reply([(attribute, strength, removal)], None, True)
        traditional = script.to_traditional(simplified)
        expected = planner.analyze(simplified, vocab)
        got = planner.analyze(traditional, vocab)
        assert got.edits == expected.edits, (simplified, traditional)


def test_the_reply_follows_the_users_script(planner) -> None:
    assert plan(planner, "老一点，戴眼镜").reply == "好的，稍微变老，加上眼镜。"
    assert plan(planner, "老一點，戴眼鏡").reply == "好的，稍微變老，加上眼鏡。"
    assert plan(planner, "棕髮").reply == "好的，加上棕髮。"  # not 棕發 ("send")
    assert plan(planner, "瞇眼").reply == "好的，加上瞇眼。"
    # Taiwan and Hong Kong quote with corner brackets.
    help_reply = plan(planner, "幫助").reply
    assert "「" in help_reply and "“" not in help_reply and "屬性列表" in help_reply
    assert plan(planner, "帮助").reply == replies.command_reply("help", True, ())
    for message in ("有哪些屬性", "把我變成貓", "謝謝", "撤銷", "再多一點"):
        reply = plan(planner, message).reply
        assert script.to_simplified(reply)[1] and not script.is_simplified(reply), reply
    for message in ("有哪些属性", "把我变成猫", "谢谢", "撤销", "再多一点"):
        reply = plan(planner, message).reply
        assert script.is_simplified(reply) and not script.to_simplified(reply)[1], reply
    # An English message gets an English reply, whatever the chat was in.
    english = plan(planner, "add glasses", recent=[("user", "鬍子")]).reply
    assert english == "Adding glasses."


def test_a_message_both_scripts_share_follows_the_chat(planner) -> None:
    simplified_reply = plan(planner, "笑").reply
    assert simplified_reply == "好的，加上微笑。"
    assert plan(planner, "笑", recent=[("user", "戴眼鏡"), ("bot", "好的，加上眼鏡。")]).reply == (
        "好的，加上微笑。"  # 微笑 is the same in both scripts
    )
    # The newest user message that tells the script decides.
    traditional_chat = [("user", "老一点"), ("user", "去掉鬍子")]
    simplified_chat = [("user", "去掉鬍子"), ("user", "老一点"), ("user", "笑")]
    assert plan(planner, "你好", recent=traditional_chat).reply == script.to_traditional(
        plan(planner, "你好").reply
    )
    assert plan(planner, "你好", recent=simplified_chat).reply == plan(planner, "你好").reply
    assert "發" in plan(planner, "你好", recent=traditional_chat).reply


def test_which_text_is_simplified() -> None:
    assert script.is_simplified("头发") and script.is_simplified("戴着眼镜")
    # Shared characters, even ones OpenCC's own standard writes otherwise (唇 -> 脣).
    assert not script.is_simplified("微笑") and not script.is_simplified("厚嘴唇")
    assert not script.is_simplified("頭髮") and not script.is_simplified("smile")
    assert script.to_simplified("頭髮") == ("头发", True)
    assert script.to_simplified("厚嘴唇") == ("厚嘴唇", False)


def test_simplified_words_are_left_as_they_are() -> None:
    """tw2s must not touch Simplified text, or Simplified users would lose words."""
    words: set[str] = set()

    def collect(value: object) -> None:
        if isinstance(value, str):
            words.add(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                collect(key)
                collect(item)
        elif isinstance(value, tuple | list):
            for item in value:
                collect(item)

    for name in dir(chinese):
        if name.startswith("ZH_"):
            collect(getattr(chinese, name))
    assert len(words) > 500
    for word in words:
        assert script.to_simplified(word) == (word, False), word


def test_converters_are_built_once() -> None:
    script.to_simplified("頭髮")
    assert script._converter("tw2s") is script._converter("tw2s")
    assert script._converter.cache_info().currsize >= 1


def test_a_lone_surrogate_next_to_traditional_text_is_harmless(planner) -> None:
    assert decision(plan(planner, "\ud800鬍子")) == decision(plan(planner, "胡子"))


@pytest.fixture
def without_opencc(monkeypatch) -> Iterator[None]:
    script._opencc.cache_clear()
    script._converter.cache_clear()
    monkeypatch.setitem(sys.modules, "opencc", None)  # makes "import opencc" fail
    yield
    script._opencc.cache_clear()
    script._converter.cache_clear()


def test_without_opencc_simplified_and_english_still_work(without_opencc, caplog) -> None:
    fresh = RulePlanner(load_config({}))
    with caplog.at_level(logging.WARNING, logger=script.__name__):
        assert decision(plan(fresh, "老一点，戴眼镜")) == (
            "edit",
            (("age", 0.25), ("eyeglasses", 0.5)),
            None,
        )
        assert decision(plan(fresh, "add glasses")) == ("edit", (("eyeglasses", 0.5),), None)
        assert plan(fresh, "老十岁").edits == plan(fresh, "老10岁").edits
        result = plan(fresh, "戴眼鏡")  # 鏡 unread, 戴 still means "add"
        assert result.reply and "眼镜" not in result.reply
        plan(fresh, "鬍子")
    warnings = [r for r in caplog.records if "opencc" in r.getMessage()]
    assert len(warnings) == 1


def test_opencc_is_imported_on_the_first_chinese_message_only() -> None:
    code = (
        "import sys\n"
        "from chatface.engine.types import PlanContext\n"
        "from chatface.plugins.celeba_directions import CelebaDirections\n"
        "from chatface.plugins.rule_planner import RulePlanner\n"
        "context = PlanContext(tuple(CelebaDirections().attributes()))\n"
        "planner = RulePlanner()\n"
        "planner.plan('add glasses', context)\n"
        "print('opencc' in sys.modules, end=' ')\n"
        "print(planner.plan('戴眼鏡', context).edits[0].attribute, end=' ')\n"
        "print('opencc' in sys.modules, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "eyeglasses", "True", "False"]


def test_the_slow_converter_loads_only_when_needed() -> None:
    """tw2s loads in milliseconds; s2tw (~0.1 s) waits for a Traditional reply or a mixed chat."""
    code = (
        "import opencc\n"
        "built = []\n"
        "class Spy(opencc.OpenCC):\n"
        "    def __init__(self, config, *args, **kwargs):\n"
        "        built.append(config)\n"
        "        super().__init__(config, *args, **kwargs)\n"
        "opencc.OpenCC = Spy\n"
        "from chatface.engine.types import PlanContext\n"
        "from chatface.plugins.celeba_directions import CelebaDirections\n"
        "from chatface.plugins.rule_planner import RulePlanner, script\n"
        "attributes = tuple(CelebaDirections().attributes())\n"
        "for traditional in ('戴眼鏡', None):\n"
        "    planner = RulePlanner()\n"
        "    for message in ('戴眼镜', '老一点', '笑'):\n"
        "        planner.plan(message, PlanContext(attributes, recent=[('user', '老一点')]))\n"
        "    print(built)\n"
        "    if traditional:\n"
        "        planner.plan(traditional, PlanContext(attributes))\n"
        "    else:\n"
        "        planner.plan('笑', PlanContext(attributes, recent=[('user', '戴眼鏡')]))\n"
        "    print(built)\n"
        "    built.clear()\n"
        "    script._converter.cache_clear()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["['tw2s']", "['tw2s', 's2tw']"] * 2


# Chinese numerals


@pytest.mark.parametrize(
    ("numeral", "value"),
    [
        ("一", 1), ("两", 2), ("二", 2), ("九", 9), ("十", 10), ("十五", 15), ("一十", 10),
        ("二十", 20), ("二十五", 25), ("九十九", 99), ("一百", 100), ("一百零五", 105),
        ("一百二十", 120), ("一百二", 120), ("两百", 200), ("一千", 1000), ("两千五", 2500),
        ("零", None), ("二五", None), ("十十", None), ("百", None), ("十百", None), ("", None),
    ],
)  # fmt: skip
def test_chinese_number(numeral, value) -> None:
    assert chinese_number(numeral) == value


@pytest.mark.parametrize(
    ("numerals", "digits"),
    [
        ("老十岁", "老10岁"),
        ("年轻两岁", "年轻2岁"),
        ("老二十岁", "老20岁"),
        ("年轻十五岁", "年轻15岁"),
        ("老一百岁", "老100岁"),
        ("看起来六十岁", "看起来60岁"),
        ("变成一个十五岁的孩子", "变成一个15岁的孩子"),
        ("老一岁", "老1岁"),
        ("老十 岁", "老10 岁"),
        ("二十步", "20步"),
        ("加眼镜，五十步", "加眼镜，50步"),
        ("笑容百分之三十", "笑容30%"),
        ("百分之三十的笑容", "30%的笑容"),
        ("老十歲", "老10岁"),
        ("年輕兩歲", "年轻2岁"),
    ],
)
def test_chinese_numerals_plan_like_arabic_ones(planner, numerals, digits) -> None:
    for state in ({}, {"age": 0.4, "smile": -0.2}):
        expected = plan(planner, digits, state)
        assert expected.action == "edit"
        assert decision(plan(planner, numerals, state)) == decision(expected)


def test_chinese_numerals_set_the_strength(planner) -> None:
    assert decision(plan(planner, "老十岁")) == ("edit", (("age", 0.25),), None)
    assert decision(plan(planner, "年轻两岁")) == ("edit", (("age", -0.05),), None)
    assert decision(plan(planner, "年轻二十岁")) == ("edit", (("age", -0.5),), None)
    assert decision(plan(planner, "二十步")) == ("edit", (), 20)
    assert decision(plan(planner, "笑容百分之三十")) == ("edit", (("smile", 0.3),), None)
    assert decision(plan(planner, "微笑百分之百")) == ("edit", (("smile", 1.0),), None)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("十分老", ("edit", (("age", 0.8),), None)),  # 十分 = very
        ("十分年轻", ("edit", (("age", -0.8),), None)),
        ("老一点", ("edit", (("age", 0.25),), None)),  # 一点 = a little
        ("老一点点", ("edit", (("age", 0.15),), None)),
        ("一些胡子", ("edit", (("beard", 0.25),), None)),
        ("笑一下", ("edit", (("smile", 0.5),), None)),  # 一下 = "for a moment"
        ("戴一顶帽子", ("edit", (("hat", 0.5),), None)),  # 一顶 counts hats, not strength
        ("微笑百分百", ("edit", (("smile", 1.0),), None)),
        ("上一步", ("undo", (), None)),
        ("退一步", ("undo", (), None)),
        ("返回上一步", ("undo", (), None)),
        ("撤销上一步", ("undo", (), None)),
    ],
)
def test_words_with_numeral_characters_keep_their_meaning(planner, message, expected) -> None:
    assert decision(plan(planner, message)) == expected


def test_numerals_are_rewritten_only_where_they_count() -> None:
    for text in (
        "十分老",
        "一点",
        "一些",
        "两边",
        "上一步",
        "万岁",
        "千岁",
        "一二十岁",
        "百分之百",
    ):
        assert digits_for_numerals(text) == text
