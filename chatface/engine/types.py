"""The types the engine and plugins exchange.

Plugin authors import from here. Tensors are torch tensors, but torch is imported
only where a tensor is actually built, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from chatface.errors import PlanError

if TYPE_CHECKING:
    import torch

# Every action a plan may carry (shared/specs/chatface.md, "The plan contract").
ACTIONS: tuple[str, ...] = (
    "edit",
    "undo",
    "redo",
    "reset",
    "show_original",
    "help",
    "list_attributes",
    "chat",
)

# A progress callback receives (steps done, total steps).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Latents:
    """What a backend makes of a batch of aligned faces.

    ``z_sem``: [B, latent_dim] semantic codes; ``x_T``: [B, 3, H, W] noise codes.
    """

    z_sem: torch.Tensor
    x_T: torch.Tensor

    def to_bytes(self) -> bytes:
        """Serialise as safetensors (never pickle), for storage."""
        from safetensors.torch import save

        return save({"z_sem": self.z_sem.contiguous(), "x_T": self.x_T.contiguous()})

    @classmethod
    def from_bytes(cls, blob: bytes) -> Latents:
        from safetensors.torch import load

        tensors = load(blob)
        return cls(z_sem=tensors["z_sem"], x_T=tensors["x_T"])


@dataclass(frozen=True)
class Attribute:
    """An editable attribute declared by a direction provider.

    ``name`` is what plans use (lower-case snake_case, e.g. ``blond_hair``);
    ``aliases`` are other words planners should understand; positive strength
    means "more of it" (for ``age``: older); ``strength_range`` bounds the
    accumulated strength in a session.
    """

    name: str
    description: str
    aliases: tuple[str, ...] = ()
    backend: str = "diffae"
    strength_range: tuple[float, float] = (-1.0, 1.0)
    # The condition schedule this attribute renders best with (a registered name), or
    # None for the ``render.schedule`` setting.
    schedule: str | None = None

    def clamp(self, strength: float) -> float:
        low, high = self.strength_range
        return min(high, max(low, strength))


@dataclass(frozen=True)
class EditOp:
    """Change ``attribute`` by ``strength`` in [-1, 1], relative to the current state."""

    attribute: str
    strength: float

    def __post_init__(self) -> None:
        if not isinstance(self.attribute, str) or not self.attribute:
            raise PlanError(f"An edit needs an attribute name, got {self.attribute!r}.")
        strength = _number(self.strength, f"strength of {self.attribute!r}")
        if not -1.0 <= strength <= 1.0:
            raise PlanError(f"strength of {self.attribute!r} must be in [-1, 1], got {strength}.")

    def to_dict(self) -> dict[str, Any]:
        return {"attribute": self.attribute, "strength": self.strength}


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlanError(f"{what} must be a number, got {value!r}.")
    if not math.isfinite(value):
        raise PlanError(f"{what} must be finite, got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class LearnRequest:
    """A free-text attribute a planner offers to learn for the photo (zero-shot).

    ``confirmed`` is False for the offer ("I can learn it ... Say yes") and True when the
    user said yes; ``strength`` is the edit to apply once it is learned.
    """

    text: str
    strength: float = 0.5
    confirmed: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip() or len(self.text) > 60:
            raise PlanError(f"learn.text must be 1 to 60 characters, got {self.text!r}.")
        strength = _number(self.strength, "learn.strength")
        if not -1.0 <= strength <= 1.0:
            raise PlanError(f"learn.strength must be in [-1, 1], got {strength}.")
        if not isinstance(self.confirmed, bool):
            raise PlanError(f"learn.confirmed must be true or false, got {self.confirmed!r}.")

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "strength": self.strength, "confirmed": self.confirmed}

    @classmethod
    def from_dict(cls, data: Any) -> LearnRequest:
        if not isinstance(data, Mapping):
            raise PlanError("learn must be a JSON object with a 'text'.")
        strength = _number(data.get("strength", 0.5), "learn.strength")
        return cls(data.get("text"), max(-1.0, min(1.0, strength)), data.get("confirmed", False))


@dataclass(frozen=True)
class EditPlan:
    """One planned turn, following the plan contract."""

    action: str
    edits: tuple[EditOp, ...] = ()
    steps: int | None = None
    reply: str = ""
    schedule: str | None = None  # a registered condition schedule for this render, or None
    learn: LearnRequest | None = None  # a free text offered for zero-shot learning ("chat")

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise PlanError(f"Unknown action {self.action!r}; expected one of {ACTIONS}.")
        if self.action != "edit" and self.edits:
            raise PlanError(f"Action {self.action!r} carries no edits.")
        if self.steps is not None and (
            isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1
        ):
            raise PlanError(f"steps must be a positive integer or null, got {self.steps!r}.")
        if self.schedule is not None and not isinstance(self.schedule, str):
            raise PlanError(f"schedule must be a name or null, got {self.schedule!r}.")
        if self.learn is not None and (
            not isinstance(self.learn, LearnRequest) or self.action != "chat"
        ):
            raise PlanError("learn goes with action 'chat' and must be a LearnRequest.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EditPlan:
        """Build a plan from contract JSON; strengths are clamped to [-1, 1]."""
        if not isinstance(data, Mapping):
            raise PlanError("A plan must be a JSON object.")
        edits = []
        for item in data.get("edits") or ():
            if not isinstance(item, Mapping) or not isinstance(item.get("attribute"), str):
                raise PlanError(f"Each edit needs an attribute name, got {item!r}.")
            strength = _number(item.get("strength"), f"strength of {item['attribute']!r}")
            edits.append(EditOp(item["attribute"], max(-1.0, min(1.0, strength))))
        reply = data.get("reply") or ""
        if not isinstance(reply, str):
            raise PlanError("reply must be a string.")
        return cls(
            action=data.get("action", ""),
            edits=tuple(edits),
            steps=data.get("steps"),
            reply=reply,
            schedule=data.get("schedule"),
            learn=None if data.get("learn") is None else LearnRequest.from_dict(data["learn"]),
        )

    def to_dict(self) -> dict[str, Any]:
        data = {
            "action": self.action,
            "edits": [op.to_dict() for op in self.edits],
            "steps": self.steps,
            "reply": self.reply,
        }
        if self.schedule is not None:  # optional in the contract
            data["schedule"] = self.schedule
        if self.learn is not None:  # optional in the contract
            data["learn"] = self.learn.to_dict()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


@dataclass(frozen=True)
class SessionState:
    """Accumulated attribute strengths of one face; the original latents live in storage.

    Every render starts from the stored x_T and original z_sem with the whole
    state, so many turns never drift and undo is exact.
    """

    strengths: Mapping[str, float] = field(default_factory=dict)

    def apply(self, edits: Sequence[EditOp], attributes: Mapping[str, Attribute]) -> SessionState:
        """Add each edit to the state, clamped to its attribute's range."""
        merged = dict(self.strengths)
        for op in edits:
            attribute = attributes.get(op.attribute)
            if attribute is None:
                raise PlanError(f"Unknown attribute {op.attribute!r}.")
            merged[op.attribute] = attribute.clamp(merged.get(op.attribute, 0.0) + op.strength)
        return SessionState({k: v for k, v in merged.items() if v != 0.0})

    def to_json(self) -> str:
        return json.dumps({"strengths": dict(sorted(self.strengths.items()))})

    @classmethod
    def from_json(cls, text: str) -> SessionState:
        data = json.loads(text or "{}")
        strengths = data.get("strengths", {}) if isinstance(data, dict) else None
        if not isinstance(strengths, dict):
            raise PlanError("A session state is a JSON object with a 'strengths' object.")
        return cls({str(k): _number(v, f"strength of {k!r}") for k, v in strengths.items()})


@dataclass(frozen=True)
class PlanContext:
    """What a planner may look at besides the message."""

    attributes: Sequence[Attribute]
    state: SessionState = field(default_factory=SessionState)
    # Recent turns, oldest first, as (role, text) with role "user" or "bot".
    recent: Sequence[tuple[str, str]] = ()
    # Seconds learning a free-text attribute for this photo would take (zero-shot), or
    # None when it is off: planners offer it only when set.
    learn_seconds: float | None = None


@runtime_checkable
class Backend(Protocol):
    """An inversion backend: aligned faces <-> latents."""

    image_size: int
    latent_dim: int
    weights_sha256: str  # identifies the weights; stored with each face

    def encode(self, images: torch.Tensor, steps: int, progress: Progress | None = None) -> Latents:
        """[B, 3, S, S] images in [-1, 1] -> Latents (z_sem and x_T by DDIM inversion)."""
        ...

    def render(
        self,
        latents: Latents,
        condition_schedule: Callable[[int, int], torch.Tensor],
        steps: int,
        progress: Progress | None = None,
    ) -> torch.Tensor:
        """Render from ``latents.x_T``.

        ``condition_schedule(i, t)`` gives the z_sem that conditions step ``i`` (timestep ``t``).
        """
        ...


@runtime_checkable
class DirectionProvider(Protocol):
    """Declares attributes and moves semantic latents along them."""

    name: str

    def attributes(self) -> Sequence[Attribute]: ...

    def edit(self, z_sem: torch.Tensor, attribute: str, strength: float) -> torch.Tensor:
        """Return ``z_sem`` ([B, D]) moved by ``strength`` along ``attribute``."""
        ...


@runtime_checkable
class IdentityModel(Protocol):
    """A face-recognition network: how alike two aligned faces are, differentiably."""

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] aligned faces in [-1, 1] (any S) -> [B, E] unit-length embeddings."""
        ...


@runtime_checkable
class Planner(Protocol):
    """Turns a chat message into an EditPlan.

    A planner that waits on the network may also be an :class:`AsyncPlanner`.
    """

    def plan(self, message: str, context: PlanContext) -> EditPlan: ...


@runtime_checkable
class AsyncPlanner(Planner, Protocol):
    """A planner with a coroutine too: event loops (the bots) await ``aplan``.

    Planners without it have ``plan`` run in a worker thread there instead.
    """

    async def aplan(self, message: str, context: PlanContext) -> EditPlan: ...


# --- model weights that plugins declare --------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file read without running pickled code (``engine.checkpoints``).

    ``tensors``: every tensor of its state dict (or of the file); ``hyper_parameters``:
    a Lightning checkpoint's training settings (inert stand-ins for unknown classes);
    ``metadata``: a safetensors file's metadata.
    """

    path: Any  # pathlib.Path
    tensors: Mapping[str, Any]
    hyper_parameters: Any = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportedWeights:
    """What an importer wrote into the staging folder: the installed files' sha256s."""

    kind: str  # e.g. "autoencoder", "classifier": shown by `chatface weights list`
    files: Mapping[str, str]  # file name -> sha256
    notes: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)  # more manifest fields


@runtime_checkable
class WeightsImporter(Protocol):
    """Turns a plugin's checkpoints into the files its code loads."""

    def recognises(self, checkpoint: Checkpoint) -> bool:
        """Whether ``checkpoint`` looks like this importer's kind (keys, not names)."""
        ...

    def convert(
        self, checkpoint: Checkpoint, staging: Any, *, name: str, options: Mapping[str, Any]
    ) -> ImportedWeights:
        """Check ``checkpoint`` strictly and write the installed files into ``staging``
        (with ``chatface.engine.weights.write_tensors``/``write_json``); raise
        ``WeightsError`` saying what does not fit. ``options`` holds importer options from
        the command line (e.g. ``config``, ``stats`` paths) and ``trust_pickle``."""
        ...


SOURCE_KINDS = ("huggingface", "gdrive", "url")  # what engine.weights_download fetches


@dataclass(frozen=True)
class WeightsSource:
    """Where weights can be downloaded from.

    ``kind``: ``"huggingface"`` (``location`` = ``owner/repo[@revision]``), ``"gdrive"``
    (a Google Drive folder id) or ``"url"`` (a base URL serving ``<name>/SHA256SUMS`` and
    the files it lists). Files are found at download time and recognised by the importer,
    so no file name is guessed.
    """

    kind: str
    location: str
    label: str = ""  # e.g. "the authors' Google Drive"

    def describe(self) -> str:
        where = {"huggingface": "Hugging Face", "gdrive": "Google Drive"}.get(self.kind, "")
        shown = f"{self.location} on {where}" if where else self.location
        return f"{shown} ({self.label})" if self.label else shown


@dataclass(frozen=True)
class WeightsSpec:
    """A set of weights a plugin needs: its name, how to get it, how to import it."""

    name: str  # the folder under <data dir>/weights, e.g. "ffhq256_autoenc"
    description: str
    importer: WeightsImporter
    sources: tuple[WeightsSource, ...] = ()
    download_mb: int = 0  # approximate, shown before a download
    manual_url: str = ""  # where a person can get the files by hand
    default: bool = False  # fetched by `chatface weights download` without names
    # Files the importer reads from beside a checkpoint when a source has them there
    # (e.g. DiffAE's latent.pkl); downloaded together with each candidate checkpoint.
    companions: tuple[str, ...] = ()
