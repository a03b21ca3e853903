"""Condition schedules for rendering."""

from __future__ import annotations

import pytest
import torch

from chatface.engine.sampling import make_schedule
from chatface.errors import ConfigError


def test_stable_schedule_starts_edited_and_returns_to_the_original() -> None:
    z_edit, z_orig = torch.ones(1, 4), torch.zeros(1, 4)
    schedule = make_schedule("stable", z_edit, z_orig)
    timesteps = [875, 750, 625, 500, 375, 250, 125, 0]  # 8 DDIM steps
    weights = [schedule(i, t)[0, 0].item() for i, t in enumerate(timesteps)]
    assert weights[0] == 1.0  # the first step is fully edited
    assert weights[1:] == pytest.approx([t / 1000 for t in timesteps[1:]])
    assert weights[-1] == 0.0  # the last step is the original
    assert all(a >= b for a, b in zip(weights, weights[1:], strict=False))


def test_constant_schedule_is_plain_diffae_editing() -> None:
    z_edit, z_orig = torch.ones(1, 4), torch.zeros(1, 4)
    schedule = make_schedule("constant", z_edit, z_orig)
    assert all(torch.equal(schedule(i, t), z_edit) for i, t in enumerate([500, 0]))


def test_unknown_schedule_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="render.schedule must be one of constant, stable"):
        make_schedule("wobbly", torch.ones(1), torch.ones(1))
