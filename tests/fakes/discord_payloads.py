"""JSON objects shaped like Discord's API v10 ones, for the fake Discord server.

Plain functions that build users, guilds, channels, messages, attachments and
interactions with the fields Discord sends (see discord.com/developers/docs/resources),
so that the real discord.py parses them as it parses Discord's. IDs are real
snowflakes (the creation time in their high bits), since discord.py reads times from them.
"""

from __future__ import annotations

import io
import itertools
import time
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1420070400000
_increment = itertools.count()

# Channel types and message flags used here (discord.com/developers/docs/resources/...).
GUILD_TEXT, DM = 0, 1
EPHEMERAL, LOADING = 1 << 6, 1 << 7
# Gateway intents that decide which events a bot gets.
INTENT_GUILD_MESSAGES, INTENT_DIRECT_MESSAGES, INTENT_MESSAGE_CONTENT = 1 << 9, 1 << 12, 1 << 15


def snowflake() -> int:
    """A new, unique ID with the current time in it, like Discord's."""
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | (1 << 17) | (next(_increment) % 4096)


def timestamp(snowflake_id: int | None = None) -> str:
    """ISO 8601 time, of a snowflake's creation when given (as Discord's ``timestamp``)."""
    ms = (snowflake_id >> 22) + DISCORD_EPOCH_MS if snowflake_id else time.time() * 1000
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def user(user_id: int, username: str, *, bot: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(user_id), "username": username, "discriminator": "0",
        "global_name": None if bot else username.title(), "avatar": None,
        "public_flags": 0, "flags": 0, "banner": None, "accent_color": None,
        "avatar_decoration_data": None, "primary_guild": None,
    }  # fmt: skip
    if bot:
        data.update(bot=True, verified=True, mfa_enabled=False, email=None, locale="en-US")
    return data


def member(user_data: dict[str, Any], joined_at: str, *, permissions: str | None = None):
    data: dict[str, Any] = {
        "user": user_data, "roles": [], "nick": None, "avatar": None, "banner": None,
        "joined_at": joined_at, "premium_since": None, "deaf": False, "mute": False,
        "flags": 0, "pending": False, "communication_disabled_until": None,
    }  # fmt: skip
    if permissions is not None:  # members in interactions carry their computed permissions
        data["permissions"] = permissions
    return data


def text_channel(channel_id: int, guild_id: int, name: str) -> dict[str, Any]:
    return {
        "id": str(channel_id), "type": GUILD_TEXT, "guild_id": str(guild_id), "name": name,
        "position": 0, "permission_overwrites": [], "topic": None, "nsfw": False,
        "last_message_id": None, "rate_limit_per_user": 0, "parent_id": None, "flags": 0,
    }  # fmt: skip


def dm_channel(channel_id: int, recipient: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(channel_id), "type": DM, "last_message_id": None, "flags": 0,
            "recipients": [recipient]}  # fmt: skip


def guild(
    guild_id: int,
    name: str,
    owner_id: int,
    channels: list[dict[str, Any]],
    members: list[dict[str, Any]],
) -> dict[str, Any]:
    """A GUILD_CREATE payload: the guild with its channels, roles and members."""
    everyone = {
        "id": str(guild_id), "name": "@everyone", "permissions": "2248473465835073",
        "position": 0, "color": 0, "hoist": False, "managed": False, "mentionable": False,
        "icon": None, "unicode_emoji": None, "flags": 0,
    }  # fmt: skip
    return {
        "id": str(guild_id), "name": name, "icon": None, "splash": None,
        "discovery_splash": None, "banner": None, "description": None,
        "owner_id": str(owner_id), "region": "deprecated", "afk_channel_id": None,
        "afk_timeout": 300, "verification_level": 0, "default_message_notifications": 0,
        "explicit_content_filter": 0, "roles": [everyone], "emojis": [], "stickers": [],
        "features": [], "mfa_level": 0, "application_id": None, "system_channel_id": None,
        "system_channel_flags": 0, "rules_channel_id": None, "vanity_url_code": None,
        "premium_tier": 0, "premium_subscription_count": 0, "preferred_locale": "en-US",
        "public_updates_channel_id": None, "nsfw_level": 0, "premium_progress_bar_enabled": False,
        "joined_at": timestamp(), "large": False, "unavailable": False,
        "member_count": len(members), "voice_states": [], "members": members,
        "channels": channels, "threads": [], "presences": [], "stage_instances": [],
        "guild_scheduled_events": [], "soundboard_sounds": [], "lazy": True,
    }  # fmt: skip


def sniff_content_type(data: bytes) -> str | None:
    """What Discord's CDN would call these bytes (discord.py uploads everything as octet-stream)."""
    for magic, kind in ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
                        (b"GIF8", "image/gif"), (b"RIFF", "image/webp")):  # fmt: skip
        if data.startswith(magic):
            return kind
    return None


def attachment(
    attachment_id: int, filename: str, data: bytes, content_type: str | None, url: str
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": str(attachment_id), "filename": filename, "size": len(data), "url": url,
        "proxy_url": url, "content_type": content_type or sniff_content_type(data),
    }  # fmt: skip
    size = _image_size(data)
    if size is not None:
        payload["width"], payload["height"] = size
    return payload


def _image_size(data: bytes) -> tuple[int, int] | None:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # not an image (or no Pillow): Discord leaves the size out too
        return None


def message(
    message_id: int,
    channel_id: int,
    author: dict[str, Any],
    *,
    content: str = "",
    attachments: list[dict[str, Any]] | None = None,
    components: list[dict[str, Any]] | None = None,
    guild_id: int | None = None,
    member_data: dict[str, Any] | None = None,
    message_type: int = 0,
    flags: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(message_id), "channel_id": str(channel_id), "type": message_type,
        "author": author, "content": content, "timestamp": timestamp(message_id),
        "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
        "mention_roles": [], "attachments": attachments or [], "embeds": [], "pinned": False,
        "components": components or [], "flags": flags,
    }  # fmt: skip
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
        if member_data is not None:
            data["member"] = {k: v for k, v in member_data.items() if k != "user"}
    data.update(extra or {})
    return data


def interaction(
    interaction_id: int,
    interaction_type: int,
    token: str,
    application_id: int,
    data: dict[str, Any],
    *,
    channel: dict[str, Any],
    invoker: dict[str, Any],
    guild_id: int | None,
    message_data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An INTERACTION_CREATE payload; ``invoker`` is a member in a guild, a user in a DM."""
    payload: dict[str, Any] = {
        "id": str(interaction_id), "application_id": str(application_id),
        "type": interaction_type, "data": data, "token": token, "version": 1,
        "channel": channel, "channel_id": channel["id"], "locale": "en-US",
        "app_permissions": "2248473465835073", "entitlements": [],
        "attachment_size_limit": 10 * 1024 * 1024,
    }  # fmt: skip
    if guild_id is not None:
        payload.update(
            guild_id=str(guild_id),
            guild={"id": str(guild_id), "locale": "en-US", "features": []},
            guild_locale="en-US",
            member=invoker,
            context=0,
            authorizing_integration_owners={"0": str(guild_id)},
        )
    else:
        # A guild-installed app used in a DM with the bot: the owner key is "0", its value "0".
        payload.update(user=invoker, context=1, authorizing_integration_owners={"0": "0"})
    if message_data is not None:
        payload["message"] = message_data
    return payload
