"""An example chatface plugin: one direction provider and one planner."""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
from safetensors.torch import load_file

from chatface import hookimpl
from chatface.config import Config
from chatface.engine.types import Attribute, DirectionProvider, EditOp, EditPlan, PlanContext

NEGATIVE_WORDS = {"less", "no", "remove", "without", "fewer"}


class ExampleDirections:
    """A linear direction scaled by the strength: ``<data dir>/example/glow.safetensors``
    (a tensor ``direction``) when it exists, else a seeded random unit vector."""

    name = "example"
    scale = 2.0  # strength 1.0 moves z_sem this far (in z_sem units)

    def __init__(self, config: Config) -> None:
        # chatface calls this while collecting plugins: only note where the file is.
        self.path = config.data_dir / "example" / "glow.safetensors"
        self._direction: torch.Tensor | None = None

    def attributes(self) -> list[Attribute]:
        return [
            Attribute(
                name="glow",
                description="Demonstration direction (a fixed random unit vector, not trained)",
                aliases=("shine", "radiance"),
                backend="diffae",
            )
        ]

    def direction(self, dim: int) -> torch.Tensor:
        if self._direction is None:  # loaded at the first edit, then kept
            if self.path.is_file():
                vector = load_file(str(self.path))["direction"].float()
            else:
                vector = torch.randn(dim, generator=torch.Generator().manual_seed(1234))
            self._direction = vector / vector.norm()
        return self._direction

    def edit(self, z_sem: torch.Tensor, attribute: str, strength: float) -> torch.Tensor:
        step = self.direction(z_sem.shape[-1]).to(z_sem)
        return z_sem + strength * self.scale * step


class KeywordPlanner:
    """Finds attribute names or aliases in the message.

    "less", "no", "remove", ... within the two words before a name flip the sign.
    """

    def __init__(self, config: object) -> None:
        self.config = config

    def plan(self, message: str, context: PlanContext) -> EditPlan:
        words = re.findall(r"[a-z_]+|\d+(?:\.\d+)?%?", message.lower())
        strength = 0.5
        for word in words:
            if word[0].isdigit():
                value = float(word.rstrip("%"))
                strength = min(1.0, value / 100 if word.endswith("%") or value > 1 else value)
        edits = []
        for attribute in context.attributes:
            names = {attribute.name, *attribute.aliases}
            for i, word in enumerate(words):
                if word in names:
                    negative = bool(NEGATIVE_WORDS & set(words[max(0, i - 2) : i]))
                    edits.append(EditOp(attribute.name, -strength if negative else strength))
                    break
        if not edits:
            return EditPlan("chat", reply="Name an attribute, e.g. 'glow 0.3'.")
        summary = ", ".join(f"{op.attribute} {op.strength:+.2f}" for op in edits)
        return EditPlan("edit", tuple(edits), reply=f"Changing {summary}.")


@hookimpl
def chatface_register_directions(register: Callable[[DirectionProvider], None]) -> None:
    register(ExampleDirections)  # a factory: chatface calls it with the settings


@hookimpl
def chatface_register_planners(register: Callable[[str, Callable], None]) -> None:
    register("keywords", KeywordPlanner)
