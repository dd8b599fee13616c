"""Committees: training.ensemble = M trains M models into one run folder.

    output/ensemble.json     members, their seeds, which have finished
    output/member_0/ ...     a complete run folder each (best.ckpt, last.ckpt, metrics.csv, ...)

Member k is the configured run with training.seed = seed + k (initial weights and batch order;
with training.bootstrap also its resample of the training set) and output/member_k (and, when
training.init_from is a committee run folder, starts from that run's member k); the data
split is the same for all (data.seed). Members train one after the other, each with the whole
budget (max_time, max_epochs), in the same process group, so data-parallel runs work as for one
model. `--resume` skips finished members and continues the one that was running; `--force`
starts all over. `mlpot export RUN` writes one model file per member (docs/active_learning.md).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from mlpot.train import distributed as dist
from mlpot.train.checkpoint import atomic_write_json
from mlpot.train.config import TrainConfig, save_config

COMMITTEE_FILE = "ensemble.json"     # the record's file name in run folders written so far


def member_folder(output: str | Path, k: int) -> Path:
    return Path(output) / f"member_{k}"


def member_config(cfg: TrainConfig, k: int) -> TrainConfig:
    """The TrainConfig of committee member k (a single-model run)."""
    member = copy.deepcopy(cfg)
    member.training.ensemble = 1
    member.training.seed = cfg.training.seed + k
    member.output = str(member_folder(cfg.output, k))
    start = cfg.training.init_from
    if start and read_committee(start) is not None:      # warm start from a committee: member by member
        starts = member_checkpoints(start)
        member.training.init_from = str(starts[k % len(starts)])
    return member


def read_committee(output: str | Path) -> dict | None:
    """The committee record (ensemble.json, the name files have always had) of a run folder, or None for a single-model run."""
    path = Path(output) / COMMITTEE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def member_checkpoints(output: str | Path, name: str = "best.ckpt") -> list[Path]:
    """The members' checkpoints of a committee run folder (all must exist)."""
    record = read_committee(output)
    if record is None:
        raise FileNotFoundError(f"{output} is not a committee run (no {COMMITTEE_FILE})")
    paths = [Path(output) / member / name for member in record["members"]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"committee members without {name}: {', '.join(missing)}; finish the run with "
                                "`mlpot train CONFIG --resume`")
    return paths


def _write_record(output: Path, record: dict) -> None:
    atomic_write_json(output / COMMITTEE_FILE, record)


def train_members(cfg: TrainConfig, ctx, resume: bool = False, force: bool = False, quiet: bool = False,
                  log=None) -> dict:
    """Train the committee (see the module docstring); returns {"output", "members": [summaries]}."""
    from mlpot.train.trainer import RunExistsError, remove_run_outputs, train_one  # lazy: trainer imports this module

    out = Path(cfg.output)
    n = cfg.training.ensemble
    record = None
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        record = read_committee(out) if resume else None
        if record is None:
            if not force and not resume and any(member_folder(out, k).exists() for k in range(n)):
                record = ("error", RunExistsError(
                    f"{out} already holds committee members from an earlier run; pass --resume to continue it "
                    "or --force to start over (overwrites them)"))
            else:
                record = {"members": [member_folder(out, k).name for k in range(n)],
                          "seeds": [cfg.training.seed + k for k in range(n)],
                          "bootstrap": cfg.training.bootstrap, "finished": []}
        elif len(record["members"]) != n:
            record = ("error", RunExistsError(
                f"{out} holds a committee of {len(record['members'])}, training.ensemble is {n}; keep it, "
                "or --force to start over"))
    record = dist.broadcast_object(record, ctx)
    if isinstance(record, tuple):
        raise record[1]
    written = []

    def started():   # a member's config, data and model are good: only now replace the run
        if ctx.is_main and not written:
            _write_record(out, record)
            save_config(cfg, out / "config.yaml")
            if force and not resume:   # a later --resume must not continue a member of the old run
                for k in range(n):
                    remove_run_outputs(member_folder(out, k))
        written.append(True)

    summaries = []
    say = log or print
    for k in range(n):
        if k in record["finished"]:
            if ctx.is_main and not quiet:
                say(f"committee member {k + 1} of {n}: finished earlier ({record['members'][k]})")
            continue
        if ctx.is_main and not quiet:
            say(f"committee member {k + 1} of {n} (seed {record['seeds'][k]})")
        summaries.append(train_one(member_config(cfg, k), ctx, resume=resume, force=force, quiet=quiet, log=log,
                                   started=started))
        record["finished"].append(k)
        if ctx.is_main:
            _write_record(out, record)
    return {"output": str(out), "members": summaries, "n_members": n}
