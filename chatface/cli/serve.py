"""``chatface serve``: run a chat bot."""

from __future__ import annotations

import asyncio

import typer

from chatface.cli.common import console, make_engine, pick_backend
from chatface.config import load_config
from chatface.keys import key_store

app = typer.Typer(help="Run a chat bot.\n\nExample: chatface serve discord", no_args_is_help=True)


@app.command("discord")
def discord(
    base_url: str | None = typer.Option(
        None,
        "--base-url",
        help="Discord API base URL (default: setting bots.discord_base_url, else Discord's).",
    ),
    channel: list[int] = typer.Option(
        [],
        "--channel",
        help="A channel id where plain messages are answered (repeatable; added to the "
        "setting bots.discord_channels). DMs and slash commands are always answered.",
    ),
) -> None:
    """Run the Discord bot until Ctrl-C or SIGTERM.

    The token comes from $DISCORD_BOT_TOKEN or `chatface keys set discord`; data and
    settings (engine.backend, ...) from the usual places (CHATFACE_HOME, config.toml).
    Answering in channels needs the Message Content intent (docs/bots.md).

    Example: chatface serve discord --channel 123456789012345678
    """
    from chatface.bots import discord as bot

    config = load_config()
    token = key_store(config.data_dir).require("discord")
    channels = bot.channel_ids(config["bots.discord_channels"], channel)
    engine = make_engine()
    backend = pick_backend(engine, None)
    asyncio.run(
        bot.run_bot(
            engine,
            token,
            channels=channels,
            base_url=base_url or config["bots.discord_base_url"],
            backend=backend,
            announce=console.print,
        )
    )
