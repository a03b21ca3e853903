"""Built-in plugin: the condition schedules ``stable`` and ``constant``.

A condition schedule says which semantic latent conditions each rendering step.
ChatFace's "stable manipulation" conditions the first (noisiest) step on the edited z
and later steps on a blend that moves back towards the original z as the sample gets
less noisy, so coarse structure follows the edit while identity and background come
from the original (shared/specs/chatface.md). The exact blend in the paper is not
certain; ``stable`` uses nu = 1 - t / T and ``constant`` is plain DiffAE editing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chatface import hookimpl

if TYPE_CHECKING:
    import torch

    from chatface.engine.hookspecs import ScheduleFactory

# Training timesteps of the diffusion process (DiffAE: T = 1000).
NUM_TRAIN_TIMESTEPS = 1000
Condition = Callable[[int, int], "torch.Tensor"]


def constant(z_edit: torch.Tensor, z_orig: torch.Tensor) -> Condition:
    """Every step sees the edited latent."""
    return lambda i, t: z_edit


def stable(z_edit: torch.Tensor, z_orig: torch.Tensor) -> Condition:
    """Step 0 sees z_edit; step i at timestep t sees (1 - nu) z_edit + nu z_orig, nu = 1 - t/T.

    Written as z_orig + (1 - nu) (z_edit - z_orig): the same blend, and exactly z_orig
    when nothing is edited, so strength 0 renders the unedited face bit for bit.
    """
    delta = z_edit - z_orig

    def condition(i: int, t: int) -> torch.Tensor:
        if i == 0:
            return z_edit
        nu = 1.0 - t / NUM_TRAIN_TIMESTEPS
        return z_orig + (1.0 - nu) * delta

    return condition


@hookimpl
def chatface_register_schedules(register: Callable[[str, ScheduleFactory], None]) -> None:
    register("stable", stable)
    register("constant", constant)
