"""Condition schedules: the built-in ones, exactness at strength 0, and a plugin's own."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from chatface import hookimpl
from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.engine.types import Attribute, EditOp, EditPlan, SessionState
from chatface.errors import ConfigError
from chatface.plugins.schedules import constant, stable
from tests.engine.test_batch import encoded_faces


def test_stable_schedule_starts_edited_and_returns_to_the_original() -> None:
    z_edit, z_orig = torch.ones(1, 4), torch.zeros(1, 4)
    schedule = stable(z_edit, z_orig)
    timesteps = [875, 750, 625, 500, 375, 250, 125, 0]  # 8 DDIM steps
    weights = [schedule(i, t)[0, 0].item() for i, t in enumerate(timesteps)]
    assert weights[0] == 1.0  # the first step is fully edited
    assert weights[1:] == pytest.approx([t / 1000 for t in timesteps[1:]])
    assert weights[-1] == 0.0  # the last step is the original
    assert all(a >= b for a, b in zip(weights, weights[1:], strict=False))


def test_constant_schedule_is_plain_diffae_editing() -> None:
    z_edit, z_orig = torch.ones(1, 4), torch.zeros(1, 4)
    schedule = constant(z_edit, z_orig)
    assert all(torch.equal(schedule(i, t), z_edit) for i, t in enumerate([500, 0]))


@pytest.mark.parametrize("name", ["stable", "constant"])
def test_strength_zero_renders_the_unedited_face_exactly(name: str) -> None:
    engine = Engine()
    [face] = encoded_faces(engine, 1)
    z_zero = engine.edit_latents(face.z_sem, SessionState({"smile": 0.0, "age": 0.0}), "tiny")
    unedited = engine.render_group("tiny", face, face.z_sem, "constant", 4)
    assert torch.equal(engine.render_group("tiny", face, z_zero, name, 4), unedited)
    z_smile = engine.edit_latents(face.z_sem, SessionState({"smile": 0.5}), "tiny")
    assert not torch.equal(engine.render_group("tiny", face, z_smile, name, 4), unedited)


def test_an_unknown_schedule_is_a_config_error() -> None:
    engine = Engine()
    [face] = encoded_faces(engine, 1)
    with pytest.raises(ConfigError, match="render.schedule must be one of constant, stable"):
        engine.render_group("tiny", face, face.z_sem, "wobbly", 2)


class Halfway:
    """A third-party schedule: the edit for the first half of the steps only."""

    seen: list[tuple[int, int]] = []

    @hookimpl
    def chatface_register_schedules(self, register):  # type: ignore[no-untyped-def]
        def halfway(z_edit, z_orig):  # type: ignore[no-untyped-def]
            def condition(i: int, t: int) -> torch.Tensor:
                Halfway.seen.append((i, t))
                return z_edit if t >= 500 else z_orig

            return condition

        register("halfway", halfway)


def test_a_plugin_schedule_is_chosen_by_the_setting(pm, add_plugin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    add_plugin(Halfway(), "halfway-plugin")
    monkeypatch.setenv("CHATFACE_RENDER_SCHEDULE", "halfway")
    engine = Engine(load_config(), pm)
    assert engine.registry.registered_by("halfway-plugin")["schedules"] == ["halfway"]
    [face] = encoded_faces(engine, 1)
    state = SessionState({"smile": 0.5})
    rendered = engine.render_latents(face, state, backend="tiny", steps=4)
    assert [i for i, _ in Halfway.seen] == [0, 1, 2, 3]
    z_edit = engine.edit_latents(face.z_sem, state, "tiny")
    assert torch.equal(rendered, engine.render_group("tiny", face, z_edit, "halfway", 4))
    assert not torch.equal(rendered, engine.render_group("tiny", face, z_edit, "stable", 4))


class Picky:
    """Attributes that prefer a schedule."""

    name = "picky"

    def attributes(self):  # type: ignore[no-untyped-def]
        return [
            Attribute("wink", "w", backend="tiny", schedule="constant"),
            Attribute("frown", "f", backend="tiny", schedule="stable"),
        ]

    def edit(self, z_sem, attribute, strength):  # type: ignore[no-untyped-def]
        return z_sem + strength

    @hookimpl
    def chatface_register_directions(self, register):  # type: ignore[no-untyped-def]
        register(self)


def test_a_plan_or_the_attributes_pick_the_schedule(pm, add_plugin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    add_plugin(Picky(), "picky-plugin")
    monkeypatch.setenv("CHATFACE_RENDER_SCHEDULE", "stable")
    engine = Engine(load_config(), pm)
    assert engine.schedule_for(SessionState({"smile": 0.5})) == "stable"  # the setting
    assert engine.schedule_for(SessionState({"wink": 0.5, "smile": 0.2})) == "constant"
    assert engine.schedule_for(SessionState({"wink": 0.5, "frown": 0.5})) == "stable"  # disagree
    assert engine.schedule_for(SessionState({"wink": 0.5}), "stable") == "stable"  # the plan's

    plan = EditPlan("edit", (EditOp("smile", 0.5),), schedule="constant")
    assert EditPlan.from_dict(plan.to_dict()) == plan
    assert "schedule" not in EditPlan("edit").to_dict()  # optional in the contract
    assert engine._checked_plan("rules", plan).schedule == "constant"
    assert engine._checked_plan("rules", replace(plan, schedule="wobbly")).schedule is None
