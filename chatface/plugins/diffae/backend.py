"""The DiffAE backend: aligned faces <-> (z_sem, x_T) latents, for the engine.

``DiffAEBackend`` implements ``chatface.engine.types.Backend`` and is also the
small public API of this package, four operations:

- ``semantic_encode(images) -> z_sem``
- ``stochastic_encode(images, z_sem, steps) -> x_T`` (DDIM inversion)
- ``render(latents, condition, steps) -> images`` (a z_sem tensor or a per-step schedule)
- ``eps(x_t, t, z_sem) -> eps`` (one network call)
- ``predict_x0(latents, z_sem, steps) -> images`` (the first render step's x0 estimate)

plus ``encode`` (both encodings) and ``normalize``/``denormalize`` with the
z_sem statistics that attribute directions work in. The network's weights are frozen;
renders keep gradients towards the condition (training mapping networks), so callers
that only render wrap them in ``torch.no_grad()`` (the engine does). Renders without
gradients take the backend's fast path (:mod:`chatface.plugins.diffae.fast`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from chatface.engine.devices import resolve_device
from chatface.engine.types import Latents, Progress
from chatface.plugins.diffae import fast as fast_path
from chatface.plugins.diffae.fast import FastPath, Network
from chatface.plugins.diffae.model import DiffAEModel
from chatface.plugins.diffae.sampler import Condition, invert_ddim
from chatface.plugins.diffae.sampler import predict_x0 as predict_x0_ddim
from chatface.plugins.diffae.sampler import render as render_ddim


@dataclass(frozen=True)
class LatentStats:
    """Mean and std of z_sem over the training set (official ``latent.pkl``)."""

    conds_mean: torch.Tensor
    conds_std: torch.Tensor

    @classmethod
    def from_mapping(cls, tensors: Mapping[str, torch.Tensor]) -> LatentStats:
        try:
            mean, std = tensors["conds_mean"], tensors["conds_std"]
        except KeyError as exc:
            raise ValueError(
                f"Latent statistics need conds_mean and conds_std; {exc} is missing."
            ) from exc
        return cls(mean.float().reshape(-1), std.float().reshape(-1))


class DiffAEBackend:
    """A loaded DiffAE model on one device, speaking in [-1, 1] image tensors.

    Inputs may live on any device; results come back on the device of the input.
    """

    def __init__(
        self,
        model: DiffAEModel,
        latent_stats: LatentStats | Mapping[str, torch.Tensor] | None = None,
        device: str | torch.device = "auto",
        weights_sha256: str = "",
        fast: FastPath | None = None,
    ) -> None:
        self.device = resolve_device(device)
        # Stored with each face, so latents are never rendered with other weights unnoticed.
        self.weights_sha256 = weights_sha256
        self.model = model.to(device=self.device, dtype=torch.float32).eval().requires_grad_(False)
        self.image_size = model.config.image_size
        self.latent_dim = model.config.embed_channels
        if latent_stats is not None and not isinstance(latent_stats, LatentStats):
            latent_stats = LatentStats.from_mapping(latent_stats)
        if latent_stats is not None and latent_stats.conds_mean.numel() != self.latent_dim:
            raise ValueError(
                f"Latent statistics have {latent_stats.conds_mean.numel()} dimensions, "
                f"the model's z_sem has {self.latent_dim}."
            )
        self.latent_stats = latent_stats
        self.fast = fast or FastPath()
        self._networks: tuple[Network, Network] | None = None

    def step_networks(self) -> tuple[Network, Network] | None:
        """The fast path's step functions ``(x_t, t, z_sem) -> eps``: (exact steps, the
        others), built on first use; None when renders run the plain fp32 model (no fast
        path, or gradients are on)."""
        if torch.is_grad_enabled() or self.fast == FastPath():
            return None
        if self._networks is None:
            fast = self.fast
            exact = fast_path.network(self.model, "fp32", fast.compile)
            reduced = exact
            if fast.reduced:
                copy = fast_path.reduced_copy(self.model, fast.precision)
                reduced = fast_path.network(copy, fast.precision, fast.compile)
            self._networks = exact, reduced
        return self._networks

    def _check_images(self, images: torch.Tensor) -> None:
        size = self.image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
            shape = tuple(images.shape)
            raise ValueError(
                f"Expected aligned faces of shape [B, 3, {size}, {size}], got {shape}."
            )

    @torch.no_grad()
    def semantic_encode(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] images in [-1, 1] -> z_sem [B, latent_dim]."""
        self._check_images(images)
        z_sem = self.model.encode(images.to(device=self.device, dtype=torch.float32))
        return z_sem.to(images.device)

    def stochastic_encode(
        self,
        images: torch.Tensor,
        z_sem: torch.Tensor,
        steps: int,
        progress: Progress | None = None,
    ) -> torch.Tensor:
        """Noise codes x_T [B, 3, S, S] of ``images`` under ``z_sem`` (DDIM inversion)."""
        self._check_images(images)
        with torch.no_grad():
            networks = self.step_networks()
            # Inversion stays in float32: every later edit of the face starts from x_T.
            exact = None if networks is None else (lambda i: networks[0])
            return invert_ddim(self.model, images, z_sem, steps, progress, networks=exact)

    def encode(self, images: torch.Tensor, steps: int, progress: Progress | None = None) -> Latents:
        """Both codes of aligned faces: what a chat session stores once per photo."""
        z_sem = self.semantic_encode(images)
        return Latents(z_sem=z_sem, x_T=self.stochastic_encode(images, z_sem, steps, progress))

    def render(
        self,
        latents: Latents,
        condition_schedule: Condition | None,
        steps: int,
        progress: Progress | None = None,
    ) -> torch.Tensor:
        """Images in [-1, 1] from ``latents.x_T``.

        ``condition_schedule`` is ``(i, t) -> z_sem`` per step, a fixed z_sem
        tensor, or ``None`` for ``latents.z_sem`` (a plain reconstruction).
        """
        condition = latents.z_sem if condition_schedule is None else condition_schedule
        networks = self.step_networks()
        if networks is None:
            return render_ddim(self.model, latents.x_T, condition, steps, progress)
        exact, reduced = networks
        first = self.fast.exact_steps

        def step(i: int) -> Network:
            return exact if i < first else reduced

        return render_ddim(self.model, latents.x_T, condition, steps, progress, networks=step)

    def predict_x0(self, latents: Latents, z_sem: torch.Tensor, steps: int) -> torch.Tensor:
        """The x0 the first step of a ``steps``-step render predicts under ``z_sem``
        (differentiable, one network call): a cheap stand-in for a render in training."""
        return predict_x0_ddim(self.model, latents.x_T, z_sem, steps)

    @torch.no_grad()
    def eps(self, x_t: torch.Tensor, t: torch.Tensor | int, z_sem: torch.Tensor) -> torch.Tensor:
        """One network call: the noise predicted in ``x_t`` at timestep(s) ``t``."""
        out = self.model(
            x_t.to(device=self.device, dtype=torch.float32),
            torch.as_tensor(t, device=self.device),
            z_sem.to(device=self.device, dtype=torch.float32),
        )
        return out.to(device=x_t.device, dtype=x_t.dtype)

    def normalize(self, z_sem: torch.Tensor) -> torch.Tensor:
        """(z - conds_mean) / conds_std: the space attribute directions live in."""
        stats = self._stats()
        return (z_sem - stats.conds_mean.to(z_sem)) / stats.conds_std.to(z_sem)

    def denormalize(self, z_norm: torch.Tensor) -> torch.Tensor:
        """Inverse of ``normalize``."""
        stats = self._stats()
        return z_norm * stats.conds_std.to(z_norm) + stats.conds_mean.to(z_norm)

    def _stats(self) -> LatentStats:
        if self.latent_stats is None:
            raise ValueError("This DiffAE backend was created without latent statistics.")
        return self.latent_stats
