"""Databases as chatface's hand-written migration runner left them, before Alembic.

The DDL is a frozen copy of what that runner's ``create_all`` emitted at its version 1
(its last), on each backend, so these tests keep meaning the same when the models change.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa


def _table(name: str, *parts: str) -> str:
    # Laid out exactly as SQLAlchemy printed it, since SQLite keeps the statement's text.
    return f"CREATE TABLE {name} (\n\t" + ", \n\t".join(parts) + "\n)"


SQLITE_DDL = [
    _table(
        "users",
        "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT",
        "platform VARCHAR(32) NOT NULL",
        "platform_user_id VARCHAR(255) NOT NULL",
        "created_at DATETIME NOT NULL",
        "UNIQUE (platform, platform_user_id)",
    ),
    _table(
        "schema_version",
        "id INTEGER NOT NULL",
        "version INTEGER NOT NULL",
        "PRIMARY KEY (id)",
        "CONSTRAINT ck_schema_version_single_row CHECK (id = 1)",
    ),
    _table(
        "conversations",
        "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT",
        "user_id INTEGER NOT NULL",
        "chat_id VARCHAR(255) NOT NULL",
        "active_face_id INTEGER",
        "created_at DATETIME NOT NULL",
        "UNIQUE (user_id, chat_id)",
        "FOREIGN KEY(user_id) REFERENCES users (id)",
    ),
    "CREATE INDEX ix_conversations_user_id ON conversations (user_id)",
    _table(
        "faces",
        "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT",
        "conversation_id INTEGER NOT NULL",
        "created_at DATETIME NOT NULL",
        "source_name VARCHAR(255) NOT NULL",
        "photo_path VARCHAR(1024)",
        "aligned_png BLOB NOT NULL",
        "inverse_transform TEXT NOT NULL",
        "latents BLOB NOT NULL",
        "backend VARCHAR(64) NOT NULL",
        "weights_sha256 VARCHAR(64) NOT NULL",
        "cursor INTEGER NOT NULL",
        "CONSTRAINT ck_faces_cursor CHECK (cursor >= 0)",
        "FOREIGN KEY(conversation_id) REFERENCES conversations (id)",
    ),
    "CREATE INDEX ix_faces_conversation_id ON faces (conversation_id)",
    _table(
        "messages",
        "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT",
        "conversation_id INTEGER NOT NULL",
        "role VARCHAR(8) NOT NULL",
        "text TEXT NOT NULL",
        "created_at DATETIME NOT NULL",
        "CONSTRAINT ck_messages_role CHECK (role IN ('user', 'bot'))",
        "FOREIGN KEY(conversation_id) REFERENCES conversations (id)",
    ),
    "CREATE INDEX ix_messages_conversation_id ON messages (conversation_id)",
    _table(
        "edits",
        "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT",
        "face_id INTEGER NOT NULL",
        "seq INTEGER NOT NULL",
        "plan_json TEXT NOT NULL",
        "state_json TEXT NOT NULL",
        "result_path VARCHAR(1024)",
        "created_at DATETIME NOT NULL",
        "UNIQUE (face_id, seq)",
        "CONSTRAINT ck_edits_seq CHECK (seq >= 1)",
        "FOREIGN KEY(face_id) REFERENCES faces (id)",
    ),
    "CREATE INDEX ix_edits_face_id ON edits (face_id)",
]

POSTGRESQL_DDL = [
    _table(
        "users",
        "id SERIAL NOT NULL",
        "platform VARCHAR(32) NOT NULL",
        "platform_user_id VARCHAR(255) NOT NULL",
        "created_at TIMESTAMP WITH TIME ZONE NOT NULL",
        "PRIMARY KEY (id)",
        "UNIQUE (platform, platform_user_id)",
    ),
    _table(
        "conversations",
        "id SERIAL NOT NULL",
        "user_id INTEGER NOT NULL",
        "chat_id VARCHAR(255) NOT NULL",
        "active_face_id INTEGER",
        "created_at TIMESTAMP WITH TIME ZONE NOT NULL",
        "PRIMARY KEY (id)",
        "UNIQUE (user_id, chat_id)",
        "FOREIGN KEY(user_id) REFERENCES users (id)",
    ),
    "CREATE INDEX ix_conversations_user_id ON conversations (user_id)",
    _table(
        "faces",
        "id SERIAL NOT NULL",
        "conversation_id INTEGER NOT NULL",
        "created_at TIMESTAMP WITH TIME ZONE NOT NULL",
        "source_name VARCHAR(255) NOT NULL",
        "photo_path VARCHAR(1024)",
        "aligned_png BYTEA NOT NULL",
        "inverse_transform TEXT NOT NULL",
        "latents BYTEA NOT NULL",
        "backend VARCHAR(64) NOT NULL",
        "weights_sha256 VARCHAR(64) NOT NULL",
        "cursor INTEGER NOT NULL",
        "PRIMARY KEY (id)",
        "CONSTRAINT ck_faces_cursor CHECK (cursor >= 0)",
        "FOREIGN KEY(conversation_id) REFERENCES conversations (id)",
    ),
    "CREATE INDEX ix_faces_conversation_id ON faces (conversation_id)",
    _table(
        "edits",
        "id SERIAL NOT NULL",
        "face_id INTEGER NOT NULL",
        "seq INTEGER NOT NULL",
        "plan_json TEXT NOT NULL",
        "state_json TEXT NOT NULL",
        "result_path VARCHAR(1024)",
        "created_at TIMESTAMP WITH TIME ZONE NOT NULL",
        "PRIMARY KEY (id)",
        "UNIQUE (face_id, seq)",
        "CONSTRAINT ck_edits_seq CHECK (seq >= 1)",
        "FOREIGN KEY(face_id) REFERENCES faces (id)",
    ),
    "CREATE INDEX ix_edits_face_id ON edits (face_id)",
    _table(
        "messages",
        "id SERIAL NOT NULL",
        "conversation_id INTEGER NOT NULL",
        "role VARCHAR(8) NOT NULL",
        "text TEXT NOT NULL",
        "created_at TIMESTAMP WITH TIME ZONE NOT NULL",
        "PRIMARY KEY (id)",
        "CONSTRAINT ck_messages_role CHECK (role IN ('user', 'bot'))",
        "FOREIGN KEY(conversation_id) REFERENCES conversations (id)",
    ),
    "CREATE INDEX ix_messages_conversation_id ON messages (conversation_id)",
    _table(
        "schema_version",
        "id INTEGER NOT NULL",
        "version INTEGER NOT NULL",
        "PRIMARY KEY (id)",
        "CONSTRAINT ck_schema_version_single_row CHECK (id = 1)",
    ),
]

PNG = b"\x89PNG\r\n\x1a\n\x00" + bytes(range(256))
LATENTS = b"\x00latents\xff" * 64
STATE = '{"smile": 0.5}'

_ROWS = [
    "INSERT INTO users (platform, platform_user_id, created_at) VALUES ('telegram', '42', :at)",
    "INSERT INTO conversations (user_id, chat_id, active_face_id, created_at) "
    "VALUES (1, 'chat-1', 1, :at)",
    "INSERT INTO faces (conversation_id, created_at, source_name, photo_path, aligned_png, "
    "inverse_transform, latents, backend, weights_sha256, cursor) VALUES (1, :at, "
    "'me.jpg', NULL, :png, '[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]', :latents, 'tiny', :sha, 1)",
    "INSERT INTO edits (face_id, seq, plan_json, state_json, result_path, created_at) "
    "VALUES (1, 1, '{}', :state, 'users/1/r1.png', :at)",
    "INSERT INTO messages (conversation_id, role, text, created_at) "
    "VALUES (1, 'user', 'smile please', :at)",
]


def create_legacy_database(url: str, version: int | None = 1) -> None:
    """Tables, a ``schema_version`` row (none when ``version`` is None) and one of each row.

    The rows are a user ``telegram/42`` with conversation ``chat-1``, face 1 (``PNG``,
    ``LATENTS``) at its edit 1 (``STATE``) and one message, all with id 1.
    """
    engine = sa.create_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        Path(engine.url.database or "").parent.mkdir(parents=True, exist_ok=True)
    # The runner stored naive UTC text on SQLite and timestamptz on PostgreSQL.
    at = "2024-05-01 12:00:00.000000" if sqlite else "2024-05-01 12:00:00+00:00"
    params = {"at": at, "png": PNG, "latents": LATENTS, "sha": "0" * 64, "state": STATE}
    try:
        with engine.begin() as connection:
            for statement in SQLITE_DDL if sqlite else POSTGRESQL_DDL:
                connection.exec_driver_sql(statement)
            if version is not None:
                connection.execute(
                    sa.text("INSERT INTO schema_version (id, version) VALUES (1, :v)"),
                    {"v": version},
                )
            for statement in _ROWS:
                connection.execute(sa.text(statement), params)
    finally:
        engine.dispose()
