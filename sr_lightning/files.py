"""Reading and writing users' files: nothing is unpickled, and files appear whole or not at all.

Reading: :func:`read_data` is the one ``torch.load`` (``weights_only=True``: tensors and plain
containers, never code) and safetensors reader; :func:`load_tensors` adds the messages that
name the option a file came from.

Writing: :func:`write_atomically` is the one write pattern of every file sr_lightning saves
(checkpoints, images, shards, indexes, exports, the LR cache): a temporary file beside the
target, then a rename. The temporary file is ``.<name>.<host>-<pid>.<random>.part`` in the
target's folder, so the rename never crosses a file system (a move across file systems is a
copy over the old file, which a kill can leave half-written). A process killed mid-write
(kill -9) leaves its ``.part`` file behind; the next write of the same target removes it,
since it names a process of this host that is gone. A full disk is one line naming the file
and the space.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import shutil
import socket
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sr_lightning.errors import UserError

PART_SUFFIX = ".part"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class DiskFullError(UserError):
    """No room for a file on its file system; the message names the file and the space."""


def human_bytes(n: float) -> str:
    """``n`` bytes as ``'12.3 MB'`` (decimal units)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def free_bytes(folder: str | Path) -> int:
    """Bytes free to this user on ``folder``'s file system."""
    return shutil.disk_usage(folder).free


def disk_full(path: Path, needed: str) -> DiskFullError:
    """The one-line error for a file that does not fit (``needed``: e.g. ``'27.1 MB'``)."""
    return DiskFullError(f"no space left for '{path}': it needs {needed}, {human_bytes(free_bytes(path.parent))} "
                         f"free on its file system; free some space there or write elsewhere")


def _owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_parts(path: str | Path) -> list[Path]:
    """Remove the ``.part`` files of ``path`` left by killed processes of this host.

    Returns:
        The files removed.
    """
    path = Path(path)
    host = socket.gethostname()
    removed = []
    for part in path.parent.glob(f".{glob.escape(path.name)}.*{PART_SUFFIX}"):
        owner = part.name[len(path.name) + 2:].split(".", 1)[0]  # "<host>-<pid>" (host may hold '-')
        who, _, pid = owner.rpartition("-")
        if who == host and pid.isdigit() and not _alive(int(pid)):
            part.unlink(missing_ok=True)
            removed.append(part)
    return removed


def write_atomically(path: str | Path, write: Callable[[str], None], size: int | None = None) -> Path:
    """Call ``write(tmp)`` on a temporary ``.part`` file in ``path``'s folder, flush it to the
    disk, then rename it to ``path`` (an atomic replace on one file system). On any failure
    the temporary file is removed and ``path`` is left as it was. The file gets the usual
    permissions (0644 under the common umask 022), not ``mkstemp``'s 0600. Parent folders
    must exist.

    Args:
        path: the target.
        write: writes the whole file to the path it is given.
        size: the file's size when known beforehand: refused at once when the file system
            has less room.

    Returns:
        ``path`` as a :class:`Path`.

    Raises:
        DiskFullError: the file system is full (or the file would not fit).
    """
    path = Path(path)
    remove_stale_parts(path)
    if size is not None and free_bytes(path.parent) < size:
        raise disk_full(path, human_bytes(size))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_owner()}.", suffix=PART_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:  # on the disk before the rename makes it the file
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as err:
        written = Path(tmp).stat().st_size if Path(tmp).exists() else 0
        Path(tmp).unlink(missing_ok=True)
        if err.errno in DISK_FULL:
            raise disk_full(path, human_bytes(size) if size is not None
                            else f"more than the {human_bytes(written)} written when the disk filled") from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomically(path: str | Path, data: bytes | memoryview) -> Path:
    """:func:`write_atomically` of bytes known beforehand (their size is checked first)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return write_atomically(path, write, size=len(data))



def write_text_atomically(path: str | Path, text: str) -> Path:
    """:func:`write_bytes_atomically` of UTF-8 text (a table, a JSON document)."""
    return write_bytes_atomically(path, text.encode("utf-8"))

class UnreadableFileError(UserError):
    """A file that is not data sr_lightning reads; the message says why, in a few words."""


def read_data(path: str | Path) -> Any:
    """The content of a tensor file as data, on the CPU: ``.safetensors`` by safetensors, anything
    else by ``torch.load(weights_only=True)`` (tensors and plain containers; nothing unpickled).

    Raises:
        UnreadableFileError: the reason only (:func:`why_unreadable`); callers name the file.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as err:
            raise UnreadableFileError(f"not a readable .safetensors file: {err}") from None
    try:
        with warnings.catch_warnings():  # torch's note on pickle protocols says nothing to the user
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a file it will not read as data
        raise UnreadableFileError(why_unreadable(path, err)) from None


def load_tensors(path: str | Path, key: str, expected: str) -> Any:
    """:func:`read_data` of a file an option names, with the messages users see.

    Args:
        path: the file.
        key: the config option it came from, named in errors (``ckpt_path``).
        expected: what the file should be, for the messages ("a .ckpt written by ...").

    Raises:
        FileNotFoundError: no such file.
        UserError: empty, or not readable as tensors (not a checkpoint, or it needs pickled code).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{key}='{path}' does not exist; give {expected}")
    if path.stat().st_size == 0:
        raise UserError(f"{key}='{path}' is empty (0 bytes: an interrupted copy or save?); give {expected}")
    try:
        return read_data(path)
    except UnreadableFileError as err:
        raise UserError(f"{key}='{path}' is not a readable checkpoint ({err}); give {expected}") from None


PICKLED = "it holds Python objects"


def why_unreadable(path: Path, err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused ``path``, in a few words."""
    with open(path, "rb") as f:
        head = f.read(2)
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":
        return "not a PyTorch file: neither a torch.save zip archive nor a pickle"
    text = str(err)
    if "Weights only load failed" in text:
        unsupported = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        what = f" ({unsupported.group(1)})" if unsupported else ""
        return (f"{PICKLED}{what} besides tensors and plain containers, which sr_lightning never "
                f"unpickles (they can run code); a damaged file reads so too")
    return f"{type(err).__name__}: {text.splitlines()[0][:200] if text else 'no message'}"
