"""Storage of chatface: users, conversations, faces, edit history, messages and bot jobs.

``Store`` is the only entry point the engine, bots and CLI need; the models are the
detached rows it returns. ``migrate`` upgrades a database's schema with Alembic (opening
a ``Store`` does it).
"""

from chatface.storage.models import Conversation, Edit, Face, Job, Message, Update, User
from chatface.storage.schema import head_revision, migrate, pending_upgrade
from chatface.storage.store import Store

__all__ = [
    "Conversation",
    "Edit",
    "Face",
    "Job",
    "Message",
    "Store",
    "Update",
    "User",
    "head_revision",
    "migrate",
    "pending_upgrade",
]
