"""Alembic's entry script for chatface; Alembic runs it for every command.

chatface's upgrade on start (:mod:`chatface.storage.schema`) passes its own connection,
already inside the transaction and lock it upgrades under, as
``config.attributes["connection"]``. The developer commands
(``python -m chatface.storage.migrations``) pass a URL instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from chatface.storage.migrations import context_options
from chatface.storage.sqlite import prepare_sqlite

config = context.config


def run_offline() -> None:
    """``--sql`` mode: print the SQL instead of running it."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        literal_binds=True,
        **context_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        # The caller owns the transaction: Alembic sees it and opens none of its own.
        context.configure(connection=connection, **context_options())
        context.run_migrations()
        return
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "")
    prepare_sqlite(engine)
    try:
        with engine.connect() as own:
            context.configure(connection=own, **context_options())
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
