"""Condition schedules: which semantic latent conditions each rendering step.

ChatFace's "stable manipulation" conditions the first (noisiest) step on the edited
z and later steps on a blend that moves back towards the original z as the sample gets
less noisy, so coarse structure follows the edit while identity and background come
from the original (shared/specs/chatface.md). The exact blend in the paper is not
certain; ``stable`` uses nu = 1 - t / T and ``constant`` is plain DiffAE editing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chatface.errors import ConfigError

if TYPE_CHECKING:
    import torch

# Training timesteps of the diffusion process (DiffAE: T = 1000).
NUM_TRAIN_TIMESTEPS = 1000

ConditionSchedule = Callable[[int, int], "torch.Tensor"]


def constant_schedule(z_edit: torch.Tensor, z_orig: torch.Tensor) -> ConditionSchedule:
    """Every step sees the edited latent."""
    return lambda i, t: z_edit


def stable_schedule(z_edit: torch.Tensor, z_orig: torch.Tensor) -> ConditionSchedule:
    """Step 0 sees z_edit; step i at timestep t sees (1 - nu) z_edit + nu z_orig, nu = 1 - t/T."""

    def condition(i: int, t: int) -> torch.Tensor:
        if i == 0:
            return z_edit
        nu = 1.0 - t / NUM_TRAIN_TIMESTEPS
        return (1.0 - nu) * z_edit + nu * z_orig

    return condition


SCHEDULES: dict[str, Callable[[torch.Tensor, torch.Tensor], ConditionSchedule]] = {
    "stable": stable_schedule,
    "constant": constant_schedule,
}


def make_schedule(name: str, z_edit: torch.Tensor, z_orig: torch.Tensor) -> ConditionSchedule:
    if name not in SCHEDULES:
        known = ", ".join(sorted(SCHEDULES))
        raise ConfigError(f"render.schedule must be one of {known}; got {name!r}.")
    return SCHEDULES[name](z_edit, z_orig)
