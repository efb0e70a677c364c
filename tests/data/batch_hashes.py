"""A callback for tests: what every process trained on, step by step."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightning as L


def patch_hashes(batch: dict) -> list[str]:
    """One sha1 per training patch of a batch: its LR and HR pixels and scale."""
    return [hashlib.sha1(lr.numpy().tobytes() + hr.numpy().tobytes() + bytes([batch["scale"]])).hexdigest()
            for lr, hr in zip(batch["lr"], batch["hr"], strict=True)]


class BatchHashes(L.Callback):
    """Writes ``<folder>/rank<r>-<n>.json`` at the end of fitting (n counts fits in the folder):
    ``{"steps": [[patch sha1, ...] per training step]}`` for the patches this process trained."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.steps: list[list[str]] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: dict,
                             batch_idx: int) -> None:
        self.steps.append(patch_hashes({**batch, "lr": batch["lr"].float().cpu(), "hr": batch["hr"].float().cpu()}))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        n = len(list(self.folder.glob(f"rank{trainer.global_rank}-*.json")))
        (self.folder / f"rank{trainer.global_rank}-{n}.json").write_text(json.dumps({"steps": self.steps}))


def read_hashes(folder: Path, rank: int, fit: int = 0) -> list[list[str]]:
    """The steps :class:`BatchHashes` recorded for ``rank`` in its ``fit``-th fit."""
    return json.loads((folder / f"rank{rank}-{fit}.json").read_text())["steps"]
