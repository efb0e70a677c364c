"""write_atomically: a file appears whole or not at all."""

from __future__ import annotations

import stat

import pytest

from sr_lightning.files import write_atomically


def test_a_failed_write_leaves_the_old_file_and_no_part(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def fail(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, fail)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_a_write_replaces_the_file_with_the_usual_permissions(tmp_path):
    target = write_atomically(tmp_path / "out.bin", lambda tmp: open(tmp, "wb").write(b"new"))  # noqa: SIM115
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"")  # what an ordinary write gets under this umask (not mkstemp's 0600)
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
