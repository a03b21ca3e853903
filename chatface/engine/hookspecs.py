"""The hooks a chatface plugin can implement.

Every hook receives a ``register`` callback and calls it once per thing it
provides. Implementations may leave out arguments they do not need (pluggy passes
only the ones an implementation names). The core checks what is registered and
records which plugin registered it, so errors name the plugin at fault.

docs/plugins.md shows each hook's exact signature; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import torch

    from chatface.config import Config
    from chatface.engine.types import (
        Backend,
        DirectionProvider,
        IdentityModel,
        Planner,
        WeightsSpec,
    )

PROJECT_NAME = "chatface"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

BackendFactory = Callable[["Config"], "Backend"]
PlannerFactory = Callable[["Config"], "Planner"]
ProviderFactory = Callable[["Config"], "DirectionProvider"]
IdentityFactory = Callable[["Config"], "IdentityModel"]
# (z_edit, z_orig) -> (step index, timestep) -> the z_sem that conditions that step
ScheduleFactory = Callable[["torch.Tensor", "torch.Tensor"], Callable[[int, int], "torch.Tensor"]]


@hookspec
def chatface_register_backends(register: Callable[..., None]) -> None:
    """Register inversion backends.

    Call ``register(name, factory)`` once per backend. ``name`` is a short
    lower-case identifier (``"diffae"``); ``factory(config)`` is called lazily,
    the first time the backend is needed, and must return an object with the
    :class:`chatface.engine.types.Backend` protocol: ``image_size``,
    ``latent_dim``, ``weights_sha256`` (identifies the loaded weights; stored with
    each face), ``encode(images, steps, progress) -> Latents`` and
    ``render(latents, condition_schedule, steps, progress) -> images``. Do not
    load weights at registration time. A backend whose weights are random (a
    stand-in for trying the flow offline) registers with
    ``register(name, factory, random_weights=True)``, so every front end says so.
    """


@hookspec
def chatface_register_directions(
    register: Callable[[DirectionProvider | ProviderFactory], None],
) -> None:
    """Register attribute-direction providers.

    Call ``register(provider)`` or ``register(factory)`` once per provider. A factory
    (a class or function without ``attributes``/``edit``) is called with the
    :class:`chatface.config.Config` while the plugins are collected, so it must be
    cheap: load weights at the first edit. A provider has a unique ``name``, an
    ``attributes()`` method returning :class:`chatface.engine.types.Attribute` objects
    (name, aliases, description, backend whose latent space it edits, strength range),
    and ``edit(z_sem, attribute, strength) -> z_sem`` that moves a batch of semantic
    latents. An attribute name may be provided once per backend. ``attributes()`` must
    work without model weights, so planning and ``chatface plugins`` work on a fresh
    install.
    """


@hookspec
def chatface_register_planners(register: Callable[[str, PlannerFactory], None]) -> None:
    """Register planners that turn chat messages into edit plans.

    Call ``register(name, factory)`` once per planner. ``factory(config)``
    returns an object with :class:`chatface.engine.types.Planner`'s
    ``plan(message, context) -> EditPlan``, where ``context`` is a
    :class:`chatface.engine.types.PlanContext` (available attributes, current
    session state, recent turns). A planner that waits on the network may also
    define ``async def aplan(message, context) -> EditPlan``, which event loops
    (the bots) await instead. The plan must follow the plan contract
    (docs/planners.md); the engine validates it.
    """


@hookspec
def chatface_register_schedules(register: Callable[[str, ScheduleFactory], None]) -> None:
    """Register condition schedules: which semantic latent conditions each render step.

    Call ``register(name, factory)`` once per schedule. ``factory(z_edit, z_orig)``
    gets the edited and the original z_sem (``[B, D]`` tensors) and returns
    ``condition(i, t) -> z_sem`` for step ``i`` at timestep ``t`` (``t`` falls from
    about ``T`` to 0). The setting ``render.schedule`` picks one by name; the built-in
    ones are ``stable`` (ChatFace's stable manipulation) and ``constant``. With
    ``z_edit`` equal to ``z_orig`` (no edit) a schedule must condition every step on
    ``z_orig``, so that strength 0 renders the unedited face.
    """


@hookspec
def chatface_register_identity_models(register: Callable[[str, IdentityFactory], None]) -> None:
    """Register face-recognition networks: identity loss in training, identity metric after edits.

    Call ``register(name, factory)`` once per network. ``factory(config)`` is called
    lazily and returns an object with :class:`chatface.engine.types.IdentityModel`'s
    ``embed(images) -> [B, E]``: unit-length embeddings of aligned face crops given as
    ``[B, 3, S, S]`` tensors in [-1, 1] of any size ``S`` (the model resizes), with a
    differentiable torch forward so training can use it as a loss. The setting
    ``identity.model`` picks one by name. A network with random weights registers with
    ``register(name, factory, random_weights=True)``.
    """


@hookspec
def chatface_register_commands(register: Callable[[str, Any], None]) -> None:
    """Add commands to the ``chatface`` command line.

    Call ``register(name, command)`` once per command: ``command`` is a function typer
    can turn into a command (its docstring is the help text, its parameters typer
    arguments and options), or a ``typer.Typer`` app for a group of subcommands. A name
    that a built-in command already uses is refused. Import heavy libraries inside the
    command, not at module level, so ``chatface --help`` stays fast; raise
    ``chatface.errors.ChatFaceError`` for errors a person can fix (shown as one line).
    """


@hookspec
def chatface_register_weights(register: Callable[[WeightsSpec], None]) -> None:
    """Declare the model weights this plugin's backends or providers load.

    Call ``register(spec)`` once per set of weights with a
    :class:`chatface.engine.types.WeightsSpec`: its ``name`` (the folder under
    ``<data dir>/weights``, which the plugin's code passes to
    ``chatface.engine.weights.require``), a description, an ``importer`` (an object with
    ``recognises(checkpoint)`` and ``convert(checkpoint, staging, name=, options=)``;
    see :class:`chatface.engine.types.WeightsImporter`), the ``sources`` to download it
    from, its approximate size and where a person can get it by hand. ``chatface
    weights import`` and ``download`` then work for it; the engine keeps the manifest,
    the transport, the hashing and the atomic install.
    """


def hook_names() -> list[str]:
    """Names of every hook this module specifies."""
    return sorted(name for name, value in globals().items() if _is_hookspec(name, value))


def _is_hookspec(name: str, value: Any) -> bool:
    return name.startswith("chatface_") and hasattr(value, f"{PROJECT_NAME}_spec")
