"""The active-learning loop of `mlpot learn` (docs/active_learning.md).

    seed  : label the seed structures (those without labels) into output/data.db
    then, for iteration k = 0, 1, ...:
    train : a committee (training.ensemble members) on data.db into output/iter_k, warm-started
            from iter_{k-1}; exported to iter_k/model_M.pt; errors on learn.test
    explore: committee MD at each temperature (and learn.normal_modes samples per temperature
            around the committee's minimum); frames whose deviation lies in [trust_lo,
            trust_hi] are candidates; up to max_new of them -> iter_k/selected.extxyz
    label : the reference labels them into data.db (a frame it fails on is logged and skipped)

It stops when the fraction of explored frames above trust_lo falls below converged_fraction,
after max_iterations trainings, or when max_time is spent. learn.json (written atomically after
every phase) records where the loop is, one row per iteration, and reference_calls: the
reference calculations the loop has made (failures included; those of a phase cut short by
kill -9 are not counted). After kill -9, `--resume`
continues the phase that was running: training resumes from its checkpoints, and labelling skips
frames already in the store (each row carries its frame's learn_id), so no labelled frame is
lost or stored twice.
"""
from __future__ import annotations

import copy
import importlib
import json
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import ase.io
import torch

from mlpot.data.store import append_store, store_key_values, store_size
from mlpot.deploy.calculator import MLPotCalculator
from mlpot.deploy.export import export_model
from mlpot.learn.config import LearnConfig, read_any
from mlpot.learn.errors import committee_errors
from mlpot.learn.explore import committee_md, committee_normal_modes, deviation_statistics, select_candidates
from mlpot.learn.explore_lammps import lammps_committee_md
from mlpot.learn.report import plot_history
from mlpot.sim.labelling import calculator_name, count_calls, default_calculator, labelled_copy
from mlpot.train.checkpoint import atomic_write_json, load_potential
from mlpot.train.committee import member_checkpoints
from mlpot.train.data import read_structures
from mlpot.train.trainer import train

STATE_FILE = "learn.json"
ID_KEY = "learn_id"


class LearnError(RuntimeError):
    """The loop cannot start or continue; the message says why and what to do."""


def first_line(exc: Exception) -> str:
    """The first line of an error's message (a build error goes on with its log's tail)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def reference_calculator(spec: str):
    """The reference: "module:function" (called without arguments) or a tblite method name."""
    if ":" in spec:
        module, _, name = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise LearnError(f"learn.reference {spec!r}: cannot import {name} from {module} ({exc})") from None
        return factory()
    return default_calculator(spec)


def iteration_folder(output, k: int) -> Path:
    return Path(output) / f"iter_{k}"


def _write_frames(path: Path, frames) -> None:
    tmp = path.with_name(path.name + ".tmp")
    ase.io.write(str(tmp), frames, format="extxyz")
    tmp.replace(path)


class ActiveLearning:
    """The loop for one LearnConfig. calculator: the reference (an ASE calculator); default
    from learn.reference."""

    def __init__(self, cfg: LearnConfig, calculator=None, resume: bool = False, force: bool = False,
                 quiet: bool = False, log=print):
        self.cfg, self.s = cfg, cfg.learn
        self.out = Path(cfg.output)
        self.quiet = quiet
        self._log = log
        self.state = self._start_state(resume, force)
        self.calculator = count_calls(calculator if calculator is not None else reference_calculator(self.s.reference))
        self._calls_booked = self.calculator.reference_calls
        self._clock = time.monotonic()

    def log(self, message: str) -> None:
        if not self.quiet:
            self._log(message)

    # ------------------------------------------------------------------ state
    def _start_state(self, resume: bool, force: bool) -> dict:
        path = self.out / STATE_FILE
        if path.is_file() and resume:
            return json.loads(path.read_text())
        if path.is_file() and not force:
            raise LearnError(f"{self.out} holds an active-learning run ({STATE_FILE}); pass --resume to continue "
                             "it or --force to start over (deletes its store and iterations)")
        if force:
            for old in [self.out / STATE_FILE, self.cfg.store, *self.out.glob("iter_*")]:
                shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)
        self.out.mkdir(parents=True, exist_ok=True)
        return {"iteration": 0, "phase": "seed", "history": [], "elapsed_s": 0.0, "stop_reason": None}

    def _save(self) -> None:
        now = time.monotonic()
        self.state["elapsed_s"] += now - self._clock
        self._clock = now
        calls = self.calculator.reference_calls
        if calls is not None:     # this loop's reference calculations (labels, failures included)
            self.state["reference_calls"] = self.state.get("reference_calls", 0) + calls - self._calls_booked
            self._calls_booked = calls
        atomic_write_json(self.out / STATE_FILE, self.state)

    def _row(self, k: int) -> dict:
        while len(self.state["history"]) <= k:
            self.state["history"].append({"iteration": len(self.state["history"])})
        return self.state["history"][k]

    def _over_budget(self) -> bool:
        used = self.state["elapsed_s"] + time.monotonic() - self._clock
        return self.s.max_time is not None and used >= self.s.max_time

    # ------------------------------------------------------------------ phases
    def run(self) -> dict:
        self._reopen()
        while self.state["stop_reason"] is None:
            phase, k = self.state["phase"], self.state["iteration"]
            {"seed": self._seed, "train": self._train, "explore": self._explore,
             "label": self._label_selected}[phase](k)
            self._save()
        self._finish()
        return self.state

    def _reopen(self) -> None:
        """A finished run resumed with a limit that no longer holds (more max_iterations, more
        max_time, a lower converged_fraction) goes on from where it stopped: the exploration that
        ended it is run again (the same seeds: the same frames) and its candidates labelled. So does
        one that "converged" on no explored frames (an earlier version's mistake)."""
        reason = self.state["stop_reason"]
        if reason is None:
            return
        k = self.state["iteration"]
        row = self.state["history"][k] if k < len(self.state["history"]) else {}
        converged = row.get("n_explored", 0) > 0 and row.get("fraction_above_lo", 0.0) < self.s.converged_fraction
        go_on = {"max_iterations": k + 1 < self.s.max_iterations,
                 "max_time": self.s.max_time is None or self.state["elapsed_s"] < self.s.max_time,
                 }.get(reason, reason.startswith("converged") and not converged)
        if go_on:
            self.log(f"continuing a run that had stopped ({reason}) at iteration {k}: the limits now allow more")
            self.state["stop_reason"] = None
        else:
            self.log(f"{self.out} finished ({reason}); raise learn.max_iterations, learn.max_time or lower "
                     "learn.converged_fraction with --resume to go on")

    def _seed(self, k: int) -> None:
        seed = read_any(self.s.seed_data)
        if not seed:
            raise LearnError(f"learn.seed_data {self.s.seed_data} holds no structures")
        unlabelled = [a for a in seed if a.calc is None or "forces" not in a.calc.results]
        n_labelled, n_failed = self._label_frames(seed, [f"seed-{i}" for i in range(len(seed))], self.out / "seed_failed.json",
                                           relabel=set(map(id, unlabelled)))
        self.log(f"seed: {len(seed)} structures from {self.s.seed_data} ({n_labelled} labelled now, "
                 f"{n_failed} failed) -> {self.cfg.store}")
        self.state["phase"] = "train"

    def _train(self, k: int) -> None:
        cfg = copy.deepcopy(self.cfg.train)
        cfg.output = str(iteration_folder(self.out, k))
        if k > 0:
            cfg.training.init_from = str(iteration_folder(self.out, k - 1))
        row = self._row(k)
        row["n_reference"] = self._store_size()
        row["reference_calls"] = self.state.get("reference_calls")
        self.log(f"iteration {k}: training a committee of {cfg.training.ensemble} on {row['n_reference']} structures")
        started = time.monotonic()
        train(cfg, resume=True, quiet=True, log=self.log)
        row["train_time_s"] = time.monotonic() - started
        models = self._export(Path(cfg.output))
        row["models"] = [str(m) for m in models]
        if self.s.test:
            row.update(self._test_errors(models))
            self.log(f"iteration {k}: test forces MAE {row['test_forces_mae_meV_per_A']:.1f} meV/Å (committee mean), "
                     f"energy MAE {row['test_energy_mae_meV']:.1f} meV; uncertainty vs error rank correlation "
                     f"{row['test_rank_correlation']:.2f}")
        self.state["phase"] = "explore"

    def _explore(self, k: int) -> None:
        if self.s.threads:
            torch.set_num_threads(self.s.threads)
        row = self._row(k)
        calc = MLPotCalculator(row["models"]) if self.s.engine == "ase" else None
        starts = self.s.start_structures()
        frames, aborted = [], 0
        for j, temperature in enumerate(self.s.temperatures):
            n = (k + j) % len(starts)
            options = dict(temperature=temperature, n_steps=self.s.md_steps, sample_every=self.s.sample_every,
                           timestep=self.s.timestep, friction=self.s.friction, abort=self.s.abort,
                           seed=self.s.seed * 100_003 + k * 1009 + j)
            with self._exploring(n, starts[n]):
                if self.s.engine == "lammps":
                    run, stopped = lammps_committee_md(starts[n], row["models"], **options,
                                                       folder=iteration_folder(self.out, k) / f"lammps_{j}")
                else:
                    run, stopped = committee_md(starts[n], calc, **options)
            for frame in run:
                frame.info[ID_KEY] = f"{k}-{j}-{frame.info['step']}"
            frames += run
            aborted += stopped
        row.update(n_aborted_runs=aborted)
        if self.s.normal_modes:
            n = k % len(starts)
            with self._exploring(n, starts[n]):
                frames += self._explore_normal_modes(k, calc or MLPotCalculator(row["models"]), starts[n])
        if not frames:
            raise LearnError(f"iteration {k}: the exploration gave no frames ({self.s.engine} engine, "
                             f"md_steps {self.s.md_steps}, sample_every {self.s.sample_every}), so convergence "
                             f"cannot be judged; see {iteration_folder(self.out, k)}")
        stats = deviation_statistics(frames, self.s.trust_lo, self.s.trust_hi)
        row.update(stats)
        self.log(f"iteration {k}: explored {stats['n_explored']} frames at {self.s.temperatures} K: "
                 f"{stats['n_accurate']} below trust_lo, {stats['n_candidates']} candidates, "
                 f"{stats['n_failed']} above trust_hi ({aborted} runs stopped at abort)")
        if stats["fraction_above_lo"] < self.s.converged_fraction:
            self.state["stop_reason"] = (f"converged: {stats['fraction_above_lo']:.3f} of the explored frames above "
                                         f"trust_lo < {self.s.converged_fraction}")
            return
        if k + 1 >= self.s.max_iterations or self._over_budget():
            self.state["stop_reason"] = "max_iterations" if k + 1 >= self.s.max_iterations else "max_time"
            return
        selected = select_candidates(frames, self.s.trust_lo, self.s.trust_hi, self.s.max_new,
                                     seed=self.s.seed + k)
        _write_frames(iteration_folder(self.out, k) / "selected.extxyz", selected)
        row["n_selected"] = len(selected)
        self.state["phase"] = "label"

    def _explore_normal_modes(self, k: int, calc, start) -> list:
        """learn.normal_modes samples per temperature around the committee's minimum (no reference call)."""
        frames, info = committee_normal_modes(start, calc, self.s.temperatures, self.s.normal_modes,
                                              seed=self.s.seed * 100_003 + k * 1009 + 500,
                                              max_deviation=self.s.trust_hi)
        for n, frame in enumerate(frames):
            frame.info[ID_KEY] = f"{k}-nm-{n}"
        stats = deviation_statistics(frames, self.s.trust_lo, self.s.trust_hi)
        self._row(k).update(normal_modes={**info, **stats})
        where = ("the committee's minimum" if info["centre"] == "committee minimum" else
                 "the starting structure (the committee's own minimum was not reached or not trusted)")
        self.log(f"iteration {k}: {len(frames)} normal-mode samples around {where} "
                 f"(BFGS {info['optimisation_steps']} steps, lowest mode {info['lowest_frequency_cm1']:.0f} cm⁻¹): "
                 f"{stats['n_candidates']} candidates, {stats['n_failed']} above trust_hi")
        return frames

    def _label_selected(self, k: int) -> None:
        selected = ase.io.read(str(iteration_folder(self.out, k) / "selected.extxyz"), index=":")
        ids = [a.info[ID_KEY] for a in selected]
        n_labelled, n_failed = self._label_frames(selected, ids, iteration_folder(self.out, k) / "failed.json")
        row = self._row(k)
        row.update(n_labelled=row.get("n_labelled", 0) + n_labelled, n_label_failed=n_failed)
        self.log(f"iteration {k}: labelled {n_labelled} frames ({n_failed} failed) -> {self._store_size()} structures")
        self.state["iteration"], self.state["phase"] = k + 1, "train"
        if self._over_budget():
            self.state["stop_reason"] = "max_time"

    # ------------------------------------------------------------------ helpers
    @contextmanager
    def _exploring(self, n: int, start):
        """A ValueError while exploring from starting structure n is an input error (an element the
        committee was not trained on, a degenerate cell): a LearnError naming the structure."""
        try:
            yield
        except ValueError as exc:
            raise LearnError(f"starting structure {n} of {self.s.start or self.s.seed_data} "
                             f"({start.get_chemical_formula()}) cannot be explored: {first_line(exc)}; fix "
                             "learn.start (default: the first seed structures) and continue with --resume") from None

    def _store_size(self) -> int:
        return store_size(self.cfg.store) if self.cfg.store.is_file() else 0

    def _label_frames(self, frames, ids, failed_file: Path, relabel=None) -> tuple[int, int]:
        """Label frames (those in `relabel` by id(frame), or all when None) with the reference and
        append each to the store at once; frames whose id is in the store already are skipped.
        Failures are logged and written to failed_file. Returns (labelled, failed)."""
        done = set(store_key_values(self.cfg.store, ID_KEY))
        failed = json.loads(failed_file.read_text()) if failed_file.is_file() else {}
        n_labelled = 0
        meta = {"source": calculator_name(self.calculator), "source_format": "mlpot.learn",
                "reference": {"calculator": calculator_name(self.calculator)}}
        for frame, frame_id in zip(frames, ids):
            if frame_id in done or frame_id in failed:
                continue
            labelled = frame
            if relabel is None or id(frame) in relabel:
                work = frame.copy()
                work.info = {}
                work.calc = self.calculator
                try:
                    labelled = labelled_copy(work)
                except Exception as exc:          # noqa: BLE001 - any failure of the reference code
                    failed[frame_id] = f"{type(exc).__name__}: {exc}"
                    atomic_write_json(failed_file, failed)
                    self.log(f"  reference failed on frame {frame_id}, skipped: {failed[frame_id]}")
                    continue
                n_labelled += 1
            append_store(self.cfg.store, [labelled], [{ID_KEY: frame_id}], metadata=meta)
        return n_labelled, len(failed)

    def _export(self, run: Path) -> list:
        models = []
        for m, checkpoint in enumerate(member_checkpoints(run)):
            path = run / f"model_{m}.pt"
            if not path.is_file() or path.stat().st_mtime < checkpoint.stat().st_mtime:
                export_model(load_potential(checkpoint), path, "float64",
                             training_data=f"mlpot learn: {self.cfg.store}")
            models.append(path)
        return models

    def _test_errors(self, models) -> dict:
        return committee_errors(models, read_structures(self.s.test))

    def _finish(self) -> None:
        history = self.state["history"]
        trained = [r for r in history if "models" in r]
        if trained:
            atomic_write_json(self.out / "committee.json", {"models": trained[-1]["models"]})
            plot_history(history, self.out / "learning.png")
        self.log(f"stopped ({self.state['stop_reason']}) after {len(trained)} iteration(s), "
                 f"{self._store_size()} reference structures; committee in {self.out / 'committee.json'}, "
                 f"curves in {self.out / 'learning.png'}")

