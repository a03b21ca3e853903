"""``chatface train-mapper``: train a mapping network for one attribute from face photos.

The command reads the faces (a folder, encoded once and cached, or a latents file),
runs :func:`chatface.plugins.mapper.train.train` with a rich progress bar showing the
losses, and writes the mapper file into ``<data dir>/mappers/`` where the mapper
provider finds it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from chatface.errors import ChatFaceError

if TYPE_CHECKING:
    from chatface.engine.editor import Engine
    from chatface.plugins.mapper.train import TrainResult, TrainSettings
    from chatface.plugins.mapper.train_data import TrainingFaces

console = Console(stderr=True, highlight=False)
ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9_]*")
FACES_CACHE = "faces.safetensors"


def train_mapper(
    attribute: str = typer.Option(
        ..., "--attribute", help="Name of the new attribute, snake_case (e.g. curly_hair)."
    ),
    target: str = typer.Option(
        ...,
        "--target",
        help="CLIP text of the edited faces, e.g. 'a photo of a face with curly hair'.",
    ),
    source: str = typer.Option(
        "a photo of a face", "--source", help="CLIP text of the faces before the edit."
    ),
    images: Path | None = typer.Option(
        None, "--images", help="Folder of face photos to train on (encoded once, cached)."
    ),
    latents: Path | None = typer.Option(
        None,
        "--latents",
        help="Train on this latents file instead (a faces cache or `chatface encode` output).",
    ),
    iters: int = typer.Option(10_000, "--iters", min=1, help="Iterations to train in all."),
    batch: int = typer.Option(8, "--batch", min=1, help="Faces per iteration."),
    seed: int = typer.Option(0, "--seed", help="Seed of the network's start and of the batches."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from its checkpoint."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for the checkpoint, previews and faces cache "
        "(default <data dir>/training/ATTRIBUTE).",
    ),
    description: str = typer.Option(
        "", "--description", help="What the attribute does (default: from its name)."
    ),
    alias: list[str] = typer.Option(
        [], "--alias", help="Another word for it, English or Chinese (repeat)."
    ),
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a mapping network that edits faces towards a text (ChatFace's method).

    The trained attribute lands in <data dir>/mappers/ and can be used in chats at once.

    Example: chatface train-mapper --attribute mohawk --target "a face with a mohawk" --images faces/
    """  # noqa: E501 - the example stays on one line, to be copied whole
    from chatface.config import load_config
    from chatface.engine.editor import Engine
    from chatface.plugins.mapper.train import TrainSettings

    if not ATTRIBUTE_NAME.fullmatch(attribute):
        raise ChatFaceError(f"--attribute must be snake_case (like curly_hair), got {attribute!r}.")
    if (images is None) == (latents is None):
        raise ChatFaceError("Give the training faces with either --images DIR or --latents FILE.")
    engine = Engine(load_config())
    backend = engine.config["engine.backend"]
    if engine.is_random(backend):
        console.print(
            f"[yellow]The '{backend}' backend has random weights: a dry run only.[/yellow]"
        )
    out = out or engine.config.data_dir / "training" / attribute
    faces = _faces(engine, backend, images, latents, out)
    settings = TrainSettings.from_config(
        engine.config, attribute=attribute, source=source, target=target, backend=backend,
        batch=batch, seed=seed,
    )  # fmt: skip
    result = _run(engine, faces, settings, iters=iters, out=out, resume=resume)
    saved = _save(engine, faces, settings, result, description, tuple(alias))
    metrics = result.metrics()
    if json_:
        report = {
            "mapper": str(saved),
            "iterations": result.iterations,
            "faces": len(faces),
            "skipped": len(faces.skipped),
            "seconds": round(result.seconds, 3),
            "metrics": metrics,
        }
        typer.echo(json.dumps(report))
        return
    losses = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    console.print(f"Trained '{attribute}' for {result.iterations} iterations ({losses}).")
    typer.echo(str(saved))


def _faces(
    engine: Engine, backend: str, images: Path | None, latents: Path | None, out: Path
) -> TrainingFaces:
    from chatface.plugins.mapper.train_data import load_or_encode, read_faces

    if latents is None:
        assert images is not None
        with _bar("Encoding faces") as update:
            faces = load_or_encode(
                engine, images, out / FACES_CACHE, backend=backend, progress=update
            )
        if faces.skipped:
            total = len(faces) + len(faces.skipped)
            console.print(f"Skipped {len(faces.skipped)} of {total} files without a usable face:")
            for line in faces.skipped:
                console.print(f"  {line}")
        return faces
    faces = read_faces(latents)
    if faces.backend != backend:
        raise ChatFaceError(
            f"{latents} holds faces of the '{faces.backend}' backend, but engine.backend is "
            f"'{backend}'; set CHATFACE_ENGINE_BACKEND={faces.backend} or train with --images."
        )
    if faces.backend_sha256 and faces.backend_sha256 != engine.backend(backend).weights_sha256:
        raise ChatFaceError(
            f"{latents} was encoded with other '{backend}' weights than the installed ones; "
            "train with --images to encode the faces again."
        )
    return faces


def _run(
    engine: Engine,
    faces: TrainingFaces,
    settings: TrainSettings,
    *,
    iters: int,
    out: Path,
    resume: bool,
) -> TrainResult:
    from chatface.plugins.mapper.objective import Objective
    from chatface.plugins.mapper.train import train

    objective = Objective.from_config(engine, settings.backend)
    with _bar("Training", losses=True) as update:

        def report(done: int, total: int, losses: Mapping[str, float]) -> None:
            shown = " ".join(f"{k} {v:.2f}" for k, v in losses.items())
            update(done, total, losses=shown)

        return train(
            engine, faces, settings, objective, iters=iters, out=out, resume=resume,
            checkpoint_every=engine.config["train.checkpoint_every"],
            preview_every=engine.config["train.preview_every"], progress=report,
        )  # fmt: skip


def _save(
    engine: Engine,
    faces: TrainingFaces,
    settings: TrainSettings,
    result: TrainResult,
    description: str,
    aliases: tuple[str, ...],
) -> Path:
    from chatface.plugins.mapper.files import MapperInfo, save_mapper

    network = result.network
    info = MapperInfo(
        attribute=settings.attribute,
        description=description or settings.attribute.replace("_", " "),
        backend=settings.backend,
        latent_dim=network.latent_dim,
        aliases=aliases,
        source=settings.source,
        target=settings.target,
        backend_sha256=engine.backend(settings.backend).weights_sha256,
        training={**settings.to_dict(), "iterations": result.iterations, "faces": len(faces)},
        metrics=result.metrics(),
    )
    return save_mapper(engine.config.data_dir / "mappers", network, info)


@contextmanager
def _bar(description: str, *, losses: bool = False) -> Iterator[Callable[..., None]]:
    """A rich progress bar on stderr; yields ``update(done, total, **fields)``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn(description), BarColumn(bar_width=20), MofNCompleteColumn()]
    if losses:  # the time left, then the last iteration's losses
        columns += [TimeRemainingColumn(), TextColumn("{task.fields[losses]}")]
    else:
        columns.append(TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(description, total=None, losses="")

        def update(done: int, total: int, **fields: str) -> None:
            progress.update(task, completed=done, total=total, **fields)

        yield update
