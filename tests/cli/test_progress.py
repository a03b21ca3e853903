"""The CLI's progress bar: kept when it finished, removed when interrupted or unused."""

from __future__ import annotations

import pytest

from chatface.cli.progress import progress_bar


def test_finished_bars_stay_and_the_others_leave_nothing(capsys) -> None:
    with progress_bar("Encoding") as report:
        for step in range(1, 4):
            report(step, 3)
    with progress_bar("Nothing to do"):
        pass
    with pytest.raises(RuntimeError), progress_bar("Interrupted") as report:
        report(1, 5)
        raise RuntimeError("boom")
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if line.strip()]
    assert line.startswith("Encoding") and "3/3" in line
    assert "Nothing to do" not in err and "Interrupted" not in err
    assert err == f"{line}\n"  # nothing else, not even blank lines
