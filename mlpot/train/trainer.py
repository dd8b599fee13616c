"""The training loop: Adam on ρ·(ΔE)² + mean |ΔF|², EMA weights for validation, learning-rate
decay, early stopping, a wall-clock budget, atomic checkpoints and data parallelism.

    from mlpot.train import load_config, train
    summary = train(load_config("ethanol.yaml"), resume=False, force=False, quiet=False)

The run folder (cfg.output) receives best.ckpt (best validation loss), last.ckpt (end of
the latest epoch), metrics.csv, learning_curve.png, config.yaml and split.npz. After an
interruption at any moment, train(cfg, resume=True) continues from last.ckpt with the same
split, weights, EMA, optimizer, scheduler and epoch counter; the epoch that was running is
done again (batch order is seeded by (seed, epoch), so it is the same epoch).
"""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mlpot import keys as K
from mlpot.data.dataset import AtomsDataset
from mlpot.data.splits import load_split, save_split
from mlpot.kernels.registry import KernelError, apply_kernels, choose_for_training
from mlpot.model.config import build_potential
from mlpot.model.nn.pair_repulsion import fit_contact_radii
from mlpot.model.statistics import fit_statistics
from mlpot.train.baseline import collate_relative, take_atomref, with_atomref
from mlpot.train import distributed as dist
from mlpot.train.checkpoint import load_checkpoint, load_potential, save_checkpoint, to_plain
from mlpot.train.committee import train_members
from mlpot.train.config import ATOMS_PER_BATCH, TrainConfig, auto_batch_size, save_config
from mlpot.train.data import load_training_data, read_structures
from mlpot.train.ema import EMA
from mlpot.train.evaluate import evaluate_potential
from mlpot.train.losses import PER_ATOM_ENERGY, add_sums, error_sums, term_counts, weighted_loss
from mlpot.train.schedule import budget_fraction, cosine_lr, ramp_weights, stage_of
from mlpot.train.selection import better_than
from mlpot.train.metrics import plot_learning_curve, summarize, write_metrics_csv

SUM_KEYS = ("loss", "n_structures", "n_force_components", "energy_abs", "energy_sq",
            "energy_per_atom_abs", "energy_per_atom_sq", "forces_abs", "forces_sq",
            "stress_abs", "stress_sq", "n_stress_components", "dipole_abs", "dipole_sq",
            "n_dipole_components", "stop", "budget", "elapsed")
PLOT_EVERY_S = 60.0
# what a run writes as it trains; --force removes an earlier run's once the new one has started
RUN_OUTPUTS = ("last.ckpt", "best.ckpt", "best_stage_one.ckpt", "metrics.csv", "learning_curve.png",
               "test_metrics.json")


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, unusable run folder, mismatched resume)."""


class RunExistsError(TrainingError):
    """The run folder already holds checkpoints and neither resume nor force was asked."""


@dataclasses.dataclass
class Progress:
    """Counters saved in every checkpoint."""
    epoch: int = 0                 # completed epochs
    step: int = 0                  # optimizer steps
    best_val_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0            # epochs since the best validation loss
    elapsed_s: float = 0.0         # training wall time over all sessions
    history: list = dataclasses.field(default_factory=list)
    stop_reason: str = ""
    stage: int = 1                 # loss weights of stage 1 or 2 (training.stage_two_*)
    stage_two_from: float = 1.0    # budget fraction at which stage two began (its ramp starts there)
    stage_two_scale: float = 1.0   # factor on stage two's weights that keeps the loss scale (at the switch)
    delivered: dict = dataclasses.field(default_factory=dict)  # validation errors of best.ckpt
    batch_in_epoch: int = 0        # batches of the running epoch done (mid-epoch checkpoints)
    epoch_sums: dict = dataclasses.field(default_factory=dict)     # its summed errors so far
    epoch_losses: list = dataclasses.field(default_factory=list)   # its batch losses so far


def _reduce(sums: dict, ctx, dtype=torch.float64) -> dict:
    """Sum the SUM_KEYS of `sums` over ranks."""
    vec = torch.tensor([float(sums.get(k, 0.0)) for k in SUM_KEYS], dtype=dtype)
    if ctx.distributed:
        vec = vec.to(ctx.device)
        dist.all_reduce_sum(vec, ctx)
    return dict(zip(SUM_KEYS, vec.cpu().tolist()))


def _make_scheduler(optimizer, tcfg):
    if tcfg.scheduler == "exponential":
        gamma = tcfg.decay_rate ** (1.0 / tcfg.decay_steps)
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    if tcfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=tcfg.plateau_factor, patience=tcfg.plateau_patience,
            min_lr=tcfg.min_lr)
    return None


def check_run_folder(out: Path, resume: bool, force: bool) -> Path | None:
    """last.ckpt to resume from, or None for a new run; refuses to overwrite a run."""
    existing = [p.name for p in (out / "last.ckpt", out / "best.ckpt") if p.exists()]
    if resume:
        return out / "last.ckpt" if (out / "last.ckpt").exists() else None
    if existing and not force:
        raise RunExistsError(f"{out} already holds {' and '.join(existing)} from an earlier run; pass "
                             f"--resume to continue it or --force to start over (overwrites them)")
    return None


def remove_run_outputs(folder: Path) -> None:
    """Delete what a run wrote into `folder` (RUN_OUTPUTS; config.yaml and split.npz are rewritten)."""
    for name in RUN_OUTPUTS:
        (folder / name).unlink(missing_ok=True)


class Trainer:
    def __init__(self, cfg: TrainConfig, ctx: dist.DistContext, resume: bool = False,
                 force: bool = False, quiet: bool = False, log=None):
        self.cfg, self.ctx, self.quiet = cfg, ctx, quiet
        self.out = Path(cfg.output)
        self.tcfg = cfg.training
        self.dtype = getattr(torch, self.tcfg.dtype)
        self._log = log or print
        self.weights = self.loss_weights(1)
        self._clock = 0.0                    # rank 0's training seconds at the last step (weights)
        self.resume = resume
        self._last_save = time.monotonic()   # of last.ckpt (for training.checkpoint_every)
        state = self._load_resume_state(resume, force)
        self._build(state)   # config, data, split and model are good: only now replace a run
        if force and not resume and self.ctx.is_main:
            remove_run_outputs(self.out)

    # ---------------------------------------------------------------- setup
    def loss_weights(self, stage: int) -> dict:
        """Weights of the loss terms in stage 1 or 2 (stage two's energy and forces weights
        default to stage one's)."""
        t = self.tcfg
        energy, forces = t.energy_weight, t.forces_weight
        if stage == 2:
            energy = t.stage_two_energy_weight if t.stage_two_energy_weight is not None else energy
            forces = t.stage_two_forces_weight if t.stage_two_forces_weight is not None else forces
        energy_key = PER_ATOM_ENERGY if t.energy_loss == "per_atom" else K.ENERGY
        return {energy_key: energy, K.FORCES: forces, K.STRESS: t.stress_weight, K.DIPOLE: t.dipole_weight}

    def weights_at(self, fraction: float) -> dict:
        """Loss weights at `fraction` of the budget: stage one's, or along the ramp to stage
        two's once stage two has begun (schedule.ramp_weights)."""
        p = self.progress
        if p.stage == 1:
            return self.loss_weights(1)
        return ramp_weights(self.loss_weights(1), self.loss_weights(2), fraction, p.stage_two_from,
                            self.tcfg.stage_two_ramp, p.stage_two_scale)

    def budget_used(self, elapsed_s: float) -> float:
        """Fraction of the training budget used after elapsed_s seconds of training."""
        return budget_fraction(elapsed_s, self.progress.step, self.tcfg.max_time, self.tcfg.max_epochs,
                               -(-len(self.data.train) // self.tcfg.batch_size))

    def log(self, message: str) -> None:
        if self.ctx.is_main and not self.quiet:
            self._log(message)

    def _load_resume_state(self, resume: bool, force: bool):
        """Rank 0 checks the run folder and reads last.ckpt; every rank gets the result."""
        result = None
        if self.ctx.is_main:
            try:
                path = check_run_folder(self.out, resume, force)
                result = ("ok", load_checkpoint(path) if path is not None else None)
                if resume and path is None:
                    self.log(f"no last.ckpt in {self.out}: starting a new run")
            except Exception as exc:
                result = ("error", exc)
        result = dist.broadcast_object(result, self.ctx)
        if result[0] == "error":
            raise result[1]
        return result[1]

    def _build(self, state: dict | None) -> None:
        cfg, tcfg = self.cfg, self.tcfg
        split = None
        if state is not None:
            changed = changed_model_settings(state, cfg.model)
            if changed:
                raise TrainingError(f"model.{', model.'.join(changed)} differ from {self.out / 'last.ckpt'}; "
                                    f"resume with the same model settings, or --force to start over")
            split = {k: v.numpy() for k, v in state["split"].items()}
        elif self.resume and cfg.data.split is None and (self.out / "split.npz").exists():
            split = load_split(self.out / "split.npz")  # killed before the first checkpoint
        self.data = load_training_data(cfg.data, cfg.model.cutoff, split,
                                       log=self.log)
        if tcfg.bootstrap:
            self.data.train = bootstrap_sample(self.data.train, tcfg.seed)
        self.n_atoms = self.data.train.n_atoms()
        if tcfg.batch_size == "auto":
            self.tcfg = tcfg = dataclasses.replace(tcfg, batch_size=auto_batch_size(self.n_atoms.mean()))
            self.log(f"batch size {tcfg.batch_size} structures (auto: about {ATOMS_PER_BATCH} atoms; "
                     f"{self.n_atoms.mean():.0f} atoms per training structure)")
        torch.manual_seed(tcfg.seed)
        species = list(state["species"]) if state is not None else self.data.species
        missing = sorted(set(self.data.species) - set(species))
        if missing:
            raise TrainingError(f"elements {missing} are in the data but not in the checkpoint's species "
                                f"{species}; start a new run with --force")
        self.species = species
        self.potential = build_potential(cfg.model, species).to(self.dtype)
        self.statistics = state.get("statistics", {}) if state is not None else {}
        if state is None and tcfg.init_from:
            self.statistics = dict(warm_start(self.potential, tcfg.init_from, cfg.model, species))
            if float(self.potential.repulsion.strength) > 0:   # this data's shortest contacts
                self.statistics["repulsion"] = fit_contact_radii(
                    self.potential.repulsion, [self.data.train[i] for i in range(len(self.data.train))], species)
            self.log(f"initial weights from {tcfg.init_from}")
        elif state is None:
            graphs = [self.data.train[i] for i in range(len(self.data.train))]
            self.statistics = to_plain(fit_statistics(self.potential, graphs))
        self.potential.to(self.ctx.device)
        self.kernels = _use_training_kernels(self.potential, tcfg.kernels, self.ctx.device)
        dist.broadcast_module(self.potential, self.ctx)
        self.atomref = take_atomref(self.potential)   # energies relative to it, in float64
        self.ema = EMA(self.potential, tcfg.ema_decay)
        # one fused update of all parameters per step (the per-parameter loop costs ~1.5 ms a step)
        self.optimizer = torch.optim.Adam(self.potential.parameters(), lr=tcfg.lr, fused=True)
        self.scheduler = _make_scheduler(self.optimizer, tcfg)
        self.progress = Progress()
        if state is not None:
            self._restore(state)

    def _restore(self, state: dict) -> None:
        self.potential.load_state_dict(state["model"])
        self.atomref = take_atomref(self.potential)
        self.ema.load_state_dict(with_atomref(state["model_ema"], np.zeros_like(self.atomref)))
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state.get("scheduler") is not None:
                self.scheduler.load_state_dict(state["scheduler"])
        except (ValueError, KeyError) as exc:
            raise TrainingError(f"cannot restore the optimizer/scheduler from {self.out / 'last.ckpt'} "
                                f"({exc}); keep training.scheduler as it was, or --force") from None
        fields = {f.name for f in dataclasses.fields(Progress)}
        self.progress = Progress(**{k: state[k] for k in fields if k in state})
        self.progress.history = [dict(r) for r in self.progress.history]
        self.weights = self.weights_at(self.budget_used(self.progress.elapsed_s))

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        p = self.progress
        return {
            "config": self.cfg.to_dict(), "model_config": dataclasses.asdict(self.cfg.model),
            "species": list(self.species), "dtype": self.tcfg.dtype,
            "model": with_atomref(self.potential.state_dict(), self.atomref),
            "model_ema": with_atomref(self.ema.state_dict(), self.atomref),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "split": {k: torch.as_tensor(np.asarray(v)) for k, v in self.data.split.items()},
            "statistics": self.statistics, **dataclasses.asdict(p),
        }

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # ---------------------------------------------------------------- epochs
    def _forward(self, model, batch, create_graph: bool):
        return model(batch, compute_forces=K.FORCES in batch,
                     compute_stress=K.STRESS in batch and self.weights[K.STRESS] > 0,
                     create_graph=create_graph)

    def _global_counts(self, idx: np.ndarray) -> dict:
        return term_counts(float(len(idx)), float(self.n_atoms[idx].sum()))

    def train_epoch(self, started: float) -> dict:
        """One pass over the training set (or until the time budget runs out)."""
        epoch = self.progress.epoch
        n, bs = len(self.data.train), self.tcfg.batch_size
        order = np.random.default_rng([self.tcfg.seed, epoch]).permutation(n)
        starts = range(0, n, bs)
        bar = tqdm(total=len(starts), desc=f"epoch {epoch + 1}", leave=False, dynamic_ncols=True,
                   disable=self.quiet or not self.ctx.is_main or not sys.stderr.isatty())
        b0 = self.progress.batch_in_epoch          # > 0 when resuming inside this epoch
        bar.update(b0)
        totals, step_losses = dict(self.progress.epoch_sums), list(self.progress.epoch_losses)
        params = [p for p in self.potential.parameters() if p.requires_grad]
        self._clock = self.progress.elapsed_s
        self.potential.train()
        try:
            for b, start in enumerate(starts):
                if b < b0:
                    continue
                idx = order[start:start + bs]
                local = dist.shard(idx, self.ctx)
                self.optimizer.zero_grad(set_to_none=True)
                # the same on every rank: the step count and rank 0's clock at the last step
                self.weights = self.weights_at(self.budget_used(self._clock))
                sums = {}
                if len(local):
                    batch = collate_relative([self.data.train[int(i)] for i in local], self.atomref,
                                             self.dtype, self.ctx.device)
                    pred = self._forward(self.potential, batch, create_graph=True)
                    loss = weighted_loss(pred, batch, self.weights, self._global_counts(idx))
                    # gradients of the parameters only: no work on the positions' gradient,
                    # and the fused kernels then take their hand-written second derivatives
                    torch.autograd.backward(loss, inputs=params)
                    sums = error_sums(pred, batch)
                    sums["loss"] = float(loss.detach())
                elapsed = self.progress.elapsed_s + time.monotonic() - started
                over_time = self.tcfg.max_time is not None and elapsed > self.tcfg.max_time
                # rank 0's clock decides for all ranks (when to stop, the same lr everywhere)
                sums["stop"] = 1.0 if (over_time and self.ctx.is_main) else 0.0
                sums["budget"] = self.budget_used(elapsed) if self.ctx.is_main else 0.0
                sums["elapsed"] = elapsed if self.ctx.is_main else 0.0
                dist.sync_gradients(params, self.ctx)
                reduced = _reduce(sums, self.ctx)
                self._clock = reduced["elapsed"]
                if not math.isfinite(reduced["loss"]):
                    raise TrainingError(f"the loss is {reduced['loss']} at epoch {epoch + 1}, batch {b + 1}; "
                                        f"lower training.lr, set training.max_grad_norm, or check the data "
                                        f"for outliers. last.ckpt (from before this batch) is intact.")
                if self.tcfg.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, self.tcfg.max_grad_norm)
                if self.tcfg.scheduler == "cosine":
                    self._set_lr(cosine_lr(self.tcfg.lr, self.tcfg.min_lr, reduced["budget"]))
                self.optimizer.step()
                self.ema.update(self.potential, self.progress.step)
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ExponentialLR):
                    self.scheduler.step()
                self.progress.step += 1
                step_losses.append(reduced["loss"])
                add_sums(totals, reduced)
                live = summarize(totals, self.weights)
                bar.set_postfix(loss=f"{reduced['loss']:.3g}",
                                E_meV=f"{live.get('energy_mae_meV', float('nan')):.3g}",
                                F_meV_A=f"{live.get('forces_mae_meV_per_A', float('nan')):.3g}")
                bar.update(1)
                if reduced["stop"] > 0:
                    self.progress.stop_reason = "max_time"
                    break
                if b + 1 < len(starts) and self._checkpoint_due():
                    self._save_inside_epoch(b + 1, totals, step_losses, started)
        finally:
            bar.close()
        p = self.progress
        p.batch_in_epoch, p.epoch_sums, p.epoch_losses = 0, {}, []
        result = summarize(totals, self.weights)
        result["loss"] = float(np.mean(step_losses)) if step_losses else float("nan")
        return result

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _enter_stage_two_if_due(self) -> None:
        """Begin stage two once its share of the budget is reached: the weights ramp from stage
        one's to stage two's, scaled so that the loss keeps its size on today's validation errors
        (Adam's moment estimates then still fit it). best.ckpt stays the stage-one best, copied to
        best_stage_one.ckpt, until an epoch is better on training.stage_two_select."""
        p, t = self.progress, self.tcfg
        fraction = self.budget_used(p.elapsed_s)
        due = p.stage == 1 and stage_of(fraction, t.stage_two_start) == 2
        if not dist.broadcast_object(due, self.ctx):   # rank 0's clock decides for all ranks
            return
        sums = self._validation_sums(self.ema.model, self.data.val)
        one, two = summarize(sums, self.loss_weights(1))["loss"], summarize(sums, self.loss_weights(2))["loss"]
        scale = one / two if one > 0 and two > 0 and math.isfinite(one / two) else 1.0
        p.stage, p.stage_two_from = 2, dist.broadcast_object(fraction, self.ctx)
        p.stage_two_scale = float(dist.broadcast_object(scale, self.ctx))
        p.bad_epochs = 0
        if self.ctx.is_main and (self.out / "best.ckpt").exists():
            shutil.copyfile(self.out / "best.ckpt", self.out / "best_stage_one.ckpt")
        target = ramp_weights(self.loss_weights(1), self.loss_weights(2), 1.0, 0.0, 0.0, p.stage_two_scale)
        self.log(f"stage two after epoch {p.epoch}: loss weights {_fmt_weights(self.loss_weights(1))} -> "
                 f"{_fmt_weights(target)} over {t.stage_two_ramp:g} of the budget (stage two's x "
                 f"{p.stage_two_scale:.3g}: the same loss on the current validation errors); best.ckpt "
                 f"(epoch {p.best_epoch}, also best_stage_one.ckpt) is replaced only by an epoch better on "
                 f"{t.stage_two_select}")

    def _checkpoint_due(self) -> bool:
        every = self.tcfg.checkpoint_every
        return every is not None and time.monotonic() - self._last_save >= every

    def _save_inside_epoch(self, batches_done: int, totals: dict, losses: list, started: float) -> None:
        """last.ckpt in the middle of an epoch: a resume skips the first `batches_done` batches."""
        p = self.progress
        p.batch_in_epoch, p.epoch_sums, p.epoch_losses = batches_done, dict(totals), list(losses)
        elapsed = p.elapsed_s
        p.elapsed_s = elapsed + time.monotonic() - started
        try:
            if self.ctx.is_main:
                save_checkpoint(self.state_dict(), self.out / "last.ckpt")
        finally:
            p.elapsed_s = elapsed
        self._last_save = time.monotonic()

    def validate(self, model=None, dataset=None) -> dict:
        """Loss and MAEs of `model` (default: the EMA weights) on `dataset` (default: validation)."""
        model = self.ema.model if model is None else model
        dataset = self.data.val if dataset is None else dataset
        sums = self._validation_sums(model, dataset)
        result = summarize(sums, self.weights)
        result["loss_stage_one"] = summarize(sums, self.loss_weights(1))["loss"]
        return result

    def _validation_sums(self, model, dataset) -> dict:
        """Error sums (losses.error_sums) of `model` on `dataset`, over all ranks."""
        local = dist.shard(np.arange(len(dataset)), self.ctx)
        totals: dict = {}
        model.eval()
        for start in range(0, len(local), self.tcfg.batch_size):
            idx = local[start:start + self.tcfg.batch_size]
            batch = collate_relative([dataset[int(i)] for i in idx], self.atomref, self.dtype,
                                     self.ctx.device)
            pred = self._forward(model, batch, create_graph=False)
            add_sums(totals, error_sums(pred, batch))
        return _reduce(totals, self.ctx)

    # ---------------------------------------------------------------- files
    def _write_files(self, improved: bool, plot: bool) -> None:
        if not self.ctx.is_main:
            return
        state = self.state_dict()
        if improved:  # best first: a crash in between redoes this epoch and rewrites best.ckpt
            save_checkpoint(state, self.out / "best.ckpt")
        save_checkpoint(state, self.out / "last.ckpt")
        write_metrics_csv(self.progress.history, self.out / "metrics.csv")
        if plot:
            plot_learning_curve(self.progress.history, self.out / "learning_curve.png")

    def _write_run_files(self) -> None:
        if not self.ctx.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        for leftover in self.out.glob(".*.tmp*"):   # from a write cut short by a kill
            leftover.unlink(missing_ok=True)
        save_config(self.cfg, self.out / "config.yaml")
        save_split(self.data.split, self.out / "split.npz")

    # ---------------------------------------------------------------- loop
    def _should_stop(self) -> str:
        """Why to stop now ("" to go on), decided by rank 0 for all ranks (their clocks differ)."""
        return dist.broadcast_object(self._stop_reason(), self.ctx)

    def _stop_reason(self) -> str:
        p, t = self.progress, self.tcfg
        if p.stop_reason == "max_time" or (t.max_time is not None and p.elapsed_s >= t.max_time):
            return "max_time"
        if p.epoch >= t.max_epochs:
            return "max_epochs"
        patience = t.early_stopping_patience
        if patience is not None and p.bad_epochs >= patience:
            return "early_stopping"
        return ""

    def fit(self) -> dict:
        self._write_run_files()
        p = self.progress
        p.stop_reason = ""
        self.log(f"training {self.cfg.model.representation} on {len(self.data.train)} structures "
                 f"(validation {len(self.data.val)}), species {self.species}, "
                 f"{self.ctx.world_size} process(es) on {self.ctx.device}"
                 + (f", {self.kernels} kernels" if self.kernels != "none" else "") + f", into {self.out}")
        repulsion = self.statistics.get("repulsion")
        if repulsion and not (p.epoch or p.batch_in_epoch):
            radii = ", ".join(f"{pair} {r:.2f}" for pair, r in repulsion["radii_A"].items())
            self.log(f"pair repulsion ({repulsion['strength_eV']:g} eV) below the data's shortest contacts (Å): {radii}")
        if p.epoch or p.batch_in_epoch:
            inside = f", batch {p.batch_in_epoch} of epoch {p.epoch + 1}" if p.batch_in_epoch else ""
            self.log(f"resuming after epoch {p.epoch}{inside} (step {p.step}, best validation loss "
                     f"{p.best_val_loss:.4g} at epoch {p.best_epoch})")
        last_plot = -math.inf
        self._last_save = time.monotonic()
        while not (reason := self._should_stop()):
            self._enter_stage_two_if_due()
            started = time.monotonic()
            train = self.train_epoch(started)
            val = self.validate()
            p.epoch += 1
            p.elapsed_s += time.monotonic() - started
            errors = {"energy": val.get("energy_mae_meV_per_atom"), "forces": val.get("forces_mae_meV_per_A"),
                      "loss": val["loss_stage_one"]}
            if p.stage == 1:
                improved = val["loss"] < p.best_val_loss
            else:
                improved = better_than(errors, p.delivered or None, self.tcfg.stage_two_select)
            if improved:
                p.best_val_loss, p.best_epoch, p.bad_epochs, p.delivered = val["loss"], p.epoch, 0, errors
            else:
                p.bad_epochs += 1
            row = {"epoch": p.epoch, "train_loss": train["loss"], "val_loss": val["loss"],
                   "val_energy_mae_meV": val.get("energy_mae_meV"),
                   "val_energy_mae_meV_per_atom": val.get("energy_mae_meV_per_atom"),
                   "val_forces_mae_meV_per_A": val.get("forces_mae_meV_per_A"),
                   "train_energy_mae_meV": train.get("energy_mae_meV"),
                   "train_forces_mae_meV_per_A": train.get("forces_mae_meV_per_A"),
                   "lr": self.lr(), "epoch_time_s": time.monotonic() - started, "wall_time_s": p.elapsed_s,
                   "stage": p.stage}
            p.history.append(row)
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(val["loss"])
            plot = time.monotonic() - last_plot > PLOT_EVERY_S
            last_plot = time.monotonic() if plot else last_plot
            writing = time.monotonic()
            self._write_files(improved, plot)
            self._last_save = time.monotonic()
            # the budget is wall-clock: the writes count (with epochs of a few batches they can
            # cost more than the epoch); last.ckpt holds the time up to them
            p.elapsed_s += self._last_save - writing
            self.log(_epoch_line(row, self.tcfg.max_epochs, improved))
        p.stop_reason = reason
        if p.history:
            self._write_files(False, True)
        delivered = (f"delivered best.ckpt: epoch {p.best_epoch}" if p.stage == 2 else
                     f"best validation loss {p.best_val_loss:.4g} at epoch {p.best_epoch}")
        self.log(f"stopped ({reason}) after epoch {p.epoch}; {delivered}; files in {self.out}")
        return {"output": str(self.out), "epochs": p.epoch, "stop_reason": reason,
                "best_epoch": p.best_epoch, "best_val_loss": p.best_val_loss,
                "last": p.history[-1] if p.history else None}


def changed_model_settings(state: dict, model_cfg) -> list[str]:
    """The model settings (sorted names) in which `model_cfg` differs from checkpoint `state`'s;
    settings the checkpoint does not record count as unchanged."""
    current = dataclasses.asdict(model_cfg)
    return sorted(k for k, v in state["model_config"].items() if current.get(k, v) != v)


def bootstrap_sample(dataset, seed: int):
    """A dataset of len(dataset) structures drawn from `dataset` with replacement (seeded)."""
    rng = np.random.default_rng([seed, 0xB007])
    picks = rng.integers(0, len(dataset), size=len(dataset))
    return AtomsDataset(dataset.structures, dataset.cutoff, indices=picks)


def warm_start(potential: torch.nn.Module, path: str, model_cfg, species: list) -> dict:
    """Load the EMA weights (and fitted statistics) of checkpoint `path` into `potential`;
    returns the statistics. Refuses a checkpoint of other model settings or elements."""
    ck = load_checkpoint(path)
    changed = changed_model_settings(ck, model_cfg)
    if changed:
        raise TrainingError(f"training.init_from: model.{', model.'.join(changed)} differ from {path}; "
                            "warm start needs the same model settings")
    if list(ck["species"]) != list(species):
        raise TrainingError(f"training.init_from: {path} was trained on elements {list(ck['species'])}, "
                            f"the data has {list(species)}; warm start needs the same elements")
    potential.load_state_dict(ck["model_ema"])
    return ck.get("statistics", {})


def _use_training_kernels(potential: torch.nn.Module, kernels: str, device: torch.device) -> str:
    """Put the convolution kernels training.kernels asks for into `potential` (the choice is
    mlpot.kernels.registry's); returns the ones used: "fused", "reference", or "none"."""
    try:
        chosen = choose_for_training(kernels, potential, device)
    except KernelError as exc:
        raise TrainingError(str(exc)) from None
    apply_kernels(potential, chosen)
    return chosen


def _fmt_weights(weights: dict) -> str:
    """Positive loss weights, e.g. "energy_per_atom 1, forces 1"."""
    return ", ".join(f"{k} {v:.3g}" for k, v in weights.items() if v > 0)


def _epoch_line(row: dict, max_epochs: int, improved: bool) -> str:
    def fmt(v, spec):
        return "-" if v is None else format(v, spec)
    return (f"epoch {row['epoch']}/{max_epochs}  train {fmt(row['train_loss'], '.4g')}  "
            f"val {fmt(row['val_loss'], '.4g')}  E {fmt(row['val_energy_mae_meV'], '.3g')} meV  "
            f"F {fmt(row['val_forces_mae_meV_per_A'], '.3g')} meV/Å  lr {row['lr']:.3g}  "
            f"{row['epoch_time_s']:.1f} s{'  *' if improved else ''}")


def train(cfg: TrainConfig, resume: bool = False, force: bool = False, quiet: bool = False,
          log=None) -> dict:
    """Train as configured (one process, or data-parallel under torchrun). Returns a summary:
    output, epochs, stop_reason, best_epoch, best_val_loss, last metrics row; for a committee
    (training.ensemble > 1) a summary with the members' summaries (mlpot.train.committee)."""
    if cfg.training.num_threads:
        torch.set_num_threads(cfg.training.num_threads)
    ctx = dist.setup(cfg.training.device)
    try:
        if cfg.training.ensemble > 1:
            return train_members(cfg, ctx, resume=resume, force=force, quiet=quiet, log=log)
        return train_one(cfg, ctx, resume=resume, force=force, quiet=quiet, log=log)
    finally:
        dist.teardown(ctx)


def train_one(cfg: TrainConfig, ctx, resume: bool = False, force: bool = False, quiet: bool = False,
              log=None, started=None) -> dict:
    """One model in the process group `ctx` (see train); started() is called once its config,
    data and model are good, before training."""
    trainer = Trainer(cfg, ctx, resume=resume, force=force, quiet=quiet, log=log)
    if started is not None:
        started()
    summary = trainer.fit()
    if cfg.data.test and ctx.is_main:
        summary["test"] = _evaluate_test(trainer)
    return summary


def _evaluate_test(trainer: Trainer) -> dict:
    """Errors of best.ckpt on data.test, written to test_metrics.json."""
    d = trainer.cfg.data
    structures = read_structures(d.test, d.format, d.energy_unit, d.force_unit, d.length_unit)
    potential = load_potential(trainer.out / "best.ckpt", device=trainer.ctx.device)
    result = evaluate_potential(potential, structures, batch_size=trainer.tcfg.batch_size)
    (trainer.out / "test_metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    trainer.log("test set: " + json.dumps(result))
    return result
