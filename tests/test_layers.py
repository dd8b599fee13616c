"""The package's layers (pyproject.toml [tool.importlinter], README Layout): every import,
including those inside functions, goes only downward; `lint-imports` says which does not. The
package root holds only the façade and contracts; the module paths that moved keep importing
their new homes for one release (mlpot/moved.py)."""
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlpot.moved import MOVED

ROOT = Path(__file__).resolve().parents[1]
FACADE = {"__init__.py", "__main__.py", "cli.py", "keys.py", "units.py", "version.py", "moved.py",
          "potential.py"}   # potential.py: the one re-export that merges two modules (one release)


def test_imports_follow_the_layers():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (make setup installs it with the test extra)")
    run = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "2 kept, 0 broken" in run.stdout


def test_package_root_holds_only_the_facade_and_contracts():
    assert {p.name for p in (ROOT / "mlpot").glob("*.py")} == FACADE


@pytest.mark.parametrize("old", sorted(MOVED))
def test_moved_module_paths_import_their_new_homes(old):
    new = importlib.import_module(MOVED[old])
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {MOVED[old]}"):
        module = importlib.import_module(old)
    assert module is new and module.__spec__.name == MOVED[old]


def test_moved_package_takes_its_submodules_along():
    import mlpot.model.nn.cutoff as cutoff

    assert importlib.import_module("mlpot.nn.cutoff") is cutoff
    from mlpot.nn import cutoff as again

    assert again is cutoff
