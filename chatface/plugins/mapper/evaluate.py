"""Evaluating one attribute edit on a folder of faces (``chatface eval``).

Every face photo is opened once (found, aligned, encoded). For each strength the edit
of all faces is rendered, in batches, under one condition schedule, and compared with
the unedited render of the same steps and schedule:

- ``identity``: cosine of the identity model's embeddings (``identity.model``) of the
  edit and the unedited render: what the edit changed, without the renderer's own
  reconstruction error (1.0 at strength 0). The headline number.
- ``identity_photo``: the same against the aligned photo crop, the face a user compares
  with; at strength 0 it is the renderer's own error, the most an edit can keep.
- ``directional``: ChatFace's CLIP directional score, cos(E(x_edit) - E(x), E(target) -
  E(source)), x the unedited render (as in the training objective). An image whose CLIP
  embedding moved less than ``STILL`` scores 0: the cosine of no change is noise.
  ``clip_change``: how far the embedding moved along the text direction (0 at strength 0).
- ``classifier``: the change of the CelebA classifier's logit of the attribute on the
  normalised z_sem (positive: more of it); None where there is none (the tiny backend,
  attributes the classifier does not know, or its weights are not installed).

Methods: ``mapper`` (a trained mapping network), ``classifier`` (the linear directions:
``celeba`` for diffae, ``tiny_random`` for tiny) and ``zero-shot`` (a z_sem offset
learned for each face from the text, from zero; kept for this run only, so evaluating
leaves the learned free-text attributes as they were).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from chatface.engine.types import Latents
from chatface.errors import ChatFaceError, WeightsMissingError
from chatface.plugins.mapper.provider import MapperDirections
from chatface.plugins.mapper.zero_shot import PROVIDER_NAME as FREE_TEXT
from chatface.plugins.mapper.zero_shot import SOURCE, attribute_name, target_prompt

if TYPE_CHECKING:
    from PIL import Image

    from chatface.engine.editor import Engine
    from chatface.engine.types import Attribute, DirectionProvider, IdentityModel, Progress
    from chatface.plugins.mapper.objective import Clip

METHODS = ("mapper", "classifier", "zero-shot")
CLASSIFIER_PROVIDERS = {"diffae": "celeba", "tiny": "tiny_random"}
STILL = 1e-4  # a CLIP image embedding that moved less than this did not change
METRICS = ("identity", "identity_photo", "directional", "clip_change", "classifier")

Editor = Callable[[torch.Tensor, float], torch.Tensor]  # (z_sem [N, D], strength) -> z_edit


class EvalError(ChatFaceError):
    """An evaluation cannot run as asked."""


@dataclass(frozen=True)
class EvalPlan:
    """What is evaluated: an attribute, edited by one method in one backend's latents."""

    attribute: str
    method: str
    backend: str
    source: str  # CLIP prompts of the directional score
    target: str
    provider: DirectionProvider | None  # None: zero-shot (offsets learned per face)
    schedule: str | None = None  # the schedule the attribute prefers, if any
    text: str = ""  # zero-shot: the text learned


@dataclass(frozen=True)
class EvalFaces:
    """The faces of a folder, opened once: names, stacked latents, aligned photo crops."""

    names: tuple[str, ...]
    latents: Latents
    crops: torch.Tensor  # [N, 3, S, S] in [-1, 1]
    skipped: tuple[tuple[str, str], ...]  # (file name, why)

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class Meters:
    """The models that measure an edit, loaded before any face is encoded."""

    clip: Clip
    direction: torch.Tensor  # unit [E] text direction source -> target
    identity: IdentityModel
    classifier: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None
    classifier_note: str  # why there is no classifier change ('' when there is one)


@dataclass(frozen=True)
class StrengthResult:
    strength: float
    faces: tuple[dict[str, float | None], ...]  # per face: METRICS
    images: tuple[Image.Image, ...]  # the edited crops

    def mean(self, metric: str) -> float | None:
        values = [face[metric] for face in self.faces]
        if any(v is None for v in values):
            return None
        return sum(v for v in values if v is not None) / len(values)


@dataclass(frozen=True)
class Evaluation:
    plan: EvalPlan
    schedule: str
    steps: int
    faces: EvalFaces
    results: tuple[StrengthResult, ...]
    classifier_note: str

    def to_json(self, sheet: Path | None = None) -> dict[str, Any]:
        plan = self.plan
        return {
            "attribute": plan.attribute,
            "method": plan.method,
            "backend": plan.backend,
            "schedule": self.schedule,
            "steps": self.steps,
            "source": plan.source,
            "target": plan.target,
            "faces": list(self.faces.names),
            "skipped": [{"file": name, "reason": why} for name, why in self.faces.skipped],
            "classifier_note": self.classifier_note or None,
            "sheet": None if sheet is None else str(sheet),
            "strengths": [
                {
                    "strength": result.strength,
                    **{metric: result.mean(metric) for metric in METRICS},
                    "faces": [
                        {"face": name, **scores}
                        for name, scores in zip(self.faces.names, result.faces, strict=True)
                    ],
                }
                for result in self.results
            ],
        }


# --- what is evaluated ------------------------------------------------------------


def resolve(engine: Engine, word: str, method: str | None, backend: str) -> EvalPlan:
    """The attribute called ``word`` (or an alias) for ``method``; without a method, a
    mapper's when one provides it, else the classifier's."""
    if method is not None and method not in METHODS:
        raise EvalError(f"--method must be one of {', '.join(METHODS)}; got {method!r}.")
    mapper = _find(_mappers(engine), word, backend)
    classifier = _find(_classifiers(engine, backend), word, backend)
    if method is None:
        if mapper is None and classifier is None:
            raise EvalError(
                f"No attribute {word!r} for the backend {backend!r} (see `chatface plugins`); "
                "--method zero-shot learns it from its words."
            )
        method = "mapper" if mapper is not None else "classifier"
    if method == "mapper":
        if mapper is None:
            raise EvalError(
                f"No mapper file provides {word!r} for the backend {backend!r}: train one with "
                "`chatface train-mapper`, or use --method classifier or zero-shot."
            )
        provider, attribute = mapper
        source, target = _prompts(mapper, classifier, word)
        return EvalPlan(attribute.name, method, backend, source, target, provider,
                        attribute.schedule)  # fmt: skip
    if method == "classifier":
        if classifier is None:
            raise EvalError(
                f"No classifier direction {word!r} for the backend {backend!r} "
                "(see `chatface plugins`)."
            )
        provider, attribute = classifier
        source, target = _prompts(None, classifier, word)
        return EvalPlan(attribute.name, method, backend, source, target, provider,
                        attribute.schedule)  # fmt: skip
    found = mapper or classifier
    text = _learned_text(engine, word) or word.replace("_", " ")
    source, target = _prompts(mapper, classifier, text)
    name = found[1].name if found is not None else attribute_name(text)
    return EvalPlan(name, method, backend, source, target, None, text=text)


def _mappers(engine: Engine) -> list[DirectionProvider]:
    providers = engine.registry.providers.values()
    return [entry.value for entry in providers if isinstance(entry.value, MapperDirections)]


def _classifiers(engine: Engine, backend: str) -> list[DirectionProvider]:
    entry = engine.registry.providers.get(CLASSIFIER_PROVIDERS.get(backend, ""))
    return [] if entry is None else [entry.value]


def _find(
    providers: Iterable[DirectionProvider], word: str, backend: str
) -> tuple[DirectionProvider, Attribute] | None:
    """The first provider with an attribute of ``backend`` called ``word`` or so aliased."""
    key = word.strip().lower()
    for provider in providers:
        for attribute in provider.attributes():
            aliases = {alias.strip().lower() for alias in attribute.aliases}
            if attribute.backend == backend and (attribute.name == key or key in aliases):
                return provider, attribute
    return None


def _prompts(
    mapper: tuple[DirectionProvider, Attribute] | None,
    classifier: tuple[DirectionProvider, Attribute] | None,
    text: str,
) -> tuple[str, str]:
    """CLIP source and target: a mapper's own prompts, else "a photo of a face with"
    the classifier attribute's description (its first clause), else with ``text``."""
    if mapper is not None:
        provider, attribute = mapper
        assert isinstance(provider, MapperDirections)
        info = provider.info(attribute.name)
        if info.target:
            return info.source or SOURCE, info.target
    if classifier is not None:
        description = classifier[1].description
        text = description.split(";")[0].split(" (")[0].strip().lower() or text
    return SOURCE, target_prompt(text)


def _learned_text(engine: Engine, word: str) -> str | None:
    """The text a learned free-text attribute called ``word`` came from, if any."""
    entry = engine.registry.providers.get(FREE_TEXT)
    text = getattr(entry.value, "text", None) if entry is not None else None
    return text(word.strip().lower()) if callable(text) else None


# --- the models, loaded up front ----------------------------------------------------


def load_meters(engine: Engine, plan: EvalPlan) -> Meters:
    """Load the backend, the edit's weights, CLIP, the identity model and the attribute
    classifier now, so missing weights fail (naming the command that fixes them) before
    any face is encoded."""
    from chatface.plugins.mapper.objective import load_clip_model

    model = engine.backend(plan.backend)
    zero = torch.zeros(1, model.latent_dim)
    if plan.provider is not None:
        plan.provider.edit(zero, plan.attribute, 0.0)
    device = getattr(model, "device", "cpu")
    clip = load_clip_model(engine.config["method.clip_model"], device, engine.config)
    direction = clip.text_direction(plan.source, plan.target)
    identity = engine.identity_model()
    classifier, note = _classifier(engine, plan, zero)
    return Meters(clip, direction, identity, classifier, note)


def _classifier(
    engine: Engine, plan: EvalPlan, zero: torch.Tensor
) -> tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None, str]:
    """The attribute classifier's logit change for ``plan``, or None and why not."""
    providers = [p for p in _classifiers(engine, plan.backend) if hasattr(p, "logit_change")]
    if not providers:
        return None, f"the {plan.backend!r} backend has no attribute classifier"
    found = _find(providers, plan.attribute, plan.backend)
    if found is None:
        return None, f"the attribute classifier has no {plan.attribute!r}"
    change, name = found[0].logit_change, found[1].name
    try:
        change(zero, zero, name)  # loads the classifier's weights
    except WeightsMissingError as exc:
        return None, str(exc)
    return (lambda z, z_edit: change(z, z_edit, name)), ""


# --- faces, edits, renders ----------------------------------------------------------


def open_faces(
    engine: Engine, folder: Path, backend: str, progress: Progress | None = None
) -> EvalFaces:
    """Every photo of ``folder`` opened once; files without a usable face are skipped."""
    from chatface.plugins.mapper.train_data import open_photos, photo_paths

    paths = photo_paths(folder)  # the files training reads from a folder, too
    opened = open_photos(engine, paths, backend=backend, progress=progress)
    if opened is None:
        raise EvalError(f"No usable face in {folder} ({len(paths)} files skipped).")
    return EvalFaces(opened.names, opened.latents, opened.crops, opened.skipped)


def editor(
    engine: Engine, plan: EvalPlan, faces: EvalFaces, progress: Progress | None = None
) -> Editor:
    """How ``plan`` edits the faces' z_sem; zero-shot first learns each face's offset."""
    if plan.provider is not None:
        provider, attribute = plan.provider, plan.attribute
        return lambda z, strength: provider.edit(z, attribute, strength)
    from chatface.plugins.mapper.zero_shot_learn import learn_offset, objective

    loss, count = objective(engine, plan.backend), len(faces)  # CLIP loads once
    offsets = []
    for index in range(count):
        one = slice(index, index + 1)
        latents = Latents(faces.latents.z_sem[one], faces.latents.x_T[one])
        report = None if progress is None else _nth_of(progress, index, count)
        offsets.append(learn_offset(engine, latents, plan.backend, plan.target, None, report,
                                    loss=loss))  # fmt: skip
    learned = torch.cat(offsets).cpu()
    # As the free_text provider edits: z + strength * offset of that face.
    return lambda z, strength: z + strength * learned.to(z)


def _nth_of(progress: Progress, index: int, count: int) -> Progress:
    """The progress of job ``index`` of ``count`` equal jobs, as part of the whole."""
    return lambda done, total: progress(index * total + done, count * total)


def evaluate(
    engine: Engine,
    plan: EvalPlan,
    meters: Meters,
    faces: EvalFaces,
    edit: Editor,
    *,
    strengths: Sequence[float],
    schedule: str,
    steps: int,
    batch: int = 8,
    progress: Progress | None = None,
) -> Evaluation:
    """Render every strength for all faces and measure each against the unedited render."""
    from chatface.engine.identity import similarities
    from chatface.engine.photos import to_image

    renders = 1 + len(strengths)  # the unedited faces, then each strength
    renderer = _Renderer(engine, plan.backend, faces.latents, schedule, steps, batch, renders)
    z = faces.latents.z_sem
    reference = renderer(z, progress)
    with torch.no_grad():
        reference_clip = meters.clip.encode_images(reference)
    results = []
    for strength in strengths:
        z_edit = edit(z, strength)
        edited = renderer(z_edit, progress)
        identity = similarities(meters.identity, list(reference), list(edited))
        identity_photo = similarities(meters.identity, list(faces.crops), list(edited))
        with torch.no_grad():
            change = meters.clip.encode_images(edited) - reference_clip
        along = change @ meters.direction.to(change)
        moved = change.norm(dim=-1)
        directional = torch.where(moved > STILL, along / moved.clamp_min(STILL), 0.0)
        logits = None if meters.classifier is None else meters.classifier(z, z_edit).tolist()
        scores = tuple(
            {
                "identity": identity[i],
                "identity_photo": identity_photo[i],
                "directional": float(directional[i]),
                "clip_change": float(along[i]),
                "classifier": None if logits is None else float(logits[i]),
            }
            for i in range(len(faces))
        )
        images = tuple(to_image(crop) for crop in edited)
        results.append(StrengthResult(strength, scores, images))
    return Evaluation(plan, schedule, steps, faces, tuple(results), meters.classifier_note)


class _Renderer:
    """Renders all faces under one z_edit, ``batch`` faces per model call; its progress
    counts the DDIM steps of all ``renders`` renders of the evaluation."""

    def __init__(
        self,
        engine: Engine,
        backend: str,
        latents: Latents,
        schedule: str,
        steps: int,
        batch: int,
        renders: int,
    ) -> None:
        self.engine, self.backend, self.latents = engine, backend, latents
        self.schedule, self.steps, self.batch = schedule, steps, batch
        self.starts = range(0, latents.z_sem.shape[0], batch)
        self.total = renders * len(self.starts)  # model calls
        self.done = 0

    def __call__(self, z_edit: torch.Tensor, progress: Progress | None) -> torch.Tensor:
        out = []
        for start in self.starts:
            part = slice(start, start + self.batch)
            latents = Latents(self.latents.z_sem[part], self.latents.x_T[part])
            report = None if progress is None else self._report(progress)
            crops = self.engine.render_group(
                self.backend, latents, z_edit[part], self.schedule, self.steps, report
            )
            out.append(crops.float().cpu())
            self.done += 1
        return torch.cat(out)

    def _report(self, progress: Progress) -> Progress:
        base, total = self.done * self.steps, self.total * self.steps
        return lambda done, _steps: progress(base + done, total)
