"""Resuming a training run where it stopped, with its own config, in its own folder.

``python -m sr_lightning.train ckpt_path=RUN/checkpoints/last.ckpt`` (or ``resume=RUN``, or
``resume=auto``: the newest unfinished run of the same experiment) becomes, before Hydra
composes anything, the run's original command: the overrides it was started with (its
``.hydra/overrides.yaml``), then this command's (which win, and are reported),
``ckpt_path`` set to the checkpoint and ``hydra.run.dir`` to the run folder, so curves,
checkpoints and logs continue in one place. A checkpoint away from its run folder resumes
with its network from the file; the options it records are listed, not run (a file is
data: docs/security.md). A weights-only checkpoint (``sr_lightning.convert``) is not a
run: ``ckpt_path=`` then starts a new run from its weights, as before.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import OverrideParseException
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


def parsed(overrides: list[str]) -> list[Override]:
    """The overrides as Hydra's own parser reads them (keys, ``+``/``~``, quoted values).

    Raises:
        UserError: one Hydra cannot parse (its message).
    """
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException as err:
        raise UserError(str(err).splitlines()[0]) from None


def key_of(override: str) -> str:
    """``+data.x=1`` -> ``data.x``; ``~callbacks.ema`` -> ``callbacks.ema``."""
    return parsed([override])[0].key_or_group


def value_of(overrides: list[str], key: str) -> str | None:
    """The value of the last override of ``key`` (as a string; Hydra's ``null``: None), or None."""
    found = None
    for o in parsed(overrides):
        if o.key_or_group == key and not o.is_delete():
            value = o.value()
            found = None if value is None else str(value)
    return found


def merge(old: list[str], new: list[str]) -> tuple[list[str], list[str]]:
    """The original overrides with the new ones applied (same key: the new one, in the old
    one's place; ``+`` kept where the old one needed it); and the changes, as text."""
    merged = [o for o in parsed(old) if o.key_or_group not in NOT_REPLAYED]
    changes = []
    for o in parsed(new):
        at = next((i for i, m in enumerate(merged) if m.key_or_group == o.key_or_group), None)
        if at is None:
            merged.append(o)
            changes.append(f"{o.input_line} (new)")
            continue
        line = o.input_line
        if merged[at].input_line != line:
            if merged[at].is_add() and not (o.is_add() or o.is_delete() or o.is_force_add()):
                line = "+" + line
            changes.append(f"{line} (was {merged[at].input_line})")
        merged[at] = parsed([line])[0]
    return [o.input_line for o in merged], changes


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
    if run_dir is None:  # away from its run folder: train takes the network from the file and lists its options
        return Plan(overrides)
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
