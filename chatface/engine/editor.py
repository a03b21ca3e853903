"""The Engine: one per process; it owns the config, the plugins and what they registered.

So far it plans messages with a registered planner and applies a session state to
semantic latents through the direction providers. Face opening and rendering
arrive with the inversion backend.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from chatface.config import Config, load_config
from chatface.engine.plugins import ChatFacePluginManager, make_plugin_manager
from chatface.engine.registry import Registry, collect
from chatface.engine.types import Attribute, EditPlan, PlanContext, Planner, SessionState
from chatface.errors import PluginError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


class Engine:
    def __init__(
        self, config: Config | None = None, plugin_manager: ChatFacePluginManager | None = None
    ) -> None:
        self.config = config or load_config()
        self.plugin_manager = plugin_manager or make_plugin_manager(self.config.plugin_allow_list())
        self._registry: Registry | None = None
        self._planners: dict[str, Planner] = {}

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = collect(self.plugin_manager)
            for problem in self._registry.problems:
                logger.warning("%s", problem)
        return self._registry

    def attributes(self) -> list[Attribute]:
        return [entry.value for entry in self.registry.attributes.values()]

    def planner(self, name: str | None = None) -> Planner:
        """The planner called ``name`` (default: the ``planner.name`` setting)."""
        name = name or self.config["planner.name"]
        if name not in self._planners:
            entry = self.registry.planners.get(name)
            if entry is None:
                known = ", ".join(sorted(self.registry.planners)) or "none"
                raise PluginError(f"No planner called {name!r} is registered (known: {known}).")
            planner = entry.value(self.config)
            if not callable(getattr(planner, "plan", None)):
                raise PluginError(
                    f"Planner {name!r} of plugin {entry.plugin} has no plan() method."
                )
            self._planners[name] = planner
        return self._planners[name]

    def plan(
        self,
        message: str,
        state: SessionState | None = None,
        recent: Sequence[tuple[str, str]] = (),
        planner: str | None = None,
    ) -> EditPlan:
        """Ask a planner for a plan and check it against the registered attributes."""
        context = PlanContext(self.attributes(), state or SessionState(), tuple(recent))
        name = planner or self.config["planner.name"]
        plan = self.planner(name).plan(message, context)
        if not isinstance(plan, EditPlan):
            owner = self.registry.planners[name].plugin
            kind = type(plan).__name__
            raise PluginError(f"Planner {name!r} of plugin {owner} returned {kind}, not EditPlan.")
        unknown = [
            op.attribute for op in plan.edits if op.attribute not in self.registry.attributes
        ]
        if not unknown:
            return plan
        logger.warning("planner %s named unknown attributes %s; dropped", name, unknown)
        kept = tuple(op for op in plan.edits if op.attribute not in unknown)
        note = f"I can't change {', '.join(unknown)}."
        if kept:
            return EditPlan("edit", kept, plan.steps, f"{plan.reply} {note}".strip())
        return EditPlan("chat", reply=f"{note} Say 'attributes' to see what I can change.")

    def edit_latents(
        self, z_sem: torch.Tensor, state: SessionState, backend: str | None = None
    ) -> torch.Tensor:
        """Original z_sem of ``backend`` moved by every attribute in ``state``; moves add up."""
        backend = backend or self.config["engine.backend"]
        edited = z_sem.clone()
        for attribute, strength in sorted(state.strengths.items()):
            provider = self.registry.provider_for(attribute, backend)
            edited += provider.edit(z_sem, attribute, strength) - z_sem
        return edited
