"""The revision that gives edits their identity column keeps every row and, on SQLite,
the AUTOINCREMENT counter (ids of deleted edits are never handed out again)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from chatface.storage.migrations import make_config

BEFORE = "ed7f68ad9aac"
ADDS_IDENTITY = "3d657e2e8a42"


def test_rows_and_ids_survive_the_identity_revision(database_url: str, tmp_path) -> None:
    if database_url.startswith("sqlite"):
        tmp_path.joinpath("db").mkdir(exist_ok=True)
    engine = sa.create_engine(database_url)
    config = make_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, BEFORE)
            connection.exec_driver_sql(
                "INSERT INTO users (id, platform, platform_user_id, created_at) "
                "VALUES (1, 'cli', 'u', '2026-01-01 00:00:00')"
            )
            connection.exec_driver_sql(
                "INSERT INTO conversations (id, user_id, chat_id, created_at) "
                "VALUES (1, 1, '', '2026-01-01 00:00:00')"
            )
            connection.exec_driver_sql(
                "INSERT INTO faces (id, conversation_id, created_at, source_name, aligned_png, "
                "inverse_transform, latents, backend, weights_sha256, cursor) VALUES "
                "(1, 1, '2026-01-01 00:00:00', '', X'00', '[]', X'00', 'tiny', '', 1)"
                if engine.dialect.name == "sqlite"
                else "INSERT INTO faces (id, conversation_id, created_at, source_name, "
                "aligned_png, inverse_transform, latents, backend, weights_sha256, cursor) "
                "VALUES (1, 1, '2026-01-01 00:00:00', '', '\\x00', '[]', '\\x00', 'tiny', '', 1)"
            )
            for edit_id in (1, 2):
                connection.exec_driver_sql(
                    "INSERT INTO edits (id, face_id, seq, plan_json, state_json, created_at) "
                    f"VALUES ({edit_id}, 1, {edit_id}, '{{}}', '{{}}', '2026-01-01 00:00:00')"
                )
            connection.exec_driver_sql("DELETE FROM edits WHERE id = 2")
            command.upgrade(config, ADDS_IDENTITY)
            rows = connection.exec_driver_sql("SELECT id, seq, identity FROM edits").all()
            assert [tuple(row) for row in rows] == [(1, 1, None)]
            if engine.dialect.name == "sqlite":
                connection.exec_driver_sql(
                    "INSERT INTO edits (face_id, seq, plan_json, state_json, created_at) "
                    "VALUES (1, 2, '{}', '{}', '2026-01-01 00:00:00')"
                )
                new_id = connection.exec_driver_sql("SELECT max(id) FROM edits").scalar()
                assert new_id == 3  # not 2, the deleted edit's id
            command.downgrade(config, BEFORE)
            rows = connection.exec_driver_sql("SELECT id FROM edits ORDER BY id").all()
            assert rows[0][0] == 1
    finally:
        engine.dispose()
