"""Interactions in the fake Discord: slash commands and button clicks, and the answers.

:class:`Interactions` builds the INTERACTION_CREATE payloads a user's slash command or
click makes (checked against the registered command or the message's buttons) and
applies the bot's answers the way Discord does: one initial response within
``ack_deadline_s`` (types 4, 5, 9; 6 and 7 only for components), followups only after
it, the first followup after a deferred message (type 5) filling in its "thinking"
message, and ``@original`` standing for the message the response made or the one
clicked. Like discord_world.py it does no I/O and returns the gateway events to send.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import discord_payloads as p
from tests.fakes.discord_world import DiscordError, DiscordWorld, Event, Upload, as_upload

# Interaction and callback types, see discord.com/developers/docs/interactions/.
APPLICATION_COMMAND, MESSAGE_COMPONENT = 2, 3
PONG, MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, MODAL = 1, 4, 5, 6, 7, 9
ATTACHMENT_OPTION, USER_OPTION = 11, 6
_OPTION_TYPES: dict[int, type | tuple[type, ...]] = {3: str, 4: int, 5: bool, 10: (int, float)}


@dataclass
class InteractionRecord:
    """An interaction the fake sent, and how the bot has answered it so far."""

    id: int
    token: str
    type: int
    name: str  # the command's name, or the clicked component's custom_id
    channel_id: int
    guild_id: int | None
    user_id: int
    application_id: int
    created: float = field(default_factory=time.monotonic)
    message_id: int | None = None  # component interactions: the message clicked
    response_type: int | None = None
    original_id: int | None = None  # the message @original stands for
    message_ids: list[int] = field(default_factory=list)  # every message this token made
    first_followup_done: bool = False

    @property
    def callback_path(self) -> str:
        return f"/interactions/{self.id}/{self.token}/callback"

    @property
    def webhook_path(self) -> str:
        return f"/webhooks/{self.application_id}/{self.token}"


class Interactions:
    def __init__(self, world: DiscordWorld, ack_deadline_s: float | None = 3.0) -> None:
        self.world = world
        self.ack_deadline_s = ack_deadline_s  # Discord drops interactions not answered in 3 s
        self.records: dict[int, InteractionRecord] = {}

    def _new_interaction(self, kind: int, name: str, channel_id: int, user_id: int):
        record = InteractionRecord(
            id=p.snowflake(), token=f"aW50ZXJhY3Rpb24.{secrets.token_urlsafe(48)}", type=kind,
            name=name, channel_id=channel_id, guild_id=self.world.guild_of(channel_id),
            user_id=user_id, application_id=self.world.application_id,
        )  # fmt: skip
        self.records[record.id] = record
        return record

    def _invoker(self, user_id: int, guild_id: int | None) -> dict[str, Any]:
        return self.world.member(user_id) if guild_id else self.world.user(user_id)

    def slash_command(
        self, name: str, options: dict[str, Any], user_id: int, channel_id: int
    ) -> tuple[InteractionRecord, dict[str, Any]]:
        guild_id = self.world.guild_of(channel_id)
        command = self.world.find_command(name, guild_id)
        schema = {o["name"]: o for o in command.get("options") or []}
        if unknown := set(options) - set(schema):
            raise ValueError(f"/{name} has no option(s) {sorted(unknown)}; it has {sorted(schema)}")
        if missing := {n for n, o in schema.items() if o.get("required")} - set(options):
            raise ValueError(f"/{name} needs option(s) {sorted(missing)}")
        resolved: dict[str, dict[str, Any]] = {}
        sent = []
        for option_name, value in options.items():
            kind = schema[option_name]["type"]
            if kind == ATTACHMENT_OPTION:
                data = self.world.store_file(channel_id, as_upload(value), ephemeral=True)
                resolved.setdefault("attachments", {})[data["id"]] = data
                value = data["id"]
            elif kind == USER_OPTION:
                resolved.setdefault("users", {})[str(value)] = self.world.user(int(value))
                if guild_id:
                    member = {k: v for k, v in self.world.member(int(value)).items() if k != "user"}
                    resolved.setdefault("members", {})[str(value)] = member
                value = str(value)
            elif kind in _OPTION_TYPES:
                if not isinstance(value, _OPTION_TYPES[kind]) or (kind != 5 and value is True):
                    raise TypeError(f"option {option_name!r} of /{name} takes type {kind}")
            else:
                raise NotImplementedError(f"the fake does not build option type {kind} yet")
            sent.append({"name": option_name, "type": kind, "value": value})
        data: dict[str, Any] = {"id": command["id"], "name": name, "type": 1, "options": sent}
        if resolved:
            data["resolved"] = resolved
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        record = self._new_interaction(APPLICATION_COMMAND, name, channel_id, user_id)
        payload = p.interaction(
            record.id, APPLICATION_COMMAND, record.token, self.world.application_id, data,
            channel=self.world.channel(channel_id), invoker=self._invoker(user_id, guild_id),
            guild_id=guild_id,
        )  # fmt: skip
        return record, payload

    def button_click(
        self, message_id: int, custom_id: str, user_id: int
    ) -> tuple[InteractionRecord, dict[str, Any]]:
        message = self.world.message(message_id)
        button = _find_component(message["components"], custom_id)
        if button is None or button.get("type") != 2:
            raise LookupError(f"message {message_id} has no button {custom_id!r}")
        if button.get("disabled"):
            raise ValueError(f"button {custom_id!r} is disabled: a user cannot click it")
        channel_id = int(message["channel_id"])
        record = self._new_interaction(MESSAGE_COMPONENT, custom_id, channel_id, user_id)
        record.message_id = message_id
        guild_id = record.guild_id
        payload = p.interaction(
            record.id, MESSAGE_COMPONENT, record.token, self.world.application_id,
            {"custom_id": custom_id, "component_type": 2}, channel=self.world.channel(channel_id),
            invoker=self._invoker(user_id, guild_id), guild_id=guild_id, message_data=message,
        )  # fmt: skip
        return record, payload

    def by_token(self, application_id: int, token: str) -> InteractionRecord:
        for record in self.records.values():
            if record.token == token and application_id == self.world.application_id:
                return record
        raise DiscordError(404, 10015, "Unknown Webhook")

    def _interaction_message(self, record: InteractionRecord, body: dict, uploads, flags=0):
        metadata = {
            "id": str(record.id), "type": record.type, "user": self.world.user(record.user_id),
            "authorizing_integration_owners": {"0": str(record.guild_id or 0)},
        }  # fmt: skip
        if record.type == APPLICATION_COMMAND:
            metadata["name"] = record.name
        message = self.world.post_message(
            record.channel_id, body, uploads, flags=flags,
            message_type=20 if record.type == APPLICATION_COMMAND else 0,
            extra={"webhook_id": str(self.world.application_id), "interaction_metadata": metadata,
                   "application_id": str(self.world.application_id)},
        )  # fmt: skip
        record.message_ids.append(int(message["id"]))
        return message

    def respond(
        self, interaction_id: int, token: str, body: dict[str, Any], uploads: list[Upload]
    ) -> tuple[dict[str, Any], list[Event]]:
        """POST .../callback: the answer's JSON (with_response) and the events it causes."""
        record = self.records.get(interaction_id)
        if record is None or record.token != token:
            raise DiscordError(404, 10062, "Unknown interaction")
        if record.response_type is not None:
            raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
        late = self.ack_deadline_s is not None and (
            time.monotonic() - record.created > self.ack_deadline_s
        )
        if late:
            raise DiscordError(404, 10062, "Unknown interaction")  # answered too late
        kind, data = body.get("type"), body.get("data") or {}
        allowed = {MESSAGE, DEFERRED_MESSAGE, MODAL}
        if record.type == MESSAGE_COMPONENT:
            allowed |= {DEFERRED_UPDATE, UPDATE_MESSAGE}
        if kind not in allowed:
            raise DiscordError(400, 50035, f"Invalid Form Body: callback type {kind}")
        message, events = None, []
        ephemeral = (data.get("flags") or 0) & p.EPHEMERAL
        if kind == MESSAGE:
            message = self._interaction_message(record, data, uploads)
            events.append(("MESSAGE_CREATE", message))
        elif kind == DEFERRED_MESSAGE:
            message = self._interaction_message(record, {}, [], flags=p.LOADING | ephemeral)
            events.append(("MESSAGE_CREATE", message))
        elif kind == UPDATE_MESSAGE:
            assert record.message_id is not None
            message = self.world.edit_message(record.message_id, data, uploads)
            events.append(("MESSAGE_UPDATE", message))
        record.response_type = kind
        if message is not None:
            record.original_id = int(message["id"])
        elif kind == DEFERRED_UPDATE:
            record.original_id = record.message_id
        answer: dict[str, Any] = {"interaction": {
            "id": str(record.id), "type": record.type,
            "response_message_loading": kind == DEFERRED_MESSAGE,
            "response_message_ephemeral": bool(ephemeral),
        }}  # fmt: skip
        if record.original_id is not None:
            answer["interaction"]["response_message_id"] = str(record.original_id)
        answer["resource"] = {"type": kind}
        if message is not None:
            answer["resource"]["message"] = message
        return answer, events

    def followup(
        self, record: InteractionRecord, body: dict[str, Any], uploads: list[Upload]
    ) -> tuple[dict[str, Any], Event]:
        """POST /webhooks/{app}/{token}: after a deferred message, the first one fills it in."""
        if record.response_type is None:
            raise DiscordError(404, 10015, "Unknown Webhook")
        first = not record.first_followup_done
        record.first_followup_done = True
        if first and record.response_type == DEFERRED_MESSAGE and record.original_id:
            return (message := self.world.edit_message(record.original_id, body, uploads)), (
                "MESSAGE_UPDATE", message)  # fmt: skip
        message = self._interaction_message(record, body, uploads)
        return message, ("MESSAGE_CREATE", message)

    def webhook_message_id(self, record: InteractionRecord, message_id: str) -> int:
        if record.response_type is None:
            raise DiscordError(404, 10015, "Unknown Webhook")
        if message_id == "@original":
            if record.original_id is None:
                raise DiscordError(404, 10008, "Unknown Message")
            return record.original_id
        if int(message_id) not in record.message_ids:
            raise DiscordError(404, 10008, "Unknown Message")
        return int(message_id)


def _find_component(components: list[dict[str, Any]], custom_id: str) -> dict[str, Any] | None:
    for component in components:
        if component.get("custom_id") == custom_id:
            return component
        found = _find_component(component.get("components") or [], custom_id)
        if found is not None:
            return found
    return None
