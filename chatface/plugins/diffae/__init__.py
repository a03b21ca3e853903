"""Built-in DiffAE backend: the diffusion autoencoder of Preechakul et al. (CVPR 2022).

``config`` describes a network, ``model`` builds it with the official state-dict
layout (so official checkpoints load strictly), ``sampler`` holds DDIM rendering and
inversion, ``backend`` wraps them in the engine's ``Backend`` protocol, and ``weights``
declares and imports the checkpoints.
Torch is imported only by the submodules that need it. The plugin registers the
``diffae`` backend, loaded lazily from the weights named by ``engine.weights``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chatface import hookimpl

if TYPE_CHECKING:
    from pathlib import Path

    from chatface.config import Config
    from chatface.engine.hookspecs import BackendFactory
    from chatface.engine.types import Backend, WeightsSpec
    from chatface.plugins.diffae.model import DiffAEModel

BACKEND_NAME = "diffae"


def installed_network(name: str, config: Config) -> tuple[DiffAEModel, Path]:
    """The DiffAE network of the installed weights ``name``, and their folder."""
    from chatface.engine import weights
    from chatface.plugins.diffae.config import DiffAEConfig
    from chatface.plugins.diffae.model import load_model
    from chatface.plugins.diffae.weights import CONFIG_FILE, MODEL_FILE

    folder = weights.require(name, config)
    network = DiffAEConfig.from_json_file(folder / CONFIG_FILE)
    return load_model(folder / MODEL_FILE, network), folder


def load_backend(config: Config) -> Backend:
    """The DiffAE backend with the installed weights named by the ``engine.weights`` setting."""
    from safetensors.torch import load_file

    from chatface.engine import weights
    from chatface.engine.devices import resolve_device
    from chatface.plugins.diffae import fast
    from chatface.plugins.diffae.backend import DiffAEBackend, LatentStats
    from chatface.plugins.diffae.weights import MODEL_FILE, STATS_FILE

    model, folder = installed_network(config["engine.weights"], config)
    stats_file = folder / STATS_FILE
    stats = LatentStats.from_mapping(load_file(str(stats_file))) if stats_file.is_file() else None
    sha256 = weights.get_info(config["engine.weights"], config).files.get(MODEL_FILE, "")
    device = resolve_device(config["engine.device"])
    return DiffAEBackend(
        model, stats, device, weights_sha256=sha256, fast=fast.from_config(config, device)
    )


@hookimpl
def chatface_register_backends(register: Callable[[str, BackendFactory], None]) -> None:
    register(BACKEND_NAME, load_backend)


@hookimpl
def chatface_register_commands(register: Callable[..., None]) -> None:
    from chatface.plugins.diffae.bench_command import bench

    register("bench", bench)


@hookimpl
def chatface_register_weights(register: Callable[[WeightsSpec], None]) -> None:
    from chatface.plugins.diffae.weights import SPECS

    for spec in SPECS:
        register(spec)
