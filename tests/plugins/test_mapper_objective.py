"""The ChatFace objective on tiny models: tiny backend, tiny CLIP, tiny identity network."""

from __future__ import annotations

import pytest
import torch

from chatface.config import load_config
from chatface.engine.editor import Engine
from chatface.errors import ConfigError
from chatface.plugins.mapper.objective import TEMPLATES, Objective, load_clip_model, subject

SETTINGS = {
    "CHATFACE_ENGINE_BACKEND": "tiny",
    "CHATFACE_IDENTITY_MODEL": "tiny",
    "CHATFACE_METHOD_CLIP_MODEL": "tiny",
    "CHATFACE_METHOD_LOSS_STEPS": "2",
}


@pytest.fixture
def engine(monkeypatch) -> Engine:
    for name, value in SETTINGS.items():
        monkeypatch.setenv(name, value)
    return Engine(load_config())


def latents(engine: Engine, batch: int = 2):
    from chatface.engine.types import Latents

    generator = torch.Generator().manual_seed(3)
    dim, size = engine.backend().latent_dim, engine.backend().image_size
    return Latents(
        torch.randn(batch, dim, generator=generator),
        torch.randn(batch, 3, size, size, generator=generator),
    )


def test_text_direction_is_a_unit_vector_averaged_over_templates() -> None:
    clip = load_clip_model("tiny")
    direction = clip.text_direction("a photo of a face", "a photo of a face with curly hair")
    assert direction.shape == (32,) and abs(float(direction.norm()) - 1) < 1e-5
    assert subject("A photo of a face with curly hair.") == "a face with curly hair"
    # Averaging over the templates changes the direction (each template is used).
    one = clip.encode_texts(["a face with curly hair"]) - clip.encode_texts(["a face"])
    assert float(torch.nn.functional.cosine_similarity(one[0], direction, dim=0)) < 0.999
    assert len(TEMPLATES) >= 4
    with pytest.raises(ConfigError, match="method.clip_model"):
        load_clip_model("no-such-clip")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_no_edit_costs_only_the_clip_term_and_gradients_reach_z_edit(
    engine, monkeypatch, precision
) -> None:
    # With a fast path configured, the unedited reference still renders the way the
    # edits do (exact fp32, gradients on), or the L1 term would be bf16 noise.
    monkeypatch.setenv("CHATFACE_RENDER_PRECISION", precision)
    monkeypatch.setenv("CHATFACE_RENDER_EXACT_STEPS", "0")  # loss renders are 2 steps
    engine = Engine(load_config())
    objective = Objective.from_config(engine)
    lat = latents(engine)
    direction = objective.clip.text_direction("a face", "a face with a mohawk")
    terms = objective(lat, lat.z_sem.clone(), direction)
    values = terms.as_floats()
    assert values["l1"] == 0 and values["latent"] == 0 and abs(values["identity"]) < 1e-5
    assert values["clip"] == pytest.approx(1.0)  # no change: cos 0
    z_edit = (lat.z_sem + 0.5 * torch.randn_like(lat.z_sem)).requires_grad_(True)
    terms = objective(lat, z_edit, direction)
    assert all(v > 0 for k, v in terms.as_floats().items() if k != "total")
    total = 0.2 * (terms.l1 + terms.latent) + 0.5 * terms.identity + 2.0 * terms.clip
    torch.testing.assert_close(terms.total, total)
    (grad,) = torch.autograd.grad(terms.total, z_edit)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_optimising_an_offset_lowers_the_directional_loss(engine, monkeypatch) -> None:
    # The one-step x0 render keeps this fast; the DDIM render's gradients are checked above.
    monkeypatch.setitem(engine.config.values, "method.loss_render", "x0")
    objective = Objective.from_config(engine)
    lat = latents(engine, batch=1)
    direction = objective.clip.text_direction("a face", "a face with a mohawk")
    reference = objective.reference(lat)
    offset = torch.zeros_like(lat.z_sem).normal_(0, 0.01).requires_grad_(True)
    optimizer = torch.optim.Adam([offset], lr=0.03)
    losses = []
    for _ in range(8):
        terms = objective(lat, lat.z_sem + offset, direction, reference)
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        losses.append(terms.as_floats()["clip"])
    assert losses[-1] < losses[0] - 0.2, losses
