"""Deterministic DDIM for DiffAE: rendering (x_T -> x0) and inversion (x0 -> x_T).

Both reproduce the official spaced DDIM (phizaz/diffae ``diffusion/base.py``,
``ddim_sample_loop`` and ``ddim_reverse_sample_loop``): 1000 training steps,
linear betas 1e-4..0.02, eps prediction, eta = 0, and at every step the
predicted x0 is clipped to [-1, 1] and eps re-derived from the clipped x0.

Rendering is the same update as diffusers' ``DDIMScheduler`` with the spec's
settings (``timestep_spacing="leading"``, ``set_alpha_to_one``, ``clip_sample``,
``steps_offset=0``, ``use_clipped_model_output``); tests check the two agree step
for step. The update is written out here, in the official algebraic form,
because it matches the official code to the last bit on the same CPU, while the
scheduler's different float32 rounding alone grows to about 2e-4 over 20 steps
on random-weight networks: that would spend most of the 5e-4 the equivalence
fixtures allow, which is there for differences between CPU kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

import torch

from chatface.engine.types import Progress
from chatface.errors import ConfigError

if TYPE_CHECKING:
    from chatface.plugins.diffae.fast import Network

NUM_TRAIN_TIMESTEPS = 1000
BETA_START = 1e-4
BETA_END = 0.02

# The semantic condition of a render: one z_sem [B, D] for every step, or a
# function of (step index i, timestep t) so callers can vary it along the way.
Condition = torch.Tensor | Callable[[int, int], torch.Tensor]


def spaced_timesteps(steps: int) -> list[int]:
    """Timesteps of an official ``ddim{steps}`` run, ascending.

    The official rule takes the smallest integer stride s with
    ``len(range(0, 1000, s)) == steps``: ``1000 // steps`` when ``steps`` divides
    1000 (20 -> 0, 50, ..., 950, as diffusers' "leading" spacing), otherwise
    ``ceil(1000 / steps)`` (3 -> 0, 334, 668, where "leading" would give 0, 333, 666).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"DDIM steps must be a positive integer, got {steps!r}.")
    stride = -(-NUM_TRAIN_TIMESTEPS // steps)
    timesteps = list(range(0, NUM_TRAIN_TIMESTEPS, stride))
    if len(timesteps) != steps:
        raise ConfigError(
            f"{steps} DDIM steps cannot evenly stride {NUM_TRAIN_TIMESTEPS} timesteps; "
            "pick another step count (e.g. a divisor of 1000)."
        )
    return timesteps


@cache
def alphas_cumprod() -> tuple[float, ...]:
    """ᾱ_t for t = 0..999, in float64 like the official numpy tables."""
    betas = torch.linspace(BETA_START, BETA_END, NUM_TRAIN_TIMESTEPS, dtype=torch.float64)
    return tuple(torch.cumprod(1.0 - betas, dim=0).tolist())


def ddim_step(
    x: torch.Tensor, eps: torch.Tensor, alpha: float, alpha_to: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move ``x`` from noise level ᾱ = ``alpha`` to ``alpha_to``; returns (x_new, clipped x0).

    Going down (render) ``alpha_to`` is the previous kept ᾱ, 1 after t = 0; going
    up (inversion) it is the next kept ᾱ, 0 after the last. Coefficients are
    rounded to float32 where the official code rounds them (it tabulates in float64
    and gathers into float32 tensors).
    """
    coefficients = torch.tensor(_coefficients(alpha, alpha_to), dtype=torch.float32)
    return _update(x, eps, *coefficients.to(x.device))


def _coefficients(alpha: float, alpha_to: float) -> tuple[float, float, float]:
    """(sqrt(1 / ᾱ), sqrt(1 / ᾱ - 1), ᾱ_to) in float64: ``_update``'s coefficients."""
    return (1.0 / alpha) ** 0.5, (1.0 / alpha - 1.0) ** 0.5, alpha_to


def _update(
    x: torch.Tensor,
    eps: torch.Tensor,
    recip: torch.Tensor,
    recip_m1: torch.Tensor,
    target: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    pred_x0 = (recip * x - recip_m1 * eps).clamp(-1.0, 1.0)
    eps = (recip * x - pred_x0) / recip_m1
    return pred_x0 * target.sqrt() + (1.0 - target).sqrt() * eps, pred_x0


def _prepare(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 on the model's device."""
    return _upload(model, x.to(torch.float32))


def _upload(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` on the model's device; from the CPU to a GPU through pinned memory, without
    making the host wait."""
    device = next(model.parameters()).device
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device=device, non_blocking=True)
    return x.to(device=device)


def render(
    model: torch.nn.Module,
    x_T: torch.Tensor,
    condition: Condition,
    steps: int,
    progress: Progress | None = None,
    *,
    networks: Callable[[int], Network] | None = None,
) -> torch.Tensor:
    """DDIM from noise codes ``x_T`` [B, 3, S, S] to images in [-1, 1].

    ``condition`` is z_sem [B, D] or ``condition(i, t) -> [B, D]`` for step ``i``
    (0 .. steps-1) at integer timestep ``t`` (descending, t = 0 last).
    ``progress(done, steps)`` is called after each step. Computes in float32 on the
    model's device and returns on the device and in the dtype of ``x_T``. Gradients flow
    to ``condition`` (training renders); callers that only render wrap it in no_grad.
    ``networks(i)`` (the fast path) gives the ``(x_t, t, z_sem) -> eps`` function that
    makes step ``i`` instead of ``model`` (which still says the device).
    """
    x = _walk(model, x_T, spaced_timesteps(steps)[::-1], 1.0, condition, progress, networks)
    return x.to(device=x_T.device, dtype=x_T.dtype)


def invert_ddim(
    model: torch.nn.Module,
    x0: torch.Tensor,
    z_sem: torch.Tensor,
    steps: int,
    progress: Progress | None = None,
    *,
    networks: Callable[[int], Network] | None = None,
) -> torch.Tensor:
    """Deterministic DDIM run upwards: images ``x0`` in [-1, 1] -> noise codes ``x_T``.

    Walks the kept timesteps upwards (diffusers has no inverse scheduler with this
    clipping); ᾱ after the last one is 0, so ``x_T`` is the last re-derived eps.
    Same device, dtype, progress and ``networks`` conventions as ``render``.
    """
    x = _walk(model, x0, spaced_timesteps(steps), 0.0, z_sem, progress, networks)
    return x.to(device=x0.device, dtype=x0.dtype)


def predict_x0(
    model: torch.nn.Module, x_T: torch.Tensor, z_sem: torch.Tensor, steps: int
) -> torch.Tensor:
    """The clipped x0 that the first step of a ``steps``-step render predicts from ``x_T``:
    one network call, a cheap differentiable stand-in for a whole render in training."""
    t = spaced_timesteps(steps)[-1]
    x = _prepare(model, x_T)
    t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
    eps = model(x, t_batch, z_sem.to(device=x.device, dtype=torch.float32)).float()
    alphas = alphas_cumprod()
    alpha_next = alphas[spaced_timesteps(steps)[-2]] if steps > 1 else 1.0
    _, pred_x0 = ddim_step(x, eps, alphas[t], alpha_next)
    return pred_x0.to(device=x_T.device, dtype=x_T.dtype)


def _walk(
    model: torch.nn.Module,
    x: torch.Tensor,
    timesteps: list[int],
    alpha_after_last: float,
    condition: Condition,
    progress: Progress | None,
    networks: Callable[[int], Network] | None,
) -> torch.Tensor:
    """DDIM steps from each timestep to the next one in ``timesteps`` (down: render; up:
    inversion); the step after the last goes to ᾱ = ``alpha_after_last``.

    Everything a step needs from the host (coefficients, timesteps, conditions) goes to
    the device in one upload before the loop, so the loop itself never waits for it.
    """
    alphas = alphas_cumprod()
    x = _prepare(model, x)
    steps = len(timesteps)
    after = [alphas[t] for t in timesteps[1:]] + [alpha_after_last]
    table = [_coefficients(alphas[t], a) for t, a in zip(timesteps, after, strict=True)]
    coefficients = _prepare(model, torch.tensor(table, dtype=torch.float32))
    times = _upload(model, torch.tensor(timesteps))
    if callable(condition):
        each = [condition(i, t) for i, t in enumerate(timesteps)]
        conditions = _prepare(model, torch.stack(each))
    else:
        conditions = _prepare(model, condition).expand(steps, *condition.shape)
    for i in range(steps):
        network = model if networks is None else networks(i)
        eps = network(x, times[i].expand(x.shape[0]), conditions[i]).float()
        x, _ = _update(x, eps, *coefficients[i])
        if progress is not None:
            progress(i + 1, steps)
    return x
