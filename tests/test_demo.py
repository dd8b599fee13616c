"""`mlpot demo --quick` runs end to end and writes its report, figures and model."""
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pytest

from mlpot.cli import main
from mlpot.demo.pipeline import DemoError, aligned_rmsd, check_output_folder


@pytest.mark.slow
def test_quick_demo_runs_end_to_end(tmp_path, capsys):
    pytest.importorskip("tblite")        # the demo's reference is GFN2-xTB
    out = tmp_path / "demo"
    started = time.perf_counter()
    assert main(["demo", "--quick", "--out", str(out), "--threads", "1"]) == 0
    elapsed = time.perf_counter() - started
    printed = capsys.readouterr().out
    # about 40 s on 2 idle cores; the bound catches a run gone wrong, not a busy machine
    assert elapsed < 180, f"--quick took {elapsed:.0f} s"
    for name in ("report.md", "model.pt", "reference.db", "ir_harmonic.png", "frequencies.png",
                 "power_spectrum.png", "ir_md.png", "training/best.ckpt"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    for heading in ("## Timings", "## Harmonic frequencies and IR intensities", "Frequency MAE",
                    "| mode | GFN2-xTB (cm⁻¹) |", "## Molecular dynamics"):
        assert heading in report
    assert report.count("\n| ") >= 21 + 7          # 21 modes of ethanol + timing rows
    # every GFN2-xTB calculation is counted: the MD's first forces, 200 equilibration steps and
    # 24 snapshots x 5 steps; 12 normal-mode labels
    assert "md 321, normal modes 12;" in report
    assert str((out / "report.md").resolve()) in printed
    # the model file is usable on its own
    from ase.build import molecule
    from mlpot.deploy.calculator import MLPotCalculator
    atoms = molecule("CH3CH2OH")
    atoms.calc = MLPotCalculator(out / "model.pt")
    assert atoms.get_forces().shape == (9, 3)
    assert atoms.get_dipole_moment().shape == (3,)
    # an existing output folder is never overwritten silently
    assert main(["demo", "--quick", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    # the spectra examples run on the demo's model (tiny settings: checks wiring, not physics)
    vib = load_example("vibrations").main(["--model", str(out / "model.pt"), "--fmax", "100",
                                            "--out", str(tmp_path / "vib")])
    assert vib == 0 and (tmp_path / "vib" / "ir_spectrum.png").is_file()
    table = (tmp_path / "vib" / "vibrations.txt").read_text()
    assert "max |Δν|" in table and "max |ΔI|" in table
    ps = load_example("power_spectrum").main(["--model", str(out / "model.pt"), "--steps", "40",
                                              "--equilibration", "2", "--out", str(tmp_path / "ps")])
    assert ps == 0 and (tmp_path / "ps" / "power_spectrum.png").is_file()
    data = np.loadtxt(tmp_path / "ps" / "power_spectrum.csv", delimiter=",", skiprows=1)
    assert data.shape[1] == 3 and np.all(np.isfinite(data))


def load_example(name):
    path = Path(__file__).resolve().parents[1] / "md_examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_output_folder_guard(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_output_folder(empty, force=False) == empty
    (empty / "report.md").write_text("old")
    with pytest.raises(DemoError, match="--force"):
        check_output_folder(empty, force=False)
    assert check_output_folder(empty, force=True) == empty
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(DemoError, match="not a folder"):
        check_output_folder(a_file, force=True)


def test_unknown_molecule_is_a_clear_error(tmp_path, capsys):
    assert main(["demo", "--quick", "--molecule", "unobtainium", "--out", str(tmp_path / "x")]) == 2
    assert "unknown molecule 'unobtainium'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_aligned_rmsd_ignores_rotation():
    from ase.build import molecule
    a = molecule("CH3CH2OH")
    b = a.copy()
    b.rotate(40, "z", center="COM")
    b.translate([1.0, 2.0, 3.0])
    assert aligned_rmsd(a, b) == pytest.approx(0.0, abs=1e-6)
    b.positions[0] += [0.3, 0, 0]
    assert aligned_rmsd(a, b) > 0.05


@pytest.mark.slow
def test_quick_learn_demo_compares_active_learning_with_random_sampling(tmp_path):
    pytest.importorskip("tblite")
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--learn", "--out", str(out), "--threads", "1"]) == 0
    report = (out / "report.md").read_text()
    assert "| active learning, iteration 0 |" in report and "| active learning, iteration 1 |" in report
    import re
    rows = re.findall(r"^\| (active learning, iteration \d|random sampling) \| (\d+) \| (\d+) \|", report, re.M)
    assert [r[0] for r in rows] == ["active learning, iteration 0", "active learning, iteration 1", "random sampling"]
    assert rows[0][1] == "8" and rows[2][1] == rows[1][1]      # random sampling: as many labels as learning
    # GFN2-xTB calculations: both share optimisation and Hessian; learning adds one per label, random
    # sampling the MD's first forces, 200 equilibration steps and md_interval = 5 steps per MD
    # snapshot (2/3 of them). A label GFN2-xTB fails on (no SCF convergence on a sample from the tiny
    # committee; its training is timed, so whether one fails varies) is a calculation without a label.
    n, n_md = int(rows[2][1]), 2 * int(rows[2][1]) // 3
    failed = json.loads((out / "learn" / "learn.json").read_text())["history"][0].get("n_label_failed", 0)
    assert int(rows[1][2]) - int(rows[0][2]) == n - 8 + failed    # a failed label is a calculation too
    assert int(rows[2][2]) - int(rows[1][2]) == 1 + 200 + 4 * n_md - failed
    assert "rank correlation" in report
    assert "learn/committee.json" in report
    for name in ("learn/learn.json", "learn/learning.png", "random/model.pt", "test.db", "seed.db", "ir_harmonic.png"):
        assert (out / name).is_file(), name
