"""What the photo commands (edit, encode, render, chat, demo) share.

Everything a user can get wrong (the photo, the backend and its weights, the output
path) is checked here before any progress bar starts, so a mistake costs no encoding
time and shows as one error line.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from chatface.cli.progress import progress_bar
from chatface.config import load_config
from chatface.errors import ChatFaceError, WeightsMissingError

if TYPE_CHECKING:
    from PIL import Image

    from chatface.engine.editor import Engine, OpenedFace

console = Console(stderr=True, highlight=False)


def make_engine() -> Engine:
    from chatface.engine.editor import Engine

    return Engine(load_config())


def warn_if_random(engine: Engine, backend: str) -> None:
    if backend == "tiny":
        from chatface.engine.weights import install_hint
        from chatface.plugins.tiny import BANNER

        name = engine.config["engine.weights"]
        hint = install_hint(name, engine.config)
        console.print(f"[bold yellow]{BANNER}[/bold yellow] Real edits need '{name}'. {hint}")


def pick_backend(
    engine: Engine,
    requested: str | None,
    attributes: Iterable[str] | None = None,
    *,
    fall_back: bool = False,
) -> str:
    """The backend to use, loaded now with the directions of ``attributes`` (default: all),
    so that missing weights stop us before any work.

    With ``fall_back``, a default backend whose weights are missing gives way to the
    random-weight 'tiny' backend (saying so), so that a new user sees the whole flow; a
    backend the user asked for by name never does.
    """
    name = requested or engine.config["engine.backend"]
    try:
        engine.check_ready(name, attributes)
    except WeightsMissingError as exc:
        if requested or not fall_back:
            raise
        from chatface.plugins.tiny import BANNER

        console.print(f"[yellow]{exc}[/yellow]")
        console.print(f"Falling back to the 'tiny' backend so you can see the whole flow. {BANNER}")
        return "tiny"
    warn_if_random(engine, name)
    return name


def read_photo(engine: Engine, path: Path) -> tuple[bytes, Image.Image]:
    """The photo's bytes and decoded image, refusing a missing, unreadable or bad file."""
    from chatface.engine.photos import load_image, read_source

    max_bytes, max_pixels = engine.config["photos.max_bytes"], engine.config["photos.max_pixels"]
    data = read_source(path, max_bytes)
    return data, load_image(data, max_bytes=max_bytes, max_pixels=max_pixels)


def open_face(
    engine: Engine, photo: Image.Image, face: int, backend: str, steps: int | None
) -> OpenedFace:
    """Find, align and encode the face, with a progress bar for the inversion."""
    with progress_bar("Encoding the face (DDIM inversion)") as report:
        opened = engine.open_face(
            photo, face_index=face, backend=backend, steps=steps, progress=report
        )
    if opened.note:
        console.print(opened.note)
    return opened


def image_format(path: Path) -> str:
    """The Pillow format for ``path``'s extension, or an error naming the ones to use."""
    from PIL import Image

    extension = path.suffix.lower()
    if extension not in Image.registered_extensions():
        raise ChatFaceError(f"Unknown image type {extension!r} for {path}; use .png or .jpg.")
    return Image.registered_extensions()[extension]


def check_writable(path: Path) -> None:
    """Fail now, not after minutes of work, if ``path`` cannot be written.

    Probes by creating (and removing) a file in the nearest folder that exists, since
    permission bits alone do not tell (root, read-only mounts, /proc).
    """
    if path.is_dir():
        raise ChatFaceError(f"Cannot write {path}: it is a folder; give a file name.")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ChatFaceError(f"Cannot write {path}: {folder} is not a folder.")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".chatface-probe-"):
            pass
    except OSError as exc:
        raise ChatFaceError(f"Cannot write {path}: {exc.strerror or exc}.") from None


def check_output_image(path: Path) -> None:
    image_format(path)
    check_writable(path)


def save(image: Image.Image, path: Path) -> None:
    """Write atomically, so a failed save never leaves half an image behind."""
    fmt = image_format(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(tmp, format=fmt)
        tmp.replace(path)
    except (KeyError, ValueError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        # strerror, not str(exc): the latter names our temporary file, not the user's path.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ChatFaceError(f"Cannot write {path}: {reason}.") from None


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    from PIL import Image

    canvas = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    return canvas
