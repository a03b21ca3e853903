"""``chatface config``: show the effective settings and where each came from."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from chatface.config import load_config, render_defaults_toml

app = typer.Typer(help="Show settings.\n\nExample: chatface config show", no_args_is_help=True)


@app.command("show")
def show(json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show every setting, its value and its source (default, file or $VARIABLE).

    Example: CHATFACE_RENDER_STEPS=20 chatface config show
    """
    config = load_config()
    if json_:
        data = {
            "file": str(config.file) if config.file else None,
            "data_dir": str(config.data_dir),
            "database_url": config.database_url,
            "settings": {
                name: {"value": value, "source": config.sources[name]}
                for name, value in config.values.items()
            },
        }
        typer.echo(json.dumps(data, indent=2))
        return
    console = Console()
    table = Table("setting", "value", "source")
    for name, value in config.values.items():
        table.add_row(name, json.dumps(value), config.sources[name])
    console.print(table)
    console.print(f"config file: {config.file or '(none)'}", highlight=False)
    console.print(f"data dir: {config.data_dir}", highlight=False)
    console.print(f"database: {config.database_url}", highlight=False)


@app.command("defaults")
def defaults() -> None:
    """Print every setting with its default and help as a commented config.toml.

    Example: chatface config defaults > ~/.local/share/chatface/config.toml
    """
    typer.echo(render_defaults_toml(), nl=False)


@app.command("path")
def path() -> None:
    """Print the config file chatface reads (it may not exist yet).

    Example: chatface config path
    """
    config = load_config()
    typer.echo(str(config.file or config.data_dir / "config.toml"))
