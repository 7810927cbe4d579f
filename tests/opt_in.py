"""Test folders kept out of the default `pytest` run (tests/browser, tests/hub): collected only when their
environment flag is 1 (what their make target sets) or when the folder, or a file in it, is named on the
command line."""
from __future__ import annotations

import os
from pathlib import Path


def _named_on_command_line(config, folder: Path) -> bool:
    base = Path(config.invocation_params.dir).resolve()
    named = [a.split("::")[0] for a in config.invocation_params.args if not a.startswith("-")]
    paths = [(base / arg).resolve() for arg in named] or [base]  # no path: pytest collects where it runs
    return any(path == folder or folder in path.parents for path in paths)


def ignore_unless_asked(config, folder: Path, flag: str) -> bool | None:
    """For `pytest_ignore_collect`: True (leave the folder out) unless `flag` is 1 or the folder is named."""
    if os.environ.get(flag) == "1" or _named_on_command_line(config, folder):
        return None
    return True
