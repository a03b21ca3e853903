"""What exists in the fake Discord, and the rules for changing it.

One bot (its user, application and token), one guild with one text channel, the users
a test invents, DM channels, messages with their files (kept for the fake CDN) and the
registered application commands. Operations check what Discord checks (an empty
message, an edit of someone else's message, an unknown channel) and raise
:class:`DiscordError` with Discord's status and JSON error code. This module does no
I/O: discord_rest.py and discord_gateway.py do, interactions are in
discord_interactions.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import discord_payloads as p

Event = tuple[str, dict[str, Any]]  # a gateway dispatch: event name, payload
_names = itertools.count(1)


class DiscordError(Exception):
    """An error answer as Discord gives it: HTTP status plus a JSON ``code`` and ``message``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"{status} {message} (code {code})")
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "code": self.code}


@dataclass(frozen=True)
class Upload:
    """A file: one a bot uploaded (``field`` is its multipart name) or one a user attaches."""

    filename: str
    data: bytes
    content_type: str = "application/octet-stream"
    field: str = ""


def as_upload(item: Upload | tuple[str, bytes, str] | tuple[str, bytes]) -> Upload:
    """Accept ``(filename, bytes[, content_type])`` as tests write attachments."""
    if isinstance(item, Upload):
        return item
    filename, data, *kind = item
    return Upload(filename, data, kind[0] if kind else "application/octet-stream")


@dataclass
class DiscordWorld:
    token: str = "fake-bot-token"
    bot_name: str = "chatface-test"
    cdn_base: str = ""
    bot_id: int = field(default_factory=p.snowflake)
    application_id: int = field(default_factory=p.snowflake)
    guild_id: int = field(default_factory=p.snowflake)
    channel_id: int = field(default_factory=p.snowflake)
    owner_id: int = field(default_factory=p.snowflake)
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    channels: dict[int, dict[str, Any]] = field(default_factory=dict)
    dm_by_user: dict[int, int] = field(default_factory=dict)
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    commands: dict[int | None, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # CDN path -> bytes, type
    joined_at: str = field(default_factory=p.timestamp)

    def __post_init__(self) -> None:
        self.users[self.bot_id] = p.user(self.bot_id, self.bot_name, bot=True)
        self.users[self.owner_id] = p.user(self.owner_id, "owner")
        self.channels[self.channel_id] = p.text_channel(self.channel_id, self.guild_id, "general")

    # -- who and where ----------------------------------------------------------------
    @property
    def bot_user(self) -> dict[str, Any]:
        return self.users[self.bot_id]

    def user(self, user_id: int) -> dict[str, Any]:
        """A user's payload; a test's user IDs come into being when first used."""
        if user_id not in self.users:
            self.users[user_id] = p.user(user_id, f"user{next(_names)}")
        return self.users[user_id]

    def member(self, user_id: int) -> dict[str, Any]:
        return p.member(self.user(user_id), self.joined_at, permissions="2248473465835073")

    def guild_create(self) -> dict[str, Any]:
        members = [p.member(u, self.joined_at) for u in self.users.values()]
        guild_channels = [c for c in self.channels.values() if c["type"] == p.GUILD_TEXT]
        return p.guild(self.guild_id, "chatface tests", self.owner_id, guild_channels, members)

    def app_info(self) -> dict[str, Any]:
        return {
            "id": str(self.application_id), "name": self.bot_name, "icon": None,
            "description": "", "summary": "", "type": None, "bot_public": True,
            "bot_require_code_grant": False, "verify_key": "0" * 64, "flags": 0,
            "owner": self.users[self.owner_id], "team": None, "bot": self.bot_user,
            "redirect_uris": [], "interactions_endpoint_url": None, "tags": [],
            "install_params": {"scopes": ["bot", "applications.commands"], "permissions": "0"},
            "integration_types_config": {"0": {}}, "approximate_guild_count": 1,
        }  # fmt: skip

    def dm_channel(self, user_id: int) -> dict[str, Any]:
        if user_id not in self.dm_by_user:
            channel_id = p.snowflake()
            self.dm_by_user[user_id] = channel_id
            self.channels[channel_id] = p.dm_channel(channel_id, self.user(user_id))
        return self.channels[self.dm_by_user[user_id]]

    def channel(self, channel_id: int) -> dict[str, Any]:
        if channel_id not in self.channels:
            raise DiscordError(404, 10003, "Unknown Channel")
        return self.channels[channel_id]

    def guild_of(self, channel_id: int) -> int | None:
        guild_id = self.channel(channel_id).get("guild_id")
        return int(guild_id) if guild_id else None

    # -- messages -----------------------------------------------------------------------
    def store_file(
        self, channel_id: int, upload: Upload, *, ephemeral: bool = False
    ) -> dict[str, Any]:
        """Keep the bytes on the fake CDN; the attachment payload points at them."""
        attachment_id = p.snowflake()
        folder = "ephemeral-attachments" if ephemeral else "attachments"
        path = f"/{folder}/{channel_id}/{attachment_id}/{upload.filename}"
        sniffed = p.sniff_content_type(upload.data)
        content_type = sniffed or upload.content_type
        self.files[path] = (upload.data, content_type)
        data = p.attachment(attachment_id, upload.filename, upload.data, content_type,
                            self.cdn_base + path)  # fmt: skip
        if ephemeral:
            data["ephemeral"] = True
        return data

    def _attachments(
        self, channel_id: int, body: dict[str, Any], uploads: list[Upload], old: list[dict]
    ) -> list[dict[str, Any]]:
        """Which attachments a message has after ``body``: kept ones and new uploads."""
        by_field = {u.field: u for u in uploads}
        if "attachments" not in body:
            return old + [self.store_file(channel_id, u) for u in uploads]
        kept = {a["id"]: a for a in old}
        result = []
        for item in body["attachments"] or []:
            upload = by_field.get(f"files[{item['id']}]")
            if upload is not None:
                result.append(self.store_file(channel_id, upload))
            elif str(item["id"]) in kept:
                result.append(kept[str(item["id"])])
            else:
                raise DiscordError(400, 50035, f"Invalid Form Body: attachment {item['id']}")
        return result

    def post_message(
        self,
        channel_id: int,
        body: dict[str, Any],
        uploads: list[Upload],
        *,
        author_id: int | None = None,
        message_type: int = 0,
        flags: int = 0,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        channel = self.channel(channel_id)
        attachments = self._attachments(channel_id, body, uploads, [])
        if not (body.get("content") or attachments or body.get("components") or body.get("embeds")
                or flags & p.LOADING):  # fmt: skip
            raise DiscordError(400, 50006, "Cannot send an empty message")
        author_id = self.bot_id if author_id is None else author_id
        guild_id = int(channel["guild_id"]) if "guild_id" in channel else None
        extra = dict(extra or {})
        reference = body.get("message_reference")
        if reference and int(reference["message_id"]) in self.messages:
            message_type = 19  # a reply
            extra["message_reference"] = {**reference, "channel_id": str(channel_id)}
            extra["referenced_message"] = self.messages[int(reference["message_id"])]
        message = p.message(
            p.snowflake(), channel_id, self.user(author_id), content=body.get("content") or "",
            attachments=attachments, components=body.get("components") or [],
            guild_id=guild_id, member_data=self.member(author_id) if guild_id else None,
            message_type=message_type, flags=flags | (body.get("flags") or 0), extra=extra,
        )  # fmt: skip
        message["embeds"] = body.get("embeds") or []
        self.messages[int(message["id"])] = message
        return message

    def edit_message(
        self, message_id: int, body: dict[str, Any], uploads: list[Upload]
    ) -> dict[str, Any]:
        message = self.message(message_id)
        if message["author"]["id"] != str(self.bot_id):
            raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
        channel_id = int(message["channel_id"])
        message["attachments"] = self._attachments(
            channel_id, body, uploads, message["attachments"]
        )
        for key in ("content", "components", "embeds"):
            if key in body:
                message[key] = (
                    body[key] if body[key] is not None else ([] if key != "content" else "")
                )
        message["flags"] &= ~p.LOADING
        message["edited_timestamp"] = p.timestamp()
        return message

    def message(self, message_id: int) -> dict[str, Any]:
        if message_id not in self.messages:
            raise DiscordError(404, 10008, "Unknown Message")
        return self.messages[message_id]

    def delete_message(self, message_id: int) -> Event:
        message = self.messages.pop(message_id, None)
        if message is None:
            raise DiscordError(404, 10008, "Unknown Message")
        gone = {"id": message["id"], "channel_id": message["channel_id"]}
        if "guild_id" in message:
            gone["guild_id"] = message["guild_id"]
        return ("MESSAGE_DELETE", gone)

    # -- application commands ---------------------------------------------------------
    def register_commands(
        self, guild_id: int | None, payload: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Bulk overwrite, as PUT .../commands does; a command keeps its ID across syncs."""
        if guild_id is not None and guild_id != self.guild_id:
            raise DiscordError(403, 50001, "Missing Access")
        old = {c["name"]: c for c in self.commands.get(guild_id, [])}
        registered = []
        for command in payload:
            kept = old.get(command["name"], {})
            entry = {
                "type": 1, "description": "", "options": [], "nsfw": False,
                "default_member_permissions": None, "contexts": None,
                "integration_types": [0], **command,
                "id": kept.get("id", str(p.snowflake())),
                "application_id": str(self.application_id), "version": str(p.snowflake()),
            }  # fmt: skip
            if guild_id is not None:
                entry["guild_id"] = str(guild_id)
            registered.append(entry)
        self.commands[guild_id] = registered
        return registered

    def find_command(self, name: str, guild_id: int | None) -> dict[str, Any]:
        scopes = ([guild_id] if guild_id else []) + [None]
        for scope in scopes:
            for command in self.commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == 1:
                    return command
        known = sorted(c["name"] for scope in scopes for c in self.commands.get(scope, []))
        raise LookupError(f"no slash command /{name} was registered here; registered: {known}")
