"""``chatface keys``: store API keys and bot tokens in a 0600 file."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from chatface.config import load_config
from chatface.keys import KNOWN_ENV, KeyStore, env_names, key_store

app = typer.Typer(
    help="Manage API keys and bot tokens.\n\nExample: chatface keys set anthropic",
    no_args_is_help=True,
)


def _store() -> KeyStore:
    return key_store(load_config().data_dir)


@app.command("set")
def set_key(
    name: str = typer.Argument(..., help="Key name, e.g. anthropic, telegram, discord."),
) -> None:
    """Save a key; it is read from a hidden prompt, or from standard input when piped.

    Example: chatface keys set telegram
    """
    if sys.stdin.isatty():
        value = typer.prompt(f"Enter the '{name}' key", hide_input=True)
    else:
        value = sys.stdin.read()
    store = _store()
    store.set(name, value)
    typer.echo(f"Saved '{name}' in {store.path}")


@app.command("list")
def list_keys() -> None:
    """List the names of stored keys and where each is read from (values never shown).

    Example: chatface keys list
    """
    store = _store()
    console = Console()
    names = sorted(set(store.names()) | set(KNOWN_ENV))
    for name in names:
        source = store.source(name)
        if source:
            console.print(f"{name}: set ({source})", highlight=False)
        else:
            console.print(f"{name}: not set (`chatface keys set {name}` or ${env_names(name)[-1]})")


@app.command("remove")
def remove(name: str = typer.Argument(..., help="Key name.")) -> None:
    """Delete a stored key.

    Example: chatface keys remove anthropic
    """
    if not _store().remove(name):
        typer.echo(f"No stored key called '{name}'.", err=True)
        raise typer.Exit(1)
    typer.echo(f"Removed '{name}'.")


@app.command("path")
def path() -> None:
    """Print the path of the key file.

    Example: chatface keys path
    """
    typer.echo(str(_store().path))
