"""Tests of the Store API on SQLite and PostgreSQL: values round-trip, history semantics,
atomicity of writes, and /forget removing everything of one user and nothing else."""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chatface.config import load_config
from chatface.errors import ChatFaceError, StorageError
from chatface.storage import Conversation, Edit, Face, Job, Store, User
from chatface.storage.models import utc_now

TABLES = ("users", "conversations", "faces", "edits", "messages", "jobs", "updates")
TRANSFORM = [0.5, -0.25, 12.0, 0.25, 0.5, -3.75]


def latents_blob(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return save_safetensors(
        {
            "z_sem": rng.standard_normal((1, 512)).astype(np.float32),
            "x_T": rng.standard_normal((1, 3, 16, 16)).astype(np.float32),
        }
    )


def png_like(seed: int) -> bytes:
    # Every byte value, NULs included, so a text column or encoding step would show.
    rng = np.random.default_rng(seed)
    return b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + rng.bytes(4096)


def new_face(store: Store, conversation_id: int, seed: int = 0) -> Face:
    return store.add_face(
        conversation_id,
        aligned_png=png_like(seed),
        inverse_transform=TRANSFORM,
        latents=latents_blob(seed),
        backend="tiny",
        weights_sha256="ab" * 32,
        source_name=f"photo{seed}.jpg",
    )


def count_rows(store: Store) -> dict[str, int]:
    with store.engine.connect() as connection:
        return {
            table: connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
            for table in TABLES
        }


@pytest.fixture
def face(store: Store) -> Face:
    user = store.get_or_create_user("telegram", "42")
    assert user.id is not None
    conversation = store.get_or_create_conversation(user.id, "chat-1")
    assert conversation.id is not None
    return new_face(store, conversation.id)


def edit(store: Store, face: Face, n: int, result_path: str | None = None) -> Edit:
    assert face.id is not None
    state = json.dumps({"smile": n / 10})
    return store.append_edit(
        face.id, plan_json=json.dumps({"n": n}), state_json=state, result_path=result_path
    )


def seqs(store: Store, face_id: int) -> list[int]:
    return [e.seq for e in store.history(face_id)]


# -- opening ---------------------------------------------------------------------------


def test_sqlite_store_creates_parent_dir_and_enforces_foreign_keys(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "er" / "chatface.db"
    with Store(f"sqlite:///{db}", tmp_path / "files") as store:
        assert db.is_file()
        assert store.database_file == db
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        with pytest.raises(sa.exc.IntegrityError), Session(store.engine) as session:
            session.add(Conversation(user_id=999, chat_id="x"))
            session.commit()


def test_from_config_uses_data_dir(tmp_path: Path) -> None:
    config = load_config({"CHATFACE_HOME": str(tmp_path / "home")})
    with Store.from_config(config) as store:
        assert store.files_dir == tmp_path / "home" / "files"
        assert store.database_file == tmp_path / "home" / "chatface.db"
        assert store.database_file.is_file()


def test_unreachable_database_is_a_storage_error(tmp_path: Path) -> None:
    port = 1  # nothing listens on port 1, so the connection is refused at once
    with pytest.raises(StorageError, match="Cannot open the database"):
        Store(f"postgresql+psycopg://nobody:secret@127.0.0.1:{port}/x", tmp_path)


def test_data_survives_reopening(database_url: str, files_dir: Path) -> None:
    with Store(database_url, files_dir) as store:
        user = store.get_or_create_user("cli", "me")
        assert user.id is not None
        conversation = store.get_or_create_conversation(user.id)
        assert conversation.id is not None
        face = new_face(store, conversation.id, seed=7)
        assert face.id is not None
        store.append_edit(face.id, plan_json="{}", state_json='{"age": 0.3}')
    with Store(database_url, files_dir) as store:
        assert [u.platform_user_id for u in store.users()] == ["me"]
        assert store.get_face(face.id).latents == latents_blob(7)
        assert store.current_state_json(face.id) == '{"age": 0.3}'


# -- users and conversations -------------------------------------------------------------


def test_get_or_create_user_is_idempotent(store: Store) -> None:
    first = store.get_or_create_user("telegram", "42")
    again = store.get_or_create_user("telegram", "42")
    other_platform = store.get_or_create_user("discord", "42")
    assert first.id == again.id
    assert other_platform.id != first.id
    assert [(u.platform, u.platform_user_id) for u in store.users()] == [
        ("telegram", "42"),
        ("discord", "42"),
    ]
    found = store.find_user("telegram", "42")
    assert found is not None and found.id == first.id
    assert store.find_user("telegram", "43") is None
    assert first.created_at.tzinfo is not None
    assert first.created_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs((datetime.now(UTC) - first.created_at).total_seconds()) < 60


def test_unique_constraints_hold_in_the_database(store: Store) -> None:
    user = store.get_or_create_user("telegram", "42")
    with pytest.raises(sa.exc.IntegrityError), Session(store.engine) as session:
        session.add(User(platform="telegram", platform_user_id="42"))
        session.commit()
    store.get_or_create_conversation(user.id or 0, "c")
    with pytest.raises(sa.exc.IntegrityError), Session(store.engine) as session:
        session.add(Conversation(user_id=user.id or 0, chat_id="c"))
        session.commit()
    assert count_rows(store)["users"] == 1
    assert count_rows(store)["conversations"] == 1


def test_get_or_create_user_survives_a_concurrent_insert(postgres_url: str, tmp_path: Path) -> None:
    # Another process inserts the same user between our lookup and our INSERT; the
    # savepoint must absorb the unique violation and return the other process's row.
    with Store(postgres_url, tmp_path) as store, Store(postgres_url, tmp_path) as rival:
        won: list[User] = []

        def insert_first(conn: object, cursor: object, statement: str, *args: object) -> None:
            if statement.startswith("INSERT INTO users") and not won:
                won.append(rival.get_or_create_user("telegram", "42"))

        sa.event.listen(store.engine, "before_cursor_execute", insert_first)
        try:
            user = store.get_or_create_user("telegram", "42")
        finally:
            sa.event.remove(store.engine, "before_cursor_execute", insert_first)
        assert len(won) == 1 and user.id == won[0].id
        assert [u.id for u in store.users()] == [user.id]


def test_get_or_create_conversation(store: Store) -> None:
    user = store.get_or_create_user("cli", "me")
    assert user.id is not None
    cli = store.get_or_create_conversation(user.id)
    assert cli.chat_id == ""
    assert store.get_or_create_conversation(user.id).id == cli.id
    chat = store.get_or_create_conversation(user.id, "room")
    assert chat.id != cli.id
    assert [c.id for c in store.conversations(user.id)] == [cli.id, chat.id]
    assert store.conversations(user.id + 1000) == []
    with pytest.raises(StorageError, match="No user with id"):
        store.get_or_create_conversation(user.id + 1000)


# -- faces ---------------------------------------------------------------------------------


def test_face_round_trips_bytes_exactly(store: Store, face: Face) -> None:
    assert face.id is not None
    loaded = store.get_face(face.id)
    assert loaded.aligned_png == png_like(0)
    assert loaded.latents == latents_blob(0)
    tensors = load_safetensors(loaded.latents)
    expected = load_safetensors(latents_blob(0))
    assert sorted(tensors) == ["x_T", "z_sem"]
    np.testing.assert_array_equal(tensors["x_T"], expected["x_T"])
    np.testing.assert_array_equal(tensors["z_sem"], expected["z_sem"])
    assert loaded.inverse_affine() == TRANSFORM
    assert json.loads(loaded.inverse_transform) == TRANSFORM
    assert (loaded.backend, loaded.weights_sha256, loaded.source_name) == (
        "tiny",
        "ab" * 32,
        "photo0.jpg",
    )
    assert loaded.cursor == 0
    assert loaded.created_at.tzinfo is not None


def test_add_face_makes_it_active(store: Store, face: Face) -> None:
    conversation_id = face.conversation_id
    active = store.active_face(conversation_id)
    assert active is not None and active.id == face.id
    second = new_face(store, conversation_id, seed=1)
    active = store.active_face(conversation_id)
    assert active is not None and active.id == second.id
    assert active.latents == latents_blob(1)
    assert [f.id for f in store.faces(conversation_id)] == [face.id, second.id]
    user = store.get_or_create_user("telegram", "42")
    empty = store.get_or_create_conversation(user.id or 0, "other")
    assert store.active_face(empty.id or 0) is None
    assert store.faces(empty.id or 0) == []


def test_missing_face_is_a_storage_error(store: Store) -> None:
    with pytest.raises(StorageError, match="no face with id 12345") as info:
        store.get_face(12345)
    assert isinstance(info.value, ChatFaceError)
    for call in (store.undo, store.redo, store.history, store.current_edit):
        with pytest.raises(StorageError):
            call(12345)
    with pytest.raises(StorageError):
        store.append_edit(12345, plan_json="{}", state_json="{}")
    with pytest.raises(StorageError, match="No conversation"):
        new_face(store, 12345)


# -- edit history --------------------------------------------------------------------------


def test_append_undo_redo(store: Store, face: Face) -> None:
    assert face.id is not None
    assert store.current_edit(face.id) is None
    assert store.current_state_json(face.id) == "{}"
    first, second, third = (edit(store, face, n) for n in (1, 2, 3))
    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    assert store.get_face(face.id).cursor == 3
    assert store.current_state_json(face.id) == '{"smile": 0.3}'

    undone = store.undo(face.id)
    assert undone is not None and undone.id == second.id
    assert store.get_face(face.id).cursor == 2
    assert store.current_state_json(face.id) == '{"smile": 0.2}'
    store.undo(face.id)
    assert store.undo(face.id) is None  # back at the original photo
    assert store.current_state_json(face.id) == "{}"
    with pytest.raises(StorageError, match="^Nothing to undo.$"):
        store.undo(face.id)
    assert store.get_face(face.id).cursor == 0

    redone = store.redo(face.id)
    assert redone.id == first.id
    assert store.redo(face.id).id == second.id
    assert store.redo(face.id).id == third.id
    with pytest.raises(StorageError, match="^Nothing to redo.$"):
        store.redo(face.id)
    assert store.get_face(face.id).cursor == 3
    assert seqs(store, face.id) == [1, 2, 3]


def test_new_edit_drops_redo_branch_and_its_files(store: Store, face: Face) -> None:
    assert face.id is not None
    user_dir = store.user_files_dir(store.get_or_create_user("telegram", "42").id or 0)
    paths = []
    for n in (1, 2, 3):
        (user_dir / f"r{n}.png").write_bytes(b"img")
        paths.append(str((user_dir / f"r{n}.png").relative_to(store.files_dir)))
        edit(store, face, n, result_path=paths[-1])
    store.undo(face.id)
    store.undo(face.id)
    dropped_ids = {e.id for e in store.history(face.id)[1:]}
    new = edit(store, face, 9)
    assert new.seq == 2
    assert new.id not in dropped_ids
    history = store.history(face.id)
    assert [(e.seq, e.plan_json) for e in history] == [(1, '{"n": 1}'), (2, '{"n": 9}')]
    assert store.get_face(face.id).cursor == 2
    with pytest.raises(StorageError, match="Nothing to redo"):
        store.redo(face.id)
    assert (store.files_dir / paths[0]).exists()
    assert not (store.files_dir / paths[1]).exists()
    assert not (store.files_dir / paths[2]).exists()
    assert count_rows(store)["edits"] == 2


def test_reset_is_an_undoable_edit(store: Store, face: Face) -> None:
    assert face.id is not None
    edit(store, face, 1)
    edit(store, face, 2)
    reset = store.reset(face.id, plan_json='{"reset": true}')
    assert (reset.seq, reset.state_json, reset.plan_json) == (3, "{}", '{"reset": true}')
    assert store.current_state_json(face.id) == "{}"
    undone = store.undo(face.id)
    assert undone is not None and undone.seq == 2
    assert store.current_state_json(face.id) == '{"smile": 0.2}'
    assert store.redo(face.id).id == reset.id
    assert seqs(store, face.id) == [1, 2, 3]


def test_set_result(store: Store, face: Face) -> None:
    first = edit(store, face, 1)
    assert first.result_path is None
    updated = store.set_result(first.id or 0, "users/1/a.png")
    assert updated.result_path == "users/1/a.png"
    assert store.history(face.id or 0)[0].result_path == "users/1/a.png"
    for bad in ("/etc/passwd", "../outside.png", ""):
        with pytest.raises(ValueError, match="relative"):
            store.set_result(first.id or 0, bad)
    with pytest.raises(StorageError, match="No edit"):
        store.set_result(99999, "x.png")
    assert store.history(face.id or 0)[0].result_path == "users/1/a.png"


def test_crash_mid_append_leaves_history_intact(store: Store, face: Face) -> None:
    assert face.id is not None
    result = store.user_files_dir(1) / "r3.png"
    result.write_bytes(b"img")
    for n in (1, 2):
        edit(store, face, n)
    edit(store, face, 3, result_path=str(result.relative_to(store.files_dir)))
    store.undo(face.id)
    store.undo(face.id)
    before = [(e.id, e.seq, e.state_json, e.result_path) for e in store.history(face.id)]

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("power cut")

    # The new edit row has been INSERTed and the redo branch DELETEd when this fires.
    sa.event.listen(Edit, "after_insert", crash)
    try:
        with pytest.raises(RuntimeError, match="power cut"):
            edit(store, face, 9)
    finally:
        sa.event.remove(Edit, "after_insert", crash)

    assert store.get_face(face.id).cursor == 1
    after = [(e.id, e.seq, e.state_json, e.result_path) for e in store.history(face.id)]
    assert after == before
    assert result.exists()
    assert store.redo(face.id).seq == 2  # the redo branch is still there


# -- messages --------------------------------------------------------------------------------


def test_messages_order_and_limit(store: Store) -> None:
    user = store.get_or_create_user("discord", "7")
    conversation = store.get_or_create_conversation(user.id or 0, "chan")
    other = store.get_or_create_conversation(user.id or 0, "elsewhere")
    cid = conversation.id or 0
    for i in range(25):
        store.log_message(cid, "user" if i % 2 == 0 else "bot", f"m{i}")
    store.log_message(other.id or 0, "user", "not here")
    last20 = store.messages(cid)
    assert [m.text for m in last20] == [f"m{i}" for i in range(5, 25)]
    assert [m.role for m in last20[:2]] == ["bot", "user"]
    assert [m.text for m in store.messages(cid, limit=3)] == ["m22", "m23", "m24"]
    assert [m.text for m in store.messages(other.id or 0)] == ["not here"]
    with pytest.raises(ValueError, match="role"):
        store.log_message(cid, "system", "x")
    with pytest.raises(StorageError, match="No conversation"):
        store.log_message(99999, "user", "x")


# -- forgetting ------------------------------------------------------------------------------


def populate(store: Store, platform: str, platform_user_id: str) -> tuple[User, Path]:
    user = store.get_or_create_user(platform, platform_user_id)
    assert user.id is not None
    files = store.user_files_dir(user.id)
    for chat in ("a", "b"):
        conversation = store.get_or_create_conversation(user.id, chat)
        cid = conversation.id or 0
        store.log_message(cid, "user", "hi")
        store.log_message(cid, "bot", "hello")
        incoming = store.files_dir / "incoming" / f"{platform_user_id}-{chat}.bin"
        incoming.parent.mkdir(parents=True, exist_ok=True)
        incoming.write_bytes(b"photo")
        store.write_turn(
            platform,
            platform_user_id,
            chat,
            update_key=f"{platform}/{platform_user_id}-{chat}",
            job=Job(kind="photo", photo_path=str(incoming.relative_to(store.files_dir))),
        )
        for seed in (1, 2):
            face = new_face(store, cid, seed)
            for n in (1, 2, 3):
                path = files / f"{chat}-{seed}-{n}.png"
                path.write_bytes(b"img")
                edit(store, face, n, result_path=str(path.relative_to(store.files_dir)))
    return user, files


def test_forget_user_removes_every_row_and_file(store: Store) -> None:
    gone, gone_files = populate(store, "telegram", "1")
    kept, kept_files = populate(store, "telegram", "2")
    before = count_rows(store)
    assert before == {
        "users": 2,
        "conversations": 4,
        "faces": 8,
        "edits": 24,
        "messages": 8,
        "jobs": 4,
        "updates": 4,
    }

    counts = store.forget_user("telegram", "1")

    assert counts == {
        "messages": 4,
        "jobs": 2,
        "edits": 12,
        "faces": 4,
        "conversations": 2,
        "updates": 2,
        "users": 1,
    }
    assert not (store.files_dir / "incoming" / "1-a.bin").exists()
    assert (store.files_dir / "incoming" / "2-a.bin").exists()
    after = count_rows(store)
    assert after == {table: before[table] - counts[table] for table in TABLES}
    assert not gone_files.exists()
    assert store.find_user("telegram", "1") is None
    assert [u.id for u in store.users()] == [kept.id]
    assert len(list(kept_files.iterdir())) == 12
    conversations = store.conversations(kept.id or 0)
    assert len(conversations) == 2
    face = store.active_face(conversations[0].id or 0)
    assert face is not None and face.latents == latents_blob(2)
    assert seqs(store, face.id or 0) == [1, 2, 3]

    assert store.forget_user("telegram", "1") == dict.fromkeys(counts, 0)
    assert store.forget_user("nowhere", "x") == dict.fromkeys(counts, 0)
    assert count_rows(store) == after
    # Ids are never reused, so a newcomer cannot inherit the forgotten user's files dir.
    newcomer = store.get_or_create_user("telegram", "3")
    assert newcomer.id is not None and newcomer.id > max(gone.id or 0, kept.id or 0)


def test_forget_user_is_atomic(store: Store) -> None:
    _, files = populate(store, "cli", "me")
    before = count_rows(store)
    # Fails on the last DELETE (users), after messages, edits, faces and conversations.
    sa.event.listen(store.engine, "before_cursor_execute", _fail_on_user_delete)
    try:
        with pytest.raises(RuntimeError, match="delete of users"):
            store.forget_user("cli", "me")
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", _fail_on_user_delete)
    assert count_rows(store) == before
    assert files.is_dir() and len(list(files.iterdir())) == 12
    assert store.find_user("cli", "me") is not None


def _fail_on_user_delete(
    conn: object, cursor: object, statement: str, *args: object, **kwargs: object
) -> None:
    if statement.lstrip().upper().startswith("DELETE FROM USERS"):
        raise RuntimeError("simulated crash during the delete of users")


def test_face_photo_is_stored_by_path_and_forgotten(store: Store) -> None:
    user = store.get_or_create_user("discord", "photo-owner")
    conversation = store.get_or_create_conversation(user.id or 0, "c")
    photo = store.files_dir / "photos" / "original.jpg"  # even outside the user's folder
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b"jpeg bytes")
    face = store.add_face(
        conversation.id or 0,
        aligned_png=png_like(1),
        inverse_transform=TRANSFORM,
        latents=latents_blob(1),
        backend="tiny",
        weights_sha256="ab" * 32,
        photo_path="photos/original.jpg",
    )
    assert store.get_face(face.id or 0).photo_path == "photos/original.jpg"
    with pytest.raises(ValueError, match="relative to the files dir"):
        store.add_face(
            conversation.id or 0,
            aligned_png=b"",
            inverse_transform=TRANSFORM,
            latents=b"",
            backend="tiny",
            weights_sha256="",
            photo_path="/etc/passwd",
        )
    store.forget_user("discord", "photo-owner")
    assert not photo.exists()


# -- chat turns and jobs ---------------------------------------------------------------


def bump(state_json: str) -> str:
    strengths = json.loads(state_json).get("strengths", {})
    strengths["smile"] = strengths.get("smile", 0) + 0.5
    return json.dumps({"strengths": strengths})


def test_a_turn_is_one_read_and_one_write(store: Store) -> None:
    view = store.read_turn("telegram", "9", "c", update_key="telegram/1")
    assert (view.user_id, view.conversation_id, view.handled, view.face) == (
        None,
        None,
        False,
        None,
    )
    write = store.write_turn(
        "telegram", "9", "c", update_key="telegram/1", messages=[("user", "hi")]
    )
    assert not write.handled and write.conversation_id
    again = store.write_turn(
        "telegram", "9", "c", update_key="telegram/1", messages=[("user", "hi")]
    )
    assert again.handled  # a redelivered update writes nothing
    assert store.read_turn("telegram", "9", "c", update_key="telegram/1").handled
    assert [m.text for m in store.messages(write.conversation_id)] == ["hi"]

    face = new_face(store, write.conversation_id, 1)
    edit = store.write_turn(
        "telegram",
        "9",
        "c",
        messages=[("user", "smile")],
        face_id=face.id,
        move="edit",
        plan_json="{}",
        new_state=bump,
        reply="Smiling.",
        job=Job(kind="render"),
    )
    assert edit.current is not None and edit.current.seq == 1 and edit.job_id
    view = store.read_turn("telegram", "9", "c", cached_faces={face.id or 0})
    assert view.face is not None and view.face.cursor == 1 and view.state_json == bump("{}")
    assert view.recent == [("user", "hi"), ("user", "smile")]  # the reply waits for the job
    with pytest.raises(sa.orm.exc.DetachedInstanceError):
        view.face.latents  # noqa: B018 - cached faces come without their blobs
    assert store.read_turn("telegram", "9", "c").face.latents == latents_blob(1)  # type: ignore[union-attr]

    [(job, user_id, user, chat)] = store.unfinished_jobs("telegram")
    assert (job.id, job.state, job.edit_id, job.reply, user, chat) == (
        edit.job_id,
        "queued",
        edit.current.id,
        "Smiling.",
        "9",
        "c",
    )
    assert store.unfinished_jobs("discord") == []
    store.mark_running(edit.job_id or 0)
    assert store.unfinished_jobs("telegram")[0][0].state == "running"
    end = store.finish_job(edit.job_id or 0, "done", reply="Smiling.", result_path="users/1/r.png")
    assert end.found and end.current
    store.mark_running(edit.job_id or 0)  # too late: stays done
    assert store.unfinished_jobs("telegram") == []
    assert store.current_edit(face.id or 0).result_path == "users/1/r.png"  # type: ignore[union-attr]
    assert store.messages(write.conversation_id)[-1].text == "Smiling."


def test_a_failed_render_takes_its_edit_back(store: Store) -> None:
    write = store.write_turn("discord", "5", "c")
    face = new_face(store, write.conversation_id, 2)
    turn = store.write_turn(
        "discord",
        "5",
        "c",
        face_id=face.id,
        move="edit",
        plan_json="{}",
        new_state=bump,
        job=Job(kind="render"),
    )
    store.finish_job(turn.job_id or 0, "failed", reply="Busy.", error="busy", undo=True)
    assert store.get_face(face.id or 0).cursor == 0
    assert store.history(face.id or 0)[0].seq == 1  # redo-able, like any undone edit


def test_a_render_overtaken_by_an_undo_is_stored_but_not_current(store: Store) -> None:
    write = store.write_turn("discord", "7", "c")
    face = new_face(store, write.conversation_id, 5)
    kwargs = {"face_id": face.id, "plan_json": "{}", "new_state": bump, "reply": "Smiling."}
    turn = store.write_turn("discord", "7", "c", move="edit", job=Job(kind="render"), **kwargs)
    store.write_turn("discord", "7", "c", face_id=face.id, move="undo")  # answered at once
    end = store.finish_job(turn.job_id or 0, "done", reply="Smiling.", result_path="users/7/r.png")
    assert end.found and not end.current  # the caller sends nothing
    assert store.history(face.id or 0)[0].result_path == "users/7/r.png"  # redo is instant
    assert "Smiling." not in [m.text for m in store.messages(write.conversation_id)]
    store.forget_user("discord", "7")
    assert not store.finish_job(turn.job_id or 0, "done").found


def test_a_move_that_cannot_be_made_writes_nothing(store: Store) -> None:
    write = store.write_turn("discord", "6", "c")
    face = new_face(store, write.conversation_id, 3)
    with pytest.raises(StorageError, match="Nothing to undo"):
        store.write_turn(
            "discord",
            "6",
            "c",
            update_key="discord/7",
            messages=[("user", "undo")],
            face_id=face.id,
            move="undo",
        )
    assert store.messages(write.conversation_id) == []
    assert not store.read_turn("discord", "6", "c", update_key="discord/7").handled


def test_job_if_decides_whether_a_job_is_added(store: Store) -> None:
    write = store.write_turn("cli", "u", "")
    face = new_face(store, write.conversation_id, 4)
    turn = store.write_turn(
        "cli",
        "u",
        "",
        face_id=face.id,
        move="reset",
        plan_json="{}",
        reply="Back.",
        job=Job(kind="render"),
        job_if=lambda current: False,
    )
    assert turn.job_id is None and store.unfinished_jobs("cli") == []
    assert store.messages(write.conversation_id)[-1].text == "Back."  # logged at once


def test_a_claim_cannot_slip_between_the_owner_check_and_the_finish(
    postgres_url: str, tmp_path: Path
) -> None:
    """Another process claims the job right after finish_job has read it: the claim waits
    for the finish, then finds the job done, so only one of them answers it."""
    with Store(postgres_url, tmp_path) as store, Store(postgres_url, tmp_path) as rival:
        turn = store.write_turn("telegram", "1", "c", job=Job(kind="photo", owner="old"))
        [(job, *_)] = store.unfinished_jobs("telegram")
        claims: list[Future[bool]] = []

        def claim_after_read(conn: object, cursor: object, statement: str, *args: object) -> None:
            if statement.startswith("SELECT jobs.") and not claims:
                claims.append(pool.submit(rival.claim_job, job, "new"))
                until_done_or_waiting(claims[0], rival.engine)

        with ThreadPoolExecutor(1) as pool:
            sa.event.listen(store.engine, "after_cursor_execute", claim_after_read)
            try:
                end = store.finish_job(turn.job_id or 0, "done", reply="Got it.", owner="old")
            finally:
                sa.event.remove(store.engine, "after_cursor_execute", claim_after_read)
        assert end.found and not end.lost
        assert claims[0].result() is False  # it found the job done
        assert store.unfinished_jobs("telegram") == []


def until_done_or_waiting(claim: Future[bool], engine: Engine) -> None:
    """Return once ``claim`` is done or a session on ``engine``'s database waits for a
    lock."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with engine.connect() as connection:
        for _ in range(1000):
            if wait([claim], 0.01).done or connection.execute(query).scalar():
                return
    raise AssertionError("the claim neither ended nor waited for a lock")


def test_prune_drops_old_keys_and_finished_jobs(store: Store) -> None:
    done = store.write_turn("telegram", "1", "c", update_key="telegram/old", job=Job(kind="photo"))
    store.finish_job(done.job_id or 0, "done")
    waiting = store.write_turn("telegram", "1", "c", job=Job(kind="photo"))
    assert store.prune(utc_now() + timedelta(seconds=1)) == 2
    assert [j.id for j, *_ in store.unfinished_jobs("telegram")] == [waiting.job_id]
    assert not store.read_turn("telegram", "1", "c", update_key="telegram/old").handled
