"""DiffAE config, network layout, sampler and backend on tiny random networks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from chatface.engine.types import Backend, Latents
from chatface.errors import ConfigError
from chatface.plugins.diffae.backend import DiffAEBackend
from chatface.plugins.diffae.config import PRESETS, DiffAEConfig
from chatface.plugins.diffae.model import DiffAEModel, load_model
from chatface.plugins.diffae.sampler import (
    alphas_cumprod,
    ddim_step,
    invert_ddim,
    render,
    spaced_timesteps,
)

TINY = {
    "image_size": 16,
    "model_channels": 8,
    "channel_mult": [1, 2],
    "enc_channel_mult": [1, 2, 2],
    "embed_channels": 12,
    "attention_resolutions": [8],
    "num_heads": 2,
    "num_res_blocks": 1,
}


def tiny_model(seed: int = 0) -> DiffAEModel:
    """Random values in every tensor: the official init zeroes output convs, eps would be 0."""
    torch.manual_seed(seed)
    model = DiffAEModel(DiffAEConfig.from_dict(TINY)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn_like(param) / max(1, param[0].numel()) ** 0.5)
    return model


def images(batch: int = 2, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, 16, 16, generator=generator) * 2 - 1


# --- config -------------------------------------------------------------------------


def test_config_round_trips_and_ignores_fixture_keys(tmp_path) -> None:
    config = DiffAEConfig.from_dict({**TINY, "T_encode": 10, "T_render": 5, "note": "x"})
    assert config.channel_mult == (1, 2) and config.attention_resolutions == (8,)
    assert DiffAEConfig.from_dict(config.to_dict()) == config
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    assert DiffAEConfig.from_json_file(path) == config


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"colour": 3}, "colour"),
        ({"image_size": None}, "image_size"),
        ({"num_heads": 0}, "num_heads"),
        ({"model_channels": True}, "model_channels"),
        ({"channel_mult": []}, "channel_mult"),
        ({"enc_channel_mult": [1, "2"]}, "enc_channel_mult"),
        ({"attention_resolutions": 16}, "attention_resolutions"),
        ({"image_size": 18, "channel_mult": [1, 2, 2]}, "image_size"),
    ],
)
def test_config_errors_name_the_field(change: dict, field: str) -> None:
    data = {k: v for k, v in {**TINY, **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=field):
        DiffAEConfig.from_dict(data)


def test_unbuildable_channel_layout_is_a_config_error() -> None:
    # 16 + 32 skip channels = 48: no GroupNorm(32) fits.
    config = DiffAEConfig.from_dict({**TINY, "model_channels": 16})
    with pytest.raises(ConfigError, match="GroupNorm over 48 channels"):
        DiffAEModel(config)


def test_config_file_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="Cannot read"):
        DiffAEConfig.from_json_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        DiffAEConfig.from_json_file(bad)


# --- network layout -----------------------------------------------------------------


def test_ffhq256_preset_has_the_official_size_and_layout() -> None:
    with torch.device("meta"):
        model = DiffAEModel(PRESETS["ffhq256_autoenc"])
    count = sum(p.numel() for p in model.parameters())
    assert count == pytest.approx(168e6, rel=0.03)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    # Spot checks of the official ffhq256_autoenc state dict: 18 blocks each side,
    # attention at 16 px (input blocks 13 and 14, 512 channels), 21 encoder blocks.
    assert shapes["time_embed.time_embed.0.weight"] == (512, 128)
    assert shapes["input_blocks.0.0.weight"] == (128, 3, 3, 3)
    assert shapes["input_blocks.13.1.qkv.weight"] == (1536, 512, 1)
    assert shapes["input_blocks.17.0.emb_layers.1.weight"] == (1024, 512)
    assert shapes["output_blocks.0.0.skip_connection.weight"] == (512, 1024, 1, 1)
    assert shapes["output_blocks.17.0.cond_emb_layers.1.weight"] == (128, 512)
    assert shapes["out.2.weight"] == (3, 128, 3, 3)
    assert shapes["encoder.input_blocks.20.0.in_layers.2.weight"] == (512, 512, 3, 3)
    assert shapes["encoder.out.3.weight"] == (512, 512, 1, 1)
    assert "input_blocks.18.0.in_layers.0.weight" not in shapes
    assert "encoder.input_blocks.21.0.in_layers.0.weight" not in shapes


def test_from_state_dict_is_strict_and_load_model_prefers_ema(tmp_path) -> None:
    ema, trained = tiny_model(0), tiny_model(1)
    tensors = {f"ema_model.{k}": v for k, v in ema.state_dict().items()}
    tensors.update({f"model.{k}": v for k, v in trained.state_dict().items()})
    tensors["x_T"] = torch.zeros(1)
    save_file(tensors, tmp_path / "ckpt.safetensors")
    loaded = load_model(tmp_path / "ckpt.safetensors", ema.config)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in ema.state_dict().items())

    state = ema.state_dict()
    state.pop("out.2.bias")
    with pytest.raises(ConfigError, match=r"out\.2\.bias"):
        DiffAEModel.from_state_dict(state, ema.config)
    with pytest.raises(ConfigError, match="does not exist"):
        load_model(tmp_path / "nothing.safetensors", ema.config)


# --- sampler ------------------------------------------------------------------------


def test_spaced_timesteps_follow_the_official_rule() -> None:
    assert spaced_timesteps(20) == list(range(0, 1000, 50))
    assert spaced_timesteps(8) == list(range(0, 1000, 125))
    assert spaced_timesteps(3) == [0, 334, 668]
    for bad in (0, 1001, 2.0, 400):
        with pytest.raises(ConfigError, match="DDIM steps"):
            spaced_timesteps(bad)


@pytest.mark.parametrize("steps", [4, 8, 20])
def test_render_step_equals_diffusers_ddim(steps: int) -> None:
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        timestep_spacing="leading",
        set_alpha_to_one=True,
        clip_sample=True,
        steps_offset=0,
    )
    scheduler.set_timesteps(steps)
    ours = spaced_timesteps(steps)[::-1]
    assert scheduler.timesteps.tolist() == ours
    alphas = alphas_cumprod()
    generator = torch.Generator().manual_seed(steps)
    for i, t in enumerate(ours):
        x = torch.randn(2, 3, 8, 8, generator=generator) * 2
        eps = torch.randn(2, 3, 8, 8, generator=generator)
        expected = scheduler.step(eps, t, x, eta=0.0, use_clipped_model_output=True).prev_sample
        alpha_prev = alphas[ours[i + 1]] if i + 1 < steps else 1.0
        got, _ = ddim_step(x, eps, alphas[t], alpha_prev)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_condition_schedule_gets_step_and_timestep() -> None:
    model = tiny_model()
    x_T = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    z_sem = torch.randn(2, 12, generator=torch.Generator().manual_seed(3))
    calls: list[tuple[int, int]] = []

    def constant(i: int, t: int) -> torch.Tensor:
        calls.append((i, t))
        return z_sem

    from_tensor = render(model, x_T, z_sem, 3)
    from_callable = render(model, x_T, constant, 3)
    assert calls == [(0, 668), (1, 334), (2, 0)]
    assert torch.equal(from_tensor, from_callable)
    # The condition really is used per step: changing it after the first step matters.
    switched = render(model, x_T, lambda i, t: z_sem if i == 0 else -z_sem, 3)
    assert (switched - from_tensor).abs().max() > 1e-3


def test_invert_and_render_are_deterministic_and_keep_shapes() -> None:
    model = tiny_model()
    x0 = images()
    with torch.no_grad():
        z_sem = model.encode(x0)
    assert z_sem.shape == (2, 12)
    seen: list[tuple[int, int]] = []
    x_T = invert_ddim(model, x0, z_sem, 5, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 5) for i in range(1, 6)]
    assert x_T.shape == x0.shape and torch.isfinite(x_T).all()
    assert not torch.allclose(x_T, x0)
    assert torch.equal(x_T, invert_ddim(model, x0, z_sem, 5))
    image = render(model, x_T, z_sem, 4)
    assert image.shape == x0.shape and image.abs().max() <= 1.0
    assert torch.equal(image, render(model, x_T, z_sem, 4))
    # float64 in, float64 out (computed in float32 inside).
    image64 = render(model, x_T.double(), z_sem.double(), 4)
    assert image64.dtype == torch.float64
    torch.testing.assert_close(image64.float(), image)


# --- backend ------------------------------------------------------------------------


def test_backend_operations() -> None:
    model = tiny_model()
    stats = {"conds_mean": torch.full((12,), 0.5), "conds_std": torch.full((12,), 2.0)}
    backend = DiffAEBackend(model, latent_stats=stats, device="auto")
    assert isinstance(backend, Backend)
    assert (backend.image_size, backend.latent_dim) == (16, 12)
    x0 = images()
    progress: list[int] = []
    latents = backend.encode(x0, steps=4, progress=lambda done, total: progress.append(done))
    assert isinstance(latents, Latents) and progress == [1, 2, 3, 4]
    with torch.no_grad():
        z_sem = model.encode(x0)
    torch.testing.assert_close(latents.z_sem, z_sem)
    torch.testing.assert_close(latents.x_T, invert_ddim(model, x0, z_sem, 4))

    reconstruction = backend.render(latents, None, steps=4)
    torch.testing.assert_close(reconstruction, render(model, latents.x_T, z_sem, 4))
    scheduled = backend.render(latents, lambda i, t: latents.z_sem, steps=4)
    torch.testing.assert_close(scheduled, reconstruction)

    t = torch.tensor([10, 900])
    with torch.no_grad():
        expected = model(latents.x_T, t, z_sem)
    torch.testing.assert_close(backend.eps(latents.x_T, t, z_sem), expected)
    torch.testing.assert_close(backend.normalize(z_sem), (z_sem - 0.5) / 2.0)
    torch.testing.assert_close(backend.denormalize(backend.normalize(z_sem)), z_sem)
    with pytest.raises(ValueError, match=r"\[B, 3, 16, 16\]"):
        backend.semantic_encode(torch.zeros(1, 3, 32, 32))


def test_docs_api_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "api.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert code, "docs/api.md lost its example"
    exec(compile(code.group(1), "docs/api.md", "exec"), {})
    out = capsys.readouterr().out
    assert "10/10" in out and out.count("torch.Size([2, 3, 32, 32])") == 4


def test_encoder_depth_is_read_from_the_weights_when_the_config_leaves_it_out() -> None:
    from chatface.plugins.diffae.config import DiffAEConfig
    from chatface.plugins.diffae.model import DiffAEModel

    fields = {
        "image_size": 32, "model_channels": 32, "channel_mult": [1, 2],
        "enc_channel_mult": [1, 2, 2], "embed_channels": 32, "attention_resolutions": [16],
        "num_heads": 1, "num_res_blocks": 1,
    }  # fmt: skip
    # The official encoder keeps its own depth (default 2) whatever num_res_blocks says.
    trained = DiffAEModel(DiffAEConfig.from_dict(fields | {"enc_num_res_blocks": 2}))
    loaded = DiffAEModel.from_state_dict(trained.state_dict(), DiffAEConfig.from_dict(fields))
    assert loaded.config.enc_num_res_blocks == 2
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(loaded.encode(x), trained.encode(x), rtol=0, atol=0)


def test_renders_keep_gradients_towards_the_condition_and_the_network_stays_frozen() -> None:
    backend = DiffAEBackend(tiny_model(), device="cpu")
    assert not any(p.requires_grad for p in backend.model.parameters())
    x_T = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    z_sem = torch.randn(2, 12, requires_grad=True)
    latents = Latents(z_sem=z_sem.detach(), x_T=x_T)
    images = backend.render(latents, z_sem, steps=3)
    (grad,) = torch.autograd.grad(images.square().sum(), z_sem)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # The one-step x0 prediction is the first render step's clipped x0 estimate.
    x0 = backend.predict_x0(latents, z_sem, steps=3)
    t = spaced_timesteps(3)[-1]
    eps = backend.eps(x_T, t, z_sem.detach())
    expected = ddim_step(x_T, eps, alphas_cumprod()[t], alphas_cumprod()[spaced_timesteps(3)[-2]])[
        1
    ]
    torch.testing.assert_close(x0.detach(), expected, rtol=0, atol=1e-6)
    (grad,) = torch.autograd.grad(x0.square().sum(), z_sem)
    assert grad.abs().sum() > 0
