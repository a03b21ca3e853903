"""``chatface serve``: run a chat bot."""

from __future__ import annotations

import asyncio

import typer

from chatface.cli.common import console, make_engine, pick_backend
from chatface.config import load_config
from chatface.keys import key_store

app = typer.Typer(help="Run a chat bot.\n\nExample: chatface serve telegram", no_args_is_help=True)


@app.command("telegram")
def telegram(
    base_url: str | None = typer.Option(
        None,
        "--base-url",
        help="Bot API base URL; the token is appended (default: setting bots.telegram_base_url, "
        "else Telegram's).",
    ),
    base_file_url: str | None = typer.Option(
        None,
        "--base-file-url",
        help="Base URL of file downloads (default: setting bots.telegram_base_file_url, "
        "else Telegram's).",
    ),
    webhook_url: str | None = typer.Option(
        None,
        "--webhook-url",
        help="Take updates by webhook at this public https:// URL instead of long polling; "
        "forward it to http://LISTEN:PORT/telegram.",
    ),
    listen: str | None = typer.Option(
        None, "--listen", help="Webhook mode: address to listen on [default: 127.0.0.1]."
    ),
    port: int | None = typer.Option(
        None, "--port", help="Webhook mode: port to listen on [default: 8443]."
    ),
) -> None:
    """Run the Telegram bot until Ctrl-C or SIGTERM.

    The token comes from $TELEGRAM_BOT_TOKEN or `chatface keys set telegram`; data and
    settings (engine.backend, ...) from the usual places (CHATFACE_HOME, config.toml).

    Example: chatface serve telegram
    """
    from chatface.bots import telegram as bot

    webhook = bot.webhook_options(webhook_url, listen, port)
    config = load_config()
    token = key_store(config.data_dir).require("telegram")
    engine = make_engine()
    backend = pick_backend(engine, None)
    bot.run(
        engine,
        backend,
        token,
        base_url=base_url or config["bots.telegram_base_url"],
        base_file_url=base_file_url or config["bots.telegram_base_file_url"],
        webhook=webhook,
        announce=console.print,
    )


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
    shard_count, shard_ids = bot.shards(
        config["bots.discord_shard_count"], config["bots.discord_shard_ids"]
    )
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
            shard_count=shard_count,
            shard_ids=shard_ids,
        )
    )
