"""Per-atom virial in pair_style mlpot (`compute stress/atom`, `compute centroid/stress/atom`).

The plugin splits the model's virial over atoms by edges: with g_e = ∂E/∂r_e for every edge
e = (i, j), r_e = x_j − x_i, atoms i and j (local or ghost) each get W_e = −½ r_e ⊗ g_e, and the
computes sum the ghosts' shares into their owners (LAMMPS' reverse communication, newton pair
on). LAMMPS reports S_a = −nktv2p · vatom_a (stress × volume, bar·Å³), vatom_a the symmetric
part of W_a in the order xx yy zz xy xz yz; centroid/stress/atom all nine components of W_a
(xx yy zz xy xz yz yx zx zy, xy = r_x g_y). Python (mlpot.model.potential.atom_virial_of_edges, the
eager float64 model with periodic shifts) gives the same W_a.

Checked, SchNet on both paths (features exchanged between layers; the whole model on a ghost
shell) and wACSF (whole model), float64, on 1 rank in this process and on 2 ranks (`mpirun -np
2`, one run for all cases): on a 64-atom SiC cell, an 8-atom cell and the 2-atom primitive
cell (heights 3.14 Å < cutoff 3.5 Å), per-atom virials and centroid virials equal Python's to
1e-10 eV (measured ~1e-14); Σ_a S_a = −P·V with LAMMPS' own pressure (0 K); without summing the
ghosts' shares the per-atom virials would be off by far more than the tolerance (a finite
counterfactual). With a committee the first model's; with hybrid/overlay mlpot + zbl the sum of
the parts; with hybrid and NULL the Python model on the other atoms (nothing on the NULL
atoms). Files exported before the per-atom virial: the shell path refuses with a message, the
exchange path (needing only the per-layer methods) works."""
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("lammps")
if shutil.which("cmake") is None:
    pytest.skip("cmake not installed: the LAMMPS plugin cannot be built", allow_module_level=True)

from ase.build import bulk  # noqa: E402

from export_helpers import export_without_atom_virial  # noqa: E402
from lammps_helpers import silicon_carbide_primitive as primitive, SETUP, lammps_error, lammps_instance, run_input_lines, tiny_potential  # noqa: E402
from mlpot import keys as K  # noqa: E402
from mlpot.data.batch import atoms_to_batch  # noqa: E402
from mlpot.deploy.export import export_model  # noqa: E402
from mlpot.lammps import write_lammps_data  # noqa: E402

CUTOFF = 3.5
SPECIES = [6, 14]
SYMBOLS = ["C", "Si"]           # type 1 C, type 2 Si
NKTV2P = 1.6021765e6            # units metal: eV/Å³ -> bar
TOLERANCE = 1e-10               # eV per atom (float64 agrees to ~1e-14)
RUNS = [("schnet", "exchange"), ("schnet", "shell"), ("wacsf", "shell")]
# LAMMPS' orders: vatom (stress/atom) and cvatom (centroid/stress/atom), as (row, column) of W
VOIGT = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]
NINE = VOIGT + [(1, 0), (2, 0), (2, 1)]
PAIR_LJ = ["pair_coeff 1 1 lj/cut 0.01 1.9", "pair_coeff 1 2 lj/cut 0.02 1.7"]   # the pairs with C


def zincblende(repeat):
    atoms = bulk("SiC", "zincblende", a=4.36, cubic=True).repeat(repeat)
    atoms.rattle(0.1, seed=7)
    return atoms




CELLS = {"sic_64": lambda: zincblende((2, 2, 2)), "sic_8": lambda: zincblende((1, 1, 1)), "primitive_2": primitive}


def python_atom_virial(potential, atoms):
    """(W_a [N, 3, 3] eV, virial [3, 3], W_a without the shares on periodic images: what LAMMPS
    would give if it dropped the ghosts' rows instead of summing them into their owners)."""
    batch = atoms_to_batch(atoms, CUTOFF, dtype=torch.float64)
    out = potential(batch, compute_forces=True, compute_stress=True, compute_atom_virial=True)
    i, j = batch[K.EDGE_INDEX]
    positions = batch[K.POSITIONS].detach()
    vectors = positions[j] - positions[i] + batch[K.EDGE_SHIFTS] @ batch[K.CELL].reshape(3, 3)
    vectors.requires_grad_(True)
    data = dict(batch)
    data[K.EDGE_VECTORS], data[K.EDGE_LENGTHS] = vectors, torch.linalg.norm(vectors, dim=1)
    energy = potential.atom_energies(potential.representation(data), batch[K.ATOMIC_NUMBERS]).sum()
    (g,) = torch.autograd.grad(energy, vectors)
    half = -0.5 * vectors.detach()[:, :, None] * g[:, None, :]
    home = (batch[K.EDGE_SHIFTS] == 0).all(dim=1)    # the j end is the atom itself, not an image
    no_ghosts = torch.zeros(len(atoms), 3, 3, dtype=torch.float64).index_add(0, i, half)
    no_ghosts = no_ghosts.index_add(0, j[home], half[home])
    return (out[K.ATOM_VIRIAL].detach().numpy(), out[K.VIRIAL][0].detach().numpy(), no_ghosts.numpy())


def lammps_order(w, order):
    """[N, 3, 3] -> [N, len(order)]; VOIGT takes the symmetric part."""
    sym = 0.5 * (w + w.transpose(0, 2, 1)) if order is VOIGT else w
    return np.stack([sym[:, a, b] for a, b in order], axis=1)


def computes():
    return ["compute sa all stress/atom NULL", "compute csa all centroid/stress/atom NULL"]


def point_lines(data, pair_lines, prefix):
    """One run 0 (after `clear`) writing the per-atom virials by id to {prefix}.dump and
    `pxx pyy pzz pxy pxz pyz vol` to {prefix}.thermo."""
    columns = " ".join([f"c_sa[{k + 1}]" for k in range(6)] + [f"c_csa[{k + 1}]" for k in range(9)])
    thermo = "pxx pyy pzz pxy pxz pyz vol"
    return ["clear", *SETUP, f"read_data {data}", *pair_lines, *computes(), f"thermo_style custom {thermo}", "run 0",
            'print "' + " ".join(f"$({k}:%.17g)" for k in thermo.split()) + f'" file {prefix}.thermo',
            f"write_dump all custom {prefix}.dump id {columns} modify sort id format float %.17g"]


def read_point(prefix, n):
    rows = np.atleast_2d(np.loadtxt(f"{prefix}.dump", skiprows=9))
    assert np.array_equal(rows[:, 0], np.arange(1, n + 1))
    values = np.loadtxt(f"{prefix}.thermo")
    return {"vatom": -rows[:, 1:7] / NKTV2P, "cvatom": -rows[:, 7:16] / NKTV2P, "pressure": values[:6],
            "volume": values[6], "stress_atom": rows[:, 1:7]}


def single_point(plugin, data, pair_lines):
    """The same from run 0 in this process (the computes' arrays through the library interface)."""
    with lammps_instance(plugin) as lmp:
        for line in [*SETUP, f"read_data {data}", *pair_lines, *computes(), "run 0"]:
            lmp.command(line)
        n = lmp.extract_setting("nlocal")
        order = lmp.numpy.extract_atom("id")[:n] - 1
        sa, csa = np.zeros((n, 6)), np.zeros((n, 9))
        sa[order] = lmp.numpy.extract_compute("sa", 1, 2)[:n]
        csa[order] = lmp.numpy.extract_compute("csa", 1, 2)[:n]
        return {"vatom": -sa / NKTV2P, "cvatom": -csa / NKTV2P, "stress_atom": sa, "volume": lmp.get_thermo("vol"),
                "pressure": np.array([lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz")])}


def mlpot_lines(model, path, symbols=SYMBOLS):
    return [f"pair_style mlpot {path}", f"pair_coeff * * {model} {' '.join(symbols)}"]


def setups(files):
    """Pair lines of every run, by name."""
    out = {}
    for family, path in RUNS:
        out[family, path] = mlpot_lines(files[family], path)
    for path in ("exchange", "shell"):
        out["committee", path] = mlpot_lines(f"{files['schnet']} {files['member']}", f"{path} out_freq 1 "
                                             f"out_file {files['folder'] / f'devi_{path}.out'}")
        out["overlay", path] = [f"pair_style hybrid/overlay mlpot {path} zbl 1.0 2.0",
                                f"pair_coeff * * mlpot {files['schnet']} {' '.join(SYMBOLS)}",
                                "pair_coeff 1 1 zbl 6 6", "pair_coeff 1 2 zbl 6 14", "pair_coeff 2 2 zbl 14 14"]
        out["null", path] = [f"pair_style hybrid mlpot {path} lj/cut 4.0",
                             f"pair_coeff * * mlpot {files['schnet']} NULL Si", *PAIR_LJ]
        out["older", path] = mlpot_lines(files["older"], "exchange")
    out["older", "exchange"] = mlpot_lines(files["older"], "exchange")
    del out["older", "shell"]
    out["zbl"] = ["pair_style zbl 1.0 2.0", "pair_coeff 1 1 6 6", "pair_coeff 1 2 6 14", "pair_coeff 2 2 14 14"]
    out["lj"] = ["pair_style lj/cut 4.0", "pair_coeff 2 2 0.0 1.0",
                 *(line.replace(" lj/cut", "") for line in PAIR_LJ)]
    return out


@pytest.fixture(scope="module")
def case(plugin, tmp_path_factory):
    """Model files, data files, Python references, and the 1-rank and 2-rank results of every
    setup on every cell (one mpirun for all 2-rank runs)."""
    folder = tmp_path_factory.mktemp("virial_atom")
    potentials = {"schnet": tiny_potential(SPECIES, cutoff=CUTOFF, seed=0),
                  "wacsf": tiny_potential(SPECIES, cutoff=CUTOFF, seed=0, representation="wacsf"),
                  "member": tiny_potential(SPECIES, cutoff=CUTOFF, seed=1)}
    files = {"folder": folder}
    for name, potential in potentials.items():
        files[name] = folder / f"{name}.pt"
        export_model(potential, files[name], dtype="float64")
    files["older"] = folder / "older.pt"
    export_without_atom_virial(potentials["schnet"], files["older"])
    runs = setups(files)
    cells, refs, lines = {}, {}, []
    for cell, make in CELLS.items():
        atoms = make()
        data = write_lammps_data(folder / f"{cell}.data", atoms, SYMBOLS)
        cells[cell] = (atoms, data)
        for family in ("schnet", "wacsf"):
            refs[cell, family] = python_atom_virial(potentials[family], atoms)
        silicon = atoms[atoms.numbers == 14]
        refs[cell, "silicon"] = python_atom_virial(potentials["schnet"], silicon)
        for name, pair_lines in runs.items():
            lines += point_lines(data, pair_lines, folder / f"two_{cell}_{'_'.join(np.atleast_1d(name))}")
    run_input_lines(plugin, lines, folder, n_ranks=2, timeout=300)
    results = {}
    for cell, (atoms, data) in cells.items():
        for name, pair_lines in runs.items():
            results[cell, name, 1] = single_point(plugin, data, pair_lines)
            results[cell, name, 2] = read_point(folder / f"two_{cell}_{'_'.join(np.atleast_1d(name))}", len(atoms))
    return {"files": files, "cells": cells, "refs": refs, "results": results, "folder": folder}


def report(title, table):
    print(f"{title}:\n" + "\n".join(f"  {key}: " + " ".join(f"{k} {v:.1e}" for k, v in diffs.items())
                                     for key, diffs in table.items()))


def test_per_atom_virial_matches_python(case):
    """stress/atom and centroid/stress/atom = Python's W_a, every cell × (SchNet exchange, SchNet
    shell, wACSF), 1 and 2 ranks; their sums are the global virial: Σ S_a = −P·V (LAMMPS'
    pressure, 0 K) and Σ vatom = Python's virial."""
    table = {}
    for (cell, name, ranks), got in case["results"].items():
        if name not in RUNS:
            continue
        w, virial, _ = case["refs"][cell, name[0]]
        assert np.abs(w).max() > 0.05
        sums = got["stress_atom"].sum(0)
        pressure_volume = -got["pressure"] * got["volume"]
        table[cell, name, ranks] = {
            "vatom": np.abs(got["vatom"] - lammps_order(w, VOIGT)).max(),
            "cvatom": np.abs(got["cvatom"] - lammps_order(w, NINE)).max(),
            "sum vs -PV": np.abs(sums - pressure_volume).max() / np.abs(pressure_volume).max(),
            "sum vs virial": np.abs(got["vatom"].sum(0) - lammps_order(virial[None], VOIGT)[0]).max()}
    report("per-atom virial, |LAMMPS - Python| (eV; sum vs -PV relative)", table)
    assert len(table) == len(CELLS) * len(RUNS) * 2
    for diffs in table.values():
        assert diffs["vatom"] < TOLERANCE and diffs["cvatom"] < TOLERANCE, table
        assert diffs["sum vs -PV"] < 1e-10 and diffs["sum vs virial"] < TOLERANCE, table


def test_ghost_shares_are_summed_into_their_owners(case):
    """Most edges of these small cells end on ghost atoms (periodic images): dropping the shares
    that land on them changes the per-atom virials by far more than the tolerance, and LAMMPS
    matches the version that sums them into their owners, on 1 and 2 ranks."""
    table = {}
    for cell in ("sic_8", "primitive_2"):
        w, _, no_ghosts = case["refs"][cell, "schnet"]
        missing = np.abs(lammps_order(no_ghosts, VOIGT) - lammps_order(w, VOIGT)).max()
        assert missing > 1e6 * TOLERANCE, (cell, missing)
        for ranks in (1, 2):
            got = case["results"][cell, ("schnet", "exchange"), ranks]
            table[cell, ranks] = {"without ghost shares": missing,
                                  "LAMMPS vs with": np.abs(got["vatom"] - lammps_order(w, VOIGT)).max()}
            assert table[cell, ranks]["LAMMPS vs with"] < TOLERANCE
    report("ghost shares of the per-atom virial (eV)", table)


def test_committee_hybrid_and_null(case):
    """A committee's per-atom virial is its first model's (bit for bit); hybrid/overlay mlpot zbl
    = mlpot + zbl; hybrid mlpot (C NULL) lj/cut minus lj/cut = Python on the Si atoms alone and
    zero on the C atoms; both paths, 1 and 2 ranks, every cell."""
    table = {}
    for (cell, name, ranks), got in case["results"].items():
        if name[0] not in ("committee", "overlay", "null"):
            continue
        kind, path = name
        alone = case["results"][cell, ("schnet", path), ranks]
        if kind == "committee":
            assert np.array_equal(got["vatom"], alone["vatom"]), (cell, name, ranks)
            assert np.array_equal(got["cvatom"], alone["cvatom"]), (cell, name, ranks)
            continue
        if kind == "overlay":
            zbl = case["results"][cell, "zbl", ranks]
            if cell != "primitive_2":   # its neighbours (2.35 Å) lie beyond ZBL's 2 Å
                assert np.abs(zbl["vatom"]).max() > 1e-3
            table[cell, name, ranks] = {k: np.abs(got[k] - alone[k] - zbl[k]).max() for k in ("vatom", "cvatom")}
            continue
        atoms, _ = case["cells"][cell]
        silicon = atoms.numbers == 14
        lj = case["results"][cell, "lj", ranks]
        w, _, _ = case["refs"][cell, "silicon"]
        part = {k: got[k] - lj[k] for k in ("vatom", "cvatom")}
        table[cell, name, ranks] = {
            "vatom": np.abs(part["vatom"][silicon] - lammps_order(w, VOIGT)).max(),
            "cvatom": np.abs(part["cvatom"][silicon] - lammps_order(w, NINE)).max(),
            "on C": np.abs(part["vatom"][~silicon]).max()}
        if cell != "primitive_2":   # its one Si atom sees only images of itself
            assert np.abs(w).max() > 1e-3
    report("committee / hybrid/overlay / NULL per-atom virials, max |difference| (eV)", table)
    for diffs in table.values():
        assert max(diffs.values()) < TOLERANCE, table


def test_files_exported_before_the_per_atom_virial(plugin, case):
    """A file whose forward has no compute_atom_virial: the exchange path (per-layer methods
    only) gives the per-atom virial; the shell path refuses it with a message."""
    for ranks in (1, 2):
        for cell in CELLS:
            got = case["results"][cell, ("older", "exchange"), ranks]
            w, _, _ = case["refs"][cell, "schnet"]
            assert np.abs(got["vatom"] - lammps_order(w, VOIGT)).max() < TOLERANCE
    _, data = case["cells"]["sic_8"]
    message = lammps_error(plugin, [*SETUP, f"read_data {data}", *mlpot_lines(case["files"]["older"], "shell"),
                                    *computes(), "run 0"])
    assert "exported before per-atom virials" in message and "mlpot export" in message
