"""Built-in plugin: the ``tiny`` backend, a DiffAE network with RANDOM weights.

It exists so that the whole pipeline (photo -> face -> latents -> edit -> render ->
paste back) can run offline, on a fresh install, in seconds: for demos without
downloaded weights, tests and dry runs. Its output is noise shaped by the photo, never
a real edit. Its attributes carry the CelebA names but move z_sem along fixed random
directions of the tiny latent space. The ``tiny`` identity model is a small random
convolutional network with the same role as a face-recognition one (``identity.model``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatface import hookimpl
from chatface.engine.types import Attribute, DirectionProvider
from chatface.plugins.celeba_directions import FRIENDLY

if TYPE_CHECKING:
    import torch

    from chatface.config import Config
    from chatface.engine.types import Backend, IdentityModel

BACKEND_NAME = "tiny"
SEED = 20230523
# z_sem units that strength 1.0 moves along a random unit direction.
DIRECTION_SCALE = 3.0
TINY_NETWORK = {
    "image_size": 64,
    "model_channels": 32,
    "channel_mult": [1, 1, 2, 2],
    "enc_channel_mult": [1, 1, 2, 2, 2],
    "embed_channels": 64,
    "attention_resolutions": [16],
    "num_heads": 1,
    "num_res_blocks": 1,
}


def make_tiny_backend(config: Config | None = None) -> Backend:
    """A DiffAE backend whose every weight is drawn from a fixed seed (so runs repeat)."""
    import torch

    from chatface.engine.devices import resolve_device
    from chatface.plugins.diffae.backend import DiffAEBackend
    from chatface.plugins.diffae.config import DiffAEConfig
    from chatface.plugins.diffae.fast import from_config
    from chatface.plugins.diffae.model import DiffAEModel

    generator = torch.Generator().manual_seed(SEED)
    model = DiffAEModel(DiffAEConfig.from_dict(TINY_NETWORK))
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if tensor.dim() > 1:
                # Scaled by fan-in so activations stay near 1: tiny weights would make
                # subnormal floats, which run about 50x slower on CPUs.
                tensor.copy_(noise / tensor[0].numel() ** 0.5)
            elif name.endswith("weight"):  # normalisation scales
                tensor.copy_(1.0 + 0.1 * noise)
            else:
                tensor.copy_(0.1 * noise)
    if config is None:
        return DiffAEBackend(model, device="cpu", weights_sha256=f"random-seed-{SEED}")
    # The same fast path as the diffae backend's, so dry runs and tests take it too.
    device = resolve_device(config["engine.device"])
    return DiffAEBackend(
        model, device=device, weights_sha256=f"random-seed-{SEED}", fast=from_config(config, device)
    )


def make_tiny_identity(config: Config | None = None) -> IdentityModel:
    """A small convolutional embedding network, every weight drawn from a fixed seed."""
    from chatface.engine.devices import resolve_device
    from chatface.plugins.tiny_identity import TinyIdentity

    device = config["engine.device"] if config is not None else "cpu"
    return TinyIdentity(seed=SEED).to(resolve_device(device))


class TinyDirections:
    """CelebA attribute names, each a fixed random direction of the tiny latent space."""

    name = "tiny_random"

    def attributes(self) -> list[Attribute]:
        return [
            Attribute(name, f"{desc} (random direction: tiny backend)", backend=BACKEND_NAME)
            for name, (_, _, _, desc) in FRIENDLY.items()
        ]

    def direction(self, attribute: str, dim: int) -> torch.Tensor:
        import torch

        seed = int.from_bytes(hashlib.sha256(attribute.encode()).digest()[:4], "little")
        vector = torch.randn(dim, generator=torch.Generator().manual_seed(seed))
        return vector / vector.norm()

    def edit(self, z_sem: torch.Tensor, attribute: str, strength: float) -> torch.Tensor:
        step = self.direction(attribute, z_sem.shape[-1]).to(z_sem)
        return z_sem + strength * DIRECTION_SCALE * step


@hookimpl
def chatface_register_backends(register: Callable[..., None]) -> None:
    register(BACKEND_NAME, make_tiny_backend, random_weights=True)


@hookimpl
def chatface_register_identity_models(register: Callable[..., None]) -> None:
    register(BACKEND_NAME, make_tiny_identity, random_weights=True)


@hookimpl
def chatface_register_directions(register: Callable[[DirectionProvider], None]) -> None:
    register(TinyDirections())
