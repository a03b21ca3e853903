"""Reading checkpoint files without running code stored in them.

``read_checkpoint`` opens .safetensors files, plain PyTorch state dicts and Lightning
checkpoints (``state_dict`` + ``hyper_parameters``) into a :class:`Checkpoint`.
``torch.load(weights_only=True)`` comes first; a file that needs full unpickling (it
holds Python objects besides tensors, as Lightning files do) is refused with
:class:`UnsafeCheckpointError` unless the caller trusts it (``--trust-pickle``). Plugins'
importers work on the result and never unpickle anything themselves.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chatface.engine.types import Checkpoint
from chatface.errors import ChatFaceError

logger = logging.getLogger(__name__)


class WeightsError(ChatFaceError):
    """A weights file cannot be imported, downloaded, verified or removed."""


class UnsafeCheckpointError(WeightsError):
    """The checkpoint holds pickled Python objects; loading it could run code."""


class _Missing:
    """Stands in for a class whose module is not installed (e.g. pytorch_lightning)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args

    def __setstate__(self, state: Any) -> None:
        self._state = state


class _TolerantUnpickler(pickle.Unpickler):
    """Used only for trusted files: classes of packages chatface does not need (Lightning
    callbacks, training configs) become inert placeholders instead of an ImportError."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name, (_Missing,), {"__module__": module})


_tolerant_pickle = types.SimpleNamespace(
    __name__="chatface_tolerant_pickle",
    Unpickler=_TolerantUnpickler,
    load=lambda fh, **kw: _TolerantUnpickler(fh, **kw).load(),
)


def _pickled_globals(path: Path, exc: Exception) -> list[str]:
    """The Python objects a checkpoint needs beyond tensors (found without unpickling)."""
    from torch import serialization

    try:
        return list(serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:
        return re.findall(r"GLOBAL ([\w.]+)", str(exc))


def _load_torch(path: Path, trust_pickle: bool, origin: str | None) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        needed = _pickled_globals(path, exc)
        if not needed:
            raise WeightsError(f"{path} is not a PyTorch checkpoint or is damaged.") from None
        if not trust_pickle:
            shown = ", ".join(needed[:4]) + (
                f" and {len(needed) - 4} more" if len(needed) > 4 else ""
            )
            where = f" (from {origin})" if origin else ""
            raise UnsafeCheckpointError(
                f"{path}{where} cannot be loaded safely: besides tensors it holds pickled "
                f"Python objects ({shown}). Unpickling runs code stored in the file, so a "
                "tampered checkpoint could take over your account. Lightning checkpoints "
                "usually hold such objects (training settings, callbacks). Only if you trust "
                f"{origin or 'where the file came from'}, run the command again with "
                "--trust-pickle (trust_pickle=True in Python). It is converted to "
                "safetensors, so this is needed once."
            ) from None
    except Exception as exc:
        raise WeightsError(f"{path} is not a PyTorch checkpoint or is damaged ({exc}).") from None
    where = f" from {origin}" if origin else ""
    logger.warning("Unpickling %s%s fully (--trust-pickle): it may run code.", path, where)
    try:
        return torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=_tolerant_pickle
        )
    except Exception as exc:
        raise WeightsError(f"{path} cannot be loaded even with --trust-pickle ({exc}).") from None


def is_safetensors(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def read_checkpoint(
    path: Path | str, *, trust_pickle: bool = False, origin: str | None = None
) -> Checkpoint:
    """The tensors (and training settings) of a checkpoint file; see the module docstring.

    ``origin`` names where the file came from, for the messages about unpickling.
    """
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"No such file: {path}")
    if is_safetensors(path):
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = dict(fh.metadata() or {})
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        except Exception as exc:
            raise WeightsError(f"{path} is not a readable safetensors file ({exc}).") from None
        return Checkpoint(path, tensors, None, meta)
    obj = _load_torch(path, trust_pickle, origin)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        state = {k: v for k, v in obj["state_dict"].items() if isinstance(v, torch.Tensor)}
        return Checkpoint(path, state, obj.get("hyper_parameters"))
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return Checkpoint(path, dict(obj))
    raise WeightsError(
        f"{path} is neither a Lightning checkpoint (with a 'state_dict') nor a state dict of "
        "tensors, so chatface does not know which weights to take from it."
    )


def as_mapping(obj: Any) -> Mapping[str, Any]:
    """Training settings as a mapping, also when they were unpickled as an inert stand-in."""
    if isinstance(obj, Mapping):
        return obj
    state = getattr(obj, "_state", None) or getattr(obj, "__dict__", None)
    return state if isinstance(state, Mapping) else {}


def metadata_json(checkpoint: Checkpoint, key: str) -> Any:
    """A JSON value stored in a safetensors file's metadata, or None."""
    raw = checkpoint.metadata.get(key)
    return json.loads(raw) if raw else None
