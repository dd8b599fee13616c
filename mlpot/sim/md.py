"""Langevin MD as mlpot runs it everywhere — labelling (sim/labelling.sample_md), committee
exploration (learn/explore.committee_md), the demo's spectra (demo/analysis.run_nvt) and
md_examples/md_nvt.py: momenta thermalised without net momentum (nor rotation, for a molecule),
the centre of mass fixed by a constraint (FixCom, instead of Langevin's own fixcm), ASE's
Langevin thermostat driven by one numpy Generator, so that a seed gives one trajectory.
"""
from __future__ import annotations

from ase import units
from ase.constraints import FixCom
from ase.md import velocitydistribution as vd
from ase.md.langevin import Langevin

# ASE >= 3.29 names it thermalize_momenta; older ASE only has MaxwellBoltzmannDistribution
_thermalize_momenta = getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution


def thermalize(atoms, temperature_K: float, rng) -> None:
    """Maxwell–Boltzmann momenta at temperature_K (rng: numpy Generator), in place, without net
    momentum, and without net rotation for a molecule (pbc all False)."""
    _thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    vd.Stationary(atoms)
    if not atoms.pbc.any():
        vd.ZeroRotation(atoms)


def langevin(atoms, calculator, temperature: float, timestep: float, friction: float, rng,
             start_temperature: float | None = None, **kwargs) -> tuple:
    """(work, dynamics): a copy of `atoms` with `calculator`, its centre of mass fixed, momenta
    thermalised at `start_temperature` K (default `temperature`), and ASE's Langevin dynamics of
    it at `temperature` K, time step `timestep` fs, friction `friction` 1/fs, random numbers from
    `rng` (numpy Generator). kwargs go to ase.md.langevin.Langevin (trajectory, loginterval, ...)."""
    work = atoms.copy()
    work.calc = calculator
    work.set_constraint(FixCom())
    thermalize(work, temperature if start_temperature is None else start_temperature, rng)
    dynamics = Langevin(work, timestep * units.fs, temperature_K=temperature, friction=friction / units.fs,
                        fixcm=False, rng=rng, **kwargs)
    return work, dynamics
