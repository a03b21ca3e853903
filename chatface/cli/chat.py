"""``chatface chat``: an interactive editing session in the terminal."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from chatface.cli.common import (
    DOWNLOAD_HELP,
    check_writable,
    console,
    make_engine,
    open_face,
    pick_backend,
    read_photo,
)
from chatface.cli.edit import BACKEND_HELP
from chatface.cli.progress import progress_bar
from chatface.errors import ChatFaceError
from chatface.files import atomic_write

if TYPE_CHECKING:
    from chatface.bots.conversation import ConversationCore
    from chatface.engine.editor import Engine, OpenedFace
    from chatface.storage import Store

QUIT = {"quit", "exit", "/quit", "/exit", ":q", "bye"}
PHOTO_COMMAND = "/photo"


def chat(
    photo: Path = typer.Argument(..., help="The photo to edit."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Folder for the results (default: chat-PHOTO/)."
    ),
    backend: str | None = typer.Option(None, "--backend", help=BACKEND_HELP),
    download: bool = typer.Option(False, "--download", help=DOWNLOAD_HELP),
) -> None:
    """Chat with chatface about a photo: each message edits it; undo, redo and reset work.

    Every result is saved as a numbered image; the session is stored, so `chatface history`
    shows it. `/photo PATH` switches to another photo. Type 'quit' (or press Ctrl-D) to
    leave. Without weights for the default backend it uses the random-weight 'tiny' one,
    as `chatface demo` does.

    Example: chatface chat portrait.jpg
    """
    from chatface.storage import Store

    engine = make_engine()
    # The photo, the output folder and the backend are checked before anything is written.
    data, image = read_photo(engine, photo)
    folder = output or Path(f"chat-{photo.stem}")
    check_writable(folder / "001.png")
    name = pick_backend(engine, backend, fall_back=True, download=download)
    opened = open_face(engine, image, 0, name, None)
    user, chat_id = getpass.getuser(), f"terminal:{photo.resolve()}"
    with Store.from_config(engine.config) as store:
        asyncio.run(
            _session(engine, store, name, user, chat_id, (opened, data, photo.name), folder)
        )
    console.print("Bye.")


async def _session(
    engine: Engine,
    store: Store,
    backend: str,
    user: str,
    chat_id: str,
    first: tuple[OpenedFace, bytes, str],
    folder: Path,
) -> None:
    """The chat loop, on the same async core as the bots (input read off the loop)."""
    from chatface.bots.conversation import COMMANDS, ConversationCore
    from chatface.engine.queue import make_queue

    command_names = {c.name for c in COMMANDS}

    queue = await make_queue(engine)
    core = ConversationCore(engine, store, queue, platform="cli", backend=backend)
    try:
        reply = await core.add_face(user, chat_id, *first)
        console.print(f"[bold]chatface:[/bold] {reply.text}")
        console.print(f"(Type what to change; {PHOTO_COMMAND} PATH for another photo; quit.)")
        turn = 0
        while True:
            try:
                message = await asyncio.to_thread(typer.prompt, "you", prompt_suffix="> ")
            except (EOFError, typer.Abort):
                break
            if message.strip().lower() in QUIT:
                break
            command, _, argument = message.strip().partition(" ")
            if command.lower() == PHOTO_COMMAND:
                text = await _switch_photo(core, user, chat_id, argument)
                console.print(f"[bold]chatface:[/bold] {text}")
                continue
            name = command.lower().removeprefix("/")
            with progress_bar("Rendering") as report:
                if command.startswith("/") and name in command_names:
                    reply = await core.command(user, chat_id, name, argument, report)
                else:
                    reply = await core.receive_text(user, chat_id, message, report)
            console.print(f"[bold]chatface:[/bold] {reply.text}")
            if reply.confirm:
                console.print(f"  (answer /{reply.confirm} yes or /{reply.confirm} no)")
            if reply.image is not None:
                turn += 1
                path = folder / f"{turn:03d}.png"
                atomic_write(path, reply.image)
                console.print(f"  saved {path}")
    finally:
        await queue.close()
        core.close()


async def _switch_photo(core: ConversationCore, user: str, chat_id: str, argument: str) -> str:
    """Open another photo mid-session; a bad one is a reply and the current face stays."""
    if not argument.strip():
        return f"Say which photo: {PHOTO_COMMAND} PATH."
    path = Path(argument.strip().strip("'\"")).expanduser()
    try:
        data, _ = read_photo(core.engine, path)
    except ChatFaceError as exc:
        return f"{exc} (The current photo stays.)"
    with progress_bar("Encoding the face (DDIM inversion)") as report:
        reply = await core.receive_photo(user, chat_id, data, path.name, report)
    return f"{reply.text} (The current photo stays.)" if reply.error else reply.text
