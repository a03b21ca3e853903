"""``chatface chat``: an interactive editing session in the terminal."""

from __future__ import annotations

import getpass
from pathlib import Path

import typer

from chatface.cli.edit import BACKEND_HELP, console, save, warn_if_random
from chatface.cli.progress import progress_bar
from chatface.config import load_config

QUIT = {"quit", "exit", "/quit", "/exit", ":q", "bye"}


def chat(
    photo: Path = typer.Argument(..., help="The photo to edit."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Folder for the results (default: chat-PHOTO/)."
    ),
    backend: str | None = typer.Option(None, "--backend", help=BACKEND_HELP),
) -> None:
    """Chat with chatface about a photo: each message edits it; undo, redo and reset work.

    Every result is saved as a numbered image; the session is stored, so `chatface history`
    shows it. Type 'quit' (or press Ctrl-D) to leave.

    Example: chatface chat portrait.jpg
    """
    from chatface.bots.conversation import Conversation
    from chatface.engine.editor import Engine
    from chatface.errors import ChatFaceError
    from chatface.storage import Store

    config = load_config()
    engine = Engine(config)
    backend = backend or config["engine.backend"]
    warn_if_random(backend)
    folder = output or Path(f"chat-{photo.stem}")
    folder.mkdir(parents=True, exist_ok=True)
    user, chat_id = getpass.getuser(), f"terminal:{photo.resolve()}"
    try:
        data = photo.read_bytes()
    except OSError as exc:
        raise ChatFaceError(f"Cannot read {photo}: {exc.strerror}.") from None
    with Store.from_config(config) as store:
        conversation = Conversation(engine, store, platform="cli", backend=backend)
        with progress_bar("Encoding the face (DDIM inversion)") as report:
            reply = conversation.receive_photo(user, chat_id, data, photo.name, report)
        console.print(f"[bold]chatface:[/bold] {reply.text}")
        turn = 0
        while True:
            try:
                message = typer.prompt("you", prompt_suffix="> ")
            except (EOFError, typer.Abort):
                break
            if message.strip().lower() in QUIT:
                break
            with progress_bar("Rendering") as report:
                reply = conversation.receive_text(user, chat_id, message, report)
            console.print(f"[bold]chatface:[/bold] {reply.text}")
            if reply.image is not None:
                turn += 1
                path = folder / f"{turn:03d}.png"
                save(reply.image, path)
                console.print(f"  saved {path}")
    console.print("Bye.")
