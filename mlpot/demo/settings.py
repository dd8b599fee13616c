"""Settings of `mlpot demo`: the default run (about 7 minutes on 2 cores), `--learn` and `--quick`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass
class DemoSettings:
    molecule: str = "CH3CH2OH"       # a name ase.build.molecule knows (ethanol)
    out: str = "demo_output"         # output folder
    force: bool = False              # overwrite the results in an existing output folder
    seed: int = 0
    threads: int = 1                 # torch CPU threads for training (1 is fastest for small molecules)
    # reference data (GFN2-xTB)
    sampling_temperature: float = 500.0   # K, for MD and normal-mode sampling
    n_md: int = 1200                 # configurations from Langevin MD
    md_interval: int = 10            # MD steps of 0.5 fs between configurations
    n_normal_mode: int = 600         # configurations from normal-mode sampling
    n_test: int = 100                # held out for the report's test errors
    # model (SchNet) and training
    n_atom_basis: int = 64
    n_filters: int = 64
    n_interactions: int = 3
    n_rbf: int = 20
    cutoff: float = 5.0              # Å
    batch_size: int = 16
    lr: float = 1e-3
    max_epochs: int = 1000           # the time budget ends training first
    max_train_time: float = 400.0    # s, wall-clock budget of the training stage
    dipole_weight: float = 10.0
    # --learn: the reference data by active learning (mlpot learn) instead of random sampling
    learn: bool = False
    learn_seed: int = 20             # normal-mode samples at 300 K to start from
    learn_iterations: int = 4        # committee trainings
    learn_committee: int = 3          # committee members
    learn_member_time: float = 20.0  # s of training per member and iteration
    learn_max_new: int = 60          # frames labelled per iteration
    learn_temperatures: tuple = (300.0, 500.0, 700.0)   # K, committee MD
    learn_md_steps: int = 400        # steps of 0.5 fs per temperature and iteration
    learn_normal_modes: int = 40     # normal-mode samples (committee's own modes) per temperature and iteration
    learn_trust_lo: float = 0.05     # eV/Å
    learn_trust_hi: float = 0.5      # eV/Å
    # analysis with the trained model
    md_temperature: float = 300.0    # K
    md_time: float = 1000.0          # fs of NVT MD (Langevin)
    md_timestep: float = 0.5         # fs
    fmax: float = 1e-3               # eV/Å, geometry optimisation
    opt_steps: int = 1000            # BFGS steps at most

    @classmethod
    def quick(cls, **changes) -> "DemoSettings":
        """A tiny end-to-end run for tests (well under a minute; accuracy is not the point)."""
        tiny = dict(n_md=24, md_interval=5, n_normal_mode=12, n_test=6, n_atom_basis=16, n_filters=16,
                    n_interactions=2, n_rbf=8, batch_size=8, max_epochs=2, max_train_time=30.0,
                    md_time=50.0, fmax=0.05, opt_steps=60, learn_seed=8, learn_iterations=2,
                    learn_committee=2, learn_member_time=3.0, learn_max_new=5, learn_md_steps=20,
                    learn_normal_modes=2)
        tiny.update(changes)
        return cls(**tiny)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        if not self.learn:
            values = {k: v for k, v in values.items() if not k.startswith("learn_")}
        return values
