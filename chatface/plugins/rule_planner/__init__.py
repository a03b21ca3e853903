"""Built-in plugin: the offline rule planner ("rules", the default planner).

It needs no network and no key, and understands English and common Chinese
requests. Its vocabulary is built from the registered direction providers, so a
third-party attribute is understood without changing this package. It never
imports torch, so ``chatface plan`` starts fast. See docs/planners.md.
"""

from __future__ import annotations

from collections.abc import Callable

from chatface import hookimpl
from chatface.plugins.rule_planner.planner import RulePlanner

__all__ = ["RulePlanner", "chatface_register_planners"]


@hookimpl
def chatface_register_planners(register: Callable[[str, Callable], None]) -> None:
    register("rules", RulePlanner)
