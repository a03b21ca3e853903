"""`chatface edit` says how much the edit kept of who the face shows (tiny identity model)."""

from __future__ import annotations

import re

from tests.cli.test_edit import FAST, PHOTO, invoke


def test_edit_prints_the_identity_similarity(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CHATFACE_IDENTITY_MODEL", "tiny")
    result = invoke("edit", PHOTO, "--set", "smile=0.8", "-o", tmp_path / "a.png", *FAST)
    assert result.exit_code == 0, result.output
    match = re.search(r"identity similarity (-?[01]\.\d\d)", result.output)
    assert match and -1 <= float(match.group(1)) <= 1
    # Without the identity model's weights (facenet by default) the edit is the same, unmeasured.
    monkeypatch.delenv("CHATFACE_IDENTITY_MODEL")
    again = invoke("edit", PHOTO, "--set", "smile=0.8", "-o", tmp_path / "b.png", *FAST)
    assert again.exit_code == 0 and "similarity" not in again.output
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
