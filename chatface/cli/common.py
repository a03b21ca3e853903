"""What the photo commands (edit, encode, render, chat, demo) share.

Everything a user can get wrong (the photo, the backend and its weights, the output
path) is checked here before any progress bar starts, so a mistake costs no encoding
time and shows as one error line.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from chatface.cli.progress import progress_bar
from chatface.config import load_config
from chatface.errors import ChatFaceError, WeightsMissingError
from chatface.files import atomic_write

if TYPE_CHECKING:
    from PIL import Image

    from chatface.engine.editor import Engine, OpenedFace

console = Console(stderr=True, highlight=False)

DOWNLOAD_HELP = "Download missing weights without asking (on a terminal chatface asks)."


def make_engine() -> Engine:
    from chatface.engine.editor import Engine

    return Engine(load_config())


def warn_if_random(engine: Engine, backend: str) -> None:
    if engine.is_random(backend):
        from chatface.engine.editor import random_weights_banner
        from chatface.engine.weights import install_hint

        name = engine.config["engine.weights"]
        banner = random_weights_banner(backend)
        console.print(f"[bold yellow]{banner}[/bold yellow] Real edits need '{name}'.")
        console.print(install_hint(name))


def interactive() -> bool:
    """Whether a person can answer a question: a terminal on both ends, and not CI."""
    return sys.stdin.isatty() and sys.stderr.isatty() and not os.environ.get("CI")


def pick_backend(
    engine: Engine,
    requested: str | None,
    attributes: Iterable[str] | None = None,
    *,
    fall_back: bool = False,
    download: bool = False,
) -> str:
    """The backend to use, loaded now with the directions of ``attributes`` (default: all),
    so that missing weights stop us before any work.

    Missing weights a plugin declares are downloaded with ``download``, or after asking
    when a person is at a terminal. Otherwise, with ``fall_back``, a default backend
    whose weights are missing gives way to a random-weight one (saying so), so that a
    new user sees the whole flow; a backend asked for by name never does. Nothing is
    ever downloaded without a terminal or ``--download`` (tests, scripts, CI).
    """
    from chatface.cli.weights import about, download_with_progress

    name = requested or engine.config["engine.backend"]
    fetched: set[str] = set()
    while True:
        try:
            engine.check_ready(name, attributes)
            break
        except WeightsMissingError as exc:
            spec = engine.weights_specs().get(exc.weights or "")
            if spec is not None and spec.name not in fetched:
                question = f"Download {about(spec)} now?"
                if download or (interactive() and typer.confirm(question, default=True)):
                    fetched.add(spec.name)
                    download_with_progress(engine, spec.name)
                    continue
            stand_ins = sorted(engine.registry.random_backends)
            if requested or not fall_back or not stand_ins:
                raise
            from chatface.engine.editor import random_weights_banner

            engine.check_ready(stand_ins[0], attributes)
            console.print(f"[yellow]{exc}[/yellow]")
            console.print(
                f"Falling back to the '{stand_ins[0]}' backend so you can see the whole flow "
                f"(`--download` fetches the weights). {random_weights_banner(stand_ins[0])}"
            )
            return stand_ins[0]
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
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=fmt)
        atomic_write(path, buffer.getvalue())
    except (KeyError, ValueError, OSError) as exc:
        # strerror, not str(exc): the latter names our temporary file, not the user's path.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ChatFaceError(f"Cannot write {path}: {reason}.") from None


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    from PIL import Image

    canvas = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    return canvas
