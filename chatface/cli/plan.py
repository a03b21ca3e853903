"""``chatface plan``: one message in, one plan-contract JSON object out."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from chatface.config import load_config
from chatface.engine.types import SessionState
from chatface.errors import PlanError


def read_state(path: Path | None) -> SessionState:
    """A state file: {"strengths": {"smile": 0.5}} (or the bare {"smile": 0.5})."""
    if path is None:
        return SessionState()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlanError(f"Cannot read the state file {path}: {exc}") from None
    if isinstance(data, dict) and "strengths" not in data:
        data = {"strengths": data}
    return SessionState.from_json(json.dumps(data))


def plan(
    message: str = typer.Argument(..., help="The chat message to plan."),
    json_: bool = typer.Option(False, "--json", help="Print one plan-contract JSON object."),
    planner: str | None = typer.Option(
        None, "--planner", help="Planner name (default: the planner.name setting)."
    ),
    state: Path | None = typer.Option(
        None, "--state", help='Session state JSON, e.g. {"strengths": {"smile": 0.5}}.'
    ),
) -> None:
    """Turn one message into an edit plan; --json prints the plan contract's JSON object.

    Needs no model weights and no API key with the default offline planner.

    Example: chatface plan --json "make her smile a bit and add glasses"
    """
    from chatface.engine.editor import Engine

    engine = Engine(load_config())
    result = engine.plan(message, read_state(state), planner=planner)
    if json_:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    edits = ", ".join(f"{op.attribute} {op.strength:+.2f}" for op in result.edits)
    steps = f" in {result.steps} steps" if result.steps else ""
    typer.echo(f"{result.action}{': ' + edits if edits else ''}{steps}")
    if result.reply:
        typer.echo(result.reply)
