"""The exchanged types: the plan contract, session states, latents serialisation."""

from __future__ import annotations

import json
import math

import pytest
import torch

from chatface.engine.types import ACTIONS, Attribute, EditOp, EditPlan, Latents, SessionState
from chatface.errors import PlanError


def test_plan_round_trips_through_contract_json() -> None:
    data = {
        "action": "edit",
        "edits": [{"attribute": "smile", "strength": 0.5}, {"attribute": "age", "strength": -0.25}],
        "steps": 20,
        "reply": "Adding a medium smile, a little younger.",
    }
    plan = EditPlan.from_dict(data)
    assert plan.edits == (EditOp("smile", 0.5), EditOp("age", -0.25))
    assert json.loads(plan.to_json()) == data


def test_plan_from_dict_clamps_strengths() -> None:
    plan = EditPlan.from_dict({"action": "edit", "edits": [{"attribute": "a", "strength": 7}]})
    assert plan.edits[0].strength == 1.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "dance"}, "Unknown action"),
        ({"action": "undo", "edits": [{"attribute": "a", "strength": 0.1}]}, "carries no edits"),
        ({"action": "edit", "edits": [{"strength": 0.1}]}, "needs an attribute"),
        ({"action": "edit", "edits": [{"attribute": "a", "strength": "lots"}]}, "must be a number"),
        ({"action": "edit", "edits": [{"attribute": "a", "strength": math.nan}]}, "finite"),
        ({"action": "edit", "edits": [{"attribute": "a", "strength": True}]}, "must be a number"),
        ({"action": "edit", "steps": 0}, "positive integer"),
        ({"action": "chat", "reply": 5}, "reply must be a string"),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_plan_rejects_what_breaks_the_contract(data, message) -> None:
    with pytest.raises(PlanError, match=message):
        EditPlan.from_dict(data)


def test_edit_op_rejects_out_of_range_strength() -> None:
    with pytest.raises(PlanError, match=r"\[-1, 1\]"):
        EditOp("smile", 1.5)


def test_actions_are_the_contract_actions() -> None:
    assert set(ACTIONS) == {
        "edit", "undo", "redo", "reset", "show_original", "help", "list_attributes", "chat",
    }  # fmt: skip


def test_state_accumulates_and_clamps_per_attribute_range() -> None:
    attributes = {
        "smile": Attribute("smile", "s"),
        "age": Attribute("age", "a", strength_range=(-0.5, 0.75)),
    }
    state = SessionState()
    for _ in range(3):
        state = state.apply([EditOp("smile", 0.5), EditOp("age", 0.5)], attributes)
    assert state.strengths == {"smile": 1.0, "age": 0.75}
    state = state.apply([EditOp("smile", -1.0)], attributes)
    assert state.strengths == {"age": 0.75}  # back to zero: dropped
    assert SessionState.from_json(state.to_json()) == state
    with pytest.raises(PlanError, match="Unknown attribute"):
        state.apply([EditOp("wings", 0.5)], attributes)


def test_state_from_bad_json_is_a_plan_error() -> None:
    assert SessionState.from_json("{}") == SessionState()
    with pytest.raises(PlanError):
        SessionState.from_json('{"strengths": [1, 2]}')


def test_latents_round_trip_through_safetensors_bytes() -> None:
    latents = Latents(z_sem=torch.randn(2, 16), x_T=torch.randn(2, 3, 8, 8))
    blob = latents.to_bytes()
    assert not blob.startswith(b"\x80")  # not a pickle
    back = Latents.from_bytes(blob)
    assert torch.equal(back.z_sem, latents.z_sem) and torch.equal(back.x_T, latents.x_T)
