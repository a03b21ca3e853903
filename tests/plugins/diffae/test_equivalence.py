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
TOLERANCE = 1e-4


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
    assert error <= TOLERANCE, f"{name}: max abs error {error:.3g} > {TOLERANCE}"


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
