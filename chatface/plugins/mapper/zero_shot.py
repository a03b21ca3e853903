"""Zero-shot free-text attributes: the ``free_text`` direction provider and its files.

A text learned on the spot ("looking like a vampire") becomes an attribute named after
its words (``vampire``). What is learned is a z_sem offset per face, kept per text under
``<data dir>/zero_shot/<name>/``:

- ``text.json``: the text and its CLIP source and target prompts;
- ``faces/<face key>.safetensors``: the offset of one face (the key is a digest of the
  face's original z_sem), written once and never changed, so re-renders and undo are exact;
- ``start-<backend>.safetensors``: the newest offset, where learning the same text for
  another face starts.

``edit`` is ``z + strength * offset`` of that face: renders stay plain data (the worker
finds the offset from the z_sem it renders). Learning itself is in ``zero_shot_learn``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatface.engine.types import Attribute
from chatface.errors import ChatFaceError
from chatface.files import atomic_write

if TYPE_CHECKING:
    import torch

    from chatface.config import Config
    from chatface.engine.editor import Engine
    from chatface.engine.types import Latents, Progress
    from chatface.plugins.mapper.objective import Objective

PROVIDER_NAME = "free_text"
FOLDER = "zero_shot"
SOURCE = "a photo of a face"
_FILLERS = frozenset({"a", "an", "the", "with", "looking", "like", "of", "and"})
_PHRASE_STARTS = ("with ", "looking ", "like ", "wearing ", "that ", "who ")


class ZeroShotError(ChatFaceError):
    """A free-text attribute cannot be used for this face."""


def folder(config: Config) -> Path:
    return config.data_dir / FOLDER


def attribute_name(text: str) -> str:
    """``vampire`` for "looking like a vampire": the words that say what it is."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    name = "_".join(w for w in words if w not in _FILLERS)[:40].strip("_")
    if not name or not name[0].isalpha():
        name = "text_" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return name


def target_prompt(text: str) -> str:
    """The CLIP prompt of ``text``: "a photo of a face looking like a vampire"."""
    text = " ".join(text.split())
    joint = " " if text.lower().startswith(_PHRASE_STARTS) else " with "
    return SOURCE + joint + text


def face_key(z_sem: torch.Tensor) -> str:
    """A digest of one face's original z_sem ([D] or [1, D])."""
    row = z_sem.detach().reshape(-1).float().cpu().contiguous()
    return hashlib.sha256(row.numpy().tobytes()).hexdigest()[:32]


class FreeTextDirections:
    """The texts learned so far, each an attribute with one offset per face."""

    name = PROVIDER_NAME

    def __init__(self, root: Path) -> None:
        self.root = root
        self._offsets: dict[tuple[str, str], torch.Tensor] = {}
        self._objectives: dict[str, Objective] = {}  # backend -> its loaded objective

    @classmethod
    def from_config(cls, config: Config) -> FreeTextDirections:
        return cls(folder(config))

    def texts(self) -> dict[str, dict[str, Any]]:
        """Attribute name -> its ``text.json`` (text, source, target)."""
        found = {}
        for path in sorted(self.root.glob("*/text.json")):
            try:
                found[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # half-written or damaged: learned again when asked for
        return found

    def attributes(self) -> list[Attribute]:
        out = []
        for name, info in self.texts().items():
            for start in sorted((self.root / name).glob("start-*.safetensors")):
                backend = start.name[len("start-") : -len(".safetensors")]
                out.append(_attribute(name, info, backend))
        return out

    def learned(self, text: str, backend: str) -> Attribute | None:
        name = attribute_name(text)
        info = self.texts().get(name)
        if info is None or not (self.root / name / f"start-{backend}.safetensors").is_file():
            return None
        return _attribute(name, info, backend)

    def text(self, attribute: str) -> str | None:
        info = self.texts().get(attribute)
        return None if info is None else str(info.get("text", attribute))

    def has_face(self, attribute: str, z_sem: torch.Tensor) -> bool:
        return self._face_path(attribute, face_key(z_sem)).is_file()

    def start(self, text: str, backend: str) -> torch.Tensor | None:
        """Where learning ``text`` for a new face starts: the newest offset, if any."""
        path = self.root / attribute_name(text) / f"start-{backend}.safetensors"
        return _read(path) if path.is_file() else None

    def save(self, text: str, backend: str, z_sem: torch.Tensor, offset: torch.Tensor) -> str:
        """Keep ``offset`` ([1, D]) for the face of ``z_sem`` and as the next start."""
        from chatface.engine.weights import write_tensors

        name = attribute_name(text)
        base = self.root / name
        (base / "faces").mkdir(parents=True, exist_ok=True)
        if not (base / "text.json").is_file():  # the first wording names it for good
            info = {"text": text, "source": SOURCE, "target": target_prompt(text)}
            atomic_write(base / "text.json", (json.dumps(info, indent=2) + "\n").encode())
        tensors = {"offset": offset.detach().float().cpu().reshape(1, -1).contiguous()}
        face = self._face_path(name, face_key(z_sem))
        if not face.is_file():  # written once: the history's renders of this face stay put
            write_tensors(face, tensors, {"text": text})
        write_tensors(base / f"start-{backend}.safetensors", tensors, {"text": text})
        return name

    def edit(self, z_sem: torch.Tensor, attribute: str, strength: float) -> torch.Tensor:
        if strength == 0.0:
            return z_sem
        import torch

        rows = [self._offset(attribute, face_key(row)).to(z_sem) for row in z_sem]
        return z_sem + strength * torch.cat(rows)

    # --- zero-shot learning (engine.zero_shot.TextLearner) --------------------------

    def seconds(self, engine: Engine, backend: str) -> float | None:
        from chatface.plugins.mapper.zero_shot_learn import enabled, expected_seconds

        if not enabled(engine):  # before loading CLIP for the objective
            return None
        return expected_seconds(engine, backend, self._objective(engine, backend))

    def learn(
        self,
        engine: Engine,
        text: str,
        latents: Latents,
        backend: str,
        progress: Progress | None = None,
    ) -> Attribute:
        from chatface.plugins.mapper.zero_shot_learn import learn_offset

        start = self.start(text, backend)
        loss = self._objective(engine, backend)
        offset = learn_offset(
            engine, latents, backend, target_prompt(text), start, progress, loss=loss
        )
        name = self.save(text, backend, latents.z_sem, offset)
        return _attribute(name, self.texts()[name], backend)

    def forget(self, z_sem: torch.Tensor) -> int:
        import shutil

        import torch

        key, removed = face_key(z_sem), 0
        for name in list(self.texts()):
            path = self._face_path(name, key)
            if not path.is_file():
                continue
            offset = _read_or_none(path)
            path.unlink()
            removed += 1
            self._offsets.pop((name, key), None)
            others = sorted(path.parent.glob("*.safetensors"), key=lambda p: p.stat().st_mtime)
            for start in (self.root / name).glob("start-*.safetensors"):
                kept = _read_or_none(start)
                if kept is not None and (offset is None or not torch.equal(kept, offset)):
                    continue
                # The next face would start from this face's offset (or an unreadable
                # file): start from the newest other face's of the same width (the same
                # backend), or from nothing.
                width = kept if kept is not None else offset
                same = [
                    p for p in others
                    if width is not None and (t := _read_or_none(p)) is not None
                    and t.shape == width.shape
                ]  # fmt: skip
                if same:
                    shutil.copyfile(same[-1], start)
                else:
                    start.unlink()
                    removed += 1
            if not others:
                shutil.rmtree(self.root / name)  # no face learned it any more
        return removed

    def _objective(self, engine: Engine, backend: str) -> Objective:
        from chatface.plugins.mapper.zero_shot_learn import objective

        if backend not in self._objectives:
            self._objectives[backend] = objective(engine, backend)
        return self._objectives[backend]

    def _face_path(self, attribute: str, key: str) -> Path:
        return self.root / attribute / "faces" / f"{key}.safetensors"

    def _offset(self, attribute: str, key: str) -> torch.Tensor:
        cached = self._offsets.get((attribute, key))
        if cached is None:
            path = self._face_path(attribute, key)
            if not path.is_file():
                raise ZeroShotError(
                    f"'{attribute}' was learned for other photos, not this one: ask for it "
                    "in the chat to learn it for this photo."
                )
            cached = self._offsets[(attribute, key)] = _read(path)
        return cached


def _attribute(name: str, info: dict[str, Any], backend: str) -> Attribute:
    text = str(info.get("text", name))
    aliases = tuple(dict.fromkeys(a for a in (text, name.replace("_", " ")) if a != name))
    return Attribute(
        name,
        f"'{text}', learned for each photo on request (zero-shot)",
        aliases=aliases,
        backend=backend,
    )


def _read_or_none(path: Path) -> torch.Tensor | None:
    """The offset in ``path``, or None when the file is unreadable (then it just goes)."""
    try:
        return _read(path)
    except Exception:  # safetensors raises its own error types for damaged files
        return None


def _read(path: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(path))["offset"]
