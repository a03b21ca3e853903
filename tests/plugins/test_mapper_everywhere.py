"""A trained attribute (a mapper file in the data dir) appears wherever attributes do,
with no code change: `chatface plugins`, the rule planner in English and Chinese, the
Anthropic planner's tool schema and the bots' /attributes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chatface.bots.conversation import ConversationCore
from chatface.cli.main import app
from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.engine.queue import LocalRenderQueue
from chatface.engine.types import EditOp
from chatface.storage import Store
from tests.fakes.anthropic_server import FakeAnthropicServer, plan
from tests.plugins.mapper_fixtures import write_mapper


@pytest.fixture
def curly(isolated_env: Path) -> Path:
    return write_mapper(isolated_env / "mappers", backend="diffae", latent_dim=512)


def test_chatface_plugins_lists_the_trained_attribute(curly) -> None:
    result = CliRunner().invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    report = {p["name"]: p for p in json.loads(result.output)}
    mapper = report["chatface.plugins.mapper"]
    assert "mapper" in mapper["registered"]["directions"]
    assert "curly_hair" in mapper["registered"]["attributes"]
    assert mapper["problems"] == []


@pytest.mark.parametrize(
    ("message", "edits"),
    [
        ("give him curly hair", [("curly_hair", 0.5)]),  # a two-word alias
        ("less curls please", [("curly_hair", -0.5)]),
        ("curly hair 30% and a big smile", [("curly_hair", 0.3), ("smile", 0.8)]),
        ("给他小卷毛", [("curly_hair", 0.5)]),  # a Chinese alias
        ("不要小卷毛", [("curly_hair", -0.5)]),
        ("給他小捲毛", [("curly_hair", 0.5)]),  # written in Traditional characters
    ],
)
def test_the_rule_planner_plans_it_from_its_aliases(curly, message, edits) -> None:
    result = Engine().plan(message)
    assert result.action == "edit"
    assert result.edits == tuple(EditOp(a, s) for a, s in edits)


def test_the_anthropic_planner_offers_it_in_the_tool_schema(
    curly, isolated_env, monkeypatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    server = FakeAnthropicServer().start()
    try:
        server.script(plan(edits=[("curly_hair", 0.6)], reply="Curls coming."))
        config = load_config({
            "CHATFACE_HOME": str(isolated_env),
            "CHATFACE_PLANNER_ANTHROPIC_BASE_URL": server.base_url,
        })  # fmt: skip
        result = Engine(config).plan("make the hair very curly", planner="anthropic")
        body = server.bodies()[0]
    finally:
        server.stop()
    assert result.edits == (EditOp("curly_hair", 0.6),)
    [tool] = body["tools"]
    enum = tool["input_schema"]["properties"]["edits"]["items"]["properties"]["attribute"]["enum"]
    assert "curly_hair" in enum and "smile" in enum
    line = "- curly_hair: Curly hair (a test mapper); aliases: curly, curly hair, curls, 小卷毛"
    assert line in body["system"]


def test_the_bots_list_it_in_attributes(curly, isolated_env) -> None:
    config = load_config()
    engine = Engine(config)
    store = Store.from_config(config)

    async def main() -> str:
        queue = LocalRenderQueue.from_engine(engine)
        core = ConversationCore(engine, store, queue, "telegram", backend="tiny")
        try:
            return (await core.command("u1", "c1", "attributes", "")).text
        finally:
            await queue.close()
            core.close()

    try:
        text = asyncio.run(main())
    finally:
        store.close()
    assert text.startswith("I can change: ") and "curly_hair" in text and "smile" in text
