"""The config of issue 4, verbatim, on rMD17 ethanol (shortened with --set), then eval."""
import json

import pytest

from conftest import SHARED_DATA, shared_file
from mlpot.cli import main
from mlpot.train.checkpoint import load_checkpoint
from mlpot.train.metrics import read_metrics_csv
from test_train_config import ISSUE_CONFIG


@pytest.mark.shared_data
def test_issue_config_runs_verbatim_then_eval(tmp_path, capsys):
    shared_file("rmd17/rmd17_ethanol_train_01.npz")
    test_file = shared_file("rmd17/rmd17_ethanol_test_01.npz")
    (tmp_path / "shared").symlink_to(SHARED_DATA.parent)       # the config says ../shared/data
    project = tmp_path / "project"
    project.mkdir()
    config = project / "ethanol.yaml"
    config.write_text(ISSUE_CONFIG)

    code = main(["train", str(config), "--quiet", "--set", "training.max_epochs=1",
                 "--set", "data.n_train=64", "--set", "data.n_val=16"])
    assert code == 0
    run = project / "runs" / "ethanol_schnet"
    for name in ("best.ckpt", "last.ckpt", "metrics.csv", "learning_curve.png", "config.yaml", "split.npz"):
        assert (run / name).is_file(), name
    rows = read_metrics_csv(run / "metrics.csv")
    assert len(rows) == 1 and rows[0]["val_forces_mae_meV_per_A"] > 0
    state = load_checkpoint(run / "best.ckpt")
    assert state["species"] == [1, 6, 8]
    assert state["model_config"]["n_atom_basis"] == 128 and state["model_config"]["n_rbf"] == 20
    assert len(state["split"]["train"]) == 64 and len(state["split"]["val"]) == 16

    assert main(["eval", str(run / "best.ckpt"), str(test_file), "--limit", "20"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_structures"] == 20 and result["n_force_components"] == 20 * 9 * 3
    assert result["energy_mae_meV_per_atom"] == pytest.approx(result["energy_mae_meV"] / 9, rel=1e-6)
