"""Model weights on disk: where they live, their manifests, verify, remove, require.

Generic: the files themselves belong to the plugins that use them. A plugin declares
each set of weights as a :class:`~chatface.engine.types.WeightsSpec` (hook
``chatface_register_weights``) with an importer that converts checkpoints into the
files its code loads, and the sources to download them from.

Each installed set lives in ``<data dir>/weights/<name>/`` with a ``manifest.json``
that records the sha256 of every file. :func:`import_checkpoint` runs an importer into a
hidden staging directory that replaces the old version in one rename, so an interrupted
import or download leaves the previous version intact; :mod:`.weights_download`
fetches checkpoints and feeds them through the same path. docs/weights.md describes
the layout and the commands.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatface import __version__
from chatface.config import Config, load_config
from chatface.engine.checkpoints import UnsafeCheckpointError, WeightsError  # noqa: F401 (API)
from chatface.engine.types import Checkpoint, WeightsImporter, WeightsSpec
from chatface.errors import WeightsMissingError
from chatface.files import atomic_write

if TYPE_CHECKING:
    import torch

MANIFEST_FILE = "manifest.json"
SUMS_FILE = "SHA256SUMS"

# (file name, bytes done, total bytes or None when the server does not say)
ProgressFn = Callable[[str, int, int | None], None]

WEIGHTS_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class DownloadError(WeightsError):
    """Weights cannot be downloaded: no source, no network, or a checksum mismatch."""


@dataclass(frozen=True)
class WeightsInfo:
    """One installed set of weights, as its manifest describes it."""

    name: str
    kind: str  # what the importer made, e.g. "autoencoder", "classifier"
    path: Path
    files: dict[str, str]  # file name -> sha256
    source: dict[str, Any]
    imported_at: str
    chatface_version: str
    notes: tuple[str, ...] = ()

    @property
    def size_bytes(self) -> int:
        return sum((self.path / f).stat().st_size for f in self.files if (self.path / f).is_file())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "path": str(self.path),
            "files": self.files,
            "size_bytes": self.size_bytes,
            "source": self.source,
            "imported_at": self.imported_at,
            "chatface_version": self.chatface_version,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class VerifyReport:
    name: str
    mismatched: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.missing


# --- paths and manifests ---------------------------------------------------------------


def weights_root(settings: Config | None = None) -> Path:
    return (settings or load_config()).data_dir / "weights"


def weights_dir(name: str, settings: Config | None = None) -> Path:
    """Where the weights called ``name`` live (whether or not they are installed)."""
    if not WEIGHTS_NAME_PATTERN.match(name) or ".." in name:
        raise WeightsError(
            f"'{name}' is not a valid weights name: use letters, digits, '_', '-' and '.'."
        )
    return weights_root(settings) / name


def import_command(name: str) -> str:
    """The command that imports the official checkpoint of ``name``, placed as its authors
    say (``checkpoints/<name>/last.ckpt``). Official files are Lightning pickles, so it
    needs --trust-pickle; --name makes it work whatever the folder is called."""
    return f"chatface weights import checkpoints/{name}/last.ckpt --name {name} --trust-pickle"


def install_hint(name: str, import_file: str | None = None) -> str:
    """How to install the weights ``name``, naming only commands that work as printed;
    ``import_file``: the file a person downloads by hand, when it is not an official
    DiffAE-style ``checkpoints/<name>/last.ckpt``."""
    by_hand = (
        f"`chatface weights import {import_file} --name {name}`"
        if import_file
        else f"`{import_command(name)}`"
    )
    return (
        f"Install them with `chatface weights download {name}`, or from the files "
        f"(docs/weights.md) with {by_hand}."
    )


def _recover(target: Path) -> None:
    """Put back a previous version if a process died between the two renames of _install."""
    if target.exists():
        return
    backups = sorted(target.parent.glob(f".old~{target.name}~*"), key=lambda p: p.stat().st_mtime)
    if backups:
        os.replace(backups[-1], target)


def read_info(path: Path) -> WeightsInfo:
    try:
        data = json.loads((path / MANIFEST_FILE).read_text())
        return WeightsInfo(
            name=data["name"],
            kind=data["kind"],
            path=path,
            files=dict(data["files"]),
            source=dict(data.get("source") or {}),
            imported_at=data.get("imported_at", ""),
            chatface_version=data.get("chatface_version", ""),
            notes=tuple(data.get("notes", ())),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{path / MANIFEST_FILE} is unreadable ({exc}).") from None


def get_info(
    name: str, settings: Config | None = None, import_file: str | None = None
) -> WeightsInfo:
    """The manifest of installed weights; WeightsMissingError if they are not installed
    (``import_file`` as in :func:`install_hint`)."""
    path = weights_dir(name, settings)
    _recover(path)
    if not (path / MANIFEST_FILE).is_file():
        raise WeightsMissingError(
            f"Model weights '{name}' are not installed (looked in {path}). "
            + install_hint(name, import_file),
            weights=name,
        )
    return read_info(path)


def require(name: str, settings: Config | None = None, import_file: str | None = None) -> Path:
    """The directory of installed weights, or a WeightsMissingError naming the fix
    (``import_file`` as in :func:`install_hint`)."""
    info = get_info(name, settings, import_file)
    missing = [f for f in info.files if not (info.path / f).is_file()]
    if missing:
        raise WeightsMissingError(
            f"Model weights '{name}' are incomplete: {', '.join(missing)} missing in "
            f"{info.path}. " + install_hint(name, import_file),
            weights=name,
        )
    return info.path


def list_weights(settings: Config | None = None) -> list[WeightsInfo]:
    root = weights_root(settings)
    if not root.is_dir():
        return []
    for backup in root.glob(".old~*~*"):
        _recover(root / backup.name.split("~")[1])
    found = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (path / MANIFEST_FILE).is_file():
            found.append(read_info(path))
    return found


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def verify(name: str, settings: Config | None = None) -> VerifyReport:
    """Recompute the sha256 of every file in the manifest."""
    info = get_info(name, settings)
    missing, mismatched = [], []
    for file, expected in info.files.items():
        path = info.path / file
        if not path.is_file():
            missing.append(file)
        elif sha256_file(path) != expected:
            mismatched.append(file)
    return VerifyReport(name, tuple(mismatched), tuple(missing))


def remove(name: str, settings: Config | None = None) -> Path:
    path = weights_dir(name, settings)
    _recover(path)
    if not path.exists():
        raise WeightsMissingError(
            f"No weights called '{name}' are installed (in {path}); "
            "`chatface weights list` shows what is."
        )
    shutil.rmtree(path)
    for leftover in path.parent.glob(f".*~{name}~*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return path


# --- atomic installation ---------------------------------------------------------------


@contextmanager
def staging_dir(root: Path, name: str) -> Iterator[Path]:
    """A hidden directory next to the target; removed on any failure or interrupt."""
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp~{name}~", dir=root))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install_from_staging(staging: Path, target: Path) -> None:
    backup = None
    if target.exists():
        backup = target.with_name(f".old~{target.name}~{secrets.token_hex(4)}")
        os.replace(target, backup)
    os.replace(staging, target)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def _finish(path: Path, tmp: Path) -> str:
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return sha256_file(path)


def write_json(path: Path, data: Any) -> str:
    atomic_write(path, (json.dumps(data, indent=2) + "\n").encode())
    return sha256_file(path)


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str] | None) -> str:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".part")
    # clone(): safetensors refuses tensors that share storage with another one.
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, tmp, meta)
    return _finish(path, tmp)


def write_manifest(staging: Path, name: str, kind: str, files: dict[str, str], **extra: Any):
    manifest = {
        "name": name,
        "kind": kind,
        "files": files,
        "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "chatface_version": __version__,
        **extra,
    }
    write_json(staging / MANIFEST_FILE, manifest)


# --- importing -------------------------------------------------------------------------


def default_name(path: Path) -> str:
    """The weights name a checkpoint path suggests: official layout checkpoints/<name>/last.ckpt."""
    return path.parent.name if path.stem == "last" else path.stem


def pick_importer(
    checkpoint: Checkpoint, name: str, specs: Mapping[str, WeightsSpec]
) -> WeightsImporter:
    """The importer of the registered weights ``name``, else the first that recognises
    ``checkpoint`` (so custom names such as a fine-tuned model still import)."""
    if name in specs:
        return specs[name].importer
    importers = list({id(s.importer): s.importer for s in specs.values()}.values())
    for importer in importers:
        if importer.recognises(checkpoint):
            return importer
    known = ", ".join(sorted(specs)) or "none"
    raise WeightsError(
        f"{checkpoint.path} is not a kind of checkpoint any plugin imports (registered "
        f"weights: {known}). Check the file, or install the plugin that uses it."
    )


def import_checkpoint(
    checkpoint: Checkpoint,
    importer: WeightsImporter,
    *,
    name: str,
    options: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
    settings: Config | None = None,
) -> WeightsInfo:
    """Convert ``checkpoint`` with ``importer`` and install it as ``name``, atomically."""
    target = weights_dir(name, settings)
    source = dict(source or {"file": checkpoint.path.name})
    source.setdefault("sha256", sha256_file(checkpoint.path))
    with staging_dir(target.parent, name) as staging:
        result = importer.convert(checkpoint, staging, name=name, options=dict(options or {}))
        write_manifest(
            staging,
            name,
            result.kind,
            dict(result.files),
            source=source,
            notes=list(result.notes),
            **dict(result.extra),
        )
        install_from_staging(staging, target)
    return read_info(target)
