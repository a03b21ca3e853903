"""``chatface weights``: import, download, list, verify and remove model weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Column, Table

if TYPE_CHECKING:
    from chatface.engine.editor import Engine
    from chatface.engine.types import WeightsSpec
    from chatface.engine.weights import WeightsInfo

app = typer.Typer(
    help="Install, check and remove model weights (docs/weights.md).\n\n"
    "Example: chatface weights import checkpoints/ffhq256_autoenc/last.ckpt",
    no_args_is_help=True,
)

JSON = typer.Option(False, "--json", help="Print JSON.")
CHECKPOINT = typer.Argument(..., help="last.ckpt, a .pt/.pth state dict or .safetensors.")
NETWORK_CONFIG = typer.Option(
    None, "--config", help="Network configuration JSON (default: the preset of --name)."
)
STATS = typer.Option(
    None, "--stats", help="latent.pkl with conds_mean/conds_std (default: found next to PATH)."
)
TRUST_PICKLE = typer.Option(
    False,
    "--trust-pickle",
    help="Allow full unpickling, which can run code from the file. Only for files you trust.",
)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _print_installed(console: Console, info: WeightsInfo) -> None:
    console.print(f"Installed '{info.name}' ({info.kind}) in {info.path}", highlight=False)
    if info.source.get("from"):
        found = f"  from {info.source['from']}: {info.source.get('file', '')}"
        console.print(found, highlight=False)
    for file, sha in info.files.items():
        console.print(f"  {file}  sha256 {sha[:16]}...", highlight=False)
    for note in info.notes:
        console.print(f"  note: {note}", highlight=False)


@app.command("import")
def import_(
    path: Path = CHECKPOINT,
    name: str | None = typer.Option(
        None, "--name", help="Name to install under (default: the checkpoint's folder name)."
    ),
    config: Path | None = NETWORK_CONFIG,
    stats: Path | None = STATS,
    trust_pickle: bool = TRUST_PICKLE,
    json_: bool = JSON,
) -> None:
    """Convert a checkpoint into safetensors under the data directory, checked strictly.

    The plugin that declares the weights NAME imports them (`chatface plugins` lists
    them); from an official last.ckpt the EMA weights are kept, latent.pkl next to it is
    read too. Files holding pickled objects can run code: they need --trust-pickle.

    Example: chatface weights import checkpoints/ffhq256_autoenc/last.ckpt --trust-pickle
    """
    from chatface.cli.common import make_engine

    console = Console(stderr=json_)
    engine = make_engine()
    options = {"config": config, "stats": stats}
    with console.status(f"Importing {path} ..."):
        info = engine.import_weights(path, name=name, options=options, trust_pickle=trust_pickle)
    if json_:
        typer.echo(json.dumps(info.to_dict(), indent=2))
    else:
        _print_installed(console, info)


@app.command("download")
def download(
    names: list[str] = typer.Argument(
        None, help="Weights to download (default: those the default backend needs)."
    ),
    source: str | None = typer.Option(
        None,
        "--from",
        help="Only this source: hf://owner/repo[@rev], gdrive://FOLDER_ID or an https:// "
        "base URL (default: weights.base_url, then each plugin's sources).",
    ),
    trust_pickle: bool = TRUST_PICKLE,
) -> None:
    """Download weights, check every file and install them; an interrupted download resumes.

    Sources are tried in turn; files are recognised by what they hold, checked strictly
    and converted to safetensors. `chatface weights list --all` shows what can be
    downloaded.

    Example: chatface weights download
    """
    from chatface.cli.common import make_engine

    engine = make_engine()
    specs = engine.weights_specs()
    wanted = names or [name for name, spec in specs.items() if spec.default]
    for name in wanted:
        if name in specs:
            Console(stderr=True).print(f"Downloading {about(specs[name])}", highlight=False)
        info = download_with_progress(engine, name, source, trust_pickle)
        _print_installed(Console(), info)


def about(spec: WeightsSpec) -> str:
    """``'name' (about N MB, from A, then B)``: what a download will fetch, and from where."""
    where = ", then ".join(source.describe() for source in spec.sources)
    size = f"about {spec.download_mb} MB" if spec.download_mb else "size unknown"
    return f"'{spec.name}' ({size}, from {where or 'the configured source'})"


def download_with_progress(
    engine: Engine, name: str, source: str | None = None, trust_pickle: bool = False
) -> WeightsInfo:
    """Download one set of weights with a progress bar per file (to stderr)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn())  # fmt: skip
    with Progress(*columns, console=Console(stderr=True)) as progress:
        tasks: dict[str, int] = {}

        def report(file: str, done: int, total: int | None) -> None:
            if file not in tasks:
                tasks[file] = progress.add_task(file, total=total)
            progress.update(tasks[file], completed=done, total=total)

        return engine.download_weights(
            name, source=source, trust_pickle=trust_pickle, progress=report
        )


@app.command("list")
def list_(
    json_: bool = JSON,
    show_all: bool = typer.Option(
        False, "--all", help="Also list the weights plugins declare that are not installed."
    ),
) -> None:
    """List installed weights: name, kind, size, where they came from.

    Example: chatface weights list --all
    """
    from chatface.cli.common import make_engine
    from chatface.engine.weights import list_weights, weights_root

    engine = make_engine()
    found = list_weights(engine.config)
    missing = []
    if show_all:
        installed = {info.name for info in found}
        missing = [s for n, s in sorted(engine.weights_specs().items()) if n not in installed]
    if json_:
        rows = [info.to_dict() | {"installed": True} for info in found]
        rows += [
            {"name": spec.name, "installed": False, "description": spec.description,
             "download_mb": spec.download_mb, "sources": [s.describe() for s in spec.sources]}
            for spec in missing
        ]  # fmt: skip
        typer.echo(json.dumps(rows, indent=2))
        return
    console = Console()
    if not found and not missing:
        console.print(
            f"No weights installed in {weights_root(engine.config)}. "
            "`chatface weights download` gets the default ones; `--all` lists the others.",
            highlight=False,
        )
        return
    table = Table(Column("name", overflow="fold"), "kind", "size", "source", "installed")
    for info in found:
        source = info.source.get("from") or info.source.get("file") or ""
        when = info.imported_at[:16].replace("T", " ")
        table.add_row(info.name, info.kind, _size(info.size_bytes), source, when)
    for spec in missing:
        size = f"~{spec.download_mb} MB" if spec.download_mb else "?"
        first = spec.sources[0].describe() if spec.sources else ""
        table.add_row(spec.name, "", size, first, "no: `chatface weights download NAME`")
    console.print(table)


@app.command("verify")
def verify(
    name: str | None = typer.Argument(None, help="Weights name (default: all installed)."),
    json_: bool = JSON,
) -> None:
    """Recompute the sha256 of every file and compare with the manifest; exit 1 on a problem.

    Example: chatface weights verify ffhq256_autoenc
    """
    from chatface.engine.weights import install_hint, list_weights
    from chatface.engine.weights import verify as verify_weights

    names = [name] if name else [info.name for info in list_weights()]
    reports = [verify_weights(n) for n in names]
    if json_:
        data = [
            {"name": r.name, "ok": r.ok, "mismatched": r.mismatched, "missing": r.missing}
            for r in reports
        ]
        typer.echo(json.dumps(data, indent=2))
    else:
        console = Console()
        if not reports:
            console.print("No weights installed.")
        for r in reports:
            if r.ok:
                console.print(f"{r.name}: OK", highlight=False)
            else:
                problems = [f"{f} changed" for f in r.mismatched]
                problems += [f"{f} missing" for f in r.missing]
                console.print(
                    f"[red]{r.name}: {', '.join(problems)}[/red]. "
                    + install_hint(r.name).replace("Install them", "Install them again", 1),
                    highlight=False,
                )
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


@app.command("remove")
def remove(
    name: str = typer.Argument(..., help="Weights name."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete installed weights and their manifest.

    Example: chatface weights remove ffhq128_autoenc_130M --yes
    """
    from chatface.engine.weights import get_info
    from chatface.engine.weights import remove as remove_weights
    from chatface.errors import WeightsMissingError

    try:
        info = get_info(name)
    except WeightsMissingError:
        raise WeightsMissingError(
            f"No weights called '{name}' are installed; `chatface weights list` shows what is."
        ) from None
    if not yes and not typer.confirm(f"Delete '{name}' ({_size(info.size_bytes)}) in {info.path}?"):
        raise typer.Exit(1)
    remove_weights(name)
    typer.echo(f"Removed '{name}'.")
