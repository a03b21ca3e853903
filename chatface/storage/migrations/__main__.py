"""Developer commands for chatface's Alembic revisions, with no ``alembic.ini`` needed.

    python -m chatface.storage.migrations revision -m "users get a nickname"
    python -m chatface.storage.migrations check
    python -m chatface.storage.migrations history

``revision`` and ``check`` compare the models with a scratch SQLite database that every
existing revision has been applied to, so no real database is ever touched; ``--url``
compares with another (an empty PostgreSQL database, say) instead. ``revision`` writes
the new script into ``versions/`` of the package this runs from, so run it in a
source checkout.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from alembic import command
from alembic.util.exc import CommandError

from chatface.storage.migrations import make_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chatface.storage.migrations",
        description="Create and check chatface's Alembic revisions.",
    )
    parser.add_argument(
        "--url",
        help="compare with this database instead of a scratch SQLite file "
        "(it is upgraded to the latest revision first)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    revision = commands.add_parser("revision", help="write a new revision script")
    revision.add_argument("-m", "--message", required=True, help="what the revision changes")
    revision.add_argument(
        "--empty", action="store_true", help="write an empty script instead of autogenerating"
    )
    revision.add_argument("--rev-id", help="the revision id (default: a random one)")
    commands.add_parser("check", help="fail when the models differ from the latest revision")
    commands.add_parser("history", help="list the revisions")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="chatface-revision-") as scratch:
        url = args.url or f"sqlite:///{Path(scratch) / 'scratch.db'}"
        config = make_config(url=url)
        try:
            if args.command == "history":
                command.history(config)
                return 0
            # Autogenerate compares the models with a database at the latest revision.
            command.upgrade(config, "head")
            if args.command == "check":
                command.check(config)
            else:
                command.revision(
                    config,
                    message=args.message,
                    autogenerate=not args.empty,
                    rev_id=args.rev_id,
                )
        except CommandError as exc:
            logging.getLogger(__name__).error("%s", exc)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
