"""Our DiffAE matches the official code on the fixtures it produced (shared/fixtures).

Every ``diffae_official*.safetensors`` there is checked; the tiny one must exist.
Each holds an official state dict (``model.*``), the network shape (metadata
``config``) and official outputs (``io.*``), see shared/specs/diffae.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from chatface.plugins.diffae.config import DiffAEConfig
from chatface.plugins.diffae.model import DiffAEModel
from chatface.plugins.diffae.sampler import invert_ddim, render

FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures"
REQUIRED = FIXTURES / "diffae_official_tiny.safetensors"
# Max abs error allowed per output (shared/specs/diffae.md, "Equivalence fixture"): the
# render and x_T divide by sqrt(alpha_bar) ~ 0.006 near t = 999, so CPU-kernel round-off
# in eps (~1e-6) grows to ~1e-4 there; real mistakes give errors above 1e-2.
TOLERANCE = {"z_sem": 1e-4, "eps": 1e-4, "x_T": 5e-4, "render": 5e-4}


def fixture_paths() -> list[Path]:
    found = sorted(FIXTURES.glob("diffae_official*.safetensors"))
    # Listed even when missing so that the test fails (with a message) instead of vanishing.
    return found if REQUIRED in found else [REQUIRED, *found]


class Fixture:
    def __init__(self, path: Path) -> None:
        if not path.is_file():
            pytest.fail(
                f"The DiffAE equivalence fixture {path} is missing; it lives in the shared "
                "directory next to the repository (../shared/fixtures)."
            )
        with safe_open(str(path), "pt") as handle:
            self.meta = json.loads(handle.metadata()["config"])
        tensors = load_file(str(path))
        self.io = {k[3:]: v for k, v in tensors.items() if k.startswith("io.")}
        state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        self.config = DiffAEConfig.from_dict(self.meta)
        # Strict loading; the encoder depth comes from the weights if the config omits it.
        self.model = DiffAEModel.from_state_dict(state, self.config)


@pytest.fixture(scope="module", params=fixture_paths(), ids=lambda p: p.stem)
def fixture(request: pytest.FixtureRequest) -> Fixture:
    return Fixture(request.param)


def assert_close(name: str, ours: torch.Tensor, official: torch.Tensor) -> None:
    assert ours.shape == official.shape, name
    error = (ours - official).abs().max().item()
    bound = TOLERANCE[name]
    print(f"{name}: max abs error {error:.3g} (bound {bound:g})")
    assert error <= bound, f"{name}: max abs error {error:.3g} > {bound:g}"


def test_semantic_encoder(fixture: Fixture) -> None:
    with torch.no_grad():
        z_sem = fixture.model.encode(fixture.io["x0"])
    assert_close("z_sem", z_sem, fixture.io["z_sem"])


def test_noise_prediction(fixture: Fixture) -> None:
    io = fixture.io
    with torch.no_grad():
        eps = fixture.model(io["xt"], io["t"], io["z_sem"])
    assert_close("eps", eps, io["eps"])


def test_ddim_inversion(fixture: Fixture) -> None:
    io = fixture.io
    x_T = invert_ddim(fixture.model, io["x0"], io["z_sem"], fixture.meta["T_encode"])
    assert_close("x_T", x_T, io["x_T"])


def test_ddim_render(fixture: Fixture) -> None:
    io = fixture.io
    image = render(fixture.model, io["x_T"], io["z_sem"], fixture.meta["T_render"])
    assert_close("render", image, io["render"])


def test_the_render_bound_still_catches_real_mistakes(fixture: Fixture) -> None:
    # A wrong timestep spacing (one step more) must land far outside the render bound,
    # so the looser bound for CPU round-off does not hide sampler mistakes.
    io = fixture.io
    wrong = render(fixture.model, io["x_T"], io["z_sem"], fixture.meta["T_render"] + 1)
    error = (wrong - io["render"]).abs().max().item()
    print(f"render with {fixture.meta['T_render'] + 1} steps: max abs error {error:.3g}")
    assert error > 1e-2
