"""``chatface demo``: photo -> edit -> undo on a bundled example photo, stored like a chat."""

from __future__ import annotations

import getpass
import io
from importlib import resources
from pathlib import Path

import typer

from chatface.cli.edit import console, make_engine, open_face, save, side_by_side, warn_if_random
from chatface.cli.progress import progress_bar
from chatface.engine.types import EditOp, EditPlan, SessionState
from chatface.errors import WeightsMissingError

DEMO_EDITS = (EditOp("smile", 0.6), EditOp("age", 0.4))
# Inverting with few steps keeps the random-weight demo quick; its output is noise anyway.
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
) -> None:
    """Edit an example photo (smile, older), undo it, and write before/after images.

    Uses the configured backend when its weights are installed, else the random-weight
    'tiny' backend (with a banner saying so). The session is stored like a chat, so
    `chatface history --user demo` shows it.

    Example: chatface demo -o demo-output
    """
    from chatface.storage import Store

    engine = make_engine()
    name = backend or engine.config["engine.backend"]
    try:
        engine.backend(name)
    except WeightsMissingError as exc:
        if backend:
            raise
        console.print(f"[yellow]{exc}[/yellow]")
        console.print("Falling back to the 'tiny' backend so you can see the whole flow.")
        name = "tiny"
    warn_if_random(engine, name)
    source = photo or example_photo()
    encode_steps = TINY_ENCODE_STEPS if name == "tiny" else None
    opened = open_face(engine, source, 0, name, encode_steps)
    attributes = {a.name: a for a in engine.attributes()}

    with Store.from_config(engine.config) as store:
        user = store.get_or_create_user("cli", "demo")
        conversation = store.get_or_create_conversation(user.id, getpass.getuser())
        crop_png = io.BytesIO()
        opened.aligned.image.save(crop_png, format="PNG")
        face = store.add_face(
            conversation.id,
            aligned_png=crop_png.getvalue(),
            inverse_transform=opened.aligned.to_photo.reshape(-1).tolist(),
            latents=opened.latents.to_bytes(),
            backend=name,
            weights_sha256=engine.backend(name).weights_sha256,
            source_name=source.name,
        )
        plan = EditPlan("edit", DEMO_EDITS, reply="Adding a smile and a few years.")
        state = SessionState().apply(plan.edits, attributes)
        store.log_message(conversation.id, "user", "make her smile and a bit older")
        edit = store.append_edit(face.id, plan_json=plan.to_json(), state_json=state.to_json())
        store.log_message(conversation.id, "bot", plan.reply)
        with progress_bar("Rendering the edit") as report:
            after = engine.render(opened, state, steps=steps, progress=report)
        store.undo(face.id)
        undone = SessionState.from_json(store.current_state_json(face.id))
        with progress_bar("Rendering after undo") as report:
            undo = engine.render(opened, undone, steps=steps, progress=report)

    output.mkdir(parents=True, exist_ok=True)
    paths = {
        "before": output / "before.png",
        "after": output / "after.png",
        "undo": output / "after_undo.png",
        "all": output / "before_after_undo.png",
    }
    save(opened.photo, paths["before"])
    save(after, paths["after"])
    save(undo, paths["undo"])
    save(side_by_side(side_by_side(opened.photo, after), undo), paths["all"])
    console.print(f"Edit {edit.seq}: {plan.reply} Then undo (back to the original latents).")
    for label, path in paths.items():
        console.print(f"  {label:7} {path}")
