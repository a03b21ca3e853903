"""Learning a free-text offset on tiny models, and the free_text provider's files."""

from __future__ import annotations

import pytest
import torch

from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.plugins.mapper import zero_shot_learn
from chatface.plugins.mapper.zero_shot import (
    FreeTextDirections,
    ZeroShotError,
    attribute_name,
    target_prompt,
)


@pytest.fixture
def engine(pm, monkeypatch):  # type: ignore[no-untyped-def]
    for name, value in {
        "ENGINE_BACKEND": "tiny", "IDENTITY_MODEL": "tiny", "ZERO_SHOT_ENABLED": "on",
        "ZERO_SHOT_RENDER_STEPS": "1", "ZERO_SHOT_LR": "0.05", "METHOD_CLIP_MODEL": "tiny",
    }.items():  # fmt: skip
        monkeypatch.setenv(f"CHATFACE_{name}", value)
    return Engine(load_config(), pm)


def test_the_directional_loss_falls(engine) -> None:  # type: ignore[no-untyped-def]
    face = engine.open_face(_photo(), steps=2)
    losses: list[float] = []
    target = target_prompt("looking like a vampire")
    offset = zero_shot_learn.learn_offset(
        engine, face.latents, "tiny", target, steps=6, losses=losses
    )
    assert offset.shape == face.latents.z_sem.shape and offset.abs().sum() > 0
    assert min(losses[2:]) < losses[0] - 0.05, losses
    assert zero_shot_learn.expected_seconds(engine, "tiny") > 0  # measured while learning


def test_the_provider_keeps_one_offset_per_face(engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    provider = FreeTextDirections(tmp_path)
    z = torch.randn(2, 8)
    assert provider.attributes() == [] and provider.start("with a mohawk", "tiny") is None
    name = provider.save("with a mohawk", "tiny", z[:1], torch.ones(1, 8))
    assert name == attribute_name("with a mohawk") == "mohawk"
    (attribute,) = provider.attributes()
    assert attribute.name == "mohawk" and "with a mohawk" in attribute.aliases
    assert provider.text("mohawk") == "with a mohawk" and provider.text("smile") is None
    assert provider.has_face("mohawk", z[:1]) and not provider.has_face("mohawk", z[1:])
    assert torch.equal(provider.edit(z[:1], "mohawk", 0.5), z[:1] + 0.5)
    assert provider.edit(z, "mohawk", 0.0) is z  # strength 0: the face as it is
    with pytest.raises(ZeroShotError, match="learned for other photos"):
        provider.edit(z, "mohawk", 0.5)
    assert torch.equal(provider.start("with a mohawk", "tiny"), torch.ones(1, 8))
    assert target_prompt("curly hair") == "a photo of a face with curly hair"


def _photo() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parents[1] / "data" / "faces" / "grace_hopper.jpg")


def test_the_anthropic_planner_offers_and_confirms(pm) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from chatface.engine.types import PlanContext
    from chatface.plugins.anthropic_planner import AnthropicPlanner, system_prompt

    planner = AnthropicPlanner(load_config())
    attributes = Engine(load_config(), pm).attributes()

    def answer(learn: object, seconds: float | None = 12.0):  # type: ignore[no-untyped-def]
        data = {"action": "chat", "edits": [], "steps": None, "reply": "x", "learn": learn}
        block = SimpleNamespace(type="tool_use", name="edit_plan", input=data)
        context = PlanContext(attributes, learn_seconds=seconds)
        return planner._parse(SimpleNamespace(content=[block]), context, "k")[0]

    offer = answer({"text": "with a mohawk", "strength": 0.5, "confirmed": False})
    assert offer.learn is not None and not offer.learn.confirmed
    assert (
        offer.reply.startswith("I don't know 'with a mohawk' yet") and "about 12 s" in offer.reply
    )
    yes = answer({"text": "with a mohawk", "strength": 0.8, "confirmed": True})
    assert (
        yes.learn is not None and yes.learn.confirmed and yes.to_dict()["learn"]["strength"] == 0.8
    )
    off = answer({"text": "with a mohawk", "strength": 0.5, "confirmed": False}, None)
    assert off.learn is None and "learn" not in off.to_dict()
    assert "Learning:" in system_prompt(PlanContext(attributes, learn_seconds=3.0))
    assert "Learning:" not in system_prompt(PlanContext(attributes))
