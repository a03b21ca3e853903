"""``chatface doctor``: what is set up, what is missing, and what each command would run.

Only reads: it creates no database, downloads nothing and never prints a key's value.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.markup import escape

from chatface.config import SETTINGS, Config, load_config
from chatface.errors import ChatFaceError, WeightsMissingError
from chatface.keys import KNOWN_ENV, env_names, key_store

if TYPE_CHECKING:
    from chatface.engine.editor import Engine

SERVE = {"telegram": "serve telegram", "discord": "serve discord"}


@dataclass
class Status:
    """One thing checked: whether it is fine, and a line saying what was found."""

    ok: bool
    detail: str


@dataclass
class Report:
    """Everything doctor found; ``--json`` prints it as it is, with ``ok``."""

    config_file: str | None
    changed: dict[str, dict[str, Any]]  # non-default settings: value (passwords hidden), source
    data_dir: str
    data_dir_exists: bool
    storage_url: str
    storage: Status
    weights: dict[str, list[dict[str, Any]]]  # backend -> the weights it and its directions use
    backend: str
    backend_status: Status
    planner: str
    planner_status: Status
    keys: dict[str, str | None]  # key name -> where it is read from, None when not set
    key_file_problem: str | None
    commands: dict[str, Status] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Edits can run with the configured backend, planner and database."""
        return self.storage.ok and self.backend_status.ok and self.planner_status.ok


def hide_password(value: str) -> str:
    """``value`` with the password of a URL in it (``scheme://user:password@host``) as ***;
    text with an ``@`` that does not parse as such a URL loses everything before the ``@``."""
    try:
        parts = urlsplit(value)
        username, password = parts.username, parts.password
    except ValueError:
        username = password = None
    if password:
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{username or ''}:***@{host}"))
    if username is None and "@" in value:
        return re.sub(r"\S*@", "***@", value)
    return value


def _error(exc: Exception) -> str:
    # Our errors are written for people; anything else gets its type for a bug report.
    return str(exc) if isinstance(exc, ChatFaceError) else f"{type(exc).__name__}: {exc}"


def check_storage(config: Config) -> Status:
    """Whether the database opens and is at the latest schema revision (only reads)."""
    import sqlalchemy as sa

    from chatface.storage import head_revision, pending_upgrade
    from chatface.storage.sqlite import sqlite_path

    url = config.database_url

    def hidden(text: str) -> str:  # in case a driver quotes the URL in an error
        return text.replace(url, hide_password(url))

    try:
        engine = sa.create_engine(url)
    except Exception as exc:
        return Status(False, f"cannot use this URL: {hidden(_error(exc))}")
    try:
        path = sqlite_path(engine)
        if path is not None and not path.exists():
            return Status(True, "not created yet; chatface creates it when it first stores a face")
        pending = pending_upgrade(engine)
    except sa.exc.OperationalError as exc:
        # Drivers explain over several lines; one line reads better in a report.
        return Status(False, "cannot open it: " + hidden(" ".join(str(exc.orig).split())))
    except Exception as exc:
        return Status(False, hidden(_error(exc)))
    finally:
        engine.dispose()
    head = head_revision()
    if pending is None:
        return Status(True, f"opens; at the latest schema revision ({head})")
    if pending == "empty":
        return Status(True, "opens; no chatface tables yet (created on first use)")
    return Status(
        True, f"opens; at schema {pending}, upgraded to {head} when chatface next opens it"
    )


def weights_by_backend(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """For each backend, the weights declared by its plugin and by the plugins whose
    directions edit its latents, and whether they are installed."""
    from chatface.engine.weights import list_weights

    registry = engine.registry
    installed = {info.name: info for info in list_weights(engine.config)}
    report: dict[str, list[dict[str, Any]]] = {}
    for backend, entry in sorted(registry.backends.items()):
        plugins = {entry.plugin} | {
            registry.providers[provider].plugin
            for backends in registry.attribute_backends.values()
            for name, provider in backends.items()
            if name == backend
        }
        report[backend] = [
            {"name": name, "installed": name in installed, "plugin": spec.plugin}
            for name, spec in sorted(registry.weights.items())
            if spec.plugin in plugins
        ]
    # Weights imported under a name no plugin declares: only an explicit setting uses them.
    if others := sorted(set(installed) - set(registry.weights)):
        report["(no plugin)"] = [{"name": n, "installed": True, "plugin": None} for n in others]
    return report


def check_backend(engine: Engine, name: str) -> tuple[Status, Exception | None]:
    """Load the backend and its directions, as the photo commands do before any work."""
    try:
        engine.check_ready(name)
    except Exception as exc:
        return Status(False, _error(exc)), exc
    if engine.is_random(name):
        return Status(
            True, "ready, with random weights: its output is noise, not a real edit"
        ), None
    return Status(True, "ready"), None


def check_planner(engine: Engine, name: str, keys: dict[str, str | None]) -> Status:
    try:
        engine.planner(name)
    except Exception as exc:
        return Status(False, _error(exc))
    # A planner named after a service (anthropic) needs that service's key; without it
    # each message goes to the rules planner instead.
    if name in KNOWN_ENV and not keys.get(name):
        return Status(True, f"no '{name}' key: every message falls back to the rules planner")
    if name in KNOWN_ENV:
        return Status(True, f"ready; key from {keys[name]}")
    return Status(True, "ready")


def find_keys(config: Config) -> tuple[dict[str, str | None], str | None]:
    """Where each known key is read from (never its value), and a key file problem."""
    store = key_store(config.data_dir)
    found: dict[str, str | None] = {}
    problem = None
    for name in KNOWN_ENV:
        try:
            found[name] = store.source(name)
        except ChatFaceError as exc:  # an unsafe or unreadable key file
            found[name], problem = None, str(exc)
    return found, problem


def what_would_run(engine: Engine, report: Report, problem: Exception | None) -> dict[str, Status]:
    """One line per command: the backend it would use, or what stops it; ``problem`` is
    what stopped the configured backend."""
    backend, ready = report.backend, report.backend_status.ok
    stand_ins = sorted(engine.registry.random_backends)
    if ready:
        photo = Status(True, f"backend '{backend}'")
    elif isinstance(problem, WeightsMissingError) and stand_ins:
        # What pick_backend does for a default backend without its weights.
        missing = f"weights '{problem.weights}'" if problem.weights else "its weights"
        photo = Status(
            True,
            f"the random-weight '{stand_ins[0]}' backend instead of '{backend}', whose "
            f"{missing} are missing (on a terminal they offer to download them first)",
        )
    else:
        photo = Status(False, f"cannot run: {report.backend_status.detail}")
    commands = {"chat, demo, edit": photo}
    for key, command in SERVE.items():
        missing = []
        if not report.keys.get(key):
            variables = " or ".join(f"${v}" for v in env_names(key))
            missing.append(f"no '{key}' token (`chatface keys set {key}` or {variables})")
        if not ready:
            missing.append(f"backend '{backend}' is not ready")
        if not report.storage.ok:
            missing.append("the database does not open")
        ok = Status(True, f"ready (backend '{backend}')")
        commands[command] = Status(False, "not ready: " + "; ".join(missing)) if missing else ok
    return commands


def diagnose(config: Config) -> Report:
    from chatface.engine.editor import Engine

    engine = Engine(config)
    keys, key_problem = find_keys(config)
    backend, planner = config["engine.backend"], config["planner.name"]
    backend_status, problem = check_backend(engine, backend)
    report = Report(
        config_file=str(config.file) if config.file else None,
        changed={
            s.name: {"value": _shown(config[s.name]), "source": config.sources[s.name]}
            for s in SETTINGS
            if config.sources[s.name] != "default"
        },
        data_dir=str(config.data_dir),
        data_dir_exists=config.data_dir.is_dir(),
        storage_url=hide_password(config.database_url),
        storage=check_storage(config),
        weights=weights_by_backend(engine),
        backend=backend,
        backend_status=backend_status,
        planner=planner,
        planner_status=check_planner(engine, planner, keys),
        keys=keys,
        key_file_problem=key_problem,
    )
    report.commands = what_would_run(engine, report, problem)
    return report


def _shown(value: Any) -> Any:
    return hide_password(value) if isinstance(value, str) else value


def _mark(ok: bool) -> str:
    return "[green]ok[/green]" if ok else "[red]NO[/red]"


def _print(report: Report, console: Console) -> None:
    def line(text: str) -> None:
        console.print(text, highlight=False, soft_wrap=True)

    where = report.config_file or "none (`chatface config path` shows where it would be)"
    line(f"[bold]Settings[/bold] file: {escape(where)}")
    for name, setting in report.changed.items():
        line(f"  {name} = {escape(json.dumps(setting['value']))}  ({escape(setting['source'])})")
    if not report.changed:
        line("  every setting has its default")
    exists = "" if report.data_dir_exists else " (created on first use)"
    line(f"[bold]Data directory[/bold] {escape(report.data_dir)}{exists}")
    line(f"[bold]Database[/bold] {escape(report.storage_url)}")
    line(f"  {_mark(report.storage.ok)} {escape(report.storage.detail)}")
    line("[bold]Weights[/bold] (`chatface weights list --all`)")
    for backend, weights in report.weights.items():
        listed = ", ".join(
            f"{w['name']} {'installed' if w['installed'] else 'missing'}" for w in weights
        )
        line(f"  {backend}: {escape(listed or 'none needed')}")
    line(f"[bold]Backend[/bold] '{report.backend}' (engine.backend)")
    line(f"  {_mark(report.backend_status.ok)} {escape(report.backend_status.detail)}")
    line(f"[bold]Planner[/bold] '{report.planner}' (planner.name)")
    line(f"  {_mark(report.planner_status.ok)} {escape(report.planner_status.detail)}")
    line("[bold]Keys[/bold] (values are never shown)")
    for name, source in report.keys.items():
        line(f"  {name}: " + (f"set ({escape(source)})" if source else "not set"))
    if report.key_file_problem:
        line(f"  [red]{escape(report.key_file_problem)}[/red]")
    line("[bold]What would run[/bold]")
    for command, status in report.commands.items():
        line(f"  {command}: {escape(status.detail)}")
    if report.ok:
        line("[green]Ready:[/green] edits run with the configured backend and planner.")
    else:
        line("[red]Not ready:[/red] fix what is marked NO above.")


def doctor(json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Check settings, storage, weights, planner and bot tokens, and say what would run.

    Prints the settings file and the settings that differ from their defaults, the data
    directory and database (passwords hidden), the installed weights of each backend,
    whether the configured backend and planner are ready, which keys and bot tokens are
    set (never their values) and what `chatface chat` and `chatface serve` would use.
    Exit status 0 when edits can run with the configured backend, planner and database,
    1 otherwise.

    Example: CHATFACE_ENGINE_BACKEND=tiny chatface doctor
    """
    report = diagnose(load_config())
    if json_:
        typer.echo(json.dumps(asdict(report) | {"ok": report.ok}, indent=2))
    else:
        _print(report, Console())
    if not report.ok:
        raise typer.Exit(1)
