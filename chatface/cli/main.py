"""The ``chatface`` typer app and its entry point."""

from __future__ import annotations

import logging
import sys

import pluggy
import typer
from rich.console import Console

from chatface import __version__
from chatface.cli import chat as chat_cmd
from chatface.cli import config as config_cmd
from chatface.cli import demo as demo_cmd
from chatface.cli import doctor as doctor_cmd
from chatface.cli import edit as edit_cmd
from chatface.cli import history as history_cmd
from chatface.cli import keys as keys_cmd
from chatface.cli import plan as plan_cmd
from chatface.cli import plugins as plugins_cmd
from chatface.cli import serve as serve_cmd
from chatface.cli import weights as weights_cmd
from chatface.errors import ChatFaceError

app = typer.Typer(
    name="chatface",
    help="Edit real face photos by chatting.\n\nExample: chatface plugins",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("edit")(edit_cmd.edit)
app.command("plan")(plan_cmd.plan)
app.command("chat")(chat_cmd.chat)
app.command("encode")(edit_cmd.encode)
app.command("render")(edit_cmd.render)
app.command("demo")(demo_cmd.demo)
app.command("plugins")(plugins_cmd.plugins)
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(config_cmd.app, name="config")
app.add_typer(weights_cmd.app, name="weights")
app.add_typer(serve_cmd.app, name="serve")
app.command("history")(history_cmd.history)
app.command("forget")(history_cmd.forget)
app.command("doctor")(doctor_cmd.doctor)


def add_plugin_commands(app: typer.Typer, pm: pluggy.PluginManager | None = None) -> None:
    """Add the commands plugins register (``chatface_register_commands``) to ``app``;
    a name a built-in command holds is refused with a warning."""
    from chatface.config import load_config
    from chatface.engine.plugins import make_plugin_manager
    from chatface.engine.registry import collect_commands

    taken = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    if pm is None:
        try:
            pm = make_plugin_manager(load_config().plugin_allow_list())
        except ChatFaceError:
            return  # a broken config file: the command that runs reports it in one line
    registry = collect_commands(pm)
    for problem in registry.problems:
        logging.getLogger(__name__).warning("%s", problem)
    for name, entry in sorted(registry.commands.items()):
        if name in taken:
            logging.getLogger(__name__).warning(
                "plugin %s: the command %r is built in; the plugin's one is not added",
                entry.plugin,
                name,
            )
        elif isinstance(entry.value, typer.Typer):
            app.add_typer(entry.value, name=name)
        else:
            app.command(name)(entry.value)


add_plugin_commands(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"chatface {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens (to stderr)."),
) -> None:
    """Edit real face photos by chatting.

    Example: chatface plugins
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def run() -> None:
    """Console-script entry point: user errors become one red line, not a traceback."""
    try:
        app()
    except ChatFaceError as exc:
        # One line, wrapped by the terminal, so commands in it are never split by us.
        Console(stderr=True).print(f"[red]Error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
