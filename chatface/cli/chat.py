"""``chatface chat``: an interactive editing session in the terminal."""

from __future__ import annotations

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
    save,
)
from chatface.cli.edit import BACKEND_HELP
from chatface.cli.progress import progress_bar
from chatface.errors import ChatFaceError

if TYPE_CHECKING:
    from chatface.bots.conversation import Conversation
    from chatface.engine.editor import Engine

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
    from chatface.bots.conversation import Conversation
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
        conversation = Conversation(engine, store, platform="cli", backend=name)
        reply = conversation.add_face(user, chat_id, opened, data, photo.name)
        console.print(f"[bold]chatface:[/bold] {reply.text}")
        console.print(f"(Type what to change; {PHOTO_COMMAND} PATH for another photo; quit.)")
        turn = 0
        while True:
            try:
                message = typer.prompt("you", prompt_suffix="> ")
            except (EOFError, typer.Abort):
                break
            if message.strip().lower() in QUIT:
                break
            command, _, argument = message.strip().partition(" ")
            if command.lower() == PHOTO_COMMAND:
                text = _switch_photo(engine, conversation, user, chat_id, argument, name)
                console.print(f"[bold]chatface:[/bold] {text}")
                continue
            with progress_bar("Rendering") as report:
                reply = conversation.receive_text(user, chat_id, message, report)
            console.print(f"[bold]chatface:[/bold] {reply.text}")
            if reply.image is not None:
                turn += 1
                path = folder / f"{turn:03d}.png"
                save(reply.image, path)
                console.print(f"  saved {path}")
    console.print("Bye.")


def _switch_photo(
    engine: Engine, conversation: Conversation, user: str, chat_id: str, argument: str, backend: str
) -> str:
    """Open another photo mid-session; a bad one is a reply and the current face stays."""
    if not argument.strip():
        return f"Say which photo: {PHOTO_COMMAND} PATH."
    path = Path(argument.strip().strip("'\"")).expanduser()
    try:
        data, image = read_photo(engine, path)
        opened = open_face(engine, image, 0, backend, None)
    except ChatFaceError as exc:
        return f"{exc} (The current photo stays.)"
    return conversation.add_face(user, chat_id, opened, data, path.name).text
