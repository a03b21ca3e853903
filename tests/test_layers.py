"""The layering of docs/architecture.md, checked by import-linter's contracts (pyproject.toml).

cli -> bots -> engine <- plugins: the engine, the bots and the CLI never import a plugin
(plugins reach them through hooks only), storage imports neither the engine nor plugins,
and plugins use the engine's public API, never the front ends or storage. Imports inside
functions count too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is missing: pip install -e '.[test]'"
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    analysed = int(re.search(r"Analyzed (\d+) files", output).group(1))
    assert analysed > 50  # the whole package was read, not an empty tree
    assert "4 kept, 0 broken" in output
