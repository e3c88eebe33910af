"""Which source of dfqbench made a record. The version number stays the same from commit to
commit; run from a git checkout (an editable install), the commit says which code it was."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

#: what "the code" is: a record appended to results/ must not make the next one's tree dirty
SOURCE_PATHS = ("dfqbench", "plugins", "pyproject.toml")
CHECKOUT = Path(__file__).resolve().parent.parent  #: the repository root, in an editable install


@functools.cache
def revision(root: Path = CHECKOUT) -> str | None:
    """``<12-digit commit>``, with ``+dirty`` when the source has uncommitted changes; None
    outside a checkout (a regular install) or without git."""
    if not (root / ".git").exists():
        return None
    try:
        commit = _git(root, "rev-parse", "--short=12", "HEAD")
        changed = _git(root, "status", "--porcelain", "--", *SOURCE_PATHS)
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if changed else "")


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
