"""``chatface eval``: how an attribute edit scores on a folder of faces, per strength.

Prints a table (or ``--json``) and writes a contact sheet PNG; the metrics are
explained in :mod:`chatface.plugins.mapper.evaluate`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from chatface.plugins.mapper.evaluate import Evaluation

console = Console(stderr=True, highlight=False)
STRENGTHS = "0,0.25,0.5,0.75,1"


def eval_attribute(
    attribute: str = typer.Option(
        ..., "--attribute", help="The attribute to evaluate (name or alias; for zero-shot, text)."
    ),
    images: Path = typer.Option(..., "--images", help="Folder of face photos (each opened once)."),
    method: str | None = typer.Option(
        None,
        "--method",
        help="Which edit: mapper, classifier or zero-shot (default: the mapper's when a "
        "mapper file provides the attribute, else the classifier direction's).",
    ),
    schedule: str | None = typer.Option(
        None,
        "--schedule",
        help="Condition schedule: stable or constant (default: the attribute's, else the "
        "render.schedule setting).",
    ),
    strengths: str = typer.Option(
        STRENGTHS, "--strengths", help="Comma-separated strengths in [-1, 1]."
    ),
    steps: int | None = typer.Option(
        None, "--steps", min=1, help="DDIM steps per render (default: the render.steps setting)."
    ),
    batch: int = typer.Option(8, "--batch", min=1, help="Faces per model call."),
    out: Path = typer.Option(
        Path("."), "--out", help="Folder of the contact sheet eval-ATTRIBUTE-METHOD-SCHEDULE.png."
    ),
    json_: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Evaluate an attribute edit on a folder of faces: identity similarity, CLIP
    directional score and the attribute classifier's change, per strength, and a
    contact sheet PNG.

    Example: chatface eval --attribute curly_hair --images faces/ --method mapper
    """
    from chatface.config import load_config
    from chatface.engine.editor import Engine
    from chatface.engine.photos import encode_image
    from chatface.files import atomic_write
    from chatface.plugins.mapper import evaluate
    from chatface.plugins.mapper.evaluate_sheet import contact_sheet

    values = parse_strengths(strengths)
    engine = Engine(load_config())
    backend = engine.config["engine.backend"]
    plan = evaluate.resolve(engine, attribute, method, backend)
    schedule = schedule or plan.schedule or engine.config["render.schedule"]
    if schedule not in engine.registry.schedules:
        known = ", ".join(sorted(engine.registry.schedules))
        raise evaluate.EvalError(f"--schedule must be one of {known}; got {schedule!r}.")
    out.mkdir(parents=True, exist_ok=True)
    sheet_path = out / f"eval-{plan.attribute}-{plan.method}-{schedule}.png"
    meters = evaluate.load_meters(engine, plan)
    if engine.is_random(backend):
        console.print(f"[yellow]The '{backend}' backend has random weights: a dry run.[/yellow]")
    with _bar("Opening faces") as update:
        faces = evaluate.open_faces(engine, images, backend, update)
    if faces.skipped:
        count = len(faces.skipped)
        console.print(f"Skipped {count} file{'s' * (count > 1)} without a usable face:")
        for name, why in faces.skipped:
            console.print(f"  {name}: {why}")
    learning = plan.provider is None  # zero-shot learns each face's offset first
    with _bar(f"Learning '{plan.text}'") if learning else nullcontext() as update:
        edit = evaluate.editor(engine, plan, faces, update)
    with _bar("Rendering") as update:
        result = evaluate.evaluate(
            engine, plan, meters, faces, edit, strengths=values, schedule=schedule,
            steps=steps or engine.config["render.steps"], batch=batch, progress=update,
        )  # fmt: skip
    atomic_write(sheet_path, encode_image(contact_sheet(result))[0])
    if json_:
        typer.echo(json.dumps(result.to_json(sheet_path)))
        return
    Console(highlight=False).print(table(result))
    if result.classifier_note:
        console.print(f"Classifier change: n/a ({result.classifier_note}).")
    console.print(f"Wrote {sheet_path}")


def parse_strengths(text: str) -> list[float]:
    """``"0,0.5,1"`` -> [0.0, 0.5, 1.0]; each a number in [-1, 1]."""
    from chatface.plugins.mapper.evaluate import EvalError

    values = []
    for item in (part.strip() for part in text.split(",")):
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not -1 <= value <= 1:
            raise EvalError(
                f"--strengths takes comma-separated numbers in [-1, 1] (e.g. {STRENGTHS}); "
                f"got {item!r}."
            )
        values.append(value)
    return values


def table(result: Evaluation) -> Table:
    """Means over the faces, one row per strength."""
    plan = result.plan
    title = (
        f"{plan.attribute} ({plan.method}, {plan.backend}, {result.schedule}, "
        f"{result.steps} steps): {len(result.faces)} faces"
    )
    grid = Table(title=title, caption=f'"{plan.source}" -> "{plan.target}"')
    for header in ("strength", "identity vs unedited", "identity vs photo", "CLIP directional",
                   "CLIP change", "classifier Δlogit"):  # fmt: skip
        grid.add_column(header, justify="right")
    for row in result.results:
        cells = [row.mean(m) for m in ("identity", "identity_photo", "directional", "clip_change")]
        logit = row.mean("classifier")
        grid.add_row(
            f"{row.strength:+.2f}",
            *(f"{value:.4f}" for value in cells),
            "n/a" if logit is None else f"{logit:+.3f}",
        )
    return grid


@contextmanager
def _bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr; yields the engine's ``progress(done, total)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update
