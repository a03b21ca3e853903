"""``chatface weights``: import, download, list, verify and remove model weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from chatface.config import load_config

if TYPE_CHECKING:
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


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _print_installed(console: Console, info: WeightsInfo) -> None:
    console.print(f"Installed '{info.name}' ({info.kind}) in {info.path}", highlight=False)
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
    trust_pickle: bool = typer.Option(
        False,
        "--trust-pickle",
        help="Allow full unpickling, which can run code from the file. Only for files you trust.",
    ),
    json_: bool = JSON,
) -> None:
    """Convert a checkpoint into safetensors under the data directory, checked strictly.

    From an official last.ckpt the EMA weights are kept; latent.pkl next to it is read too.

    Files holding pickled objects can run code: they need --trust-pickle.

    Example: chatface weights import checkpoints/ffhq256_autoenc/last.ckpt --trust-pickle
    """
    from chatface.engine.weights import import_weights

    console = Console(stderr=json_)
    with console.status(f"Importing {path} ..."):
        info = import_weights(
            path, name=name, config_path=config, stats_path=stats, trust_pickle=trust_pickle
        )
    if json_:
        typer.echo(json.dumps(info.to_dict(), indent=2))
    else:
        _print_installed(console, info)


@app.command("download")
def download(
    name: str = typer.Argument(..., help="Weights name, e.g. ffhq256_autoenc."),
    source: str | None = typer.Option(
        None, "--from", help="Base URL (https://... or hf://owner/repo); default: weights.base_url."
    ),
) -> None:
    """Download weights from the configured mirror and check every sha256 before installing.

    Example: chatface weights download ffhq256_autoenc --from hf://owner/repo
    """
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    from chatface.engine.weights import download as download_weights

    console = Console()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        tasks: dict[str, int] = {}

        def report(file: str, done: int, total: int | None) -> None:
            if file not in tasks:
                tasks[file] = progress.add_task(file, total=total)
            progress.update(tasks[file], completed=done, total=total)

        info = download_weights(name, base_url=source, progress=report)
    _print_installed(console, info)


@app.command("list")
def list_(json_: bool = JSON) -> None:
    """List installed weights: name, kind, size, where they came from.

    Example: chatface weights list --json
    """
    from chatface.engine.weights import list_weights, weights_root

    settings = load_config()
    found = list_weights(settings)
    if json_:
        typer.echo(json.dumps([info.to_dict() for info in found], indent=2))
        return
    console = Console()
    if not found:
        console.print(
            f"No weights installed in {weights_root(settings)}. "
            "See `chatface weights import --help`.",
            highlight=False,
        )
        return
    table = Table("name", "kind", "size", "source", "installed")
    for info in found:
        source = info.source.get("file") or info.source.get("url") or ""
        when = info.imported_at[:16].replace("T", " ")
        table.add_row(info.name, info.kind, _size(info.size_bytes), source, when)
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
