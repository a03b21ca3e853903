"""Building the plugin manager: built-in plugins, installed plugins, the allow-list.

Nothing is loaded at import time: call :func:`make_plugin_manager`. Built-in
plugins are plain modules listed in ``BUILTIN_PLUGINS`` and registered exactly as
third-party ones are. Third-party plugins are packages with an entry point in the
``chatface`` group. A plugin that fails to import or register is recorded with
its error and skipped, never crashing the caller.
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

import pluggy

from chatface.engine import hookspecs

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME

# Built-in plugins, in the order they register (earlier ones win name clashes).
BUILTIN_PLUGINS: tuple[str, ...] = (
    "chatface.plugins.diffae",
    "chatface.plugins.celeba_directions",
    "chatface.plugins.tiny",
    "chatface.plugins.rule_planner",
    "chatface.plugins.anthropic_planner",
    "chatface.plugins.mapper",
    "chatface.plugins.identity",
    "chatface.plugins.schedules",
)


@dataclass
class PluginRecord:
    """What is known about one plugin, loaded or not."""

    name: str
    builtin: bool
    status: str  # "loaded", "blocked" (not in the allow-list) or "failed"
    version: str | None = None
    package: str | None = None
    error: str | None = None
    hooks: list[str] = field(default_factory=list)


class ChatFacePluginManager(pluggy.PluginManager):
    """A pluggy manager that also remembers plugins that were blocked or failed."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}

    def register_plugin(self, plugin: object, record: PluginRecord) -> None:
        """Register ``plugin`` under ``record.name``; a refusal is recorded, not raised."""
        try:
            self.register(plugin, name=record.name)
        except Exception as exc:  # pluggy rejects bad hook implementations here
            record.status, record.error = "failed", f"{type(exc).__name__}: {exc}"
            logger.warning("plugin %s was not registered: %s", record.name, record.error)
        else:
            record.hooks = sorted(h.name for h in self.get_hookcallers(plugin) or ())
        self.records[record.name] = record


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _is_allowed(ep: EntryPoint, allow: set[str] | None) -> bool:
    if allow is None:
        return True
    names = {_normalise(ep.name)}
    if ep.dist is not None:
        names.add(_normalise(ep.dist.name))
    return bool(names & {_normalise(a) for a in allow})


def _load_builtin(pm: ChatFacePluginManager, module_name: str) -> None:
    from chatface import __version__

    record = PluginRecord(module_name, builtin=True, status="loaded", version=__version__)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        record.status, record.error = "failed", f"{type(exc).__name__}: {exc}"
        logger.error("built-in plugin %s failed to import: %s", module_name, record.error)
        pm.records[module_name] = record
        return
    pm.register_plugin(module, record)


def _load_entry_point(pm: ChatFacePluginManager, ep: EntryPoint, allow: set[str] | None) -> None:
    dist = ep.dist
    record = PluginRecord(
        ep.name,
        builtin=False,
        status="loaded",
        version=dist.version if dist else None,
        package=dist.name if dist else None,
    )
    if ep.name in pm.records:
        logger.warning("plugin name %s is taken; skipping %s", ep.name, ep.value)
        return
    if not _is_allowed(ep, allow):
        record.status, record.error = "blocked", "not in the allow-list (CHATFACE_LOAD_PLUGINS)"
        pm.records[ep.name] = record
        return
    try:
        plugin = ep.load()
    except Exception as exc:
        record.status, record.error = "failed", f"{type(exc).__name__}: {exc}"
        logger.warning("plugin %s failed to import: %s", ep.name, record.error)
        pm.records[ep.name] = record
        return
    pm.register_plugin(plugin, record)


def make_plugin_manager(
    allow: set[str] | None = None, *, load_installed: bool = True
) -> ChatFacePluginManager:
    """A plugin manager with the built-ins and the allowed installed plugins.

    ``allow``: names (entry-point or package names) of installed plugins that may
    load; ``None`` allows all. Built-ins always load. ``load_installed=False``
    loads only the built-ins.
    """
    pm = ChatFacePluginManager()
    for module_name in BUILTIN_PLUGINS:
        _load_builtin(pm, module_name)
    if load_installed:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            _load_entry_point(pm, ep, allow)
    return pm
