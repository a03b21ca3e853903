"""The revision that records how each edit was rendered (steps, schedule) keeps every
row, its identity and, on SQLite, the AUTOINCREMENT counter; downgrading drops only the
new columns."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from chatface.storage.migrations import make_config

BEFORE = "3d657e2e8a42"
ADDS_RENDERING = "450206602a99"


def test_rows_and_ids_survive_the_rendering_revision(database_url: str, tmp_path) -> None:
    if database_url.startswith("sqlite"):
        tmp_path.joinpath("db").mkdir(exist_ok=True)
    engine = sa.create_engine(database_url)
    sqlite = engine.dialect.name == "sqlite"
    blob = "X'00'" if sqlite else "'\\x00'"
    config = make_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, BEFORE)
            for statement in (
                "INSERT INTO users (id, platform, platform_user_id, created_at) "
                "VALUES (1, 'cli', 'u', '2026-01-01 00:00:00')",
                "INSERT INTO conversations (id, user_id, chat_id, created_at) "
                "VALUES (1, 1, '', '2026-01-01 00:00:00')",
                "INSERT INTO faces (id, conversation_id, created_at, source_name, aligned_png, "
                "inverse_transform, latents, backend, weights_sha256, cursor) VALUES "
                f"(1, 1, '2026-01-01 00:00:00', '', {blob}, '[]', {blob}, 'tiny', '', 1)",
            ):
                connection.exec_driver_sql(statement)
            for edit_id in (1, 2):
                connection.exec_driver_sql(
                    "INSERT INTO edits (id, face_id, seq, plan_json, state_json, result_path, "
                    f"created_at, identity) VALUES ({edit_id}, 1, {edit_id}, '{{}}', '{{}}', "
                    f"'users/1/r{edit_id}.png', '2026-01-01 00:00:00', 0.75)"
                )
            connection.exec_driver_sql("DELETE FROM edits WHERE id = 2")
            command.upgrade(config, ADDS_RENDERING)
            rows = connection.exec_driver_sql(
                "SELECT id, seq, result_path, identity, steps, schedule FROM edits"
            ).all()
            assert [tuple(row) for row in rows] == [(1, 1, "users/1/r1.png", 0.75, None, None)]
            if sqlite:
                connection.exec_driver_sql(
                    "INSERT INTO edits (face_id, seq, plan_json, state_json, created_at, steps, "
                    "schedule) VALUES (1, 2, '{}', '{}', '2026-01-01 00:00:00', 8, 'stable')"
                )
                new_id = connection.exec_driver_sql("SELECT max(id) FROM edits").scalar()
                assert new_id == 3  # not 2, the deleted edit's id
            command.downgrade(config, BEFORE)
            columns = [c["name"] for c in sa.inspect(connection).get_columns("edits")]
            assert "steps" not in columns and "schedule" not in columns
            rows = connection.exec_driver_sql("SELECT id, identity FROM edits ORDER BY id").all()
            assert tuple(rows[0]) == (1, 0.75)
    finally:
        engine.dispose()
