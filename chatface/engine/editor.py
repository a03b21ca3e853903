"""The Engine: one per process; it owns the config, the plugins and what they registered.

Main calls: ``open_face(photo)`` finds, aligns and encodes a face once;
``plan(message, state)`` (``aplan`` on an event loop) asks a planner for an edit plan;
``render(face, state)`` moves the original z_sem by the whole state and renders from
the stored x_T, then pastes the edited crop back into the photo.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from chatface.config import Config, load_config
from chatface.engine.identity import OriginalEmbeddings
from chatface.engine.plugins import ChatFacePluginManager, make_plugin_manager
from chatface.engine.registry import Registered, Registry, collect
from chatface.engine.types import (
    AsyncPlanner,
    Attribute,
    Backend,
    EditPlan,
    IdentityModel,
    Latents,
    PlanContext,
    Planner,
    Progress,
    SessionState,
    WeightsSpec,
)
from chatface.errors import ConfigError, PluginError, WeightsMissingError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from chatface.engine.batch import RenderRequest, RenderResult
    from chatface.engine.faces import AlignedFace, PreparedFace
    from chatface.engine.weights import ProgressFn, WeightsInfo

logger = logging.getLogger(__name__)
T = TypeVar("T")


def random_weights_banner(backend: str) -> str:
    return f"The '{backend}' backend has random weights: its output is noise, not a real edit."


@dataclass(frozen=True)
class OpenedFace:
    """A face ready for editing: the photo, its aligned crop and the crop's latents."""

    photo: Image.Image
    aligned: AlignedFace
    latents: Latents
    backend: str
    faces_found: int
    note: str | None = None


def _registered(table: Mapping[str, Registered[T]], kind: str, name: str) -> Registered[T]:
    entry = table.get(name)
    if entry is None:
        known = ", ".join(sorted(table)) or "none"
        raise PluginError(f"No {kind} called {name!r} is registered (known: {known}).")
    return entry


class Engine:
    def __init__(
        self, config: Config | None = None, plugin_manager: ChatFacePluginManager | None = None
    ) -> None:
        self.config = config or load_config()
        self.plugin_manager = plugin_manager or make_plugin_manager(self.config.plugin_allow_list())
        self._registry: Registry | None = None
        self._planners: dict[str, Planner] = {}
        self._backends: dict[str, Backend] = {}
        self._identity_models: dict[str, IdentityModel] = {}
        self._identity_missing: set[str] = set()  # identity models whose weights are missing
        self.original_embeddings = OriginalEmbeddings()  # of the faces renders measure

    @property
    def registry(self) -> Registry:
        registry = self._registry  # one read: reload_registry may run on another thread
        if registry is None:
            registry = self._registry = collect(self.plugin_manager, self.config)
            for problem in registry.problems:
                logger.warning("%s", problem)
        return registry

    def reload_registry(self) -> None:
        """Collect what plugins register again, e.g. after a provider learned a new
        attribute; renders already under way keep the registry they started with."""
        self._registry = None

    def attributes(self) -> list[Attribute]:
        return [entry.value for entry in self.registry.attributes.values()]

    def planner(self, name: str | None = None) -> Planner:
        """The planner called ``name`` (default: the ``planner.name`` setting)."""
        name = name or self.config["planner.name"]
        if name not in self._planners:
            entry = _registered(self.registry.planners, "planner", name)
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
        learn_seconds: float | None = None,
    ) -> EditPlan:
        """Ask a planner for a plan and check it against the registered attributes.

        ``learn_seconds``: how long learning a free-text attribute would take, when the
        caller can do it (planners then offer it; see ``engine.zero_shot``).
        """
        name = planner or self.config["planner.name"]
        context = self._plan_context(state, recent, learn_seconds)
        return self._checked_plan(name, self.planner(name).plan(message, context))

    async def aplan(
        self,
        message: str,
        state: SessionState | None = None,
        recent: Sequence[tuple[str, str]] = (),
        planner: str | None = None,
        learn_seconds: float | None = None,
    ) -> EditPlan:
        """:meth:`plan` for event loops, which never wait on planning.

        Awaits the planner's ``aplan`` when it has one, else runs its ``plan`` in a
        worker thread.
        """
        name = planner or self.config["planner.name"]
        context = self._plan_context(state, recent, learn_seconds)
        chosen = self.planner(name)
        if isinstance(chosen, AsyncPlanner):
            plan = await chosen.aplan(message, context)
        else:
            plan = await asyncio.to_thread(chosen.plan, message, context)
        return self._checked_plan(name, plan)

    def _plan_context(
        self,
        state: SessionState | None,
        recent: Sequence[tuple[str, str]],
        learn_seconds: float | None = None,
    ) -> PlanContext:
        return PlanContext(self.attributes(), state or SessionState(), tuple(recent), learn_seconds)

    def _checked_plan(self, name: str, plan: Any) -> EditPlan:
        """``plan`` when it is an EditPlan; edits of unknown attributes dropped with a note."""
        if not isinstance(plan, EditPlan):
            owner = self.registry.planners[name].plugin
            kind = type(plan).__name__
            raise PluginError(f"Planner {name!r} of plugin {owner} returned {kind}, not EditPlan.")
        if plan.schedule is not None and plan.schedule not in self.registry.schedules:
            logger.warning("planner %s asked for an unknown schedule; ignored", name)
            plan = replace(plan, schedule=None)
        unknown = [
            op.attribute for op in plan.edits if op.attribute not in self.registry.attributes
        ]
        if not unknown:
            return plan
        logger.warning("planner %s named unknown attributes %s; dropped", name, unknown)
        kept = tuple(op for op in plan.edits if op.attribute not in unknown)
        note = f"I can't change {', '.join(unknown)}."
        if kept:
            reply = f"{plan.reply} {note}".strip()
            return EditPlan("edit", kept, plan.steps, reply, plan.schedule)
        return EditPlan("chat", reply=f"{note} Say 'attributes' to see what I can change.")

    def schedule_for(self, state: SessionState, asked: str | None = None) -> str:
        """The condition schedule to render ``state`` with: the one ``asked`` for (by a
        plan), else the one the edited attributes prefer when they agree, else the
        ``render.schedule`` setting."""
        if asked:
            return asked
        preferred = {
            attribute.schedule
            for name in state.strengths
            if (attribute := self.registry.attribute(name)) is not None and attribute.schedule
        }
        return preferred.pop() if len(preferred) == 1 else self.config["render.schedule"]

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

    def backend(self, name: str | None = None) -> Backend:
        """The backend called ``name`` (default: the ``engine.backend`` setting), loaded once."""
        name = name or self.config["engine.backend"]
        if name not in self._backends:
            entry = _registered(self.registry.backends, "backend", name)
            self._backends[name] = entry.value(self.config)
        return self._backends[name]

    def identity_model(self, name: str | None = None) -> IdentityModel:
        """The face-recognition network called ``name`` (default: the ``identity.model``
        setting), loaded once."""
        name = name or self.config["identity.model"]
        if name not in self._identity_models:
            entry = _registered(self.registry.identity_models, "identity model", name)
            self._identity_models[name] = entry.value(self.config)
        return self._identity_models[name]

    def installed_identity_model(self, name: str | None = None) -> IdentityModel | None:
        """The identity model, or None when its weights are not installed (logged once per
        model): measuring identity is optional, so it never fails an edit."""
        name = name or self.config["identity.model"]
        try:
            return self.identity_model(name)
        except WeightsMissingError as exc:
            if name not in self._identity_missing:
                self._identity_missing.add(name)
                logger.warning("Identity is not measured: %s", exc)
            return None

    def is_random(self, backend: str) -> bool:
        """Whether ``backend`` was registered with random weights (its output is noise)."""
        return backend in self.registry.random_backends

    def weights_specs(self) -> dict[str, WeightsSpec]:
        """Every set of weights the loaded plugins declare, by name."""
        return {name: entry.value for name, entry in self.registry.weights.items()}

    def import_weights(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        options: Mapping[str, Any] | None = None,
        trust_pickle: bool = False,
    ) -> WeightsInfo:
        """Convert a checkpoint file with the importer of the plugin that owns it."""
        from chatface.engine import weights
        from chatface.engine.checkpoints import read_checkpoint

        if name is not None:
            weights.weights_dir(name, self.config)  # a bad name fails before any reading
        checkpoint = read_checkpoint(path, trust_pickle=trust_pickle)
        name = name or weights.default_name(checkpoint.path)
        importer = weights.pick_importer(checkpoint, name, self.weights_specs())
        options = {**(options or {}), "trust_pickle": trust_pickle}
        return weights.import_checkpoint(
            checkpoint, importer, name=name, options=options, settings=self.config
        )

    def download_weights(
        self,
        name: str,
        *,
        source: str | None = None,
        trust_pickle: bool = False,
        progress: ProgressFn | None = None,
    ) -> WeightsInfo:
        """Download the registered weights ``name`` (see ``engine.weights_download``)."""
        from chatface.engine.checkpoints import WeightsError
        from chatface.engine.weights_download import download

        specs = self.weights_specs()
        if name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            raise WeightsError(f"No plugin declares weights called '{name}' (known: {known}).")
        return download(
            specs[name], source=source, trust_pickle=trust_pickle, progress=progress,
            settings=self.config, other_names=list(specs),
        )  # fmt: skip

    def check_ready(
        self, backend: str | None = None, attributes: Iterable[str] | None = None
    ) -> None:
        """Load ``backend`` and the directions of ``attributes`` (default: every attribute
        it offers), so that a missing weights file fails now, not after minutes of encoding."""
        import torch

        name = backend or self.config["engine.backend"]
        z_sem = torch.zeros(1, self.backend(name).latent_dim)
        if attributes is None:
            table = self.registry.attribute_backends
            attributes = sorted(a for a, backends in table.items() if name in backends)
        for attribute in attributes:
            self.registry.provider_for(attribute, name).edit(z_sem, attribute, 0.0)

    def open_face(
        self,
        photo: bytes | str | Path | Image.Image,
        *,
        face_index: int = 0,
        backend: str | None = None,
        steps: int | None = None,
        progress: Progress | None = None,
    ) -> OpenedFace:
        """Find, align and encode a face (z_sem by the encoder, x_T by DDIM inversion)."""
        name = backend or self.config["engine.backend"]
        prepared = self.prepare_face(photo, self.backend(name).image_size, face_index)
        latents = self.encode_aligned(prepared.aligned.image, name, steps, progress)
        return OpenedFace(
            prepared.photo, prepared.aligned, latents, name, prepared.faces_found, prepared.note
        )

    def prepare_face(
        self, photo: bytes | str | Path | Image.Image, size: int, face_index: int = 0
    ) -> PreparedFace:
        """Open the photo (within the ``photos.*`` limits), find its faces and align face
        ``face_index`` to ``size`` px: what ``open_face`` does before encoding."""
        from chatface.engine import faces

        return faces.prepare_face(
            photo,
            size,
            face_index=face_index,
            min_face_px=self.config["photos.min_face_px"],
            max_bytes=self.config["photos.max_bytes"],
            max_pixels=self.config["photos.max_pixels"],
        )

    def encode_aligned(
        self,
        image: Image.Image,
        backend: str,
        steps: int | None = None,
        progress: Progress | None = None,
    ) -> Latents:
        """The latents of an aligned face crop (default steps: ``render.encode_steps``)."""
        import torch

        from chatface.engine import faces

        with torch.no_grad():
            return self.backend(backend).encode(
                faces.to_tensor(image), steps or self.config["render.encode_steps"], progress
            )

    def render_latents(
        self,
        latents: Latents,
        state: SessionState,
        *,
        backend: str | None = None,
        steps: int | None = None,
        progress: Progress | None = None,
    ) -> torch.Tensor:
        """Render ``state`` from the original latents: [B, 3, S, S] in [-1, 1]."""
        name = backend or self.config["engine.backend"]
        z_edit = self.edit_latents(latents.z_sem, state, name)
        steps = steps or self.config["render.steps"]
        return self.render_group(name, latents, z_edit, self.schedule_for(state), steps, progress)

    def render_group(
        self,
        backend: str,
        latents: Latents,
        z_edit: torch.Tensor,
        schedule: str,
        steps: int,
        progress: Progress | None = None,
    ) -> torch.Tensor:
        """One model call: the stacked faces ``latents`` rendered with their edited
        ``z_edit`` under the condition schedule called ``schedule``."""
        entry = self.registry.schedules.get(schedule)
        if entry is None:
            known = ", ".join(sorted(self.registry.schedules)) or "none"
            raise ConfigError(f"render.schedule must be one of {known}; got {schedule!r}.")
        import torch

        condition = entry.value(z_edit, latents.z_sem)
        with torch.no_grad():
            return self.backend(backend).render(latents, condition, steps, progress)

    def render_batch(
        self, requests: Sequence[RenderRequest], progress: Progress | None = None
    ) -> list[RenderResult]:
        """Render data-only requests, one model call per (backend, steps, schedule)."""
        from chatface.engine.batch import render_batch

        return render_batch(self, requests, progress)

    def render(
        self,
        face: OpenedFace,
        state: SessionState,
        *,
        steps: int | None = None,
        progress: Progress | None = None,
    ) -> Image.Image:
        """The whole photo with the face edited to ``state``."""
        from chatface.engine import faces

        crop = self.render_latents(
            face.latents, state, backend=face.backend, steps=steps, progress=progress
        )
        return faces.paste_back(face.photo, faces.to_image(crop), face.aligned)
