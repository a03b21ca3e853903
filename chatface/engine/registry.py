"""Collecting and checking what plugins register.

Each hook implementation is called on its own, with a ``register`` callback that
checks every item. A bad item is rejected and reported with the plugin's name;
a hook implementation that raises is reported and everything it registered in
that call is dropped, so one broken plugin never takes the others down.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pluggy

from chatface.config import Config, load_config
from chatface.engine.hookspecs import ProviderFactory
from chatface.engine.types import (
    SOURCE_KINDS,
    Attribute,
    DirectionProvider,
    WeightsSource,
    WeightsSpec,
)
from chatface.engine.weights import WEIGHTS_NAME_PATTERN
from chatface.errors import PluginError

logger = logging.getLogger(__name__)

T = TypeVar("T")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
COMMAND_PATTERN = re.compile(r"^[a-z][a-z0-9-]*$")  # command-line names use hyphens


@dataclass(frozen=True)
class Registered(Generic[T]):
    value: T
    plugin: str


@dataclass(frozen=True)
class Problem:
    plugin: str
    hook: str
    message: str
    severity: str = "error"  # "error": the item was rejected; "warning": kept, but flagged

    def __str__(self) -> str:
        return f"{self.severity}: plugin {self.plugin} ({self.hook}): {self.message}"


@dataclass
class Registry:
    """Everything registered by the loaded plugins, keyed by name."""

    backends: dict[str, Registered[Callable[..., Any]]] = field(default_factory=dict)
    random_backends: set[str] = field(default_factory=set)  # registered random_weights=True
    weights: dict[str, Registered[WeightsSpec]] = field(default_factory=dict)
    planners: dict[str, Registered[Callable[..., Any]]] = field(default_factory=dict)
    schedules: dict[str, Registered[Callable[..., Any]]] = field(default_factory=dict)
    identity_models: dict[str, Registered[Callable[..., Any]]] = field(default_factory=dict)
    commands: dict[str, Registered[Callable[..., Any]]] = field(default_factory=dict)
    random_identity_models: set[str] = field(default_factory=set)  # random_weights=True
    providers: dict[str, Registered[DirectionProvider]] = field(default_factory=dict)
    # The vocabulary planners see: each attribute name with its first declaration.
    attributes: dict[str, Registered[Attribute]] = field(default_factory=dict)
    # attribute name -> backend -> provider name. The same attribute may be provided for
    # several backends (each edits its own latent space), but only once per backend.
    attribute_backends: dict[str, dict[str, str]] = field(default_factory=dict)
    provider_attributes: dict[str, list[str]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # lower-case alias -> attribute name
    problems: list[Problem] = field(default_factory=list)

    def attribute(self, word: str) -> Attribute | None:
        """The attribute called ``word`` or having it as an alias (case-insensitive)."""
        key = word.strip().lower()
        name = key if key in self.attributes else self.aliases.get(key)
        return self.attributes[name].value if name else None

    def provider_for(self, attribute: str, backend: str) -> DirectionProvider:
        """The provider that edits ``attribute`` in ``backend``'s latent space."""
        backends = self.attribute_backends.get(attribute)
        if not backends:
            raise PluginError(f"No plugin provides the attribute {attribute!r}.")
        if backend not in backends:
            raise PluginError(
                f"The attribute {attribute!r} is not available for the backend {backend!r} "
                f"(only for: {', '.join(sorted(backends))})."
            )
        return self.providers[backends[backend]].value

    def registered_by(self, plugin: str) -> dict[str, list[str]]:
        """Names of what ``plugin`` registered, per kind."""
        pick = lambda table: sorted(k for k, r in table.items() if r.plugin == plugin)  # noqa: E731
        providers = pick(self.providers)
        return {
            "backends": pick(self.backends),
            "directions": providers,
            "attributes": sorted({a for p in providers for a in self.provider_attributes[p]}),
            "planners": pick(self.planners),
            "schedules": pick(self.schedules),
            "identity_models": pick(self.identity_models),
            "commands": pick(self.commands),
            "weights": pick(self.weights),
        }

    def raise_for_problems(self) -> None:
        errors = [p for p in self.problems if p.severity == "error"]
        if errors:
            raise PluginError("; ".join(str(p) for p in errors))


def _call_each(
    pm: pluggy.PluginManager,
    hook_name: str,
    registry: Registry,
    make_register: Callable[[str, list[Any]], Callable[..., None]],
    accept: Callable[[str, Any], None],
) -> None:
    """Call every implementation of one hook in isolation and accept its items."""
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        items: list[Any] = []
        register = make_register(impl.plugin_name, items)
        try:
            impl.function(**{arg: register for arg in impl.argnames})
        except Exception as exc:
            registry.problems.append(
                Problem(impl.plugin_name, hook_name, f"raised {type(exc).__name__}: {exc}")
            )
            logger.warning("plugin %s raised in %s: %s", impl.plugin_name, hook_name, exc)
            continue
        for item in items:
            accept(impl.plugin_name, item)


def _named_factory_hook(pm: pluggy.PluginManager, registry: Registry, hook: str, kind: str) -> None:
    tables = {
        "backend": (registry.backends, registry.random_backends),
        "planner": (registry.planners, None),
        "schedule": (registry.schedules, None),
        "identity model": (registry.identity_models, registry.random_identity_models),
        "command": (registry.commands, None),
    }
    table, random_table = tables[kind]
    pattern = COMMAND_PATTERN if kind == "command" else NAME_PATTERN

    def make_register(plugin: str, items: list[Any]) -> Callable[..., None]:
        def register(name: str, factory: Callable[..., Any], **flags: Any) -> None:
            allowed = {"random_weights"} if random_table is not None else set()
            if unknown := sorted(set(flags) - allowed):
                message = f"{kind} {name!r}: unknown option(s) {', '.join(unknown)}"
                registry.problems.append(Problem(plugin, hook, message))
            elif not isinstance(name, str) or not pattern.match(name):
                allowed_chars = "-" if kind == "command" else "_"
                message = (
                    f"{kind} name {name!r} must be lower-case letters, digits and {allowed_chars}"
                )
                registry.problems.append(Problem(plugin, hook, message))
            elif not callable(factory):
                message = f"{kind} {name!r}: factory must be callable, got {type(factory).__name__}"
                registry.problems.append(Problem(plugin, hook, message))
            else:
                items.append((name, factory, bool(flags.get("random_weights"))))

        return register

    def accept(plugin: str, item: tuple[str, Callable[..., Any], bool]) -> None:
        name, factory, random_weights = item
        if name in table:
            message = f"{kind} {name!r} is already registered by plugin {table[name].plugin}"
            registry.problems.append(Problem(plugin, hook, message))
        else:
            table[name] = Registered(factory, plugin)
            if random_weights and random_table is not None:
                random_table.add(name)

    _call_each(pm, hook, registry, make_register, accept)


def _check_provider(provider: Any) -> tuple[str, list[Attribute]]:
    """The provider's name and attributes, or ValueError saying what is wrong."""
    name = getattr(provider, "name", None)
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(f"provider needs a lower-case 'name' attribute, got {name!r}")
    for method in ("attributes", "edit"):
        if not callable(getattr(provider, method, None)):
            raise ValueError(f"provider {name!r} has no {method}() method")
    attributes = list(provider.attributes())
    for attribute in attributes:
        if not isinstance(attribute, Attribute):
            kind = type(attribute).__name__
            raise ValueError(f"provider {name!r}: attributes() must return Attribute, got {kind}")
        if not NAME_PATTERN.match(attribute.name):
            raise ValueError(f"provider {name!r}: bad attribute name {attribute.name!r}")
        low, high = attribute.strength_range
        if not low < high:
            raise ValueError(f"attribute {attribute.name!r}: empty strength range {low}..{high}")
    return name, attributes


def _is_provider(value: Any) -> bool:
    """A provider object, as opposed to a factory (a class or function taking the config)."""
    methods = (getattr(value, m, None) for m in ("attributes", "edit"))
    return not isinstance(value, type) and all(callable(m) for m in methods)


def _directions_hook(pm: pluggy.PluginManager, registry: Registry, config: Config) -> None:
    hook = "chatface_register_directions"

    def make_register(plugin: str, items: list[Any]) -> Callable[..., None]:
        def register(provider: DirectionProvider | ProviderFactory) -> None:
            if not _is_provider(provider) and callable(provider):
                factory = getattr(provider, "__name__", type(provider).__name__)
                try:
                    provider = provider(config)
                except Exception as exc:
                    message = f"provider factory {factory} raised {type(exc).__name__}: {exc}"
                    registry.problems.append(Problem(plugin, hook, message))
                    logger.warning("plugin %s: %s", plugin, message)
                    return
            try:
                items.append((provider, *_check_provider(provider)))
            except Exception as exc:
                registry.problems.append(Problem(plugin, hook, str(exc)))

        return register

    def accept(plugin: str, item: tuple[DirectionProvider, str, list[Attribute]]) -> None:
        provider, name, attributes = item
        if name in registry.providers:
            owner = registry.providers[name].plugin
            message = f"direction provider {name!r} is already registered by plugin {owner}"
            registry.problems.append(Problem(plugin, hook, message))
            return
        registry.providers[name] = Registered(provider, plugin)
        registry.provider_attributes[name] = []
        for attribute in attributes:
            _accept_attribute(registry, plugin, name, attribute)

    _call_each(pm, hook, registry, make_register, accept)


def _accept_attribute(registry: Registry, plugin: str, provider: str, attribute: Attribute) -> None:
    hook = "chatface_register_directions"
    name, backend = attribute.name, attribute.backend
    backends = registry.attribute_backends.get(name, {})
    if backend in backends:
        owner = registry.providers[backends[backend]].plugin
        message = f"attribute {name!r} for backend {backend!r} is already registered by plugin "
        registry.problems.append(Problem(plugin, hook, message + owner))
        return
    if name in registry.aliases:
        message = f"attribute {name!r} is already an alias of {registry.aliases[name]!r}"
        registry.problems.append(Problem(plugin, hook, message))
        return
    registry.attribute_backends.setdefault(name, {})[backend] = provider
    registry.provider_attributes[provider].append(name)
    registry.attributes.setdefault(name, Registered(attribute, plugin))
    for alias in attribute.aliases:
        key = alias.strip().lower()
        owner = key if key in registry.attributes else registry.aliases.get(key)
        if owner is None:
            registry.aliases[key] = name
        elif owner != name:
            message = f"alias {alias!r} of {name!r} is already taken by {owner!r}; ignored"
            registry.problems.append(Problem(plugin, hook, message, severity="warning"))


def _check_weights_spec(spec: Any) -> WeightsSpec:
    if not isinstance(spec, WeightsSpec):
        raise ValueError(f"register() takes a WeightsSpec, got {type(spec).__name__}")
    if not isinstance(spec.name, str) or not WEIGHTS_NAME_PATTERN.match(spec.name):
        raise ValueError(f"weights name {spec.name!r} must be letters, digits, '_', '-', '.'")
    for method in ("recognises", "convert"):
        if not callable(getattr(spec.importer, method, None)):
            raise ValueError(f"weights {spec.name!r}: the importer has no {method}() method")
    for source in spec.sources:
        if not isinstance(source, WeightsSource) or source.kind not in SOURCE_KINDS:
            raise ValueError(
                f"weights {spec.name!r}: sources must be WeightsSource of kind "
                f"{', '.join(SOURCE_KINDS)}, got {source!r}"
            )
    return spec


def _weights_hook(pm: pluggy.PluginManager, registry: Registry) -> None:
    hook = "chatface_register_weights"

    def make_register(plugin: str, items: list[Any]) -> Callable[..., None]:
        def register(spec: WeightsSpec) -> None:
            try:
                items.append(_check_weights_spec(spec))
            except Exception as exc:
                registry.problems.append(Problem(plugin, hook, str(exc)))

        return register

    def accept(plugin: str, spec: WeightsSpec) -> None:
        if spec.name in registry.weights:
            owner = registry.weights[spec.name].plugin
            message = f"weights {spec.name!r} are already registered by plugin {owner}"
            registry.problems.append(Problem(plugin, hook, message))
        else:
            registry.weights[spec.name] = Registered(spec, plugin)

    _call_each(pm, hook, registry, make_register, accept)


def collect_commands(pm: pluggy.PluginManager) -> Registry:
    """Only the command-line commands plugins add (what the CLI needs at start-up)."""
    registry = Registry()
    _named_factory_hook(pm, registry, "chatface_register_commands", "command")
    return registry


def collect(pm: pluggy.PluginManager, config: Config | None = None) -> Registry:
    """Call every registration hook and return what was validly registered.

    ``config`` (default: :func:`chatface.config.load_config`) goes to direction-provider
    factories.
    """
    registry = Registry()
    _named_factory_hook(pm, registry, "chatface_register_backends", "backend")
    _directions_hook(pm, registry, config or load_config())
    _named_factory_hook(pm, registry, "chatface_register_planners", "planner")
    _named_factory_hook(pm, registry, "chatface_register_schedules", "schedule")
    _named_factory_hook(pm, registry, "chatface_register_identity_models", "identity model")
    _named_factory_hook(pm, registry, "chatface_register_commands", "command")
    _weights_hook(pm, registry)
    # One warning per provider and missing backend, not one per attribute.
    missing: dict[tuple[str, str], list[str]] = {}
    for name, backends in registry.attribute_backends.items():
        for backend, provider in backends.items():
            if backend not in registry.backends:
                missing.setdefault((provider, backend), []).append(name)
    for (provider, backend), names in missing.items():
        message = f"{len(names)} attribute(s) of provider {provider!r} edit the latents of "
        message += f"backend {backend!r}, which no plugin registers: they can be planned, "
        message += "not rendered"
        plugin = registry.providers[provider].plugin
        registry.problems.append(
            Problem(plugin, "chatface_register_directions", message, severity="warning")
        )
    return registry
