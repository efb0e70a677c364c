"""Reading an offline W&B run back from its files (the .wandb record log and media/)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

_BLOCK, _HEADER = 32768, 7  # the .wandb file: a LevelDB-style log of protobuf records


def records(path: Path) -> list[pb.Record]:
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    out, chunks, pos = [], [], _HEADER
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos: pos + _HEADER])
        if kind == 0 and length == 0:  # padding to the end of a block
            pos += left
            continue
        chunks.append(data[pos + _HEADER: pos + _HEADER + length])
        pos += _HEADER + length
        if kind in (1, 4):  # FULL or LAST
            rec = pb.Record()
            rec.ParseFromString(b"".join(chunks))
            out.append(rec)
            chunks = []
    return out


def read_run(run_dir: Path) -> dict:
    """``{"name", "group", "config": {key: value}, "history": [{key: value}], "artifacts": [{type, metadata}],
    "files": [relative paths]}``."""
    run_dir = Path(run_dir)
    (log,) = run_dir.glob("*.wandb")
    out: dict = {"config": {}, "history": [], "name": None, "group": None, "artifacts": []}
    for rec in records(log):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["name"], out["group"] = rec.run.display_name, rec.run.run_group
            out["config"].update({u.key: json.loads(u.value_json) for u in rec.run.config.update})
        elif kind == "config":
            out["config"].update({u.key: json.loads(u.value_json) for u in rec.config.update})
        elif kind == "artifact":
            out["artifacts"].append({"type": rec.artifact.type, "metadata": json.loads(rec.artifact.metadata or "{}")})
        elif kind == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
    out["files"] = sorted(str(p.relative_to(run_dir / "files")) for p in (run_dir / "files").rglob("*") if p.is_file())
    return out
