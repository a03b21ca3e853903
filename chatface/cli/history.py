"""``chatface history`` and ``chatface forget``: a user's stored sessions.

Local CLI sessions belong to the platform ``cli`` and the login name; bot users
can be inspected with ``--platform telegram --user 12345``.
"""

from __future__ import annotations

import getpass
import json
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.tree import Tree

from chatface.config import load_config

if TYPE_CHECKING:
    from chatface.storage import Store

PLATFORM = typer.Option("cli", "--platform", help="cli, telegram or discord.")
USER = typer.Option(None, "--user", help="Platform user id (default: your login name).")


def _who(user: str | None) -> str:
    return user or getpass.getuser()


def _open_store() -> Store:
    # Imported here so that `chatface --help` does not pay for SQLAlchemy.
    from chatface.storage import Store

    return Store.from_config(load_config())


def history_data(store: Store, platform: str, user_id: str) -> dict[str, Any]:
    user = store.find_user(platform, user_id)
    data: dict[str, Any] = {"platform": platform, "user": user_id, "conversations": []}
    if user is None:
        return data
    for conversation in store.conversations(user.id):
        faces = []
        for face in store.faces(conversation.id):
            edits = [
                {
                    "seq": edit.seq,
                    "current": edit.seq == face.cursor,
                    "plan": json.loads(edit.plan_json),
                    "state": json.loads(edit.state_json),
                    "result": edit.result_path,
                    "created_at": edit.created_at.isoformat(),
                }
                for edit in store.history(face.id)
            ]
            faces.append(
                {
                    "id": face.id,
                    "source": face.source_name,
                    "backend": face.backend,
                    "cursor": face.cursor,
                    "created_at": face.created_at.isoformat(),
                    "edits": edits,
                }
            )
        data["conversations"].append(
            {"id": conversation.id, "chat": conversation.chat_id, "faces": faces}
        )
    return data


def history(
    platform: str = PLATFORM,
    user: str | None = USER,
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show stored faces and their edit history; '*' marks the current edit.

    Example: chatface history --json
    """
    user_id = _who(user)
    with _open_store() as store:
        data = history_data(store, platform, user_id)
    if json_:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    console = Console()
    if not data["conversations"]:
        console.print(f"No stored sessions for {platform} user {user_id}.", highlight=False)
        return
    root = Tree(f"{platform} user {user_id}")
    for conversation in data["conversations"]:
        branch = root.add(f"conversation {conversation['id']} {conversation['chat']}".rstrip())
        for face in conversation["faces"]:
            name = face["source"] or "photo"
            node = branch.add(f"face {face['id']}: {name} ({face['backend']})")
            node.add(("* " if face["cursor"] == 0 else "  ") + "0 original")
            for edit in face["edits"]:
                mark = "* " if edit["current"] else "  "
                summary = edit["plan"].get("reply") or edit["plan"].get("action", "")
                node.add(f"{mark}{edit['seq']} {summary}")
    console.print(root, highlight=False)


def forget(
    platform: str = PLATFORM,
    user: str | None = USER,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete everything stored about a user: faces, edits, messages and result files.

    Example: chatface forget --yes
    """
    user_id = _who(user)
    if not yes:
        typer.confirm(f"Delete everything stored for {platform} user {user_id}?", abort=True)
    from chatface.bots.zero_shot import forget_learned
    from chatface.engine.editor import Engine

    with _open_store() as store:
        learned = forget_learned(Engine(load_config()), store, platform, user_id)
        counts = store.forget_user(platform, user_id)
    if learned:
        counts["learned files"] = learned
    total = sum(counts.values())
    detail = ", ".join(_count(n, table.removesuffix("s")) for table, n in counts.items() if n)
    typer.echo(f"Deleted {_count(total, 'record')}" + (f" ({detail})." if detail else "."))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
