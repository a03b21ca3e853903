"""``chatface demo``: photo -> edit -> undo on a bundled example photo, stored like a chat."""

from __future__ import annotations

import asyncio
import getpass
import io
from importlib import resources
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
    side_by_side,
)
from chatface.cli.progress import progress_bar
from chatface.engine.types import EditOp, EditPlan
from chatface.errors import ChatFaceError
from chatface.files import atomic_write

if TYPE_CHECKING:
    from chatface.bots.conversation import Reply
    from chatface.engine.editor import Engine, OpenedFace
    from chatface.storage import Store

DEMO_EDITS = (EditOp("smile", 0.6), EditOp("age", 0.4))
# Inverting with few steps keeps a random-weight demo quick; its output is noise anyway.
TINY_ENCODE_STEPS = 20


def example_photo() -> Path:
    return Path(str(resources.files("chatface") / "data" / "example_face.jpg"))


def demo(
    output: Path = typer.Option(
        Path("chatface-demo"), "--output", "-o", help="Folder to write to."
    ),
    backend: str | None = typer.Option(
        None, "--backend", help="Backend (default: engine.backend, else 'tiny' without weights)."
    ),
    photo: Path | None = typer.Option(
        None, "--photo", help="Another photo instead of the example."
    ),
    steps: int | None = typer.Option(None, "--steps", min=1, help="DDIM steps per render."),
    download: bool = typer.Option(False, "--download", help=DOWNLOAD_HELP),
) -> None:
    """Edit an example photo (smile, older), undo it, and write before/after images.

    Uses the configured backend when its weights are installed; else offers to download
    them (on a terminal; --download without asking), else uses the random-weight 'tiny'
    backend (with a banner saying so). The session is stored like a chat, so
    `chatface history` shows it.

    Example: chatface demo -o demo-output
    """
    from PIL import Image

    from chatface.storage import Store

    engine = make_engine()
    source = photo or example_photo()
    data, image = read_photo(engine, source)
    check_writable(output / "before.png")
    name = pick_backend(engine, backend, fall_back=True, download=download)
    encode_steps = TINY_ENCODE_STEPS if engine.is_random(name) else None
    opened = open_face(engine, image, 0, name, encode_steps)
    plan = EditPlan("edit", DEMO_EDITS, steps, reply="Adding a smile and a few years.")

    with Store.from_config(engine.config) as store:
        after, undo = asyncio.run(_edit_and_undo(engine, store, name, opened, data, source, plan))
    if after.image is None or undo.image is None:
        raise ChatFaceError(f"The demo could not render: {after.text} {undo.text}")

    output.mkdir(parents=True, exist_ok=True)
    paths = {
        "before": output / "before.png",
        "after": output / "after.png",
        "undo": output / "after_undo.png",
        "all": output / "before_after_undo.png",
    }
    # The replies hold PNG bytes already: written as they are, decoded only to combine.
    after_image, undo_image = (Image.open(io.BytesIO(r.image or b"")) for r in (after, undo))
    save(opened.photo, paths["before"])
    atomic_write(paths["after"], after.image)
    atomic_write(paths["undo"], undo.image)
    save(side_by_side(side_by_side(opened.photo, after_image), undo_image), paths["all"])
    console.print(f"{after.text} Then undo: back to the original photo.")
    for label, path in paths.items():
        console.print(f"  {label:7} {path}")


async def _edit_and_undo(
    engine: Engine,
    store: Store,
    backend: str,
    opened: OpenedFace,
    data: bytes,
    source: Path,
    plan: EditPlan,
) -> tuple[Reply, Reply]:
    """The demo's two turns, on the same async core and render queue as the bots."""
    from chatface.bots.conversation import ConversationCore
    from chatface.engine.queue import make_queue

    queue = await make_queue(engine)
    core = ConversationCore(engine, store, queue, "cli", backend=backend)
    try:
        # Stored as your own session, so `chatface history` right after shows it.
        user, chat_id = getpass.getuser(), "demo"
        await core.add_face(user, chat_id, opened, data, source.name)
        with progress_bar("Rendering the edit") as report:
            after = await core.carry_out(user, chat_id, plan, report)
        undo = await core.carry_out(user, chat_id, EditPlan("undo", reply="Undone."))
        return after, undo
    finally:
        await queue.close()
        core.close()
