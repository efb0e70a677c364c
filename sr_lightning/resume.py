"""Resuming a training run where it stopped, with its own config, in its own folder.

``python -m sr_lightning.train ckpt_path=RUN/checkpoints/last.ckpt`` (or ``resume=RUN``, or
``resume=auto``: the newest unfinished run of the same experiment) becomes, before Hydra
composes anything, the run's original command: the overrides it was started with (its
``.hydra/overrides.yaml``), then this command's (which win, and are reported),
``ckpt_path`` set to the checkpoint and ``hydra.run.dir`` to the run folder, so curves,
checkpoints and logs continue in one place. A checkpoint away from its run folder resumes
with its network from the file; the options it records are listed, not run (a file is
data: README "Security"). A weights-only checkpoint (``sr_lightning.convert``) is not a
run: ``ckpt_path=`` then starts a new run from its weights, as before.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from sr_lightning.cli import quoted
from sr_lightning.config import compose_config
from sr_lightning.errors import UserError

# What a run folder holds that resuming reads.
LAST = Path("checkpoints") / "last.ckpt"
OVERRIDES = Path(".hydra") / "overrides.yaml"
# A run that ended (trained and tested) leaves this; resume=auto passes it over.
FINISHED = "job_summary.json"
# Overrides of the original command that a resumed command never repeats.
NOT_REPLAYED = ("ckpt_path", "resume", "init_from", "hydra.run.dir")


@dataclass
class Plan:
    """What resuming will do: the overrides Hydra gets and what to tell the user."""

    overrides: list[str]
    run_dir: Path | None = None
    checkpoint: Path | None = None
    replayed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        """Lines for the user: where the run continues, with which overrides."""
        if self.checkpoint is None:
            return []
        where = f"resuming {self.run_dir}"
        replayed = " ".join(self.replayed) or "(none)"
        lines = [f"{where} from {self.checkpoint.name}, with the run's overrides: {replayed}"]
        if self.changed:
            lines.append(f"this command changes: {', '.join(self.changed)}")
        return lines


def key_of(override: str) -> str:
    """``+data.x=1`` -> ``data.x``; ``~callbacks.ema`` -> ``callbacks.ema``."""
    return override.split("=", 1)[0].lstrip("+~")


def value_of(overrides: list[str], key: str) -> str | None:
    """The value of the last override of ``key`` (quotes removed), or None."""
    found = None
    for o in overrides:
        if "=" in o and key_of(o) == key:
            found = o.split("=", 1)[1].strip("'\"")
    return found


def merge(old: list[str], new: list[str]) -> tuple[list[str], list[str]]:
    """The original overrides with the new ones applied (same key: the new one, in the old
    one's place; ``+`` kept where the old one needed it); and the changes, as text."""
    merged = [o for o in old if key_of(o) not in NOT_REPLAYED]
    changes = []
    for o in new:
        k = key_of(o)
        at = next((i for i, m in enumerate(merged) if key_of(m) == k), None)
        if at is None:
            merged.append(o)
            changes.append(f"{o} (new)")
            continue
        if merged[at] != o:
            if merged[at].startswith("+") and not o.startswith(("+", "~")):
                o = "+" + o
            changes.append(f"{o} (was {merged[at]})")
        merged[at] = o
    return merged, changes


def run_folder_of(checkpoint: Path) -> Path | None:
    """The run folder a checkpoint was written in (``RUN/checkpoints/x.ckpt`` with ``RUN/.hydra``)."""
    run = checkpoint.resolve().parent.parent
    return run if checkpoint.resolve().parent.name == "checkpoints" and (run / OVERRIDES).is_file() else None


def recorded_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides the run was started with (its ``.hydra/overrides.yaml``)."""
    listed = OmegaConf.to_container(OmegaConf.load(run_dir / OVERRIDES))
    if not (isinstance(listed, list) and all(isinstance(o, str) for o in listed)):
        raise UserError(f"'{run_dir / OVERRIDES}' is not a list of overrides; resume with ckpt_path=... and "
                        f"the run's options")
    return listed


def file_only(checkpoint: Path, overrides: list[str]) -> Plan:
    """A checkpoint away from its run folder: train takes its network from the file (checked
    data); the options it records are shown, never run (a file's options could name code:
    ``_target_``, a ``pipe:`` data location), so the user repeats those they want."""
    from sr_lightning.checkpoint import is_resumable, read_checkpoint

    ckpt = read_checkpoint(checkpoint, "ckpt_path")
    if is_resumable(ckpt):
        recorded = " ".join(o for o in ckpt.get("sr_lightning", {}).get("overrides", [])
                            if key_of(o) not in NOT_REPLAYED) or "(none)"
        print(f"ckpt_path='{checkpoint}' is not in its run folder: its network comes from the file; it was trained "
              f"with {recorded} (repeat the options you want: options from a file are never run)", file=sys.stderr)
    return Plan(overrides)


def newest_run(runs_dir: Path, experiment: str | None) -> Path:
    """``resume=auto``: the newest run folder under ``runs_dir`` with a ``last.ckpt``, started
    with the same ``experiment`` choice, that did not finish."""
    candidates = []
    for run in runs_dir.glob("*/"):
        if not (run / LAST).is_file() or not (run / OVERRIDES).is_file() or (run / FINISHED).exists():
            continue
        listed = OmegaConf.to_container(OmegaConf.load(run / OVERRIDES))
        if isinstance(listed, list) and value_of([str(o) for o in listed], "experiment") == experiment:
            candidates.append(run)
    if not candidates:
        what = f"experiment={experiment}" if experiment else "the default experiment (no experiment=)"
        raise UserError(f"resume=auto: no unfinished run of {what} under '{runs_dir}' (a run folder with "
                        f"{LAST} and no {FINISHED}); give resume=<run folder>, or start a new run without resume")
    return max(candidates, key=lambda run: (run / LAST).stat().st_mtime)


def runs_folder(overrides: list[str]) -> Path:
    """Where this command's runs go: the parent of the ``hydra.run.dir`` it composes to."""
    return Path(str(OmegaConf.select(compose_config("train", overrides), "hydra.run.dir"))).parent


def plan(overrides: list[str]) -> Plan:
    """The overrides to run for a command line's ``overrides`` (see the module docstring).

    Raises:
        UserError: ``resume`` and ``ckpt_path`` both given, ``resume`` not a run folder with
            a last checkpoint, or ``resume=auto`` finding none.
    """
    resume, ckpt = value_of(overrides, "resume"), value_of(overrides, "ckpt_path")
    rest = [o for o in overrides if key_of(o) not in ("resume", "ckpt_path")]
    if resume in (None, "null") and ckpt in (None, "null"):
        return Plan(overrides)
    if resume not in (None, "null") and ckpt not in (None, "null"):
        raise UserError("resume and ckpt_path are both given; keep one (resume=RUN_FOLDER continues the run there, "
                        "as ckpt_path=RUN_FOLDER/checkpoints/last.ckpt does)")
    if resume not in (None, "null"):
        run_dir = newest_run(runs_folder(rest), value_of(rest, "experiment")) if resume == "auto" \
            else Path(resume).expanduser()
        if not (run_dir / LAST).is_file():
            raise UserError(f"resume='{run_dir}' has no {LAST}: give a run folder of sr_lightning.train (e.g. "
                            f"logs/train/runs/<date>) or resume=auto")
        checkpoint = run_dir / LAST
        run_dir = run_folder_of(checkpoint)
    else:
        checkpoint = Path(str(ckpt)).expanduser()
        if not checkpoint.is_file():  # train names the missing file, with the rest of its checks
            return Plan(overrides)
        run_dir = run_folder_of(checkpoint)
    if run_dir is None:
        return file_only(checkpoint, overrides)
    old = recorded_overrides(run_dir)
    merged, changes = merge(old, rest)
    merged += [f"ckpt_path={quoted(checkpoint.resolve())}", f"hydra.run.dir={quoted(run_dir)}"]
    replayed = [o for o in old if key_of(o) not in NOT_REPLAYED]
    return Plan(merged, run_dir, checkpoint.resolve(), replayed, changes)


# Hydra's command-line flags that take a value as the next argument.
VALUE_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--cfg", "-c", "--package", "-p")


def resume_argv(argv: list[str]) -> list[str]:
    """``sys.argv`` of ``sr_lightning.train`` with a resume expanded (see :func:`plan`); the
    plan is printed to stderr. Multirun (``-m``) commands are left as they are."""
    if any(a in ("-m", "--multirun") for a in argv[1:]):
        if any(a.split("=", 1)[0].lstrip("+~") == "resume" for a in argv[1:]):
            print("error: resume= continues one run; a multirun's jobs resume one by one (resume=<job folder>), "
                  "and an Optuna study resumes by running its command again", file=sys.stderr)
            sys.exit(2)
        return argv
    flags, overrides, args = [], [], iter(argv[1:])
    for a in args:
        if a.startswith("-"):
            flags.append(a)
            if a in VALUE_FLAGS:
                flags.append(next(args, ""))
        else:
            overrides.append(a)
    try:
        p = plan(overrides)
    except (UserError, FileNotFoundError) as err:  # before Hydra: the entry points' one-line form
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    for line in p.describe():
        print(line, file=sys.stderr)
    return [argv[0], *flags, *p.overrides]
