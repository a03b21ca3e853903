"""A turn that lands on a state an earlier edit of the face rendered the same way (steps,
schedule) gets its own copy of that result and no render job; other steps or schedules,
a result below the identity guard's threshold or a missing file still render."""

from __future__ import annotations

from chatface.storage import Job, Store
from chatface.storage.turns import Rendering, TurnWrite
from tests.storage.test_store import new_face

SMILE = '{"strengths": {"smile": 0.5}}'


def test_an_edit_of_a_state_rendered_before_gets_a_copy_of_its_result(store: Store) -> None:
    write = store.write_turn("telegram", "1", "c")
    face = new_face(store, write.conversation_id)

    def turn(rendering: Rendering) -> TurnWrite:
        return store.write_turn(
            "telegram", "1", "c", face_id=face.id, move="edit", plan_json="{}",
            new_state=lambda _: SMILE, reply="Smiling.", job=Job(kind="render"),
            reuse=lambda current: rendering,
        )  # fmt: skip

    first = turn(Rendering(3, "stable"))
    assert first.job_id is not None and first.current is not None
    result = store.result_file(first.user_id, first.current)
    result.write_bytes(b"the smile")
    relative = str(result.relative_to(store.files_dir))
    store.finish_job(
        first.job_id, "done", result_path=relative, identity=0.4, steps=3, schedule="stable"
    )

    for other in (Rendering(2, "stable"), Rendering(3, "constant"), Rendering(3, "stable", 0.5)):
        assert turn(other).job_id is not None  # other steps, schedule; below the guard
    served = turn(Rendering(3, "stable", min_identity=0.3))
    assert served.job_id is None and served.current is not None
    copy = served.current.result_path
    assert copy is not None and copy != relative  # its own file: never a shared path
    assert (store.files_dir / copy).read_bytes() == b"the smile"
    stored = store.history(face.id or 0)[-1]
    assert (stored.result_path, stored.identity, stored.steps, stored.schedule) == (
        copy, 0.4, 3, "stable",
    )  # fmt: skip
    assert store.messages(write.conversation_id)[-1].text == "Smiling."  # answered at once

    for path in (result, store.files_dir / copy):
        path.unlink()  # no file left to copy: rendered
    assert turn(Rendering(3, "stable")).job_id is not None
