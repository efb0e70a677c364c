"""Files appear whole or not at all: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp)`` on a temporary ``.part`` file in ``path``'s folder, then rename it to
    ``path`` (an atomic replace on one file system). On any failure the temporary file is
    removed and ``path`` is left as it was. The file gets the usual permissions (0644 under
    the common umask 022), not ``mkstemp``'s 0600. Parent folders must exist.

    Returns:
        ``path`` as a :class:`Path`.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
