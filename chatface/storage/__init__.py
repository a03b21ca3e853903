"""Storage of chatface: users, conversations, faces, edit history and messages.

``Store`` is the only entry point the engine, bots and CLI need; the models are the
detached rows it returns.
"""

from chatface.storage.migrations import MIGRATIONS, Migration, migrate
from chatface.storage.models import Conversation, Edit, Face, Message, SchemaVersion, User
from chatface.storage.store import Store

__all__ = [
    "MIGRATIONS",
    "Conversation",
    "Edit",
    "Face",
    "Message",
    "Migration",
    "SchemaVersion",
    "Store",
    "User",
    "migrate",
]
