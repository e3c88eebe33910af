"""Files that are written whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def probe_folder(folder: Path) -> None:
    """Raise the OSError that writing a new file in ``folder`` would raise. The probe file is
    gone on close, and no permission bits are read: ``os.access`` would trust root."""
    with tempfile.TemporaryFile(dir=folder):
        pass


def write_whole(path: Path, text: str) -> None:
    """``text`` into ``path``, or ``path`` left as it was: written beside it, then renamed
    over it (atomic on POSIX), so a run stopped mid-write or a full disk never leaves half a
    table or log behind. The file gets the permissions ``open`` gives (the umask's)."""
    aside = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        aside.write_text(text, encoding="utf-8")
        os.replace(aside, path)
    except OSError as exc:  # named after the file the user knows, not the one aside (e.g. a folder in its place)
        aside.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    except BaseException:
        aside.unlink(missing_ok=True)
        raise
