"""``chatface plugins``: which plugins are loaded and what each registered."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Column, Table

from chatface.config import load_config
from chatface.engine.plugins import make_plugin_manager
from chatface.engine.registry import collect

# Built-in plugins are shown by their short name; --json keeps the full module name.
BUILTIN_PREFIX = "chatface.plugins."


def plugin_report(show_all: bool = False) -> list[dict[str, Any]]:
    """One entry per plugin: name, version, hooks, status and what it registered."""
    config = load_config()
    pm = make_plugin_manager(config.plugin_allow_list())
    registry = collect(pm, config)
    report = []
    for record in pm.records.values():
        if record.status != "loaded" and not show_all:
            continue
        report.append(
            {
                "name": record.name,
                "version": record.version,
                "package": record.package,
                "builtin": record.builtin,
                "status": record.status,
                "error": record.error,
                "hooks": record.hooks,
                "registered": registry.registered_by(record.name),
                "problems": [
                    {"hook": p.hook, "severity": p.severity, "message": p.message}
                    for p in registry.problems
                    if p.plugin == record.name
                ],
            }
        )
    return report


def plugins(
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    show_all: bool = typer.Option(
        False, "--all", help="Also list installed plugins that were blocked or failed to load."
    ),
) -> None:
    """List plugins, their versions, hooks and what each registered.

    Example: chatface plugins --json
    """
    report = plugin_report(show_all)
    if json_:
        typer.echo(json.dumps(report, indent=2))
        return
    console = Console()
    # Cells fold instead of being cut, so names can always be told apart.
    headers = ("plugin", "version", "hooks (register_*)", "registered", "status")
    table = Table(*(Column(header, overflow="fold") for header in headers))
    for entry in report:
        registered = entry["registered"]
        lines = [
            f"{kind}: {', '.join(names)}"
            for kind, names in registered.items()
            if names and kind != "attributes"
        ]
        if registered["attributes"]:
            lines.append(f"attributes: {len(registered['attributes'])}")
        status = entry["status"] if entry["status"] == "loaded" else f"{entry['status']}: "
        status += entry["error"] or ""
        name = entry["name"]
        if entry["builtin"]:
            name = name.removeprefix(BUILTIN_PREFIX) + " (built-in)"
        table.add_row(
            name,
            entry["version"] or "?",
            "\n".join(h.removeprefix("chatface_register_") for h in entry["hooks"]),
            "\n".join(lines),
            status,
        )
    console.print(table)
    for entry in report:
        for problem in entry["problems"]:
            colour = "red" if problem["severity"] == "error" else "yellow"
            console.print(
                f"[{colour}]{problem['severity']}[/{colour}] {entry['name']}: {problem['message']}",
                highlight=False,
            )
