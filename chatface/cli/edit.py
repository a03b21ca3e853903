"""``chatface edit``, ``chatface encode`` and ``chatface render``: photos in, photos out."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from chatface.cli.common import (
    DOWNLOAD_HELP,
    check_output_image,
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
from chatface.engine.types import EditOp, SessionState
from chatface.errors import ChatFaceError, PlanError
from chatface.files import atomic_write

if TYPE_CHECKING:
    from PIL import Image

    from chatface.engine.editor import Engine, OpenedFace

SET_HELP = "An attribute edit NAME=STRENGTH, strength in [-1, 1]; repeat for several."
STEPS_HELP = "DDIM steps per render (default: the render.steps setting)."
ENCODE_STEPS_HELP = "DDIM steps of the inversion (default: the render.encode_steps setting)."
BACKEND_HELP = "Backend to use (default: the engine.backend setting; 'tiny' = random weights)."
_SAY_WHAT = 'Say what to change, in words ("make her smile") or with --set smile=0.5.'


def parse_edits(engine: Engine, assignments: list[str]) -> list[EditOp]:
    """``["smile=0.5", "glasses=1"]`` -> EditOps with attribute names (aliases resolved)."""
    edits = []
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep:
            raise PlanError(f"--set takes NAME=STRENGTH (e.g. smile=0.5), got {item!r}.")
        attribute = engine.registry.attribute(name)
        if attribute is None:
            known = ", ".join(sorted(engine.registry.attributes))
            raise PlanError(f"Unknown attribute {name!r}. Known attributes: {known}.")
        try:
            strength = float(value)
        except ValueError:
            raise PlanError(f"The strength of {name} must be a number, got {value!r}.") from None
        edits.append(EditOp(attribute.name, strength))
    return edits


def edit(
    photo: Path = typer.Argument(..., help="The photo to edit (JPEG, PNG, WebP, ...)."),
    message: str | None = typer.Argument(
        None, help="What to change, in words (needs a planner, see `chatface plugins`)."
    ),
    set_: list[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Where to write the result (default: PHOTO_edited.png)."
    ),
    steps: int | None = typer.Option(None, "--steps", min=1, help=STEPS_HELP),
    encode_steps: int | None = typer.Option(None, "--encode-steps", min=1, help=ENCODE_STEPS_HELP),
    face: int = typer.Option(0, "--face", min=0, help="Which face: 0 = the largest, 1 = next."),
    backend: str | None = typer.Option(None, "--backend", help=BACKEND_HELP),
    side: bool = typer.Option(
        False, "--side-by-side", help="Write original and result side by side."
    ),
    gif: bool = typer.Option(
        False, "--gif", help="Also write an animated GIF from original to edit."
    ),
    download: bool = typer.Option(False, "--download", help=DOWNLOAD_HELP),
) -> None:
    """Edit the face in a photo and write the whole photo with the face changed.

    Without weights for the default backend, chatface offers to download them (on a
    terminal; --download without asking), else uses the random-weight 'tiny' backend.

    Example: chatface edit portrait.jpg --set smile=0.5 --set age=0.3 -o older_smiling.png
    """
    from chatface.engine import faces, identity

    engine = make_engine()
    edits = parse_edits(engine, set_)
    if message:
        plan = engine.plan(message)
        if plan.action != "edit":
            chat_only = plan.action in ("undo", "redo", "reset", "show_original")
            also = " Undo, redo and reset work in `chatface chat`." if chat_only else ""
            raise PlanError(f"{message!r} asks for no edit. {_SAY_WHAT}{also}")
        console.print(plan.reply)
        edits += plan.edits
        steps = steps or plan.steps
    if not edits:
        raise PlanError(_SAY_WHAT)
    attributes = {a.name: a for a in engine.attributes()}
    state = SessionState().apply(edits, attributes)
    # Everything a user can get wrong is checked before the slow part starts.
    _, image = read_photo(engine, photo)
    output = output or Path(f"{photo.stem}_edited.png")
    check_output_image(output)
    backend = pick_backend(engine, backend, state.strengths, fall_back=True, download=download)
    opened = open_face(engine, image, face, backend, encode_steps)
    with progress_bar("Rendering the edit") as report:
        crop = engine.render_latents(
            opened.latents, state, backend=opened.backend, steps=steps, progress=report
        )
    result = faces.paste_back(opened.photo, faces.to_image(crop), opened.aligned)
    save(side_by_side(opened.photo, result) if side else result, output)
    if gif:
        frames = animation_frames(engine, opened, state, steps)
        path = output.with_suffix(".gif")
        buffer = io.BytesIO()
        frames[0].save(
            buffer, format="GIF", save_all=True, append_images=frames[1:], duration=250, loop=0
        )
        atomic_write(path, buffer.getvalue())
        console.print(f"Wrote {path}")
    summary = ", ".join(f"{k} {v:+.2f}" for k, v in sorted(state.strengths.items()))
    similarity = identity.measure(engine, opened.aligned.image, crop)
    if similarity is not None:
        summary += f"; identity similarity {similarity:.2f}"
    console.print(f"Wrote {output} ({summary})")


def animation_frames(
    engine: Engine, opened: OpenedFace, state: SessionState, steps: int | None, count: int = 5
) -> list[Image.Image]:
    """Renders from the original to ``state`` and back, for a looping GIF."""
    frames = []
    with progress_bar("Rendering the animation", total=count) as report:
        for i in range(count):
            scale = i / (count - 1)
            partial = SessionState({k: v * scale for k, v in state.strengths.items()})
            frames.append(engine.render(opened, partial, steps=steps))
            report(i + 1, count)
    return frames + frames[-2:0:-1]


def encode(
    photo: Path = typer.Argument(..., help="The photo whose face to encode."),
    output: Path = typer.Option(..., "--output", "-o", help="The latents file to write."),
    face: int = typer.Option(0, "--face", min=0, help="Which face: 0 = the largest."),
    backend: str | None = typer.Option(None, "--backend", help=BACKEND_HELP),
    steps: int | None = typer.Option(None, "--steps", min=1, help=ENCODE_STEPS_HELP),
) -> None:
    """Encode a face once into a latents file (z_sem, x_T, the aligned crop, its transform).

    Example: chatface encode portrait.jpg -o portrait.latents.safetensors
    """
    from chatface.engine.latents_file import write_latents_file

    engine = make_engine()
    _, image = read_photo(engine, photo)
    check_writable(output)
    backend = pick_backend(engine, backend, ())  # encoding needs no directions
    opened = open_face(engine, image, face, backend, steps)
    write_latents_file(output, opened, photo)
    console.print(f"Wrote {output}")


def render(
    latents: Path = typer.Argument(..., help="A latents file written by `chatface encode`."),
    set_: list[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the image."),
    photo: Path | None = typer.Option(
        None, "--photo", help="Paste the face back into this photo (default: the encoded one)."
    ),
    crop_only: bool = typer.Option(False, "--crop", help="Write only the aligned face crop."),
    steps: int | None = typer.Option(None, "--steps", min=1, help=STEPS_HELP),
) -> None:
    """Render edits from a latents file, without encoding again.

    Example: chatface render portrait.latents.safetensors --set smile=0.8 -o smile.png
    """
    from chatface.engine import faces
    from chatface.engine.latents_file import read_latents_file
    from chatface.engine.weights import sha256_file

    engine = make_engine()
    file = read_latents_file(latents)
    check_output_image(output)
    state = SessionState().apply(
        parse_edits(engine, set_), {a.name: a for a in engine.attributes()}
    )
    target = None
    if not crop_only:
        target = photo or Path(file.photo_path)
        if not target.is_file():
            raise ChatFaceError(
                f"The encoded photo {target} is gone; pass it with --photo PATH, "
                "or write the face crop alone with --crop."
            )
        if sha256_file(target) != file.photo_sha256:
            if photo is None:
                raise ChatFaceError(
                    f"{target} changed since it was encoded; encode it again, or pass "
                    "--photo PATH to paste into another copy of the same photo."
                )
            console.print(f"[yellow]{target} is not the photo that was encoded.[/yellow]")
        _, photo_image = read_photo(engine, target)
    pick_backend(engine, file.backend, state.strengths)
    with progress_bar("Rendering the edit") as report:
        if target is None:
            crop = engine.render_latents(
                file.latents, state, backend=file.backend, steps=steps, progress=report
            )
            image = faces.to_image(crop)
        else:
            face = file.opened_face(photo_image)
            image = engine.render(face, state, steps=steps, progress=report)
    save(image, output)
    summary = ", ".join(f"{k} {v:+.2f}" for k, v in sorted(state.strengths.items()))
    console.print(f"Wrote {output} ({summary or 'reconstruction'})")
