"""The Engine uses whatever plugins registered: planners and direction providers."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from chatface import hookimpl
from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.engine.types import Attribute, EditOp, EditPlan, SessionState
from chatface.errors import PluginError


class Offset:
    """Adds strength * k to coordinate k, so composed edits are easy to check."""

    name = "offset"

    def attributes(self) -> list[Attribute]:
        return [Attribute("one", "first"), Attribute("two", "second")]

    def edit(self, z_sem, attribute, strength):  # type: ignore[no-untyped-def]
        out = z_sem.clone()
        out[:, 1 if attribute == "one" else 2] += strength
        return out


class Fixed:
    def __init__(self, config: object) -> None:
        self.config = config
        self.threads: list[int] = []  # where plan() ran

    def plan(self, message, context):  # type: ignore[no-untyped-def]
        self.threads.append(threading.get_ident())
        if message == "bad":
            return {"action": "edit"}
        if message == "unknown":
            return EditPlan("edit", (EditOp("wings", 0.5),), reply="Wings!")
        if message == "mixed":
            return EditPlan("edit", (EditOp("one", 0.5), EditOp("wings", 0.5)), reply="Both.")
        return EditPlan("edit", (EditOp("one", 0.5),), reply=f"{len(context.attributes)} known")


class AsyncFixed(Fixed):
    """Plans like Fixed, in a coroutine that says it ran."""

    async def aplan(self, message, context):  # type: ignore[no-untyped-def]
        plan = self.plan(message, context)
        return EditPlan(plan.action, plan.edits, reply="async") if message == "mixed" else plan


class Plugin:
    @hookimpl
    def chatface_register_directions(self, register):  # type: ignore[no-untyped-def]
        register(Offset())

    @hookimpl
    def chatface_register_planners(self, register):  # type: ignore[no-untyped-def]
        register("fixed", Fixed)
        register("async_fixed", AsyncFixed)


@pytest.fixture
def engine(pm, add_plugin) -> Engine:
    add_plugin(Plugin(), "test-plugin")
    return Engine(load_config(), pm)


def test_plan_uses_the_registered_planner(engine) -> None:
    plan = engine.plan("anything", planner="fixed")
    assert plan.edits == (EditOp("one", 0.5),)
    assert plan.reply == f"{len(engine.attributes())} known"
    assert engine.planner("fixed") is engine.planner("fixed")  # one instance per engine


def test_unknown_attributes_are_dropped(engine) -> None:
    plan = engine.plan("unknown", planner="fixed")
    assert plan.action == "chat" and "wings" in plan.reply
    plan = engine.plan("mixed", planner="fixed")
    assert plan.edits == (EditOp("one", 0.5),)
    assert "can't change wings" in plan.reply


def test_planner_errors_name_the_plugin(engine) -> None:
    with pytest.raises(PluginError, match="test-plugin returned dict"):
        engine.plan("bad", planner="fixed")
    with pytest.raises(PluginError, match="No planner called 'nope'.*fixed"):
        engine.plan("x", planner="nope")


def test_aplan_runs_a_plain_planner_in_a_worker_thread(engine) -> None:
    async def plan() -> tuple[EditPlan, int]:
        return await engine.aplan("mixed", planner="fixed"), threading.get_ident()

    result, loop_thread = asyncio.run(plan())
    assert result.edits == (EditOp("one", 0.5),) and "can't change wings" in result.reply
    assert engine.planner("fixed").threads != [loop_thread]
    assert len(engine.planner("fixed").threads) == 1


def test_aplan_awaits_a_planners_coroutine_and_checks_its_plan(engine) -> None:
    async def plan(message: str) -> tuple[EditPlan, int]:
        return await engine.aplan(message, planner="async_fixed"), threading.get_ident()

    result, loop_thread = asyncio.run(plan("mixed"))
    assert result.edits == (EditOp("one", 0.5),)
    assert result.reply == "async I can't change wings."
    assert engine.planner("async_fixed").threads == [loop_thread]
    with pytest.raises(PluginError, match="test-plugin returned dict"):
        asyncio.run(plan("bad"))


def test_edit_latents_adds_every_attribute_of_the_state(engine) -> None:
    z = torch.zeros(2, 4)
    edited = engine.edit_latents(z, SessionState({"one": 0.5, "two": -0.25}))
    assert torch.equal(edited, torch.tensor([[0.0, 0.5, -0.25, 0.0]] * 2))
    assert torch.equal(z, torch.zeros(2, 4))  # the original is untouched
    assert torch.equal(engine.edit_latents(z, SessionState()), z)
