"""Settings: one table of every setting, its default, type and help text.

Where a value comes from, lowest priority first:

1. the default in ``SETTINGS`` below (``config.toml`` at the repository root is
   generated from this table and a test keeps the two equal);
2. a config file: ``$CHATFACE_CONFIG`` if set, else ``<data dir>/config.toml`` if
   it exists;
3. environment variables ``CHATFACE_<SECTION>_<KEY>`` (a few settings also have a
   short alias such as ``CHATFACE_HOME`` or ``CHATFACE_LOAD_PLUGINS``).

Secrets never live here: see :mod:`chatface.keys`.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from chatface.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    default: Any
    help: str
    alias: str | None = None  # an extra, shorter environment variable

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def env(self) -> str:
        return f"CHATFACE_{self.section}_{self.key}".upper()

    def env_names(self) -> tuple[str, ...]:
        """Environment variables for this setting, the one that wins first."""
        return (self.alias, self.env) if self.alias else (self.env,)


SETTINGS: tuple[Setting, ...] = (
    Setting("paths", "data_dir", "",
            "Where faces, results, weights, keys and the SQLite database live. "
            "Empty: the platform's user data directory (e.g. ~/.local/share/chatface).",
            alias="CHATFACE_HOME"),
    Setting("storage", "url", "",
            "SQLAlchemy database URL, e.g. postgresql+psycopg://user@host/chatface. "
            "Empty: the SQLite file <data_dir>/chatface.db."),
    Setting("engine", "backend", "diffae",
            "Inversion backend used for new faces (see `chatface plugins`); 'tiny' is a "
            "random-weight backend for offline dry runs that produces noise."),
    Setting("engine", "weights", "ffhq256_autoenc",
            "Installed weights the 'diffae' backend loads (see `chatface weights list`)."),
    Setting("engine", "device", "auto",
            "Torch device for models: auto (CUDA when present, else CPU), cpu, cuda, cuda:1, ..."),
    Setting("render", "steps", 8,
            "DDIM steps per rendered edit. ChatFace renders with 8; more is slower and finer."),
    Setting("render", "encode_steps", 250,
            "DDIM steps of the inversion that computes x_T when a photo arrives (done once)."),
    Setting("render", "schedule", "stable",
            "How the semantic condition moves during rendering: 'stable' (edited z first, "
            "blending back to the original z) or 'constant' (edited z at every step)."),
    Setting("render", "precision", "auto",
            "Network precision of renders: fp32 (exact), bf16 or fp16; auto: bf16 on GPUs and "
            "on CPUs with AVX-512 BF16/AMX, fp16 on GPUs without bf16, else fp32 "
            "(docs/performance.md)."),
    Setting("render", "exact_steps", 2,
            "With reduced precision, the first steps of a render still run in fp32: "
            "their errors grow most (0: none)."),
    Setting("render", "compile", "auto",
            "torch.compile the network (with CUDA graphs on GPUs): on, off, or auto (on for "
            "CUDA; compiling takes minutes on a small CPU)."),
    Setting("identity", "model", "facenet",
            "Face-recognition network that measures identity (after each edit, in training "
            "and evaluation): 'facenet' (needs `chatface weights download facenet_vggface2`) "
            "or 'tiny' (random weights, for tests and dry runs)."),
    Setting("identity", "measure", True,
            "Measure identity after each edit (cosine similarity of the identity model's "
            "embeddings of the original and the edited face crop) and store it with the edit; "
            "without the model's weights nothing is measured."),
    Setting("identity", "guard", False,
            "Identity guard: when an edit's identity similarity falls below "
            "identity.guard_threshold, render the turn's edit at 2/3 and 1/3 of its strength "
            "(one extra model call) and keep the strongest that passes, else the weakest."),
    Setting("identity", "guard_threshold", 0.6,
            "Identity similarity (cosine, -1 to 1) an edit must keep when identity.guard is on."),
    Setting("method", "clip_model", "clip_vit_b32_openai",
            "CLIP of the method's directional loss and scores: installed weights "
            "(clip_vit_b32_openai: `chatface weights download clip_vit_b32_openai`), "
            "MODEL:PRETRAINED for any open_clip model (fetched by open_clip), or 'tiny' "
            "(random weights, for tests)."),
    Setting("method", "l1_weight", 0.2, "Weight of the L1 image loss (the paper: 0.2)."),
    Setting("method", "latent_weight", 0.2,
            "Weight of the |z_edit - z| latent loss (the paper: 0.2)."),
    Setting("method", "identity_weight", 0.5,
            "Weight of the identity loss, 1 - cos of face embeddings (the paper: 0.5)."),
    Setting("method", "clip_weight", 2.0,
            "Weight of the CLIP directional loss (the paper: 2.0)."),
    Setting("method", "loss_steps", 4,
            "DDIM steps of the renders inside the loss (gradients flow through them)."),
    Setting("method", "loss_render", "ddim",
            "How the loss renders an edit: 'ddim' (method.loss_steps steps with gradients) or "
            "'x0' (the first step's x0 estimate: one network call, coarser)."),
    Setting("train", "lr", 0.0005,
            "AdamW learning rate of `chatface train-mapper` (the paper's Ranger optimizer "
            "with lr 0.2 is not used)."),
    Setting("train", "checkpoint_every", 500,
            "`chatface train-mapper` writes a checkpoint every this many iterations (and at "
            "the end); --resume continues from it."),
    Setting("train", "preview_every", 500,
            "`chatface train-mapper` writes a preview grid PNG (faces above, edits below) "
            "every this many iterations (and at the end)."),
    Setting("mapper", "dirs", "",
            "Comma-separated folders of trained attributes (mapper files NAME.safetensors + "
            "NAME.json) to load besides <data_dir>/mappers."),
    Setting("zero_shot", "enabled", "auto",
            "Offer to learn attributes no plugin provides from the request's words "
            "('make her look like a vampire'), per photo, in a few dozen optimisation steps: "
            "'auto' (on with CUDA, off on CPU, where it takes minutes), 'on' or 'off'."),
    Setting("zero_shot", "steps", 40, "Optimisation steps of learning one text for one photo."),
    Setting("zero_shot", "lr", 0.05, "Adam learning rate of the z_sem offset being learned."),
    Setting("zero_shot", "render_steps", 4,
            "DDIM steps of each render inside learning (gradients flow through them)."),
    Setting("photos", "max_bytes", 20_000_000, "Largest photo file accepted, in bytes."),
    Setting("photos", "max_pixels", 40_000_000,
            "Largest photo accepted, in pixels (width x height); larger ones, decompression "
            "bombs included, are refused before decoding."),
    Setting("photos", "min_face_px", 48,
            "Smallest face accepted: the shorter side of the face box, in photo pixels."),
    Setting("weights", "base_url", "",
            "A mirror `chatface weights download` tries before the plugins' own sources: an "
            "https:// base URL serving <name>/SHA256SUMS and the files it lists, "
            "hf://owner/repo[@revision] or gdrive://FOLDER_ID. Empty: only the plugins' "
            "sources (docs/weights.md)."),
    Setting("weights", "timeout_s", 20.0,
            "Seconds to wait for the weights server before a download gives up."),
    Setting("planner", "name", "rules",
            "Planner that turns messages into edit plans: 'rules' (offline) or 'anthropic'."),
    Setting("planner", "anthropic_model", "claude-sonnet-4-6",
            "Model name for the Anthropic planner."),
    Setting("planner", "anthropic_base_url", "",
            "Base URL of the Anthropic API. Empty: the SDK's default."),
    Setting("planner", "timeout_s", 4.0,
            "Seconds the Anthropic planner may take for one message, retries included; "
            "then the rule planner answers."),
    Setting("planner", "max_retries", 2,
            "Retries of a failed Anthropic API request (HTTP 408, 409, 429, 5xx, connection "
            "errors), after the server's Retry-After or a backoff, within planner.timeout_s."),
    Setting("planner", "max_tokens", 512, "Max output tokens of one planner call."),
    Setting("queue", "kind", "local",
            "Where renders run: 'local' (a model thread in this process) or 'ray' (replicas "
            "on a Ray cluster, see queue.ray_address)."),
    Setting("queue", "ray_address", "",
            "With queue.kind 'ray': the Ray cluster to join, e.g. ray://head:10001 or auto. "
            "Empty: start Ray on this machine."),
    Setting("queue", "ray_replicas", 1,
            "With queue.kind 'ray': render replicas (each loads the backend once); the "
            "fewest when autoscaling (queue.ray_max_replicas)."),
    Setting("queue", "ray_max_replicas", 0,
            "With queue.kind 'ray': more than queue.ray_replicas: Ray Serve adds replicas up "
            "to this many while renders wait (a full batch per replica), and removes them "
            "when idle. 0: always queue.ray_replicas."),
    Setting("queue", "ray_gpus", 0.0,
            "With queue.kind 'ray': GPUs per replica (0: CPU replicas)."),
    Setting("queue", "ray_faces", 128,
            "With queue.kind 'ray': faces whose latents stay in Ray's object store, so a "
            "face's renders send them to the cluster once, not with every render."),
    Setting("queue", "ray_start_timeout_s", 180.0,
            "With queue.kind 'ray': seconds to reach the cluster and start the replicas "
            "(loading the models) before giving up with an error."),
    Setting("queue", "ray_timeout_s", 600.0,
            "With queue.kind 'ray': seconds one render or encoding may wait for a replica's "
            "answer before it fails (no live replicas, a hung node). 0: no limit."),
    Setting("queue", "ray_fallback", False,
            "With queue.kind 'ray': when the cluster cannot be reached or its replicas do "
            "not start, render in this process instead (like queue.kind 'local') rather "
            "than stop with an error."),
    Setting("queue", "max_pending", 64,
            "Renders waiting at most; further requests are refused with a 'busy' reply."),
    Setting("queue", "max_batch", 8, "Renders batched into one model call at most."),
    Setting("queue", "batch_window_ms", 25,
            "How long a batch waits for more renders to join it before it starts, in ms."),
    Setting("queue", "per_user_pending", 2,
            "Renders one user may have waiting at once (flood protection); a newer edit "
            "replaces the user's waiting one."),
    Setting("bots", "rate_limit_per_minute", 20, "Messages per user per minute a bot accepts."),
    Setting("bots", "face_cache", 32,
            "Decoded faces kept in memory (least recently used go first); others are read "
            "back from storage."),
    Setting("bots", "telegram_base_url", "",
            "Telegram Bot API base URL, to which the token is appended (e.g. "
            "http://localhost:8081/bot for a self-hosted server). Empty: the official server. "
            "Tests use a local fake."),
    Setting("bots", "telegram_base_file_url", "",
            "Telegram base URL for file downloads, to which the token is appended (e.g. "
            "http://localhost:8081/file/bot). Empty: the official server."),
    Setting("bots", "discord_base_url", "",
            "Discord API base URL. Empty: the official server. Tests use a local fake."),
    Setting("bots", "discord_channels", "",
            "Comma-separated ids of the Discord channels where the bot answers plain "
            "messages (it always answers DMs and slash commands); needs the Message "
            "Content intent."),
    Setting("bots", "discord_shard_count", 0,
            "Discord shards of the bot in all, the same in each of its processes (a bot in "
            "many servers runs several processes, each serving some shards). 0: one process "
            "serves as many shards as Discord recommends."),
    Setting("bots", "discord_shard_ids", "",
            "Comma-separated ids of the Discord shards this process serves, each below "
            "bots.discord_shard_count (Discord sends DMs to shard 0 only). Empty: all of them."),
    Setting("plugins", "load", "*",
            "Comma-separated allow-list of third-party plugins (entry-point or package "
            "names) to load; '*' loads all installed, '' loads none. Built-ins always load.",
            alias="CHATFACE_LOAD_PLUGINS"),
)  # fmt: skip

_BY_NAME = {s.name: s for s in SETTINGS}


def _coerce(setting: Setting, value: Any, origin: str) -> Any:
    """Convert a raw value to the setting's type, or say exactly what is wrong."""
    kind = type(setting.default)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if kind is int and isinstance(value, bool):
            raise ValueError(value)
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{setting.name} from {origin} must be {kind.__name__}, got {value!r}."
        ) from None


@dataclass(frozen=True)
class Config:
    """Effective settings plus where each value came from."""

    values: dict[str, Any]
    sources: dict[str, str]
    file: Path | None

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def data_dir(self) -> Path:
        configured = self.values["paths.data_dir"]
        return Path(configured).expanduser() if configured else default_data_dir()

    @property
    def database_url(self) -> str:
        return self.values["storage.url"] or f"sqlite:///{self.data_dir / 'chatface.db'}"

    def plugin_allow_list(self) -> set[str] | None:
        """None when every installed plugin may load, else the allowed names."""
        raw = self.values["plugins.load"].strip()
        if raw == "*":
            return None
        return {part.strip() for part in raw.split(",") if part.strip()}


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("chatface", appauthor=False))


def _config_file(environ: dict[str, str]) -> tuple[Path | None, bool]:
    """The config file to read and whether the user named it explicitly."""
    explicit = environ.get("CHATFACE_CONFIG")
    if explicit:
        return Path(explicit).expanduser(), True
    home = environ.get("CHATFACE_HOME")
    base = Path(home).expanduser() if home else default_data_dir()
    return base / "config.toml", False


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    flat: dict[str, Any] = {}
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: '{section}' must be a [section], not a plain value.")
        for key, value in table.items():
            name = f"{section}.{key}"
            if name not in _BY_NAME:
                known = ", ".join(sorted(_BY_NAME))
                raise ConfigError(f"{path}: unknown setting '{name}'. Known settings: {known}.")
            flat[name] = value
    return flat


def load_config(environ: dict[str, str] | None = None) -> Config:
    """Read defaults, the config file and the environment, in that order."""
    env = dict(os.environ if environ is None else environ)
    path, explicit = _config_file(env)
    from_file: dict[str, Any] = {}
    if path is not None and path.is_file():
        from_file = _read_file(path)
    elif explicit:
        raise ConfigError(f"CHATFACE_CONFIG names {path}, which does not exist.")
    else:
        path = None

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        value, source = setting.default, "default"
        if setting.name in from_file:
            value = _coerce(setting, from_file[setting.name], str(path))
            source = str(path)
        for var in setting.env_names():
            if var in env:
                value, source = _coerce(setting, env[var], f"${var}"), f"${var}"
                break
        values[setting.name] = value
        sources[setting.name] = source
    return Config(values=values, sources=sources, file=path)


def toml_value(value: Any) -> str:
    """``value`` as written in a TOML file (also the default column of docs/configuration.md)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _comment(text: str, width: int = 88) -> list[str]:
    lines, line = [], "#"
    for word in text.split():
        if len(line) + 1 + len(word) > width:
            lines.append(line)
            line = "#"
        line += " " + word
    lines.append(line)
    return lines


def render_defaults_toml() -> str:
    """Every setting with its default and help, as a commented TOML file."""
    out = [
        "# chatface settings: every setting with its default.",
        "# Generated by `chatface config defaults`; docs/configuration.md explains the order",
        "# in which defaults, this file and CHATFACE_* environment variables apply.",
        "# Secrets (bot tokens, API keys) never go here: use `chatface keys set NAME`.",
    ]
    section = None
    for setting in SETTINGS:
        if setting.section != section:
            section = setting.section
            out += ["", f"[{section}]"]
        out += _comment(setting.help)
        envs = " or ".join(f"${v}" for v in setting.env_names())
        out.append(f"# Environment: {envs}")
        out.append(f"{setting.key} = {toml_value(setting.default)}")
    return "\n".join(out) + "\n"
